package report

import (
	"encoding/xml"
	"fmt"
	"io"

	"github.com/wardenhq/warden/internal/scan"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// JUnit writes one test suite per file and one failed test case per
// finding (suppressed findings are skipped cases, input errors are errored
// cases), so CI test-report views list them. A clean scan is one passing
// case.
func JUnit(w io.Writer, res *scan.Result) error {
	suites := map[string]*junitSuite{}
	var order []string
	suite := func(file string) *junitSuite {
		s, ok := suites[file]
		if !ok {
			s = &junitSuite{Name: file}
			suites[file] = s
			order = append(order, file)
		}
		return s
	}
	for i := range res.Findings {
		f := &res.Findings[i]
		s := suite(f.File)
		c := junitCase{Name: fmt.Sprintf("%s %s", f.RuleID, f.Object()), Classname: f.RuleID}
		body := fmt.Sprintf("%s\n%s\nseverity: %s\nremediation: %s", f.Location(), f.Message, f.Severity, f.Remediation)
		if f.Suppressed {
			c.Skipped = &junitMessage{Message: "suppressed by " + f.SuppressedBy + ": " + f.SuppressionReason}
			s.Skipped++
		} else {
			c.Failure = &junitMessage{Message: f.Title, Type: f.Severity.String(), Body: body}
			s.Failures++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	for _, e := range res.Errors {
		s := suite(e.File)
		s.Cases = append(s.Cases, junitCase{Name: "input", Classname: "warden.input", Error: &junitMessage{Message: e.Error()}})
		s.Tests++
		s.Errors++
	}
	out := junitSuites{Name: "warden scan"}
	if len(order) == 0 {
		order = append(order, "warden scan")
		suites["warden scan"] = &junitSuite{Name: "warden scan", Tests: 1, Cases: []junitCase{{Name: fmt.Sprintf("%d object(s) scanned, no findings", res.Objects), Classname: "warden.scan"}}}
	}
	for _, name := range order {
		s := suites[name]
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
		out.Suites = append(out.Suites, *s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

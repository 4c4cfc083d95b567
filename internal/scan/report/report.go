// Package report renders scan results for people and machines: a table
// (default), JSON, SARIF 2.1.0 for code-scanning UIs, and JUnit XML for CI
// test reports.
package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/wardenhq/warden/internal/scan"
)

// Formats lists the names Write accepts.
var Formats = []string{"table", "json", "sarif", "junit"}

// Write renders res in format. version is the tool version for SARIF.
func Write(w io.Writer, format string, res *scan.Result, version string) error {
	switch format {
	case "", "table":
		return Table(w, res)
	case "json":
		return JSON(w, res)
	case "sarif":
		return SARIF(w, res, version)
	case "junit":
		return JUnit(w, res)
	}
	return fmt.Errorf("report: unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// Table writes one line per finding, suppressed ones after the others,
// then input errors and a summary.
func Table(w io.Writer, res *scan.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var active, suppressed []*scan.Finding
	for i := range res.Findings {
		if res.Findings[i].Suppressed {
			suppressed = append(suppressed, &res.Findings[i])
		} else {
			active = append(active, &res.Findings[i])
		}
	}
	if len(active) > 0 {
		fmt.Fprintln(tw, "SEVERITY\tRULE\tLOCATION\tOBJECT\tMESSAGE")
		for _, f := range active {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", strings.ToUpper(f.Severity.String()), f.RuleID, f.Location(), f.Object(), f.Message)
		}
	}
	if len(suppressed) > 0 {
		fmt.Fprintln(tw, "\nSUPPRESSED\tRULE\tLOCATION\tOBJECT\tREASON")
		for _, f := range suppressed {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.SuppressedBy, f.RuleID, f.Location(), f.Object(), f.SuppressionReason)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range res.Errors {
		fmt.Fprintf(w, "error: %v\n", e)
	}
	s := Summarize(res)
	_, err := fmt.Fprintf(w, "\n%d finding(s) (%d critical, %d high, %d medium, %d low, %d info), %d suppressed, %d object(s) scanned, %d input error(s)\n",
		s.Findings, s.BySeverity["critical"], s.BySeverity["high"], s.BySeverity["medium"], s.BySeverity["low"], s.BySeverity["info"],
		s.Suppressed, res.Objects, len(res.Errors))
	return err
}

// Summary counts findings for the table and JSON outputs.
type Summary struct {
	Findings   int            `json:"findings"`
	Suppressed int            `json:"suppressed"`
	BySeverity map[string]int `json:"bySeverity"`
	Objects    int            `json:"objects"`
	Errors     int            `json:"errors"`
}

// Summarize counts unsuppressed findings by severity.
func Summarize(res *scan.Result) Summary {
	s := Summary{BySeverity: map[string]int{}, Objects: res.Objects, Errors: len(res.Errors)}
	for i := range res.Findings {
		f := &res.Findings[i]
		if f.Suppressed {
			s.Suppressed++
			continue
		}
		s.Findings++
		s.BySeverity[f.Severity.String()]++
	}
	return s
}

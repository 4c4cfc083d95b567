package report

import (
	"encoding/json"
	"io"
	"path/filepath"
	"strings"

	"github.com/wardenhq/warden/internal/scan"
)

// SARIF 2.1.0 (https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html),
// the subset code-scanning services read.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Results     []sarifResult     `json:"results"`
	Invocations []sarifInvocation `json:"invocations"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	InformationURI string      `json:"informationUri"`
	Version        string      `json:"version,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	ShortDescription     sarifText      `json:"shortDescription"`
	Help                 sarifText      `json:"help"`
	HelpURI              string         `json:"helpUri,omitempty"`
	DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties,omitempty"`
}

type sarifConfig struct {
	Level string `json:"level"`
}

type sarifResult struct {
	RuleID       string             `json:"ruleId"`
	RuleIndex    int                `json:"ruleIndex"`
	Level        string             `json:"level"`
	Message      sarifText          `json:"message"`
	Locations    []sarifLocation    `json:"locations"`
	Suppressions []sarifSuppression `json:"suppressions,omitempty"`
	Properties   map[string]any     `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical  `json:"physicalLocation"`
	LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Justification string `json:"justification"`
}

type sarifInvocation struct {
	ExecutionSuccessful        bool                `json:"executionSuccessful"`
	ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

func sarifLevel(s scan.Severity) string {
	switch {
	case s >= scan.SeverityHigh:
		return "error"
	case s == scan.SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is GitHub code scanning's numeric severity property.
var securitySeverity = map[scan.Severity]string{
	scan.SeverityCritical: "9.5", scan.SeverityHigh: "8.0", scan.SeverityMedium: "5.5",
	scan.SeverityLow: "3.0", scan.SeverityInfo: "0.0",
}

func sarifURI(p string) string {
	return strings.TrimPrefix(filepath.ToSlash(p), "./")
}

// SARIF writes a SARIF 2.1.0 log with one run. Rules are listed once each,
// in order of first appearance; suppressed findings carry a suppression
// with the reason; input errors are tool notifications.
func SARIF(w io.Writer, res *scan.Result, version string) error {
	run := sarifRun{
		Tool:    sarifTool{Driver: sarifDriver{Name: "warden", InformationURI: "https://github.com/wardenhq/warden", Version: version, Rules: []sarifRule{}}},
		Results: []sarifResult{},
	}
	index := map[string]int{}
	for i := range res.Findings {
		f := &res.Findings[i]
		ri, ok := index[f.RuleID]
		if !ok {
			ri = len(run.Tool.Driver.Rules)
			index[f.RuleID] = ri
			r := sarifRule{ID: f.RuleID, ShortDescription: sarifText{Text: f.Title},
				Help:                 sarifText{Text: f.Remediation},
				DefaultConfiguration: sarifConfig{Level: sarifLevel(f.Severity)},
				Properties:           map[string]any{"security-severity": securitySeverity[f.Severity], "tags": append([]string{"security"}, f.References...)}}
			if r.Help.Text == "" {
				r.Help.Text = f.Title
			}
			for _, ref := range f.References {
				if strings.HasPrefix(ref, "https://") {
					r.HelpURI = ref
					break
				}
			}
			run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, r)
		}
		loc := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: sarifURI(f.File)}}}
		if f.Line > 0 {
			loc.PhysicalLocation.Region = &sarifRegion{StartLine: f.Line}
		}
		if f.Kind != "" {
			loc.LogicalLocations = []sarifLogical{{FullyQualifiedName: f.Object(), Kind: "resource"}}
		}
		r := sarifResult{RuleID: f.RuleID, RuleIndex: ri, Level: sarifLevel(f.Severity),
			Message: sarifText{Text: f.Message}, Locations: []sarifLocation{loc},
			Properties: map[string]any{"severity": f.Severity.String()}}
		if f.Origin != "" {
			r.Properties["origin"] = f.Origin
		}
		if f.Suppressed {
			kind := "external"
			if f.SuppressedBy == "annotation" {
				kind = "inSource"
			}
			r.Suppressions = []sarifSuppression{{Kind: kind, Justification: f.SuppressionReason}}
		}
		run.Results = append(run.Results, r)
	}
	inv := sarifInvocation{ExecutionSuccessful: len(res.Errors) == 0}
	for _, e := range res.Errors {
		n := sarifNotification{Level: "error", Message: sarifText{Text: e.Err.Error()}}
		loc := sarifLocation{PhysicalLocation: sarifPhysical{ArtifactLocation: sarifArtifact{URI: sarifURI(e.File)}}}
		if e.Line > 0 {
			loc.PhysicalLocation.Region = &sarifRegion{StartLine: e.Line}
		}
		n.Locations = []sarifLocation{loc}
		inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, n)
	}
	run.Invocations = []sarifInvocation{inv}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}})
}

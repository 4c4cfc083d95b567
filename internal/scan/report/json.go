package report

import (
	"encoding/json"
	"io"

	"github.com/wardenhq/warden/internal/scan"
)

// jsonDoc is the stable JSON output; SchemaVersion changes only on
// incompatible changes.
type jsonDoc struct {
	SchemaVersion int            `json:"schemaVersion"`
	Summary       Summary        `json:"summary"`
	Findings      []scan.Finding `json:"findings"`
	Errors        []jsonError    `json:"errors"`
}

type jsonError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// JSON writes the findings, input errors and a summary as one document.
func JSON(w io.Writer, res *scan.Result) error {
	doc := jsonDoc{SchemaVersion: 1, Summary: Summarize(res), Findings: res.Findings, Errors: []jsonError{}}
	if doc.Findings == nil {
		doc.Findings = []scan.Finding{}
	}
	for _, e := range res.Errors {
		doc.Errors = append(doc.Errors, jsonError{File: e.File, Line: e.Line, Message: e.Err.Error()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

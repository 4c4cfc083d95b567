package scan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxDocumentBytes caps one YAML document; a larger one is reported as an
// input error instead of exhausting memory. Whole files stream document by
// document, so file size itself is not capped.
const maxDocumentBytes = 64 << 20

// decodeStream splits r into YAML documents at "---" lines and decodes them
// one at a time, so a huge input never sits in memory whole and a malformed
// document does not stop the documents after it. Each object (List items
// unwrapped) is passed to emit; each problem to fail.
func decodeStream(r io.Reader, file, origin string, emit func(*Object), fail func(*InputError)) {
	br := bufio.NewReaderSize(r, 64<<10)
	var doc bytes.Buffer
	lineNo, docStart := 0, 1
	flush := func() {
		if len(bytes.TrimSpace(doc.Bytes())) > 0 {
			decodeDocument(doc.Bytes(), file, origin, docStart-1, emit, fail)
		}
		doc.Reset()
	}
	tooBig := false
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			if isDocSeparator(line) {
				flush()
				tooBig = false
				docStart = lineNo + 1
				// "--- {a: b}" carries content on the separator line.
				if rest := bytes.TrimSpace(line[3:]); len(rest) > 0 && rest[0] != '#' {
					docStart = lineNo
					doc.Write(rest)
					doc.WriteByte('\n')
				}
			} else if !tooBig {
				if doc.Len()+len(line) > maxDocumentBytes {
					fail(&InputError{File: file, Line: docStart, Err: fmt.Errorf("document larger than %d bytes", maxDocumentBytes)})
					tooBig = true
					doc.Reset()
				} else {
					doc.Write(line)
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fail(&InputError{File: file, Line: lineNo, Err: fmt.Errorf("read: %w", err)})
			}
			break
		}
	}
	if !tooBig {
		flush()
	}
}

func isDocSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\n' || line[3] == '\r'
}

// decodeDocument parses one YAML (or JSON) document. offset is the number
// of lines before it in the file.
func decodeDocument(b []byte, file, origin string, offset int, emit func(*Object), fail func(*InputError)) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		line := offset + 1
		var te *yaml.TypeError
		msg := err.Error()
		if !errors.As(err, &te) {
			if l := yamlErrLine(msg); l > 0 {
				line = offset + l
			}
		}
		fail(&InputError{File: file, Line: line, Err: fmt.Errorf("malformed YAML: %s", stripYAMLLine(msg))})
		return
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return
	}
	n := root.Content[0]
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // comment-only document
	}
	objectFromNode(n, file, origin, offset, emit, fail)
}

func objectFromNode(n *yaml.Node, file, origin string, offset int, emit func(*Object), fail func(*InputError)) {
	if n.Kind != yaml.MappingNode {
		fail(&InputError{File: file, Line: offset + n.Line, Err: errors.New("not a Kubernetes object: document is not a mapping")})
		return
	}
	var raw map[string]any
	if err := n.Decode(&raw); err != nil {
		fail(&InputError{File: file, Line: offset + n.Line, Err: fmt.Errorf("decode: %w", err)})
		return
	}
	o := &Object{Raw: raw, File: file, Origin: origin, Line: offset + n.Line, node: n, lineOffset: offset}
	o.APIVersion = getString(raw, "apiVersion")
	o.Kind = getString(raw, "kind")
	if o.APIVersion == "" || o.Kind == "" {
		fail(&InputError{File: file, Line: o.Line, Err: errors.New("not a Kubernetes object: apiVersion and kind are required")})
		return
	}
	if strings.HasSuffix(o.Kind, "List") && raw["items"] != nil {
		items := mapValueNode(n, "items")
		if items == nil || items.Kind != yaml.SequenceNode {
			fail(&InputError{File: file, Line: o.Line, Err: fmt.Errorf("%s: items is not a list", o.Kind)})
			return
		}
		for _, it := range items.Content {
			objectFromNode(it, file, origin, offset, emit, fail)
		}
		return
	}
	o.Name = getString(raw, "metadata", "name")
	o.Namespace = getString(raw, "metadata", "namespace")
	o.Labels = stringMap(getMap(raw, "metadata", "labels"))
	o.Annotations = stringMap(getMap(raw, "metadata", "annotations"))
	emit(o)
}

func mapValueNode(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// yamlErrLine extracts N from yaml.v3's "yaml: line N: …" messages.
func yamlErrLine(msg string) int {
	i := strings.Index(msg, "line ")
	if i < 0 {
		return 0
	}
	n := 0
	for _, c := range msg[i+5:] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func stripYAMLLine(msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		if i := strings.Index(msg, ": "); i >= 0 {
			return msg[i+2:]
		}
	}
	return msg
}

package scan

import (
	"fmt"
	"io"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/open-policy-agent/opa/v1/ast"
)

// isDockerfileName recognises Dockerfile, Containerfile, Dockerfile.x and
// x.Dockerfile.
func isDockerfileName(base string) bool {
	b := strings.ToLower(base)
	return b == "dockerfile" || b == "containerfile" || strings.HasPrefix(b, "dockerfile.") || strings.HasSuffix(b, ".dockerfile")
}

// dockerInput is the Rego input for Dockerfile rules, documented in
// docs/scan.md.
type dockerInput struct {
	Stages       []dockerStage       `json:"stages"`
	Instructions []dockerInstruction `json:"instructions"`
}

type dockerStage struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	Image string `json:"image"`
	Line  int    `json:"line"`
}

type dockerInstruction struct {
	Cmd   string     `json:"cmd"`
	Args  []string   `json:"args"`
	Flags []string   `json:"flags"`
	KV    []dockerKV `json:"kv,omitempty"`
	Line  int        `json:"line"`
	Stage int        `json:"stage"`
}

type dockerKV struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	HasValue bool   `json:"hasValue"`
}

// parseDockerfile parses with buildkit's parser (the one `docker build`
// uses) into the Rego input.
func parseDockerfile(r io.Reader) (*dockerInput, error) {
	res, err := parser.Parse(r)
	if err != nil {
		return nil, err
	}
	in := &dockerInput{Stages: []dockerStage{}, Instructions: []dockerInstruction{}}
	stage := -1
	for _, n := range res.AST.Children {
		cmd := strings.ToLower(n.Value)
		ins := dockerInstruction{Cmd: cmd, Line: n.StartLine, Flags: n.Flags, Args: []string{}}
		if ins.Flags == nil {
			ins.Flags = []string{}
		}
		var words []string
		for a := n.Next; a != nil; a = a.Next {
			words = append(words, a.Value)
		}
		switch cmd {
		case "env":
			// key, value, separator triplets
			for i := 0; i+1 < len(words); i += 3 {
				ins.KV = append(ins.KV, dockerKV{Key: words[i], Value: words[i+1], HasValue: true})
				ins.Args = append(ins.Args, words[i])
			}
		case "arg":
			for _, w := range words {
				k, v, ok := strings.Cut(w, "=")
				ins.KV = append(ins.KV, dockerKV{Key: k, Value: v, HasValue: ok})
				ins.Args = append(ins.Args, k)
			}
		default:
			ins.Args = append(ins.Args, words...)
		}
		if cmd == "from" {
			if len(words) == 0 {
				return nil, fmt.Errorf("line %d: FROM without an image", n.StartLine)
			}
			stage++
			st := dockerStage{Index: stage, Image: words[0], Line: n.StartLine}
			if len(words) >= 3 && strings.EqualFold(words[1], "as") {
				st.Name = words[2]
			}
			in.Stages = append(in.Stages, st)
		}
		ins.Stage = stage
		in.Instructions = append(in.Instructions, ins)
	}
	return in, nil
}

// scanDockerfile checks one Dockerfile with the Dockerfile Rego rules.
func (ss *session) scanDockerfile(r io.Reader, file string) {
	in, err := parseDockerfile(r)
	if err != nil {
		ss.fail(&InputError{File: file, Err: fmt.Errorf("Dockerfile: %w", err)})
		return
	}
	ss.res.Objects++
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		ss.fail(&InputError{File: file, Err: fmt.Errorf("rego input: %w", err)})
		return
	}
	rs, err := ss.s.rego.eval(ss.ctx, &ss.s.rego.docker, v)
	if err != nil {
		ss.fail(&InputError{File: file, Err: fmt.Errorf("rego: %w", err)})
	}
	for i := range rs {
		f, err := rs[i].toFinding(rs[i].Line)
		if err != nil {
			ss.fail(&InputError{File: file, Line: rs[i].Line, Err: err})
		}
		f.File = file
		ss.add(nil, f)
	}
}

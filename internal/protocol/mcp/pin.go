package mcp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"sync"

	"github.com/wardenhq/warden/internal/jsonstrict"
)

// Pin statuses of a tool definition.
const (
	pinMatch    = "match"    // identical to the approved definition
	pinChanged  = "changed"  // the name is pinned, the definition differs
	pinUnpinned = "unpinned" // the name is not in the pins file
	pinUnseen   = "unseen"   // not yet listed through Warden since start
)

// PinsVersion is the pins file format version.
const PinsVersion = 1

// Pins are the approved tool definitions of one backend, as written by
// `warden mcp pin` and reviewed by the operator: a tool whose definition
// hashes differently is a rug pull until someone approves it again.
type Pins struct {
	Version int                   `json:"version"`
	Backend string                `json:"backend"`
	Tools   map[string]PinnedTool `json:"tools"`
	// Instructions pins the server's instructions (initialize or
	// server/discover result), which clients add to the model's context
	// just like tool descriptions. Nil when the server had none.
	Instructions *PinnedText `json:"instructions,omitempty"`
}

// PinnedText is an approved text and its SHA-256.
type PinnedText struct {
	SHA256 string `json:"sha256"`
	Text   string `json:"text"`
}

func textHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// PinInstructions records the server's instructions as approved ("" means
// the server has none, and any later instructions are a change).
func (p *Pins) PinInstructions(text string) {
	if text == "" {
		p.Instructions = nil
		return
	}
	p.Instructions = &PinnedText{SHA256: textHash(text), Text: text}
}

// checkInstructions returns the pin status of served instructions.
func (p *Pins) checkInstructions(text string) string {
	switch {
	case p.Instructions == nil && text == "":
		return pinMatch
	case p.Instructions == nil:
		return pinUnpinned
	case textHash(text) != p.Instructions.SHA256:
		return pinChanged
	}
	return pinMatch
}

// PinnedTool is one approved definition. Definition is kept so reviewers
// see in a diff what they approve; only SHA256 is compared.
type PinnedTool struct {
	SHA256     string         `json:"sha256"`
	Definition map[string]any `json:"definition"`
}

// ToolHash is the pin of a tool definition: SHA-256 (hex) of the canonical
// JSON (jsonstrict.Marshal: sorted keys, no whitespace) of the whole tool
// object — name, title, description, inputSchema, outputSchema,
// annotations, execution, icons, and any member a later revision adds —
// except _meta, which servers use for volatile data. Poisoning can hide in
// any string of the schema, so nothing else is left out.
func ToolHash(tool map[string]any) (string, error) {
	def := pinDefinition(tool)
	b, err := jsonstrict.Marshal(def)
	if err != nil {
		return "", fmt.Errorf("mcp: hash tool: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func pinDefinition(tool map[string]any) map[string]any {
	def := make(map[string]any, len(tool))
	for k, v := range tool {
		if k != "_meta" {
			def[k] = v
		}
	}
	return def
}

// NewPins pins the given tool definitions (objects from tools/list).
func NewPins(backend string, tools []map[string]any) (*Pins, error) {
	p := &Pins{Version: PinsVersion, Backend: backend, Tools: map[string]PinnedTool{}}
	for _, t := range tools {
		name, _ := t["name"].(string)
		if name == "" {
			return nil, fmt.Errorf("mcp: pin: a tool has no name")
		}
		if _, dup := p.Tools[name]; dup {
			return nil, fmt.Errorf("mcp: pin: tool %q listed twice", name)
		}
		h, err := ToolHash(t)
		if err != nil {
			return nil, err
		}
		p.Tools[name] = PinnedTool{SHA256: h, Definition: pinDefinition(t)}
	}
	return p, nil
}

// Marshal encodes the pins file: canonical JSON (stable diffs), one
// trailing newline.
func (p *Pins) Marshal() ([]byte, error) {
	tools := map[string]any{}
	names := make([]string, 0, len(p.Tools))
	for n := range p.Tools {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := p.Tools[n]
		tools[n] = map[string]any{"sha256": t.SHA256, "definition": t.Definition}
	}
	doc := map[string]any{"version": PinsVersion, "backend": p.Backend, "tools": tools}
	if p.Instructions != nil {
		doc["instructions"] = map[string]any{"sha256": p.Instructions.SHA256, "text": p.Instructions.Text}
	}
	b, err := jsonstrict.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// LoadPins reads a pins file strictly. A tool whose recorded hash does not
// match its recorded definition is an error: the file was edited by hand.
func LoadPins(path string) (*Pins, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mcp: pins: %w", err)
	}
	return ParsePins(data)
}

// ParsePins is LoadPins on bytes.
func ParsePins(data []byte) (*Pins, error) {
	tree, err := jsonstrict.Parse(data, jsonstrict.Options{MaxBytes: 64 << 20})
	if err != nil {
		return nil, fmt.Errorf("mcp: pins: %w", err)
	}
	root, ok := tree.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("mcp: pins: not an object")
	}
	if v, ok := jsonstrict.Int(root["version"]); !ok || v != PinsVersion {
		return nil, fmt.Errorf("mcp: pins: version must be %d", PinsVersion)
	}
	p := &Pins{Version: PinsVersion, Tools: map[string]PinnedTool{}}
	p.Backend, _ = root["backend"].(string)
	tools, ok := root["tools"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("mcp: pins: tools must be an object")
	}
	if iv, ok := root["instructions"]; ok {
		in, _ := iv.(map[string]any)
		sum, _ := in["sha256"].(string)
		text, _ := in["text"].(string)
		if text == "" || sum != textHash(text) {
			return nil, fmt.Errorf("mcp: pins: instructions: sha256 does not match the text")
		}
		p.Instructions = &PinnedText{SHA256: sum, Text: text}
	}
	for name, v := range tools {
		t, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("mcp: pins: tool %q: not an object", name)
		}
		sum, _ := t["sha256"].(string)
		def, _ := t["definition"].(map[string]any)
		if def == nil || sum == "" {
			return nil, fmt.Errorf("mcp: pins: tool %q: needs sha256 and definition", name)
		}
		if n, _ := def["name"].(string); n != name {
			return nil, fmt.Errorf("mcp: pins: tool %q: definition names another tool", name)
		}
		h, err := ToolHash(def)
		if err != nil || h != sum {
			return nil, fmt.Errorf("mcp: pins: tool %q: sha256 does not match its definition", name)
		}
		p.Tools[name] = PinnedTool{SHA256: sum, Definition: def}
	}
	return p, nil
}

// check returns the pin status of a listed tool definition.
func (p *Pins) check(name string, tool map[string]any) string {
	pt, ok := p.Tools[name]
	if !ok {
		return pinUnpinned
	}
	h, err := ToolHash(tool)
	if err != nil || h != pt.SHA256 {
		return pinChanged
	}
	return pinMatch
}

// observed is what Warden last saw of each tool of a backend in tools/list:
// its pin status (tools/call is refused unless it matched) and the
// x-mcp-header bindings of its input schema (2026-07-28 header checks).
type observed struct {
	mu    sync.RWMutex
	tools map[string]toolObs
}

type toolObs struct {
	status   string
	bindings []headerBinding
}

type headerBinding struct {
	path   []string
	header string
}

func newObserved() *observed { return &observed{tools: map[string]toolObs{}} }

func (o *observed) status(name string) string {
	o.mu.RLock()
	defer o.mu.RUnlock()
	t, ok := o.tools[name]
	if !ok {
		return pinUnseen
	}
	return t.status
}

func (o *observed) headerBindings(name string) ([]headerBinding, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	t, ok := o.tools[name]
	return t.bindings, ok
}

func (o *observed) set(name string, t toolObs) {
	o.mu.Lock()
	o.tools[name] = t
	o.mu.Unlock()
}

// schemaBindings collects x-mcp-header annotations reachable through
// "properties" chains of an input schema.
func schemaBindings(schema map[string]any, prefix []string, out []headerBinding) []headerBinding {
	props, _ := schema["properties"].(map[string]any)
	for name, pv := range props {
		prop, ok := pv.(map[string]any)
		if !ok {
			continue
		}
		path := append(append([]string(nil), prefix...), name)
		if h, ok := prop["x-mcp-header"].(string); ok && h != "" {
			out = append(out, headerBinding{path: path, header: h})
		}
		out = schemaBindings(prop, path, out)
	}
	return out
}

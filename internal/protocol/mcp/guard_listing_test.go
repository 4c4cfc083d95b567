package mcp

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
)

// TestGuardInstructions: poisoned initialize instructions (and server info
// description) are removed from the result, the session goes on, and the
// removal is counted; clean ones pass unchanged.
func TestGuardInstructions(t *testing.T) {
	g := mustGuard(t)
	authz := guardPolicy(t)
	for _, tc := range []struct {
		name         string
		instructions string
		description  string
		stripped     int
	}{
		{"instructions", injectedText, "", 1},
		{"server description", "Use search before answering.", poisonedDesc, 1},
		{"clean", "Use search before answering.", "Searches the company wiki.", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "v1", Description: tc.description},
				&mcp.ServerOptions{Instructions: tc.instructions})
			addPathTool(s, &toolCounts{}, "read_file", "Read a file.")
			up, _ := startUpstream(t, s, false, false)
			h, _ := guardHarness(t, up.URL, g, authz, nil)
			cs := connect(t, h.srv.URL, alice, Rev20251125, nil)
			defer cs.Close()
			ir := cs.InitializeResult()
			wantInstr, wantDesc := tc.instructions, tc.description
			if tc.name == "instructions" {
				wantInstr = ""
			}
			if tc.name == "server description" {
				wantDesc = ""
			}
			if ir.Instructions != wantInstr || ir.ServerInfo.Description != wantDesc || ir.ServerInfo.Name != "upstream" {
				t.Fatalf("instructions %q description %q (server %q)", ir.Instructions, ir.ServerInfo.Description, ir.ServerInfo.Name)
			}
			if got := toolNames(t, cs); !slices.Equal(got, []string{"read_file"}) {
				t.Fatalf("session after initialize: %v", got)
			}
			h.eventually(t, "stripped instructions", func(as []map[string]any) bool {
				return guardCount(as, "stripped_instructions") == tc.stripped && len(as) >= 3
			})
			noSecrets(t, "the audit records", fmt.Sprint(h.allAudits()))
		})
	}
}

// TestGuardListItems: resources, resource templates and prompts whose
// listing (name, title, description, prompt arguments) is poisoned are
// hidden like tools; clean ones stay; each page is still one Authorize.
func TestGuardListItems(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "v1"}, nil)
	read := func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{}, nil
	}
	s.AddResource(&mcp.Resource{URI: "file:///notes/clean.md", Name: "clean.md", Description: "Meeting notes."}, read)
	s.AddResource(&mcp.Resource{URI: "file:///notes/poisoned.md", Name: "poisoned.md", Description: poisonedDesc}, read)
	s.AddResource(&mcp.Resource{URI: "file:///notes/titled.md", Name: "titled.md", Title: injectedText}, read)
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "file:///logs/{day}", Name: "logs", Description: "Daily logs."}, read)
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "file:///evil/{x}", Name: "evil", Description: poisonedDesc}, read)
	get := func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{}, nil
	}
	s.AddPrompt(&mcp.Prompt{Name: "review", Description: "Review code."}, get)
	s.AddPrompt(&mcp.Prompt{Name: "poisoned", Description: poisonedDesc}, get)
	s.AddPrompt(&mcp.Prompt{Name: "argued", Description: "Summarize a file.",
		Arguments: []*mcp.PromptArgument{{Name: "file", Description: injectedText}}}, get)

	up, _ := startUpstream(t, s, false, false)
	h, _ := guardHarness(t, up.URL, mustGuard(t), guardPolicy(t), nil)
	cs := connect(t, h.srv.URL, alice, Rev20251125, nil)
	defer cs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var got []string
	for r, err := range cs.Resources(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.URI)
	}
	if !slices.Equal(got, []string{"file:///notes/clean.md"}) {
		t.Fatalf("resources %v", got)
	}
	got = nil
	for r, err := range cs.ResourceTemplates(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.URITemplate)
	}
	if !slices.Equal(got, []string{"file:///logs/{day}"}) {
		t.Fatalf("templates %v", got)
	}
	got = nil
	for p, err := range cs.Prompts(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Name)
	}
	if !slices.Equal(got, []string{"review"}) {
		t.Fatalf("prompts %v", got)
	}
	h.eventually(t, "hidden items", func(as []map[string]any) bool { return guardCount(as, "hidden_items") == 5 })
	noSecrets(t, "the audit records", fmt.Sprint(h.allAudits()))
}

// TestGuardListItemsOneAuthorize: a resources/list page with a poisoned
// item is decided in one Authorize.
func TestGuardListItemsOneAuthorize(t *testing.T) {
	g := mustGuard(t)
	p := mustNew(t, nil, nil)
	var n int
	authz := guardPolicy(t)
	x := guardExchange(t, p, g, nil, `{"jsonrpc":"2.0","id":4,"method":"resources/list"}`)
	out := respond(t, x, "application/json",
		`{"jsonrpc":"2.0","id":4,"result":{"resources":[{"uri":"file:///a","name":"a","description":"`+injectedText+`"},{"uri":"file:///b","name":"b"}]}}`,
		&protocol.ResponseEnv{Authorize: func(ctx context.Context, cs []protocol.Call) ([]protocol.Decision, error) {
			n++
			return authz(ctx, cs)
		}})
	tree, err := jsonstrict.Parse([]byte(out), jsonstrict.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rs := tree.(map[string]any)["result"].(map[string]any)["resources"].([]any)
	if len(rs) != 1 || rs[0].(map[string]any)["uri"] != "file:///b" || n != 1 {
		t.Fatalf("%d Authorize: %s", n, out)
	}
	if rg := x.Audit()["response_guard"].(map[string]any); rg["hidden_items"] != 1 {
		t.Fatalf("audit %v", rg)
	}
}

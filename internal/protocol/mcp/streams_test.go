package mcp

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestResourcesPromptsAndGETStream: resources, templates and prompts lists
// are filtered like tools; reads of hidden items are refused; on the
// standalone GET stream a denied notification (logging) is dropped while
// an allowed one (resources/updated) arrives.
func TestResourcesPromptsAndGETStream(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	read := func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "content"}}}, nil
	}
	s.AddResource(&mcp.Resource{URI: "file:///public/a", Name: "a"}, read)
	s.AddResource(&mcp.Resource{URI: "file:///secret/b", Name: "b"}, read)
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "file:///public/{x}", Name: "pt"}, read)
	prompt := func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}}, nil
	}
	s.AddPrompt(&mcp.Prompt{Name: "greet"}, prompt)
	s.AddPrompt(&mcp.Prompt{Name: "jailbreak"}, prompt)
	up, _ := startUpstream(t, s, false, false)
	p := mustNew(t, nil, nil)
	h := newHarness(t, p, up.URL,
		rule{op: "resources/read", uriPrefix: "file:///secret/", allow: false},
		rule{op: "notifications/message", direction: "server_to_client", allow: false},
		promptRule("jailbreak"),
		rule{allow: true})

	var mu sync.Mutex
	var updates []string
	var logs int
	cs := connect(t, h.srv.URL, alice, Rev20251125, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) {
			mu.Lock()
			updates = append(updates, r.Params.URI)
			mu.Unlock()
		},
		LoggingMessageHandler: func(context.Context, *mcp.LoggingMessageRequest) {
			mu.Lock()
			logs++
			mu.Unlock()
		},
	})
	defer cs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	lr, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(lr.Resources) != 1 || lr.Resources[0].URI != "file:///public/a" {
		t.Fatalf("resources %v", lr.Resources)
	}
	lt, err := cs.ListResourceTemplates(ctx, nil)
	if err != nil || len(lt.ResourceTemplates) != 1 {
		t.Fatalf("templates %v %v", lt, err)
	}
	lp, err := cs.ListPrompts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pr := range lp.Prompts {
		names = append(names, pr.Name)
	}
	if !slices.Equal(names, []string{"greet"}) {
		t.Fatalf("prompts %v", names)
	}
	_, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///secret/b"})
	wantDenied(t, err, "policy_denied")
	_, err = cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "jailbreak"})
	wantDenied(t, err, "policy_denied")

	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "file:///public/a"}); err != nil {
		t.Fatal(err)
	}
	var ss *mcp.ServerSession
	for x := range s.Sessions() {
		ss = x
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_ = ss.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "secret log line"})
		_ = s.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: "file:///public/a"})
		mu.Lock()
		got := len(updates)
		mu.Unlock()
		if got > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no resources/updated arrived")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	n := logs
	mu.Unlock()
	if n != 0 {
		t.Fatalf("client received %d denied log notifications", n)
	}
	// The log lines were sent and dropped by Warden, not never sent: the
	// GET stream's audit (written when it ends) says so.
	_ = cs.Close()
	h.eventually(t, "GET stream dropped the log notifications", func(as []map[string]any) bool {
		for _, a := range as {
			if a["http_method"] == "GET" {
				if d, _ := a["server_dropped"].(int); d > 0 {
					return true
				}
			}
		}
		return false
	})
}

func promptRule(name string) rule {
	return rule{op: "prompts/get", promptName: name, allow: false}
}

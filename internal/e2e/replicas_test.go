package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wardenhq/warden/internal/redistest"
)

// TestReplicasShareOneBudget: two Warden replicas on one real redis-server
// enforce one request budget together, and a revocation through one
// replica's admin API ends the identity on the other.
func TestReplicasShareOneBudget(t *testing.T) {
	addr := redistest.Start(t)
	a := newStack(t, stackOpts{redis: addr})
	b := newStack(t, stackOpts{redis: addr, dir: a.dev.Dir, llmURL: a.llmURL, replica: "-b"})
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{Model: "small", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}

	// capped may make 4 requests per minute, whichever replica serves them.
	ok, limited := 0, 0
	for i := 0; i < 8; i++ {
		s := a
		if i%2 == 1 {
			s = b
		}
		c := s.openai("capped")
		_, err := c.Chat.Completions.New(ctx, params)
		switch {
		case err == nil:
			ok++
		case strings.Contains(err.Error(), "429"):
			limited++
		default:
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if ok != 4 || limited != 4 {
		t.Fatalf("across two replicas: %d allowed, %d limited; want 4 and 4 (one shared budget)", ok, limited)
	}

	// Revoke through replica a; replica b must refuse soon after.
	adminSVID, err := a.dev.Mint("admin", spiffeid.RequireFromString("spiffe://warden.test/admin"))
	if err != nil {
		t.Fatal(err)
	}
	admin := a.dev.Client(adminSVID, wardenID)
	resp, err := admin.Post("https://"+a.g.Addr("admin")+"/v1/revocations", "application/json",
		strings.NewReader(`{"spiffe_id":"`+agents["support"]+`","reason":"e2e"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := b.openai("support")
		_, err := c.Chat.Completions.New(ctx, params)
		var apiErr *openai.Error
		if errors.As(err, &apiErr) && apiErr.Code == "identity_revoked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica b still serves a revoked identity after 5s (last: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

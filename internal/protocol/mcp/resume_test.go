package mcp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/protocol"
)

// TestResumeFiltersReplayedList: a client that drops its POST stream
// before the tools/list response and resumes with GET + Last-Event-ID
// gets the replayed response filtered like the original, and a replayed
// response to a request it never sent is dropped.
func TestResumeFiltersReplayedList(t *testing.T) {
	p := mustNew(t, nil, nil)
	// The session and its pending tools/list (id 7) as a POST left them.
	if !p.sessions.create("be", "sess-1", alice, Rev20251125, DefaultSessionTTL) {
		t.Fatal("create")
	}
	ss, lerr := p.sessions.lookup("be", "sess-1", alice, DefaultSessionTTL)
	if lerr != nil {
		t.Fatal(lerr.perr)
	}
	p.sessions.addPending(ss, "n:7", pendingReq{method: "tools/list"})

	r := httptest.NewRequest(http.MethodGet, "http://warden.test/mcp", nil)
	r.Header.Set("Accept", "text/event-stream")
	r.Header.Set(hdrSession, "sess-1")
	r.Header.Set(hdrVersion, Rev20251125)
	r.Header.Set(hdrLastEventID, "s1_0")
	ctx := protocol.WithPeer(context.Background(), alice)
	x, err := p.Parse(ctx, &protocol.Request{HTTP: r, Backend: "be"})
	if err != nil {
		t.Fatal(err)
	}
	if op := x.Calls()[0].Operation; op != "stream/resume" {
		t.Fatalf("operation %s", op)
	}
	if _, err := x.Forward(ctx, allow(1)); err != nil {
		t.Fatal(err)
	}
	stream := "id: s1_1\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"ok\"},{\"name\":\"secret\"}]}}\n\n" +
		"id: s1_2\ndata: {\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}\n\n"
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(strings.NewReader(stream))}
	env := &protocol.ResponseEnv{Authorize: func(_ context.Context, calls []protocol.Call) ([]protocol.Decision, error) {
		ds := allow(len(calls))
		for i, c := range calls {
			ds[i].Allow = c.Resource["tool"] != "secret"
		}
		return ds, nil
	}}
	if err := x.Response(ctx, resp, env); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	want := "id: s1_1\ndata: {\"id\":7,\"jsonrpc\":\"2.0\",\"result\":{\"tools\":[{\"name\":\"ok\"}]}}\n\n"
	if !bytes.Equal(out, []byte(want)) {
		t.Fatalf("got %q\nwant %q", out, want)
	}
	a := x.Audit()
	if a["unknown_responses_dropped"] != 1 || a["hidden"] != 1 {
		t.Fatalf("audit %v", a)
	}
	// The pending id is consumed: a second replay is dropped, not re-filtered.
	if _, ok := p.sessions.takePending(ss, "n:7"); ok {
		t.Fatal("pending id still there")
	}
	// Bob cannot resume alice's stream.
	r2 := r.Clone(context.Background())
	if _, err := p.Parse(protocol.WithPeer(context.Background(), bob), &protocol.Request{HTTP: r2, Backend: "be"}); protocol.AsError(err).Code != protocol.CodeSessionForbidden {
		t.Fatalf("bob resume: %v", err)
	}
}

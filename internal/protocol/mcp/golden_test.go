package mcp

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/protocol"
	"github.com/wardenhq/warden/internal/sse"
)

// reqCase is one file of testdata/requests: a "# want:" line, header
// lines, a blank line, the body.
type reqCase struct {
	want string
	hdr  http.Header
	body []byte
}

func readReqCase(t testing.TB, path string) reqCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		t.Fatalf("%s: no blank line", path)
	}
	c := reqCase{hdr: http.Header{}, body: bytes.TrimSuffix(body, []byte("\n"))}
	sc := bufio.NewScanner(bytes.NewReader(head))
	for sc.Scan() {
		line := sc.Text()
		if w, ok := strings.CutPrefix(line, "# want: "); ok {
			c.want = w
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		c.hdr.Set(k, v)
	}
	return c
}

func parseReq(p *Protocol, hdr http.Header, body []byte) (*exchange, error) {
	return parseGuarded(p, hdr, body, nil)
}

// parseGuarded is parseReq with the gateway's Guard lent (nil: off).
func parseGuarded(p *Protocol, hdr http.Header, body []byte, g protocol.Guard) (*exchange, error) {
	r := httptest.NewRequest(http.MethodPost, "http://warden.test/mcp", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for k, vs := range hdr {
		r.Header[k] = vs
	}
	ctx := protocol.WithPeer(context.Background(), alice)
	x, err := p.Parse(ctx, &protocol.Request{HTTP: r, Body: body, Backend: "be", Guard: g})
	if err != nil {
		return nil, err
	}
	return x.(*exchange), nil
}

func allow(n int) []protocol.Decision {
	ds := make([]protocol.Decision, n)
	for i := range ds {
		ds[i].Allow = true
	}
	return ds
}

// TestGoldenRequests runs testdata/requests: each case is accepted with the
// listed operations or refused with the listed status and reason.
func TestGoldenRequests(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "requests", "*.http"))
	if len(files) == 0 {
		t.Fatal("no corpus")
	}
	p := mustNew(t, nil, nil)
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".http"), func(t *testing.T) {
			c := readReqCase(t, f)
			x, err := parseReq(p, c.hdr, c.body)
			if ops, ok := strings.CutPrefix(c.want, "ok "); ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				var got []string
				for _, call := range x.Calls() {
					got = append(got, call.Operation)
				}
				if strings.Join(got, ",") != ops {
					t.Fatalf("operations %v, want %s", got, ops)
				}
				return
			}
			status, reason, _ := strings.Cut(c.want, " ")
			if err == nil {
				t.Fatalf("accepted, want %s", c.want)
			}
			pe := protocol.AsError(err)
			if strconv.Itoa(pe.Status) != status || pe.Code != reason {
				t.Fatalf("got %d %s (%s), want %s", pe.Status, pe.Code, pe.Message, c.want)
			}
		})
	}
}

// filterStream runs data as the SSE response to a 2025-03-26 tools/list
// with id 7, deciding server→client calls with decide.
func filterStream(t testing.TB, p *Protocol, data []byte, decideFn func([]protocol.Call) []protocol.Decision) ([]byte, error) {
	x, err := parseReq(p, http.Header{hdrVersion: {Rev20250326}}, []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Forward(context.Background(), allow(1)); err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(bytes.NewReader(data))}
	env := &protocol.ResponseEnv{Authorize: func(_ context.Context, calls []protocol.Call) ([]protocol.Decision, error) {
		return decideFn(calls), nil
	}}
	if err := x.Response(context.Background(), resp, env); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

func denySampling(calls []protocol.Call) []protocol.Decision {
	ds := allow(len(calls))
	for i, c := range calls {
		if c.Operation == "sampling/createMessage" || c.Resource["tool"] == "b" {
			ds[i].Allow = false
		}
	}
	return ds
}

// checkStream asserts the client-visible invariants of a filtered stream:
// canonical events whose data are valid JSON-RPC, no denied message.
func checkStream(t testing.TB, out []byte) []sse.Event {
	rd := sse.NewReader(bytes.NewReader(out), sse.ReaderOptions{Comments: true})
	var evs []sse.Event
	for {
		ev, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("filtered stream unreadable: %v\n%s", err, out)
		}
		evs = append(evs, ev)
		if !ev.HasData {
			continue
		}
		tree, err := jsonstrict.Parse([]byte(ev.Data), jsonstrict.Options{})
		if err != nil {
			t.Fatalf("event data is not JSON: %q", ev.Data)
		}
		items, ok := tree.([]any)
		if !ok {
			items = []any{tree}
		}
		for _, it := range items {
			if _, perr := parseMessage(it); perr != nil {
				t.Fatalf("event is not JSON-RPC: %q", ev.Data)
			}
		}
		if strings.Contains(ev.Data, "sampling/createMessage") || strings.Contains(ev.Data, `"name":"b"`) {
			t.Fatalf("denied message passed: %q", ev.Data)
		}
	}
	var again []byte
	for _, ev := range evs {
		again, _ = sse.AppendEvent(again, ev)
	}
	if !bytes.Equal(again, out) {
		t.Fatalf("stream is not canonical:\n%q\n%q", out, again)
	}
	return evs
}

// TestGoldenStreams runs testdata/responses through the SSE filter.
func TestGoldenStreams(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "responses", "*.sse"))
	p := mustNew(t, nil, nil)
	want := map[string]string{
		"tools_list_stream":   "id: s1_0\n\n: keepalive\nid: s1_1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":0.5,\"progressToken\":1}}\n\nid: s1_2\ndata: {\"id\":7,\"jsonrpc\":\"2.0\",\"result\":{\"nextCursor\":\"x\",\"tools\":[{\"inputSchema\":{\"type\":\"object\"},\"name\":\"a\"}]}}\n\n",
		"multiline_crlf":      "data: {\"id\":7,\"jsonrpc\":\"2.0\",\"result\":{\"content\":[]}}\n\n",
		"unknown_id_and_type": "id: x\nretry: 1000\n\n",
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".sse")
		t.Run(name, func(t *testing.T) {
			data, _ := os.ReadFile(f)
			out, err := filterStream(t, p, data, denySampling)
			if name == "legacy_endpoint" {
				if err == nil {
					t.Fatalf("legacy endpoint event passed: %q", out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkStream(t, out)
			if w, ok := want[name]; ok && string(out) != w {
				t.Fatalf("got\n%q\nwant\n%q", out, w)
			}
		})
	}
}

// TestInvalidToolNamesHidden: names outside [A-Za-z0-9_.-]{1,128} (here a
// Cyrillic homoglyph and an invisible character) never reach the client.
func TestInvalidToolNamesHidden(t *testing.T) {
	p := mustNew(t, nil, nil)
	x, err := parseReq(p, http.Header{hdrVersion: {Rev20251125}}, []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.Forward(context.Background(), allow(1)); err != nil {
		t.Fatal(err)
	}
	body := `{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"send_email"},{"name":"send_emaіl"},{"name":"send\u200bemail"},{"name":"` + strings.Repeat("a", 129) + `"}]}}`
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}
	env := &protocol.ResponseEnv{Authorize: func(_ context.Context, calls []protocol.Call) ([]protocol.Decision, error) {
		return allow(len(calls)), nil
	}}
	if err := x.Response(context.Background(), resp, env); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	if string(out) != `{"id":7,"jsonrpc":"2.0","result":{"tools":[{"name":"send_email"}]}}` {
		t.Fatalf("got %s", out)
	}
	if a := x.Audit(); a["invalid_tool_names"] != 3 {
		t.Fatalf("audit %v", a)
	}
}

// TestMRTRInputRequests: a 2026-07-28 input_required result is checked for
// each of its inputRequests as a server→client call; one denied (or
// unknown) request turns the whole result into a policy_denied error.
func TestMRTRInputRequests(t *testing.T) {
	p := mustNew(t, nil, nil)
	run := func(inputReqs string) string {
		hdr := http.Header{hdrVersion: {Rev20260728}, hdrMethod: {"tools/call"}, hdrName: {"book"}}
		x, err := parseReq(p, hdr, []byte(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"book","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Forward(context.Background(), allow(1)); err != nil {
			t.Fatal(err)
		}
		body := `{"jsonrpc":"2.0","id":3,"result":{"resultType":"input_required","requestState":"opaque","inputRequests":` + inputReqs + `}}`
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}
		env := &protocol.ResponseEnv{Authorize: func(_ context.Context, calls []protocol.Call) ([]protocol.Decision, error) {
			ds := allow(len(calls))
			for i, c := range calls {
				ds[i].Allow = c.Operation != "sampling/createMessage"
			}
			return ds, nil
		}}
		if err := x.Response(context.Background(), resp, env); err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		return string(out)
	}
	if out := run(`{"a":{"method":"elicitation/create","params":{"message":"date?"}}}`); !strings.Contains(out, "input_required") {
		t.Fatalf("allowed elicitation: %s", out)
	}
	for _, reqs := range []string{
		`{"a":{"method":"elicitation/create","params":{}},"b":{"method":"sampling/createMessage","params":{}}}`,
		`{"a":{"method":"exfiltrate/everything","params":{}}}`,
	} {
		if out := run(reqs); !strings.Contains(out, `"reason":"policy_denied"`) || strings.Contains(out, "requestState") {
			t.Fatalf("%s: %s", reqs, out)
		}
	}
}

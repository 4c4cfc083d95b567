package mcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/wardenhq/warden/internal/jsonstrict"
	"github.com/wardenhq/warden/internal/sse"
)

// FetchTools connects to an MCP server over Streamable HTTP as a minimal
// client (initialize with 2025-11-25, notifications/initialized, tools/list
// across every page, DELETE of the session) and returns the tool
// definitions exactly as served. `warden mcp pin` uses it to record what
// the operator approves. It speaks to the server directly, not through
// Warden: the pins describe the server, not one caller's filtered view.
func FetchTools(ctx context.Context, client *http.Client, endpoint string) ([]map[string]any, error) {
	d, err := FetchServer(ctx, client, endpoint)
	if err != nil {
		return nil, err
	}
	return d.Tools, nil
}

// ServerDefinitions is what a server tells every client about itself and
// what pinning approves.
type ServerDefinitions struct {
	Tools        []map[string]any
	Instructions string
}

// FetchServer is FetchTools plus the server's instructions.
func FetchServer(ctx context.Context, client *http.Client, endpoint string) (*ServerDefinitions, error) {
	c := &miniClient{hc: client, url: endpoint}
	if c.hc == nil {
		c.hc = http.DefaultClient
	}
	init, err := c.call(ctx, "initialize", map[string]any{
		"protocolVersion": Rev20251125,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "warden-mcp-pin", "version": "1"},
	})
	if err != nil {
		return nil, fmt.Errorf("mcp: initialize: %w", err)
	}
	c.version, _ = init["protocolVersion"].(string)
	out := &ServerDefinitions{}
	out.Instructions, _ = init["instructions"].(string)
	defer c.close(ctx)
	if err := c.notify(ctx, "notifications/initialized"); err != nil {
		return nil, fmt.Errorf("mcp: initialized: %w", err)
	}
	var tools []map[string]any
	cursor := ""
	for page := 0; ; page++ {
		if page > 10000 {
			return nil, errors.New("mcp: tools/list: too many pages")
		}
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		res, err := c.call(ctx, "tools/list", params)
		if err != nil {
			return nil, fmt.Errorf("mcp: tools/list: %w", err)
		}
		items, _ := res["tools"].([]any)
		for _, it := range items {
			t, ok := it.(map[string]any)
			if !ok {
				return nil, errors.New("mcp: tools/list: a tool is not an object")
			}
			tools = append(tools, t)
		}
		next, _ := res["nextCursor"].(string)
		if next == "" {
			out.Tools = tools
			return out, nil
		}
		cursor = next
	}
}

type miniClient struct {
	hc      *http.Client
	url     string
	session string
	version string
	nextID  int64
}

func (c *miniClient) post(ctx context.Context, msg map[string]any) (*http.Response, error) {
	b, err := jsonstrict.Marshal(msg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if c.session != "" {
		req.Header.Set(hdrSession, c.session)
	}
	if c.version != "" {
		req.Header.Set(hdrVersion, c.version)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if sid := resp.Header.Get(hdrSession); sid != "" && c.session == "" {
		c.session = sid
	}
	return resp, nil
}

func (c *miniClient) notify(ctx context.Context, method string) error {
	resp, err := c.post(ctx, map[string]any{"jsonrpc": "2.0", "method": method})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func (c *miniClient) call(ctx context.Context, method string, params map[string]any) (map[string]any, error) {
	c.nextID++
	id := c.nextID
	resp, err := c.post(ctx, map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	want := "n:" + strconv.FormatInt(id, 10)
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		b, err := io.ReadAll(io.LimitReader(resp.Body, DefaultMaxResponse))
		if err != nil {
			return nil, err
		}
		return resultFor(b, want)
	case "text/event-stream":
		rd := sse.NewReader(resp.Body, sse.ReaderOptions{MaxEvent: DefaultMaxResponse, MaxLine: DefaultMaxResponse})
		for {
			ev, err := rd.Next()
			if err != nil {
				return nil, fmt.Errorf("stream ended without a response: %w", err)
			}
			if !ev.HasData || ev.Data == "" {
				continue
			}
			res, err := resultFor([]byte(ev.Data), want)
			if errors.Is(err, errNotOurs) {
				continue
			}
			return res, err
		}
	}
	return nil, fmt.Errorf("unexpected content type %q", ct)
}

var errNotOurs = errors.New("not the awaited response")

func resultFor(b []byte, want string) (map[string]any, error) {
	tree, err := jsonstrict.Parse(b, jsonstrict.Options{MaxBytes: DefaultMaxResponse})
	if err != nil {
		return nil, err
	}
	m, perr := parseMessage(tree)
	if perr != nil {
		return nil, errors.New(perr.Message)
	}
	if m.kind != kindResponse || m.idKey != want {
		return nil, errNotOurs
	}
	if m.errObj != nil {
		msg, _ := m.errObj["message"].(string)
		return nil, fmt.Errorf("server error: %s", msg)
	}
	return m.result, nil
}

func (c *miniClient) close(ctx context.Context) {
	if c.session == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.url, nil)
	if err != nil {
		return
	}
	req.Header.Set(hdrSession, c.session)
	if c.version != "" {
		req.Header.Set(hdrVersion, c.version)
	}
	if resp, err := c.hc.Do(req); err == nil {
		resp.Body.Close()
	}
}

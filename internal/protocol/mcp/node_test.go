package mcp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// npmDir is the pinned npm install (testdata/npm at the repository root).
var npmDir = filepath.Join("..", "..", "..", "testdata", "npm", "node_modules")

func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(npmDir, "@modelcontextprotocol", "server-everything", "dist", "index.js"))
	}
	if err != nil {
		msg := "node or testdata/npm/node_modules missing (run npm ci in testdata/npm): " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEverything runs the reference server
// @modelcontextprotocol/server-everything (Streamable HTTP) on 127.0.0.1.
func startEverything(t *testing.T, node string) string {
	port := freePort(t)
	abs, _ := filepath.Abs(npmDir)
	loop, _ := filepath.Abs(filepath.Join("testdata", "node", "loopback.mjs"))
	cmd := exec.Command(node, "--import", "file://"+loop,
		filepath.Join(abs, "@modelcontextprotocol", "server-everything", "dist", "index.js"), "streamableHttp")
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		closed := false
		for sc.Scan() {
			if !closed && strings.Contains(sc.Text(), "listening on port") {
				close(ready)
				closed = true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("server-everything did not start")
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// TestTypeScriptInterop: the official TypeScript SDK client talks to the
// reference server through the harness: the denied tool is absent from the
// list and refused on call with a JSON-RPC error; the session is bound to
// the caller and ended by DELETE.
func TestTypeScriptInterop(t *testing.T) {
	node := needNode(t)
	up := startEverything(t, node)
	p := mustNew(t, nil, nil)
	h := newHarness(t, p, up, rule{op: "tools/call", tool: "get-sum", allow: false}, rule{peer: alice, allow: true})

	abs, _ := filepath.Abs(npmDir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", "node", "tsclient.mjs"))
	cmd.Env = append(os.Environ(), "WARDEN_URL="+h.srv.URL+"/mcp", "WARDEN_PEER="+alice,
		"MCP_SDK_DIR="+filepath.Join(abs, "@modelcontextprotocol", "sdk"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ts client: %v\n%s", err, out)
	}
	var res struct {
		ProtocolVersion string   `json:"protocolVersion"`
		SessionID       string   `json:"sessionId"`
		Tools           []string `json:"tools"`
		Echo            string   `json:"echo"`
		Denied          *string  `json:"denied"`
		Error           string   `json:"error"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ts client output %q: %v", out, err)
	}
	if res.Error != "" {
		t.Fatalf("ts client failed: %s", res.Error)
	}
	t.Logf("TypeScript client negotiated %s, %d tools", res.ProtocolVersion, len(res.Tools))
	if !slices.Contains(res.Tools, "echo") || slices.Contains(res.Tools, "get-sum") {
		t.Fatalf("tools %v: want echo listed and get-sum hidden", res.Tools)
	}
	if !strings.Contains(res.Echo, "hello through warden") {
		t.Fatalf("echo %q", res.Echo)
	}
	if res.Denied == nil || !strings.Contains(*res.Denied, "denied by policy") {
		t.Fatalf("get-sum call: %v", res.Denied)
	}
	if res.SessionID == "" {
		t.Fatal("reference server gave no session")
	}
	h.eventually(t, "session ended", func([]map[string]any) bool { return p.Sessions().Len() == 0 })
}

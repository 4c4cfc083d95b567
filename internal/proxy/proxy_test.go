package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
)

func TestNewRequestHeaderHygiene(t *testing.T) {
	in := http.Header{}
	in.Set("Connection", "keep-alive, X-Secret-Hop")
	in.Set("X-Secret-Hop", "1")
	in.Set("Upgrade", "websocket")
	in.Set("Te", "trailers")
	in.Set("X-Http-Method-Override", "DELETE")
	in.Set("X-Forwarded-For", "1.2.3.4")
	in.Set("Forwarded", "for=1.2.3.4")
	in.Set("Content-Encoding", "gzip")
	in.Set("Content-Length", "999")
	in.Set("Accept-Encoding", "gzip")
	in.Set("X-Keep", "yes")
	base, _ := url.Parse("https://up.example:8443/base/")
	req, err := NewRequest(context.Background(), &Outbound{
		Base: base, Path: "/v1/a%2Fb", RawQuery: "q=1", Method: "POST", Header: in,
		Body: []byte(`{"a":1}`), IdentityKey: "X-Warden-Spiffe-Id", Identity: "spiffe://td/x",
		RequestID: "rid", ClientIP: "127.0.0.1", Inspect: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := req.URL.String(); got != "https://up.example:8443/base/v1/a%2Fb?q=1" {
		t.Errorf("url = %s", got)
	}
	for _, h := range []string{"Connection", "X-Secret-Hop", "Upgrade", "Te", "X-Http-Method-Override", "Forwarded", "Content-Encoding"} {
		if v := req.Header.Get(h); v != "" {
			t.Errorf("%s forwarded: %q", h, v)
		}
	}
	if req.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q (client-supplied value must be replaced)", req.Header.Get("X-Forwarded-For"))
	}
	if req.Header.Get("Accept-Encoding") != "identity" || req.Header.Get("X-Keep") != "yes" {
		t.Error("end-to-end headers wrong")
	}
	if req.ContentLength != 7 {
		t.Errorf("content length %d", req.ContentLength)
	}
	b, _ := io.ReadAll(req.Body)
	if string(b) != `{"a":1}` {
		t.Errorf("body %q", b)
	}
	if in.Get("Upgrade") == "" {
		t.Error("NewRequest mutated the inbound header")
	}
}

func TestIsUpgrade(t *testing.T) {
	for _, c := range []struct {
		h    http.Header
		m    string
		want bool
	}{
		{http.Header{}, "GET", false},
		{http.Header{"Upgrade": {"h2c"}}, "GET", true},
		{http.Header{"Connection": {"keep-alive, Upgrade"}}, "GET", true},
		{http.Header{"Http2-Settings": {"x"}}, "GET", true},
		{http.Header{}, "CONNECT", true},
	} {
		if got := IsUpgrade(&http.Request{Method: c.m, Header: c.h}); got != c.want {
			t.Errorf("IsUpgrade(%s %v) = %v", c.m, c.h, got)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestUpstreamError(t *testing.T) {
	ctx := context.Background()
	if e := UpstreamError(ctx, errors.New("connection refused")); e.Status != 502 {
		t.Errorf("refused → %d", e.Status)
	}
	if e := UpstreamError(ctx, timeoutErr{}); e.Status != 504 {
		t.Errorf("timeout → %d", e.Status)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if e := UpstreamError(cctx, context.Canceled); e.Status != 499 {
		t.Errorf("client gone → %d", e.Status)
	}
	if e := UpstreamError(ctx, errors.New("x")); e.Message != "upstream unavailable" {
		t.Errorf("message leaks cause: %q", e.Message)
	}
}

package qdrant

import (
	"net/http"
	"net/http/httptest"
)

// newStatic is an upstream that answers every request with body: it
// stands for a Qdrant that ignored Warden's filter.
func newStatic(body string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
}

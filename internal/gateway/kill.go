package gateway

import (
	"context"
	"net"
	"sync"
)

// killer tracks, per SPIFFE ID, the requests in flight and the connections
// that authenticated with that ID's certificate, so a revocation can end them
// at once: every in-flight request context is cancelled (streams stop) and
// every mTLS connection of the identity is closed (keep-alive connections
// cannot be reused). Connections of JWT-SVID callers are shared with other
// identities behind the L7 hop, so only their requests are cancelled.
type killer struct {
	mu    sync.Mutex
	reqs  map[string]map[*context.CancelFunc]struct{}
	conns map[string]map[net.Conn]struct{}
}

func newKiller() *killer {
	return &killer{
		reqs:  map[string]map[*context.CancelFunc]struct{}{},
		conns: map[string]map[net.Conn]struct{}{},
	}
}

// track registers an in-flight request; the returned func unregisters it.
func (k *killer) track(id string, cancel context.CancelFunc) func() {
	p := &cancel
	k.mu.Lock()
	m := k.reqs[id]
	if m == nil {
		m = map[*context.CancelFunc]struct{}{}
		k.reqs[id] = m
	}
	m[p] = struct{}{}
	k.mu.Unlock()
	return func() {
		k.mu.Lock()
		if cur, ok := k.reqs[id]; ok {
			delete(cur, p)
			if len(cur) == 0 {
				delete(k.reqs, id)
			}
		}
		k.mu.Unlock()
	}
}

// trackConn registers an mTLS connection as belonging to id (idempotent).
func (k *killer) trackConn(id string, c net.Conn) {
	k.mu.Lock()
	m := k.conns[id]
	if m == nil {
		m = map[net.Conn]struct{}{}
		k.conns[id] = m
	}
	m[c] = struct{}{}
	k.mu.Unlock()
}

// forgetConn drops a closed connection from every identity.
func (k *killer) forgetConn(c net.Conn) {
	k.mu.Lock()
	for id, m := range k.conns {
		if _, ok := m[c]; ok {
			delete(m, c)
			if len(m) == 0 {
				delete(k.conns, id)
			}
		}
	}
	k.mu.Unlock()
}

// kill cancels every request of id and closes its connections. It returns
// how many requests and connections were ended.
func (k *killer) kill(id string) (reqs, conns int) {
	k.mu.Lock()
	rm := k.reqs[id]
	cm := k.conns[id]
	delete(k.reqs, id)
	delete(k.conns, id)
	k.mu.Unlock()
	for c := range rm {
		(*c)()
	}
	for c := range cm {
		_ = c.Close()
	}
	return len(rm), len(cm)
}

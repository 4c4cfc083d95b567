package mcp

import (
	"net/http"
	"sync"
	"time"

	"github.com/wardenhq/warden/internal/protocol"
)

// maxPending bounds the request ids remembered per session (client requests
// awaiting a response, server requests awaiting the client's answer).
const maxPending = 1024

// Sessions binds MCP session ids (Mcp-Session-Id, 2025-06-18 and
// 2025-11-25) to the verified SPIFFE ID that created them, so that knowing
// a session id is never enough to use it (MCP security best practices,
// "Session hijacking": bind session ids to the user). It is in memory: a
// gateway restart forgets every binding and clients get 404, which the
// transport defines as "initialize again".
type Sessions struct {
	mu        sync.Mutex
	m         map[sessionKey]*session
	now       func() time.Time
	lastSweep time.Time
}

type sessionKey struct{ backend, id string }

type session struct {
	owner    string
	version  string
	created  time.Time
	lastSeen time.Time
	ttl      time.Duration
	// pending maps client request ids (idKey) forwarded upstream to their
	// method and call, so a response arriving on a resumed stream is still
	// filtered and inspected, and one that answers nothing is dropped.
	pending map[string]pendingReq
	// serverReqs maps ids of server→client requests that were let through
	// to their method: the only responses the client may POST.
	serverReqs map[string]string
}

// NewSessions returns an empty store using now as its clock.
func NewSessions(now func() time.Time) *Sessions {
	if now == nil {
		now = time.Now
	}
	return &Sessions{m: map[sessionKey]*session{}, now: now}
}

type lookupErr struct {
	reason string
	perr   *protocol.Error
}

// lookup returns the caller's session, refusing unknown, expired and
// foreign ones.
func (s *Sessions) lookup(backend, id, peer string, ttl time.Duration) (*session, *lookupErr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sessionKey{backend, id}
	ss := s.m[k]
	now := s.now()
	if ss != nil && now.Sub(ss.lastSeen) > ttl {
		delete(s.m, k)
		ss = nil
	}
	if ss == nil {
		return nil, &lookupErr{"unknown_or_expired", protocol.Errorf(http.StatusNotFound, CodeSessionUnknown, "session not found; initialize a new session")}
	}
	if peer == "" || ss.owner != peer {
		return nil, &lookupErr{"owner_mismatch", protocol.Errorf(http.StatusForbidden, protocol.CodeSessionForbidden, "session belongs to another identity")}
	}
	ss.lastSeen = now
	return ss, nil
}

// create binds a new session id to owner. It refuses an id that is already
// bound to someone else (an upstream that reuses ids must not merge two
// callers' sessions).
func (s *Sessions) create(backend, id, owner, version string, ttl time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.Sub(s.lastSweep) > time.Minute {
		s.lastSweep = now
		for k, ss := range s.m {
			if now.Sub(ss.lastSeen) > ss.ttl {
				delete(s.m, k)
			}
		}
	}
	k := sessionKey{backend, id}
	if old := s.m[k]; old != nil && old.owner != owner {
		return false
	}
	s.m[k] = &session{owner: owner, version: version, created: now, lastSeen: now, ttl: ttl,
		pending: map[string]pendingReq{}, serverReqs: map[string]string{}}
	return true
}

// End forgets a session (DELETE, or the server said 404).
func (s *Sessions) End(backend, id string) {
	s.mu.Lock()
	delete(s.m, sessionKey{backend, id})
	s.mu.Unlock()
}

// Len is the number of live bindings (for tests and metrics).
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *Sessions) setVersion(backend, id, v string) {
	s.mu.Lock()
	if ss := s.m[sessionKey{backend, id}]; ss != nil {
		ss.version = v
	}
	s.mu.Unlock()
}

// addPending remembers a client request forwarded on the session. Its
// call is kept without arguments (see pendingReq.forSession).
func (s *Sessions) addPending(ss *session, key string, pr pendingReq) {
	pr = pr.forSession()
	s.mu.Lock()
	putBounded(ss.pending, key, pr)
	s.mu.Unlock()
}

func (s *Sessions) takePending(ss *session, key string) (pendingReq, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pr, ok := ss.pending[key]
	delete(ss.pending, key)
	return pr, ok
}

func (s *Sessions) addServerRequest(ss *session, key, method string) {
	s.mu.Lock()
	putBounded(ss.serverReqs, key, method)
	s.mu.Unlock()
}

func (s *Sessions) serverRequest(ss *session, key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := ss.serverReqs[key]
	return m, ok
}

func (s *Sessions) takeServerRequest(ss *session, key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := ss.serverReqs[key]
	delete(ss.serverReqs, key)
	return m, ok
}

// putBounded inserts, evicting an arbitrary entry when the map is full: a
// client that never reads its responses loses old ids, not memory.
func putBounded[V any](m map[string]V, k string, v V) {
	if len(m) >= maxPending {
		for old := range m {
			delete(m, old)
			break
		}
	}
	m[k] = v
}

// pendingReq is a client request forwarded upstream and not yet answered:
// the method its response is filtered by, and the call policy decided on,
// which an inspected result is decided by again (with the guard verdict).
type pendingReq struct {
	method string
	call   protocol.Call
}

// forSession is pr as a session keeps it, possibly beyond this exchange:
// the call of a request whose result is inspected without its arguments
// (which may be megabytes, and a session keeps up to maxPending ids); the
// call of any other request not at all. A result replayed on a resumed
// stream is therefore decided without input.resource.arguments: a policy
// that constrains arguments denies it, and the result is withheld (fail
// closed) only if the guard found something in it.
func (pr pendingReq) forSession() pendingReq {
	if _, ok := resultGuardContext[pr.method]; !ok || pr.call.Resource == nil {
		return pendingReq{method: pr.method}
	}
	if _, ok := pr.call.Resource["arguments"]; !ok {
		return pr
	}
	res := make(map[string]any, len(pr.call.Resource))
	for k, v := range pr.call.Resource {
		if k != "arguments" {
			res[k] = v
		}
	}
	pr.call.Resource = res
	return pr
}

// Package revoke is the kill switch store: the SPIFFE IDs an operator has
// revoked, checked on every request (issue "Warden core" §Admin and kill
// switch persistence).
//
// Lookup sits on the hot path, so every store keeps the whole list in
// memory and answers without I/O; changes are copy-on-write behind an
// atomic pointer. FileStore persists the list in one JSON file for a single
// replica; RedisStore shares it between replicas through a Redis hash,
// pub/sub for instant propagation and a periodic full resync. Subscribers
// hear of every change, local or remote, so the gateway can cut the open
// connections and streams of a revoked identity.
package revoke

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Entry is one revocation: who was revoked, why, by whom and when.
type Entry struct {
	// SpiffeID is the revoked identity, exactly (no patterns).
	SpiffeID string `json:"spiffe_id"`
	// Reason is the operator's free text, for the audit log and List.
	Reason string `json:"reason"`
	// By is who revoked: the admin caller's SPIFFE ID or a CLI user.
	By string `json:"by"`
	// At is when; Revoke fills it from the injected clock when zero.
	At time.Time `json:"at"`
}

func (e Entry) equal(o Entry) bool {
	return e.SpiffeID == o.SpiffeID && e.Reason == o.Reason && e.By == o.By && e.At.Equal(o.At)
}

// Store is the gateway's view of a kill switch store.
type Store interface {
	// Revoke adds or updates e. It returns once the change is durable
	// (written to disk, or to Redis).
	Revoke(ctx context.Context, e Entry) error
	// Unrevoke removes spiffeID; removing an ID that is not revoked is not
	// an error.
	Unrevoke(ctx context.Context, spiffeID string) error
	// Lookup is the hot-path check: an in-memory read, no I/O. An error
	// means the state is unknown (e.g. Redis unreachable beyond the bound)
	// and the gateway must deny.
	Lookup(spiffeID string) (Entry, bool, error)
	// List returns every revocation, sorted by SPIFFE ID.
	List(ctx context.Context) ([]Entry, error)
	// Subscribe calls fn for every change, local or remote, with the entry
	// and whether it is now revoked; cancel stops the calls. Calls are
	// serialized in the order the changes were applied; fn must not block
	// and must not call Revoke or Unrevoke (it may call Lookup and List).
	Subscribe(fn func(e Entry, revoked bool)) (cancel func())
	// Close stops watching and releases resources.
	Close() error
}

var (
	_ Store = (*FileStore)(nil)
	_ Store = (*RedisStore)(nil)
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrStale: the shared list has not been synchronized within the bound,
	// so a Lookup cannot be trusted.
	ErrStale = errors.New("revoke: revocation list is stale")
	// ErrInvalidID: the SPIFFE ID is malformed.
	ErrInvalidID = errors.New("revoke: invalid SPIFFE ID")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("revoke: store closed")
)

// validate checks the ID so a typo cannot silently revoke nothing.
func validate(id string) error {
	if _, err := spiffeid.FromString(id); err != nil {
		return fmt.Errorf("%w %q: %v", ErrInvalidID, id, err)
	}
	return nil
}

// change is one difference between two lists.
type change struct {
	e       Entry
	revoked bool
}

// list is the in-memory state shared by the stores: an immutable map
// behind an atomic pointer (readers never lock) and the subscribers.
type list struct {
	entries atomic.Pointer[map[string]Entry]

	subMu  sync.Mutex
	subs   map[uint64]func(Entry, bool)
	nextID uint64
}

func (l *list) init() {
	m := map[string]Entry{}
	l.entries.Store(&m)
	l.subs = map[uint64]func(Entry, bool){}
}

func (l *list) lookup(id string) (Entry, bool) {
	e, ok := (*l.entries.Load())[id]
	return e, ok
}

func (l *list) sorted() []Entry {
	m := *l.entries.Load()
	out := make([]Entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.SpiffeID, b.SpiffeID) })
	return out
}

// replace installs next and returns what changed. Callers serialize
// writers; readers are never blocked.
func (l *list) replace(next map[string]Entry) []change {
	prev := *l.entries.Load()
	var changes []change
	for id, e := range next {
		if old, ok := prev[id]; !ok || !old.equal(e) {
			changes = append(changes, change{e: e, revoked: true})
		}
	}
	for id, e := range prev {
		if _, ok := next[id]; !ok {
			changes = append(changes, change{e: e, revoked: false})
		}
	}
	l.entries.Store(&next)
	return changes
}

// with returns a copy of the current map with e set (revoked) or removed.
func (l *list) with(e Entry, revoked bool) map[string]Entry {
	prev := *l.entries.Load()
	next := make(map[string]Entry, len(prev)+1)
	for k, v := range prev {
		next[k] = v
	}
	if revoked {
		next[e.SpiffeID] = e
	} else {
		delete(next, e.SpiffeID)
	}
	return next
}

// Subscribe implements Store.Subscribe for both stores.
func (l *list) Subscribe(fn func(e Entry, revoked bool)) (cancel func()) {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	id := l.nextID
	l.nextID++
	l.subs[id] = fn
	return func() {
		l.subMu.Lock()
		defer l.subMu.Unlock()
		delete(l.subs, id)
	}
}

// notify calls the subscribers. Stores call it while holding their writer
// lock, so subscribers see changes in the order they were applied.
func (l *list) notify(changes []change) {
	if len(changes) == 0 {
		return
	}
	l.subMu.Lock()
	fns := make([]func(Entry, bool), 0, len(l.subs))
	for _, fn := range l.subs {
		fns = append(fns, fn)
	}
	l.subMu.Unlock()
	for _, c := range changes {
		for _, fn := range fns {
			fn(c.e, c.revoked)
		}
	}
}

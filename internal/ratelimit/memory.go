package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
)

// memStore keeps counters in this process. All counters of one request
// share the SPIFFE ID, so sharding by ID lets one shard lock make a
// multi-counter admission atomic. One entry per scope (identity, or
// identity × model) holds all three counters, updated in place, so an
// admission costs two map lookups and, once the scope exists, no
// allocation; the key is a struct of the caller's strings.
type memStore struct {
	seed   maphash.Seed
	shards []memShard
}

type memKey struct {
	id    string
	model string // "" = the identity scope
}

// memScope is one scope's counters. A window counter holds the window it
// counts; a different window means that counter is empty, the way a Redis
// key for a new window does not exist yet.
type memScope struct {
	tat             int64 // GCRA theoretical arrival time, Unix µs
	minWin, minUsed int64
	dayWin, dayUsed int64
	exp             int64 // when every counter is empty (Unix µs)
}

type memShard struct {
	mu        sync.Mutex
	m         map[memKey]*memScope
	nextSweep int64
	_         [40]byte // keep hot shards on separate cache lines
}

var _ store = (*memStore)(nil)

func newMemStore(shards int) *memStore {
	if shards <= 0 {
		shards = 64
	}
	s := &memStore{seed: maphash.MakeSeed(), shards: make([]memShard, shards)}
	for i := range s.shards {
		s.shards[i].m = make(map[memKey]*memScope)
	}
	return s
}

func (s *memStore) shard(id string) *memShard {
	return &s.shards[maphash.String(s.seed, id)%uint64(len(s.shards))]
}

// scope returns the scope of c, creating it; last caches the previous
// lookup, since a request's counters come grouped by scope.
func (sh *memShard) scope(c counter, last *memKey, lastSc **memScope) *memScope {
	if *lastSc != nil && last.id == c.id && last.model == c.model {
		return *lastSc
	}
	k := memKey{c.id, c.model}
	sc := sh.m[k]
	if sc == nil {
		sc = &memScope{}
		sh.m[k] = sc
	}
	*last, *lastSc = k, sc
	return sc
}

// used is window counter c's tokens (0 when the scope holds another window).
func (sc *memScope) used(c counter) int64 {
	if c.kind == kindTokDay {
		if sc.dayWin == c.win {
			return sc.dayUsed
		}
		return 0
	}
	if sc.minWin == c.win {
		return sc.minUsed
	}
	return 0
}

func (sc *memScope) setUsed(c counter, v int64) {
	if c.kind == kindTokDay {
		sc.dayWin, sc.dayUsed = c.win, v
	} else {
		sc.minWin, sc.minUsed = c.win, v
	}
	sc.exp = max(sc.exp, windowExp(c))
}

// holds reports whether the scope counts window counter c's window.
func (sc *memScope) holds(c counter) bool {
	if c.kind == kindTokDay {
		return sc.dayWin == c.win && sc.exp > 0
	}
	return sc.minWin == c.win && sc.exp > 0
}

// emission is the GCRA emission interval: one request per period/limit.
func emission(limit int64) int64 { return max(minuteUS/limit, 1) }

// windowTTL is how long a window counter is kept: its window plus a minute,
// so late refunds still find it.
func windowExp(c counter) int64 { return c.windowEnd() + minuteUS }

func (s *memStore) admit(_ context.Context, nowUS int64, cs []counter, tokens int64, out []state) (bool, error) {
	if len(cs) == 0 {
		return true, nil
	}
	sh := s.shard(cs[0].id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.sweep(nowUS)
	var (
		scopes [maxCounters]*memScope
		last   memKey
		lastSc *memScope
	)
	ok := true
	for i, c := range cs {
		sc := sh.scope(c, &last, &lastSc)
		scopes[i] = sc
		if c.kind == kindRate {
			t := emission(c.limit)
			diff := max(sc.tat, nowUS) + t - nowUS
			if diff > minuteUS {
				out[i] = state{denied: true, remaining: 0, tatDiff: diff}
				ok = false
			} else {
				out[i] = state{remaining: (minuteUS - diff) / t, tatDiff: diff}
			}
			continue
		}
		used := sc.used(c)
		if used+max(tokens, 1) > c.limit {
			out[i] = state{denied: true, remaining: c.limit - used}
			ok = false
		} else {
			out[i] = state{remaining: c.limit - used - tokens}
		}
	}
	if !ok {
		return false, nil
	}
	for i, c := range cs {
		sc := scopes[i]
		if c.kind == kindRate {
			sc.tat = nowUS + out[i].tatDiff
			sc.exp = max(sc.exp, sc.tat)
			continue
		}
		sc.setUsed(c, sc.used(c)+tokens)
	}
	return true, nil
}

func (s *memStore) add(_ context.Context, nowUS int64, cs []counter, delta int64, out []state) error {
	if len(cs) == 0 {
		return nil
	}
	sh := s.shard(cs[0].id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.sweep(nowUS)
	var (
		last   memKey
		lastSc *memScope
	)
	for i, c := range cs {
		sc := sh.scope(c, &last, &lastSc)
		if delta < 0 && !sc.holds(c) {
			// The window is gone (or never counted): a refund has nothing
			// to give back, as with a Redis key that expired.
			out[i] = state{remaining: c.limit}
			continue
		}
		v := max(sc.used(c)+delta, 0)
		sc.setUsed(c, v)
		out[i] = state{remaining: c.limit - v}
	}
	return nil
}

// sweep drops scopes whose counters are all empty, at most once a minute
// per shard, so memory stays bounded by the callers active in the last day.
func (sh *memShard) sweep(nowUS int64) {
	if nowUS < sh.nextSweep {
		return
	}
	sh.nextSweep = nowUS + minuteUS
	for k, sc := range sh.m {
		if sc.exp < nowUS {
			delete(sh.m, k)
		}
	}
}

package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
)

// memStore keeps counters in this process. All counters of one request
// share the SPIFFE ID, so sharding by ID lets one shard lock make a
// multi-counter admission atomic; the map key is a struct of the caller's
// strings, so a steady-state check allocates nothing.
type memStore struct {
	seed   maphash.Seed
	shards []memShard
}

type memKey struct {
	kind  kind
	id    string
	model string
	win   int64
}

// memEntry is a GCRA theoretical arrival time or a window's used tokens,
// and when the entry may be dropped (Unix µs).
type memEntry struct {
	v   int64
	exp int64
}

type memShard struct {
	mu        sync.Mutex
	m         map[memKey]memEntry
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
		s.shards[i].m = make(map[memKey]memEntry)
	}
	return s
}

func (s *memStore) shard(id string) *memShard {
	return &s.shards[maphash.String(s.seed, id)%uint64(len(s.shards))]
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
	ok := true
	for i, c := range cs {
		e := sh.m[memKey{c.kind, c.id, c.model, c.win}]
		if c.kind == kindRate {
			t := emission(c.limit)
			tat := max(e.v, nowUS)
			diff := tat + t - nowUS
			if diff > minuteUS {
				out[i] = state{denied: true, remaining: 0, tatDiff: diff}
				ok = false
			} else {
				out[i] = state{remaining: (minuteUS - diff) / t, tatDiff: diff}
			}
			continue
		}
		if e.v+max(tokens, 1) > c.limit {
			out[i] = state{denied: true, remaining: c.limit - e.v}
			ok = false
		} else {
			out[i] = state{remaining: c.limit - e.v - tokens}
		}
	}
	if !ok {
		return false, nil
	}
	for i, c := range cs {
		k := memKey{c.kind, c.id, c.model, c.win}
		if c.kind == kindRate {
			tat := nowUS + out[i].tatDiff
			sh.m[k] = memEntry{v: tat, exp: tat}
			continue
		}
		e := sh.m[k]
		sh.m[k] = memEntry{v: e.v + tokens, exp: windowExp(c)}
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
	for i, c := range cs {
		k := memKey{c.kind, c.id, c.model, c.win}
		e, found := sh.m[k]
		if !found && delta < 0 {
			out[i] = state{remaining: c.limit}
			continue
		}
		v := max(e.v+delta, 0)
		sh.m[k] = memEntry{v: v, exp: windowExp(c)}
		out[i] = state{remaining: c.limit - v}
	}
	return nil
}

// sweep drops expired entries at most once a minute per shard, so memory
// stays bounded by the callers active in the last day.
func (sh *memShard) sweep(nowUS int64) {
	if nowUS < sh.nextSweep {
		return
	}
	sh.nextSweep = nowUS + minuteUS
	for k, e := range sh.m {
		if e.exp < nowUS {
			delete(sh.m, k)
		}
	}
}

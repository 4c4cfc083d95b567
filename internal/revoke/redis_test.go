package revoke

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/redistest"
)

var prefixSeq atomic.Int64

func uniquePrefix() string { return fmt.Sprintf("rt%d:%d:", os.Getpid(), prefixSeq.Add(1)) }

// fakeClock drives the staleness bound; the resync ticker runs on real time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testTiming resyncs fast so a missed message is repaired quickly in tests.
var testTiming = timing{resync: 50 * time.Millisecond, staleAfter: time.Minute}

func openRedisStore(t *testing.T, addr, prefix, onError string, now func() time.Time) *RedisStore {
	t.Helper()
	cfg := config.Redis{Address: addr, KeyPrefix: prefix, OnError: onError, Timeout: 500 * time.Millisecond}
	s, err := openRedis(context.Background(), cfg, nil, now, testTiming)
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRedisPropagatesBetweenReplicas(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Start(t)
	prefix := uniquePrefix()
	a := openRedisStore(t, addr, prefix, "deny", nil)
	b := openRedisStore(t, addr, prefix, "deny", nil)
	recB := &recorder{}
	b.Subscribe(recB.fn)
	recA := &recorder{}
	a.Subscribe(recA.fn)

	id := "spiffe://warden.test/agent/x"
	if err := a.Revoke(ctx, Entry{SpiffeID: id, Reason: "compromised", By: "ops"}); err != nil {
		t.Fatal(err)
	}
	// a applies its own change at once.
	if _, ok, err := a.Lookup(id); !ok || err != nil {
		t.Fatalf("a.Lookup after its own Revoke = %v, %v", ok, err)
	}
	waitFor(t, "b to hear of the revocation", func() bool {
		ev := recB.events()
		return len(ev) == 1 && ev[0] == "true "+id
	})
	if e, ok, err := b.Lookup(id); !ok || err != nil || e.Reason != "compromised" || e.By != "ops" {
		t.Fatalf("b.Lookup = %+v, %v, %v", e, ok, err)
	}

	if err := b.Unrevoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to hear of the unrevocation", func() bool {
		_, ok, _ := a.Lookup(id)
		return !ok
	})
	// a heard its own revoke once (the echo from pub/sub changes nothing)
	// and b's unrevoke once.
	waitFor(t, "a's notifications", func() bool { return len(recA.events()) >= 2 })
	if got := recA.events(); len(got) != 2 || got[0] != "true "+id || got[1] != "false "+id {
		t.Errorf("a's notifications = %q", got)
	}
}

// TestRedisResyncRepairsMissedMessages writes the hash behind the stores'
// backs (no message): the periodic resync still finds it.
func TestRedisResyncRepairsMissedMessages(t *testing.T) {
	addr := redistest.Start(t)
	prefix := uniquePrefix()
	s := openRedisStore(t, addr, prefix, "deny", nil)
	rec := &recorder{}
	s.Subscribe(rec.fn)
	id := "spiffe://warden.test/agent/y"
	if err := s.c.HSet(context.Background(), prefix+"revocations", id, `{"spiffe_id":"`+id+`","reason":"direct"}`, "spiffe://warden.test/agent/z", "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resync", func() bool { return len(rec.events()) == 2 })
	if e, ok, _ := s.Lookup(id); !ok || e.Reason != "direct" {
		t.Errorf("Lookup(%s) = %+v, %v", id, e, ok)
	}
	if _, ok, _ := s.Lookup("spiffe://warden.test/agent/z"); !ok {
		t.Errorf("an unreadable entry was dropped; it must stay revoked")
	}
}

// TestRedisDown kills redis-server: past the bound Lookup fails closed
// (unless OnError is "local"), writes fail without changing anything, and
// after a restart the store recovers.
func TestRedisDown(t *testing.T) {
	for _, mode := range []string{"deny", "local"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			srv := redistest.New(t)
			clk := &fakeClock{t: t0}
			s := openRedisStore(t, srv.Addr(), uniquePrefix(), mode, clk.Now)
			id := "spiffe://warden.test/agent/d"
			if err := s.Revoke(ctx, Entry{SpiffeID: id}); err != nil {
				t.Fatal(err)
			}
			srv.Kill()
			clk.Advance(testTiming.staleAfter / 2)
			if _, ok, err := s.Lookup(id); !ok || err != nil {
				t.Fatalf("within the bound: Lookup = %v, %v; want the last known answer", ok, err)
			}
			if err := s.Revoke(ctx, Entry{SpiffeID: "spiffe://warden.test/agent/e"}); err == nil {
				t.Errorf("Revoke with Redis down succeeded")
			}
			if _, ok, _ := s.Lookup("spiffe://warden.test/agent/e"); ok {
				t.Errorf("a failed Revoke changed the local list")
			}
			// Past the bound. A resync that read Redis just before the kill
			// may still land; keep advancing until only failures remain.
			waitFor(t, "the bound to pass", func() bool {
				clk.Advance(testTiming.staleAfter)
				_, _, err := s.Lookup("spiffe://warden.test/agent/other")
				if mode == "local" {
					return true
				}
				return errors.Is(err, ErrStale)
			})
			e, ok, err := s.Lookup(id)
			if mode == "deny" {
				if !errors.Is(err, ErrStale) {
					t.Errorf("Lookup past the bound: err = %v, want ErrStale", err)
				}
				if _, lerr := s.List(ctx); !errors.Is(lerr, ErrStale) {
					t.Errorf("List past the bound: err = %v, want ErrStale", lerr)
				}
			} else if err != nil || !ok || e.SpiffeID != id {
				t.Errorf("local mode past the bound: Lookup = %+v, %v, %v; want the last known answer", e, ok, err)
			}

			srv.Restart() // empty: nothing is persisted in tests
			waitFor(t, "recovery after restart", func() bool {
				_, _, err := s.Lookup(id)
				return err == nil
			})
			if err := s.Revoke(ctx, Entry{SpiffeID: id}); err != nil {
				t.Errorf("Revoke after restart: %v", err)
			}
		})
	}
}

func TestRedisOpenFailsWhenUnreachable(t *testing.T) {
	srv := redistest.New(t)
	srv.Kill()
	_, err := OpenRedis(context.Background(), config.Redis{Address: srv.Addr(), Timeout: 200 * time.Millisecond}, nil, nil)
	if err == nil {
		t.Fatal("OpenRedis succeeded with Redis down")
	}
}

func BenchmarkLookup(b *testing.B) {
	s, err := OpenFile(b.TempDir()+"/r.json", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := map[string]Entry{}
	for i := range 1000 {
		id := fmt.Sprintf("spiffe://warden.test/a/%d", i)
		m[id] = Entry{SpiffeID: id}
	}
	s.replace(m) // 1000 fsynced writes would only time the disk
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok, _ := s.Lookup("spiffe://warden.test/a/500"); !ok {
				b.Fatal("not found")
			}
		}
	})
}

// TestRedisConcurrentReplicasConverge: two replicas revoke and unrevoke at
// once; both end with the same list, the one in Redis.
func TestRedisConcurrentReplicasConverge(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Start(t)
	prefix := uniquePrefix()
	stores := []*RedisStore{openRedisStore(t, addr, prefix, "deny", nil), openRedisStore(t, addr, prefix, "deny", nil)}
	id := func(r, i int) string { return fmt.Sprintf("spiffe://warden.test/r%d/a%d", r, i) }
	var wg sync.WaitGroup
	for r, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if err := s.Revoke(ctx, Entry{SpiffeID: id(r, i), By: "test"}); err != nil {
					t.Error(err)
				}
				if i%3 == 0 {
					if err := s.Unrevoke(ctx, id(r, i)); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	var want []string
	for r := range stores {
		for i := range 20 {
			if i%3 != 0 {
				want = append(want, id(r, i))
			}
		}
	}
	sort.Strings(want)
	for n, s := range stores {
		waitFor(t, fmt.Sprintf("replica %d to converge", n), func() bool {
			l, err := s.List(ctx)
			if err != nil {
				return false
			}
			var got []string
			for _, e := range l {
				got = append(got, e.SpiffeID)
			}
			return slices.Equal(got, want)
		})
	}
}

// TestRedisRestoresAfterDataLoss restarts redis-server empty: the replicas
// must not follow the empty hash and lift the revocation; they write it
// back.
func TestRedisRestoresAfterDataLoss(t *testing.T) {
	ctx := context.Background()
	srv := redistest.New(t)
	prefix := uniquePrefix()
	a := openRedisStore(t, srv.Addr(), prefix, "deny", nil)
	b := openRedisStore(t, srv.Addr(), prefix, "deny", nil)
	id := "spiffe://warden.test/agent/lost"
	if err := a.Revoke(ctx, Entry{SpiffeID: id, Reason: "keep me"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to hear of the revocation", func() bool { _, ok, _ := b.Lookup(id); return ok })
	rec := &recorder{}
	b.Subscribe(rec.fn)

	srv.Restart() // empty: nothing is persisted
	waitFor(t, "the entry to be written back to Redis", func() bool {
		v, err := a.c.HGet(ctx, prefix+"revocations", id).Result()
		return err == nil && strings.Contains(v, "keep me")
	})
	// Stay a few resyncs: the entry must never be lifted meanwhile.
	for range 5 {
		if err := b.resync(ctx); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*RedisStore{a, b} {
			if e, ok, err := s.Lookup(id); !ok || err != nil || e.Reason != "keep me" {
				t.Fatalf("after data loss: Lookup = %+v, %v, %v", e, ok, err)
			}
		}
	}
	if ev := rec.events(); len(ev) != 0 {
		t.Errorf("notifications during the data loss: %q, want none", ev)
	}
}

// TestRedisResubscribesAfterRestart: a replica whose periodic resync is
// far away still hears changes after redis-server restarts, because the
// subscription comes back (and a resubscription triggers a resync).
func TestRedisResubscribesAfterRestart(t *testing.T) {
	ctx := context.Background()
	srv := redistest.New(t)
	prefix := uniquePrefix()
	a := openRedisStore(t, srv.Addr(), prefix, "deny", nil)
	cfg := config.Redis{Address: srv.Addr(), KeyPrefix: prefix, Timeout: 500 * time.Millisecond}
	b, err := openRedis(ctx, cfg, nil, nil, timing{resync: time.Hour, staleAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	srv.Restart()
	id := "spiffe://warden.test/agent/after-restart"
	waitFor(t, "a's revoke to go through after the restart", func() bool {
		return a.Revoke(ctx, Entry{SpiffeID: id}) == nil
	})
	waitFor(t, "b to hear of it without its periodic resync", func() bool {
		_, ok, _ := b.Lookup(id)
		return ok
	})
}

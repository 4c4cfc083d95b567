package revoke

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/redisconn"
)

// RedisStore shares revocations between replicas. The list is a Redis hash
// (<prefix>revocations: SPIFFE ID → JSON Entry), with <prefix>revocations:epoch
// marking it intact (see resync); every change is also
// published on the channel <prefix>revocations:events, so other replicas
// apply it at once; and every replica re-reads the whole hash periodically
// and after each (re)subscription, so a missed message is repaired within
// one resync interval.
//
// Lookup reads memory only. If the list could not be re-read from Redis for
// longer than the staleness bound, Lookup returns ErrStale (with the last
// known answer) and the gateway denies, unless config.Redis.OnError is
// "local": then the last known list keeps being used.
type RedisStore struct {
	list
	c        *redis.Client
	hash     string
	epochKey string
	channel  string
	local    bool
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time
	timing   timing

	mu       sync.Mutex    // serializes applying changes (local, remote, resync)
	gen      uint64        // bumped by every applied single change, under mu
	lastSync atomic.Int64  // Unix ns (injected clock) of the last full read
	kick     chan struct{} // asks for a resync now
	down     atomic.Bool   // Redis failing; logged once per outage
	ps       *redis.PubSub
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	close    sync.Once
	closeErr error
}

// timing is how often the list is re-read and how old it may get.
type timing struct {
	resync     time.Duration
	staleAfter time.Duration
}

// defaultTiming: a missed pub/sub message is repaired within 5s; after 30s
// without a successful read of the list, Lookup fails closed.
var defaultTiming = timing{resync: 5 * time.Second, staleAfter: 30 * time.Second}

// message is what is published on each change.
type message struct {
	Op    string `json:"op"` // "revoke" or "unrevoke"
	Entry Entry  `json:"entry"`
}

// OpenRedis connects, subscribes to changes and reads the whole list; it
// fails if Redis cannot be read, so Warden does not start without knowing
// who is revoked. log nil discards; now nil is time.Now.
func OpenRedis(ctx context.Context, cfg config.Redis, log *slog.Logger, now func() time.Time) (*RedisStore, error) {
	return openRedis(ctx, cfg, log, now, defaultTiming)
}

func openRedis(ctx context.Context, cfg config.Redis, log *slog.Logger, now func() time.Time, tm timing) (*RedisStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	prefix := cfg.KeyPrefix
	if prefix == "" {
		prefix = "warden:"
	}
	s := &RedisStore{
		c:        c,
		hash:     prefix + "revocations",
		epochKey: prefix + "revocations:epoch",
		channel:  prefix + "revocations:events",
		local:    cfg.OnError == "local",
		// A full read moves the whole list; give it more than one call.
		timeout: max(cfg.Timeout, time.Second),
		log:     log,
		now:     now,
		timing:  tm,
		kick:    make(chan struct{}, 1),
	}
	s.init()
	// Subscribe before the first read, so no change falls between them.
	s.ps = c.Subscribe(ctx, s.channel)
	if _, err := s.ps.Receive(ctx); err != nil {
		_ = s.ps.Close()
		_ = c.Close()
		return nil, fmt.Errorf("revoke: redis %s: subscribe: %w", cfg.Address, err)
	}
	if err := s.resync(ctx); err != nil {
		_ = s.ps.Close()
		_ = c.Close()
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go s.receive(bg)
	go s.resyncLoop(bg)
	return s, nil
}

// newClient is the shared Redis client construction, errors prefixed.
func newClient(cfg config.Redis) (*redis.Client, error) {
	c, err := redisconn.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("revoke: %w", err)
	}
	return c, nil
}

// receive applies published changes. go-redis reconnects and resubscribes
// on its own; each (re)subscription triggers a resync, since messages sent
// while disconnected are lost.
func (s *RedisStore) receive(ctx context.Context) {
	defer s.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		msg, err := s.ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.failed("subscribe", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			s.requestResync()
		case *redis.Message:
			s.applyMessage(m.Payload)
		}
	}
}

func (s *RedisStore) requestResync() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *RedisStore) applyMessage(payload string) {
	var m message
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		s.log.Warn("revoke: ignoring malformed change message; resyncing", "error", err)
		s.requestResync()
		return
	}
	if validate(m.Entry.SpiffeID) != nil || (m.Op != "revoke" && m.Op != "unrevoke") {
		s.log.Warn("revoke: ignoring invalid change message; resyncing", "op", m.Op)
		s.requestResync()
		return
	}
	s.apply(m.Entry, m.Op == "revoke")
}

// apply sets or removes one entry and notifies.
func (s *RedisStore) apply(e Entry, revoked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.notify(s.replace(s.with(e, revoked)))
}

func (s *RedisStore) resyncLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.timing.resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		if err := s.resync(ctx); err != nil && ctx.Err() == nil {
			s.failed("resync", err)
		}
	}
}

// resync replaces the list with the hash's content. A change applied while
// the read was in flight may be newer than the snapshot, so the snapshot is
// then dropped (the next resync takes a fresh one); the read still proves
// Redis is reachable.
//
// The epoch key marks the hash as intact. If it is missing, Redis lost its
// data (restarted without persistence, flushed, failed over to an empty
// replica): instead of following the empty hash and silently lifting every
// revocation, the replica writes back the entries it knows (HSETNX, so
// newer writes win) and a new epoch. Every replica does the same, so the
// union of what they knew is restored.
func (s *RedisStore) resync(ctx context.Context) error {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.c.TxPipeline()
	epochCmd := pipe.Get(rctx, s.epochKey)
	hashCmd := pipe.HGetAll(rctx, s.hash)
	if _, err := pipe.Exec(rctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("revoke: redis read %s: %w", s.hash, err)
	}
	raw, err := hashCmd.Result()
	if err != nil {
		return fmt.Errorf("revoke: redis read %s: %w", s.hash, err)
	}
	next := make(map[string]Entry, len(raw))
	for id, v := range raw {
		var e Entry
		if err := json.Unmarshal([]byte(v), &e); err != nil || e.SpiffeID != id {
			// Someone revoked this ID; an unreadable entry stays a
			// revocation (fail closed).
			s.log.Warn("revoke: unreadable entry kept as revoked", "spiffe_id", id, "error", err)
			e = Entry{SpiffeID: id, Reason: "unreadable revocation entry"}
		}
		next[id] = e
	}
	if errors.Is(epochCmd.Err(), redis.Nil) {
		restored, err := s.restore(rctx, next)
		if err != nil {
			return err
		}
		if restored > 0 {
			s.log.Warn("revoke: redis lost the revocation list; restored this replica's entries", "restored", restored)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen == gen {
		s.notify(s.replace(next))
	} else {
		s.requestResync()
	}
	s.lastSync.Store(s.now().UnixNano())
	if s.down.Swap(false) {
		s.log.Info("revoke: redis reachable again", "entries", len(next))
	}
	return nil
}

// restore writes the entries this replica knows and Redis lacks, and a new
// epoch, in one transaction; it adds them to next.
func (s *RedisStore) restore(ctx context.Context, next map[string]Entry) (int, error) {
	var epoch [16]byte
	if _, err := rand.Read(epoch[:]); err != nil {
		return 0, fmt.Errorf("revoke: new epoch: %w", err)
	}
	pipe := s.c.TxPipeline()
	n := 0
	for id, e := range *s.entries.Load() {
		if _, ok := next[id]; ok {
			continue
		}
		b, err := json.Marshal(e)
		if err != nil {
			return 0, fmt.Errorf("revoke: encode: %w", err)
		}
		pipe.HSetNX(ctx, s.hash, id, b)
		next[id] = e
		n++
	}
	pipe.SetNX(ctx, s.epochKey, hex.EncodeToString(epoch[:]), 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("revoke: redis restore %s: %w", s.hash, err)
	}
	return n, nil
}

// failed logs the first failure of an outage.
func (s *RedisStore) failed(op string, err error) {
	if !s.down.Swap(true) {
		s.log.Warn("revoke: redis unavailable", "op", op, "error", err)
	}
}

// Revoke writes e to Redis and publishes it, then applies it locally. When
// Redis fails nothing changes and the error is returned: a revocation that
// only one replica knows would be a false assurance.
func (s *RedisStore) Revoke(ctx context.Context, e Entry) error {
	if err := validate(e.SpiffeID); err != nil {
		return err
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = e.At.UTC()
	if err := s.write(ctx, e, true); err != nil {
		return err
	}
	s.apply(e, true)
	return nil
}

// Unrevoke removes spiffeID in Redis, publishes it, then applies it locally.
func (s *RedisStore) Unrevoke(ctx context.Context, spiffeID string) error {
	if err := validate(spiffeID); err != nil {
		return err
	}
	e, ok := s.lookup(spiffeID)
	if !ok {
		e = Entry{SpiffeID: spiffeID}
	}
	if err := s.write(ctx, e, false); err != nil {
		return err
	}
	s.apply(e, false)
	return nil
}

func (s *RedisStore) write(ctx context.Context, e Entry, revoked bool) error {
	entry, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("revoke: encode: %w", err)
	}
	op := "unrevoke"
	if revoked {
		op = "revoke"
	}
	msg, err := json.Marshal(message{Op: op, Entry: e})
	if err != nil {
		return fmt.Errorf("revoke: encode: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// MULTI/EXEC: the hash and the message change together.
	pipe := s.c.TxPipeline()
	if revoked {
		pipe.HSet(ctx, s.hash, e.SpiffeID, entry)
	} else {
		pipe.HDel(ctx, s.hash, e.SpiffeID)
	}
	pipe.Publish(ctx, s.channel, msg)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("revoke: redis %s %s: %w", op, e.SpiffeID, err)
	}
	return nil
}

// stale reports whether the list is older than the bound.
func (s *RedisStore) stale() bool {
	if s.local {
		return false
	}
	return s.now().UnixNano()-s.lastSync.Load() > int64(s.timing.staleAfter)
}

// Lookup implements Store: memory only; ErrStale (with the last known
// answer) when the list is older than the bound and OnError is not "local".
func (s *RedisStore) Lookup(spiffeID string) (Entry, bool, error) {
	e, ok := s.lookup(spiffeID)
	if s.stale() {
		return e, ok, ErrStale
	}
	return e, ok, nil
}

// List implements Store from memory, with ErrStale as Lookup.
func (s *RedisStore) List(ctx context.Context) ([]Entry, error) {
	l := s.sorted()
	if s.stale() {
		return l, ErrStale
	}
	return l, nil
}

// Close stops the subscription and the resync loop and closes the client.
func (s *RedisStore) Close() error {
	s.close.Do(func() {
		s.cancel()
		err := s.ps.Close()
		s.wg.Wait()
		if cerr := s.c.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			s.closeErr = fmt.Errorf("revoke: close redis: %w", err)
		}
	})
	return s.closeErr
}

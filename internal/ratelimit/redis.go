package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wardenhq/warden/internal/config"
	"github.com/wardenhq/warden/internal/redisconn"
)

// RedisStore keeps counters in Redis so all replicas share one budget.
// Each admission is one EVALSHA of a Lua script that checks every counter of
// the request and takes from all of them or none, atomically. The current
// time is passed in by the caller (the injected clock), not read with Redis
// TIME, so tests can drive windows; replicas should run NTP.
//
// Keys (prefix = config.Redis.KeyPrefix, default "warden:"):
//
//	<prefix>rl:{<spiffe-id>}:rpm:<scope>          GCRA TAT (µs), expires at the TAT
//	<prefix>rl:{<spiffe-id>}:tpm:<scope>:<minute> tokens used in that UTC minute
//	<prefix>rl:{<spiffe-id>}:tpd:<scope>:<day>    tokens used in that UTC day
//
// where scope is "i" (the identity across models) or "m:<model>". The
// {spiffe-id} hash tag keeps one request's keys in one Redis Cluster slot.
// Window keys expire one minute after their window ends.
type RedisStore struct {
	c       *redis.Client
	prefix  string
	timeout time.Duration
	onError string
}

var _ store = (*RedisStore)(nil)

// admitScript: KEYS are the counters; ARGV = now_us, tokens, then per
// counter kind ("r" rate or "w" window), limit, and p (rate: the emission
// interval in µs; window: the TTL in ms). TTLs are relative, computed from
// the caller's clock, so they hold even when that clock is not Redis's.
// Returns
// {ok, denied_1, remaining_1, tatdiff_1, denied_2, ...}.
var admitScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local tokens = tonumber(ARGV[2])
local period = 60000000
local ok = 1
local res = {0}
local newv = {}
for i = 1, #KEYS do
  local b = 3 + (i - 1) * 3
  local limit, p = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  local denied, rem, diff = 0, 0, 0
  if ARGV[b] == 'r' then
    local tat = cur
    if tat < now then tat = now end
    diff = tat + p - now
    if diff > period then
      denied = 1
      ok = 0
    else
      rem = math.floor((period - diff) / p)
      newv[i] = tat + p
    end
  else
    local t = tokens
    if t < 1 then t = 1 end
    if cur + t > limit then
      denied = 1
      ok = 0
      rem = limit - cur
    else
      rem = limit - cur - tokens
    end
  end
  res[#res + 1] = denied
  res[#res + 1] = rem
  res[#res + 1] = diff
end
if ok == 1 then
  for i = 1, #KEYS do
    local b = 3 + (i - 1) * 3
    if ARGV[b] == 'r' then
      redis.call('SET', KEYS[i], string.format('%.0f', newv[i]), 'PX', string.format('%.0f', math.floor((newv[i] - now) / 1000) + 1))
    elseif tokens > 0 then
      redis.call('INCRBY', KEYS[i], tokens)
      redis.call('PEXPIRE', KEYS[i], ARGV[b + 2])
    end
  end
end
res[1] = ok
return res
`)

// addScript: KEYS are window counters; ARGV = delta, then per key limit and
// expiry (Unix ms). Negative deltas refund, floored at zero, and never
// create a key. Returns the remaining tokens per key.
var addScript = redis.NewScript(`
local delta = tonumber(ARGV[1])
local res = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i])
  local used = 0
  if delta < 0 then
    if redis.call('EXISTS', KEYS[i]) == 1 then
      used = redis.call('DECRBY', KEYS[i], -delta)
      if used < 0 then
        redis.call('SET', KEYS[i], '0', 'KEEPTTL')
        used = 0
      end
    end
  else
    used = redis.call('INCRBY', KEYS[i], delta)
    redis.call('PEXPIRE', KEYS[i], ARGV[2 * i + 1])
  end
  res[i] = limit - used
end
return res
`)

// OpenRedis connects to the Redis of cfg and loads the scripts. It fails
// when Redis is unreachable, so a gateway that requires shared limits does
// not start without them. cfg.OnError ("deny" by default, or "local")
// decides what a Limiter does when Redis fails later.
func OpenRedis(ctx context.Context, cfg config.Redis) (*RedisStore, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	s := &RedisStore{c: c, prefix: cfg.KeyPrefix, timeout: cfg.Timeout, onError: cfg.OnError}
	if s.prefix == "" {
		s.prefix = "warden:"
	}
	if s.timeout <= 0 {
		s.timeout = 50 * time.Millisecond
	}
	if s.onError == "" {
		s.onError = "deny"
	}
	for _, sc := range []*redis.Script{admitScript, addScript} {
		if err := sc.Load(ctx, c).Err(); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("ratelimit: redis %s: load script: %w", cfg.Address, err)
		}
	}
	return s, nil
}

// newClient is the shared Redis client construction, errors prefixed.
func newClient(cfg config.Redis) (*redis.Client, error) {
	c, err := redisconn.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	return c, nil
}

// Close closes the connections.
func (s *RedisStore) Close() error { return s.c.Close() }

// key builds a counter's key (see RedisStore).
func (s *RedisStore) key(b *strings.Builder, c counter) string {
	b.Reset()
	b.Grow(len(s.prefix) + len(c.id) + len(c.model) + 32)
	b.WriteString(s.prefix)
	b.WriteString("rl:{")
	b.WriteString(c.id)
	b.WriteString("}:")
	b.WriteString(c.kind.String())
	if c.model == "" {
		b.WriteString(":i")
	} else {
		b.WriteString(":m:")
		b.WriteString(c.model)
	}
	if c.kind != kindRate {
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(c.win, 10))
	}
	return b.String()
}

func (s *RedisStore) admit(ctx context.Context, nowUS int64, cs []counter, tokens int64, out []state) (bool, error) {
	var b strings.Builder
	keys := make([]string, len(cs))
	args := make([]any, 2, 2+3*len(cs))
	args[0], args[1] = nowUS, tokens
	for i, c := range cs {
		keys[i] = s.key(&b, c)
		if c.kind == kindRate {
			args = append(args, "r", c.limit, emission(c.limit))
		} else {
			args = append(args, "w", c.limit, windowTTLms(c, nowUS))
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	v, err := admitScript.Run(ctx, s.c, keys, args...).Int64Slice()
	if err != nil {
		return false, fmt.Errorf("ratelimit: redis admit: %w", err)
	}
	if len(v) != 1+3*len(cs) {
		return false, fmt.Errorf("ratelimit: redis admit: %d values in reply, want %d", len(v), 1+3*len(cs))
	}
	for i := range cs {
		out[i] = state{denied: v[1+3*i] == 1, remaining: v[2+3*i], tatDiff: v[3+3*i]}
	}
	return v[0] == 1, nil
}

func (s *RedisStore) add(ctx context.Context, nowUS int64, cs []counter, delta int64, out []state) error {
	var b strings.Builder
	keys := make([]string, len(cs))
	args := make([]any, 1, 1+2*len(cs))
	args[0] = delta
	for i, c := range cs {
		keys[i] = s.key(&b, c)
		args = append(args, c.limit, windowTTLms(c, nowUS))
	}
	// A refund or usage report must not be lost because the client went
	// away: only the store's own timeout bounds it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	v, err := addScript.Run(ctx, s.c, keys, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("ratelimit: redis add %+d: %w", delta, err)
	}
	if len(v) != len(cs) {
		return fmt.Errorf("ratelimit: redis add: %d values in reply, want %d", len(v), len(cs))
	}
	for i := range cs {
		out[i] = state{remaining: v[i]}
	}
	return nil
}

// windowTTLms is how long from now window counter c is kept: until a
// minute past its end, at least one second.
func windowTTLms(c counter, nowUS int64) int64 {
	return max((windowExp(c)-nowUS)/1000, 1000)
}

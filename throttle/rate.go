package throttle

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// LimitError says a rate limit holds a send back for RetryIn. Throttling is
// not a failure: return it to the queue so that the task comes back after
// RetryIn without counting as a failed attempt.
type LimitError struct {
	RetryIn time.Duration
}

func (e *LimitError) Error() string {
	return "throttle: rate limited, retry in " + e.RetryIn.String()
}

// Rate is Count events per Per, with bursts of up to Burst events.
type Rate struct {
	Count int
	Per   time.Duration
	// Burst is how many events may go at once; 0 means Count.
	Burst int
}

func (r Rate) String() string {
	s := strconv.Itoa(r.Count) + "/"
	switch r.Per {
	case time.Second:
		s += "s"
	case time.Minute:
		s += "m"
	case time.Hour:
		s += "h"
	default:
		s += r.Per.String()
	}
	if r.Burst != 0 && r.Burst != r.Count {
		s += " burst " + strconv.Itoa(r.Burst)
	}
	return s
}

func (r Rate) validate() error {
	switch {
	case r.Count < 1:
		return fmt.Errorf("rate %d: want at least 1 event", r.Count)
	case r.Per <= 0:
		return fmt.Errorf("period %s: must be positive", r.Per)
	case r.Burst < 0:
		return fmt.Errorf("burst %d: must not be negative", r.Burst)
	}
	return nil
}

// ParseRate reads "100/s", "20/m", "3600/h", "1/2s" or "5/1m30s", with an
// optional burst: "100/s burst 200".
func ParseRate(s string) (Rate, error) {
	fail := func(format string, args ...any) (Rate, error) {
		return Rate{}, fmt.Errorf("throttle: rate %q: "+format, append([]any{s}, args...)...)
	}
	spec, burst, hasBurst := strings.Cut(strings.TrimSpace(s), " burst ")
	count, per, ok := strings.Cut(strings.TrimSpace(spec), "/")
	if !ok {
		return fail("want count/period, like 100/s or 20/m")
	}
	var r Rate
	var err error
	if r.Count, err = strconv.Atoi(strings.TrimSpace(count)); err != nil || r.Count < 1 {
		return fail("count %q: want a whole number of at least 1", count)
	}
	switch per = strings.TrimSpace(per); per {
	case "s", "sec", "second":
		r.Per = time.Second
	case "m", "min", "minute":
		r.Per = time.Minute
	case "h", "hour":
		r.Per = time.Hour
	default:
		if r.Per, err = time.ParseDuration(per); err != nil || r.Per <= 0 {
			return fail("period %q: want s, m, h or a duration like 2s", per)
		}
	}
	if hasBurst {
		if r.Burst, err = strconv.Atoi(strings.TrimSpace(burst)); err != nil || r.Burst < 1 {
			return fail("burst %q: want a whole number of at least 1", burst)
		}
	}
	return r, nil
}

// Limiter shares rate limits between every worker on one Redis, with the
// generic cell rate algorithm (GCRA): one timestamp per limit, the
// theoretical arrival time of the next token. Its clock is the Redis
// server's, so all workers agree on it.
//
// Why not github.com/go-redis/redis_rate: it computes in floating-point
// seconds, so with a burst of one (a "1/s" SMS sender) now - (now -
// interval) can come out a hair under one interval and the limit then never
// grants a token; and a partial grant charges the fraction of a token it
// could not grant, which halves small bursts. This script counts in whole
// microseconds.
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
}

// gcraScript takes up to n tokens whose slots fall within horizon from now.
// KEYS: the limit. ARGV: emission interval in µs, burst, n, horizon in µs
// (0: tokens free now only, as TakeRate wants). The k-th token after the
// stored theoretical arrival time tat is free at tat + (k - burst) *
// interval: the first burst of them at once, then one per interval. It
// takes at most burst at a time, since its caller uses them together.
// Returns {tokens taken, µs until the slot of the last one taken (0 when
// none), µs until the next free slot, the server's time in µs}; the tests
// place the slots on that time.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst, n, horizon = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local take = math.floor((horizon + burst * interval - (tat - now)) / interval)
if take > n then take = n end
if take > burst then take = burst end
if take < 0 then take = 0 end
local last = 0
if take > 0 then
  tat = tat + take * interval
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
  last = tat - burst * interval - now
  if last < 0 then last = 0 end
end
local nxt = tat - (burst - 1) * interval - now
if nxt < 0 then nxt = 0 end
return {take, last, nxt, now}
`)

// NewLimiter returns a Limiter keeping its state in rdb under
// <prefix>:rate:<key>.
func NewLimiter(rdb redis.UniversalClient, prefix string) *Limiter {
	return &Limiter{rdb: rdb, prefix: prefix}
}

// Take takes up to n tokens of the rate limit named key, perSecond events a
// second with bursts of burst (0 means perSecond). It returns how many it
// took and, when fewer than n, how long until the next one is due: a worker
// sending a batch sends what it took and waits (or returns a *LimitError)
// for the rest.
func (l *Limiter) Take(ctx context.Context, key string, perSecond, burst, n int) (allowed int, retryIn time.Duration, err error) {
	return l.TakeRate(ctx, key, Rate{Count: perSecond, Per: time.Second, Burst: burst}, n)
}

// TakeRate is Take for any Rate.
func (l *Limiter) TakeRate(ctx context.Context, key string, r Rate, n int) (allowed int, retryIn time.Duration, err error) {
	g, err := l.grant(ctx, "take", key, r, n, 0)
	if err != nil {
		return 0, 0, err
	}
	if g.taken >= n {
		return g.taken, 0, nil
	}
	return g.taken, max(g.next, time.Millisecond), nil
}

// Reserve takes n tokens of the rate limit named key, the first free slots
// within horizon from now, and returns how many it took (0..n) and how long
// the caller waits before using them: until the slot of the last one taken.
// It never takes a slot beyond horizon; when none is free within it, it
// returns 0 and the wait until the first free slot.
//
// The tokens taken are meant to be used together once wait has passed, so
// Reserve takes at most the rate's burst at a time, as TakeRate does: more
// at one instant would exceed the limit. Reservers then never need to poll:
// each call hands out slots no other call gets, and tokens used at their
// wait keep every reserver together within the rate, bursts included.
// Tokens taken are spent: there is no giving them back.
//
// It returns an error, as TakeRate does, when n is below 1 or r is not a
// valid rate, and when horizon is not positive.
func (l *Limiter) Reserve(ctx context.Context, key string, r Rate, n int, horizon time.Duration) (taken int, wait time.Duration, err error) {
	if horizon <= 0 {
		return 0, 0, fmt.Errorf("throttle: reserve %q: horizon %s: must be positive", key, horizon)
	}
	g, err := l.grant(ctx, "reserve", key, r, n, horizon)
	if err != nil {
		return 0, 0, err
	}
	if g.taken == 0 {
		return 0, g.next, nil
	}
	return g.taken, g.last, nil
}

// grant is one run of gcraScript: the tokens taken, the wait until the
// slot of the last one taken and the wait until the next free slot.
type grant struct {
	taken      int
	last, next time.Duration
}

func (l *Limiter) grant(ctx context.Context, op, key string, r Rate, n int, horizon time.Duration) (grant, error) {
	if err := r.validate(); err != nil {
		return grant{}, fmt.Errorf("throttle: %s %q: %w", op, key, err)
	}
	if n < 1 {
		return grant{}, fmt.Errorf("throttle: %s %q: %d tokens: want at least 1", op, key, n)
	}
	burst := r.Burst
	if burst == 0 {
		burst = r.Count
	}
	interval := max(r.Per.Microseconds()/int64(r.Count), 1)
	res, err := gcraScript.Run(ctx, l.rdb, []string{l.prefix + ":rate:" + key}, interval, burst, n, horizon.Microseconds()).Int64Slice()
	if err != nil {
		return grant{}, fmt.Errorf("throttle: %s %q: %w", op, key, err)
	}
	if len(res) != 4 {
		return grant{}, fmt.Errorf("throttle: %s %q: the script answered %d values, want 4", op, key, len(res))
	}
	return grant{taken: int(res[0]), last: time.Duration(res[1]) * time.Microsecond, next: time.Duration(res[2]) * time.Microsecond}, nil
}

// Reset forgets the state of the rate limit named key.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if err := l.rdb.Del(ctx, l.prefix+":rate:"+key).Err(); err != nil {
		return fmt.Errorf("throttle: reset %q: %w", key, err)
	}
	return nil
}

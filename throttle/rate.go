package throttle

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
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
// generic cell rate algorithm of github.com/go-redis/redis_rate (a
// well-kept implementation: no need to write our own). Its clock is the
// Redis server's, so all workers agree on it.
type Limiter struct {
	limiter *redis_rate.Limiter
	prefix  string
}

// NewLimiter returns a Limiter keeping its state in rdb under
// <prefix>:rate:<key>.
func NewLimiter(rdb redis.UniversalClient, prefix string) *Limiter {
	return &Limiter{limiter: redis_rate.NewLimiter(rateStore{rdb}), prefix: prefix}
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
//
// A partial grant (fewer than n, more than 0) spends the whole bucket,
// including the fraction of a token it could not grant (redis_rate's
// AllowAtMost does so): a caller that waits retryIn before asking again
// loses nothing, one that comes back sooner loses less than a token.
func (l *Limiter) TakeRate(ctx context.Context, key string, r Rate, n int) (allowed int, retryIn time.Duration, err error) {
	if err := r.validate(); err != nil {
		return 0, 0, fmt.Errorf("throttle: take %q: %w", key, err)
	}
	if n < 1 {
		return 0, 0, fmt.Errorf("throttle: take %q: %d tokens: want at least 1", key, n)
	}
	limit := redis_rate.Limit{Rate: r.Count, Period: r.Per, Burst: r.Burst}
	if limit.Burst == 0 {
		limit.Burst = r.Count
	}
	res, err := l.limiter.AllowAtMost(ctx, l.prefix+":rate:"+key, limit, n)
	if err != nil {
		return 0, 0, fmt.Errorf("throttle: take %q: %w", key, err)
	}
	if res.Allowed >= n {
		return res.Allowed, 0, nil
	}
	retryIn = res.RetryAfter
	if retryIn <= 0 {
		// A partial grant empties the bucket: the next token is one
		// emission interval away. (redis_rate reports -1 here.)
		retryIn = r.Per / time.Duration(r.Count)
	}
	return res.Allowed, max(retryIn, time.Millisecond), nil
}

// Reset forgets the state of the rate limit named key.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if err := l.limiter.Reset(ctx, l.prefix+":rate:"+key); err != nil {
		return fmt.Errorf("throttle: reset %q: %w", key, err)
	}
	return nil
}

// rateStore hands redis_rate a client whose keys land under our prefix:
// redis_rate puts "rate:" before every key, and every Missive key starts
// with the configured prefix (tests and tenants rely on it).
type rateStore struct {
	redis.UniversalClient
}

const rateLibPrefix = "rate:"

func unprefix(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, rateLibPrefix)
	}
	return out
}

func (s rateStore) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return s.UniversalClient.Eval(ctx, script, unprefix(keys), args...)
}

func (s rateStore) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return s.UniversalClient.EvalSha(ctx, sha1, unprefix(keys), args...)
}

func (s rateStore) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return s.UniversalClient.EvalRO(ctx, script, unprefix(keys), args...)
}

func (s rateStore) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return s.UniversalClient.EvalShaRO(ctx, sha1, unprefix(keys), args...)
}

func (s rateStore) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return s.UniversalClient.Del(ctx, unprefix(keys)...)
}

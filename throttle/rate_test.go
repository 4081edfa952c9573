package throttle_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/throttle"
	"github.com/missive-dev/missive/throttle/redistest"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	tests := []parseCase[throttle.Rate]{
		{in: "100/s", want: throttle.Rate{Count: 100, Per: time.Second}},
		{in: "20/m", want: throttle.Rate{Count: 20, Per: time.Minute}},
		{in: " 3600 / h ", want: throttle.Rate{Count: 3600, Per: time.Hour}},
		{in: "1/2s", want: throttle.Rate{Count: 1, Per: 2 * time.Second}},
		{in: "100/s burst 250", want: throttle.Rate{Count: 100, Per: time.Second, Burst: 250}},
		{in: "100", err: `rate "100": want count/period`},
		{in: "0/s", err: `count "0"`},
		{in: "x/s", err: `count "x"`},
		{in: "10/d", err: `period "d"`},
		{in: "10/-1s", err: `period "-1s"`},
		{in: "10/s burst 0", err: `burst "0"`},
	}
	testParse(t, "ParseRate", throttle.ParseRate, tests, func(t *testing.T, got throttle.Rate) {
		if again, err := throttle.ParseRate(got.String()); err != nil || again != got {
			t.Errorf("round trip through %q: %v, %v", got.String(), again, err)
		}
	})
}

type take struct {
	n       int
	allowed int
	// retry is the longest retryIn may be; 0 means it must be 0.
	retry time.Duration
}

// setupLimiter returns a Limiter on a Redis of its own.
func setupLimiter(t *testing.T) *throttle.Limiter {
	t.Helper()
	r := redistest.New(t)
	return throttle.NewLimiter(r.Client, r.Prefix)
}

func runTakes(t *testing.T, l *throttle.Limiter, key string, r throttle.Rate, takes []take) {
	t.Helper()
	for i, tk := range takes {
		allowed, retryIn, err := l.TakeRate(context.Background(), key, r, tk.n)
		if err != nil {
			t.Fatalf("take %d: %v", i, err)
		}
		if allowed != tk.allowed {
			t.Errorf("take %d of %d: allowed %d, want %d", i, tk.n, allowed, tk.allowed)
		}
		switch {
		case tk.retry == 0 && retryIn != 0:
			t.Errorf("take %d: retryIn %s, want 0", i, retryIn)
		case tk.retry != 0 && (retryIn <= 0 || retryIn > tk.retry):
			t.Errorf("take %d: retryIn %s, want in (0, %s]", i, retryIn, tk.retry)
		}
	}
}

func TestLimiterTakesAtMostTheRate(t *testing.T) {
	t.Parallel()
	l := setupLimiter(t)
	// Slow rates, so that time passing during the test cannot refill.
	runTakes(t, l, "provider", throttle.Rate{Count: 10, Per: time.Minute}, []take{
		{n: 4, allowed: 4},
		{n: 25, allowed: 6, retry: 6 * time.Second},
		{n: 1, allowed: 0, retry: 6 * time.Second},
		{n: 10, allowed: 0, retry: 6 * time.Second},
	})
	runTakes(t, l, "burst", throttle.Rate{Count: 1, Per: time.Minute, Burst: 3}, []take{
		{n: 10, allowed: 3, retry: time.Minute},
		{n: 1, allowed: 0, retry: time.Minute},
	})
	// Another key has its own budget.
	runTakes(t, l, "other", throttle.Rate{Count: 10, Per: time.Minute}, []take{{n: 10, allowed: 10}})

	allowed, retryIn, err := l.Take(context.Background(), "per-second", 2, 5, 8)
	if err != nil || allowed != 5 || retryIn <= 0 || retryIn > 500*time.Millisecond {
		t.Errorf("Take(2/s, burst 5, 8) = %d, %s, %v; want 5, (0, 500ms]", allowed, retryIn, err)
	}
}

func TestLimiterRefills(t *testing.T) {
	t.Parallel()
	l := setupLimiter(t)
	ctx := context.Background()
	if got, _, err := l.Take(ctx, "k", 20, 1, 1); err != nil || got != 1 {
		t.Fatalf("first take: %d, %v", got, err)
	}
	got, retryIn, err := l.Take(ctx, "k", 20, 1, 1)
	if err != nil || got != 0 || retryIn <= 0 || retryIn > 50*time.Millisecond {
		t.Fatalf("second take: %d, %s, %v; want 0, (0, 50ms]", got, retryIn, err)
	}
	time.Sleep(retryIn)
	if got, _, err := l.Take(ctx, "k", 20, 1, 1); err != nil || got != 1 {
		t.Fatalf("take after waiting retryIn: %d, %v; want 1", got, err)
	}
	if err := l.Reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
}

func TestLimiterShared(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	other := redis.NewClient(r.Options) // another worker: its own connection
	t.Cleanup(func() { _ = other.Close() })
	a := throttle.NewLimiter(r.Client, r.Prefix)
	b := throttle.NewLimiter(other, r.Prefix)
	rate := throttle.Rate{Count: 10, Per: time.Minute}
	runTakes(t, a, "twilio", rate, []take{{n: 6, allowed: 6}})
	runTakes(t, b, "twilio", rate, []take{{n: 6, allowed: 4, retry: 6 * time.Second}})
	runTakes(t, a, "twilio", rate, []take{{n: 1, allowed: 0, retry: 6 * time.Second}})

	// The state lives under the prefix, nowhere else.
	keys, err := r.Client.Keys(context.Background(), "*"+r.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{r.Prefix + ":rate:twilio"}, keys); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}

func TestLimiterRejectsBadArguments(t *testing.T) {
	t.Parallel()
	l := setupLimiter(t)
	ctx := context.Background()
	for _, tt := range []struct{ perSecond, burst, n int }{{0, 1, 1}, {1, -1, 1}, {1, 1, 0}} {
		if _, _, err := l.Take(ctx, "k", tt.perSecond, tt.burst, tt.n); err == nil {
			t.Errorf("Take(%d/s, burst %d, n %d) gave no error", tt.perSecond, tt.burst, tt.n)
		}
	}
}

func TestLimitError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("send: %w", &throttle.LimitError{RetryIn: 1500 * time.Millisecond})
	var le *throttle.LimitError
	if !errors.As(err, &le) || le.RetryIn != 1500*time.Millisecond {
		t.Fatalf("errors.As(%v) = %v", err, le)
	}
	if got, want := err.Error(), "send: throttle: rate limited, retry in 1.5s"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// A burst of one grants tokens (a floating-point GCRA can starve it).
func TestLimiterBurstOne(t *testing.T) {
	l := setupLimiter(t)
	got := 0
	for range 20 {
		n, retryIn, err := l.TakeRate(context.Background(), "one", throttle.Rate{Count: 100, Per: time.Second, Burst: 1}, 5)
		if err != nil {
			t.Fatal(err)
		}
		got += n
		time.Sleep(retryIn)
	}
	if got == 0 {
		t.Fatal("a limiter with a burst of one never granted a token")
	}
}

// clockedLimiter is a Limiter on a connection of its own that keeps the
// Redis time its last call ran at: the limiter's script answers it last,
// so that a test can place every slot on the server's clock exactly.
type clockedLimiter struct {
	*throttle.Limiter
	at atomic.Int64 // µs, Redis TIME of the last script run
}

func newClockedLimiter(t *testing.T, r *redistest.Redis) *clockedLimiter {
	t.Helper()
	rdb := redis.NewClient(r.Options)
	t.Cleanup(func() { _ = rdb.Close() })
	l := &clockedLimiter{Limiter: throttle.NewLimiter(rdb, r.Prefix)}
	redistest.OnCommand(rdb, func(cmd redis.Cmder) {
		if c, ok := cmd.(*redis.Cmd); ok && c.Err() == nil {
			if res, err := c.Int64Slice(); err == nil && len(res) == 4 {
				l.at.Store(res[3])
			}
		}
	})
	return l
}

// reserve calls Reserve and returns, with its answer, the Redis time it
// ran at.
func (l *clockedLimiter) reserve(t *testing.T, key string, r throttle.Rate, n int, horizon time.Duration) (taken int, wait time.Duration, at time.Duration) {
	t.Helper()
	taken, wait, err := l.Reserve(context.Background(), key, r, n, horizon)
	if err != nil {
		t.Fatalf("Reserve(%s, %d, %s): %v", r, n, horizon, err)
	}
	return taken, wait, time.Duration(l.at.Load()) * time.Microsecond
}

// TestReserveSlots reserves on a fresh limit, step after step, and checks
// each answer against the slots the rate defines on the Redis clock: the
// k-th token is free burst tokens at once from the first call, then one
// per interval; a call takes the next free ones whose slots are within its
// horizon, at most n and at most the burst, and waits for the last one.
// taken is the answer each step must give, -1 when it depends on how much
// time passed between calls (a horizon ending among fine-grained slots).
func TestReserveSlots(t *testing.T) {
	t.Parallel()
	type step struct {
		n       int
		horizon time.Duration
		taken   int
	}
	tests := []struct {
		name  string
		rate  throttle.Rate
		steps []step
	}{
		{"1/s burst 1", throttle.Rate{Count: 1, Per: time.Second, Burst: 1}, []step{
			{n: 1, horizon: 10 * time.Second, taken: 1}, // slot 0: now
			{n: 1, horizon: 10 * time.Second, taken: 1}, // slot 1 s
			{n: 3, horizon: 10 * time.Second, taken: 1}, // slot 2 s: one at a time, the burst
			{n: 1, horizon: 2500 * time.Millisecond, taken: 0},
			{n: 1, horizon: 3500 * time.Millisecond, taken: 1}, // slot 3 s
		}},
		{"1000/s", throttle.Rate{Count: 1000, Per: time.Second}, []step{
			{n: 600, horizon: time.Second, taken: 600},           // the burst, now
			{n: 600, horizon: time.Second, taken: 600},           // 400 more of the burst, then 1 to 200 ms
			{n: 1000, horizon: 100 * time.Millisecond, taken: 0}, // the next is at 201 ms
			{n: 1000, horizon: time.Second, taken: -1},           // n beyond the horizon: up to ~1 s
			{n: 5000, horizon: 3 * time.Second, taken: 1000},     // n beyond the burst
		}},
		{"3/m burst 3", throttle.Rate{Count: 3, Per: time.Minute}, []step{
			{n: 5, horizon: time.Minute, taken: 3}, // the burst
			{n: 5, horizon: time.Minute, taken: 3}, // 20 s, 40 s, 60 s: the horizon's end is within it
			{n: 1, horizon: time.Minute, taken: 0}, // 80 s
		}},
		{"1/2s burst 2", throttle.Rate{Count: 1, Per: 2 * time.Second, Burst: 2}, []step{
			{n: 1, horizon: time.Second, taken: 1},
			{n: 3, horizon: 3 * time.Second, taken: 2}, // now and 2 s
			{n: 1, horizon: time.Second, taken: 0},     // 4 s
		}},
		{"10/s burst 10", throttle.Rate{Count: 10, Per: time.Second}, []step{
			{n: 10, horizon: time.Second, taken: 10},
			{n: 10, horizon: 450 * time.Millisecond, taken: 4}, // 100 to 400 ms: n beyond the horizon
		}},
	}
	r := redistest.New(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newClockedLimiter(t, r)
			burst := tt.rate.Burst
			if burst == 0 {
				burst = tt.rate.Count
			}
			interval := tt.rate.Per / time.Duration(tt.rate.Count)
			var start time.Duration // Redis time of the first call
			// slot is when the k-th token (from 1) is free, seen at now.
			slot := func(k int, now time.Duration) time.Duration {
				return max(now, start+time.Duration(k-burst)*interval)
			}
			issued := 0
			for i, s := range tt.steps {
				taken, wait, at := l.reserve(t, tt.name, tt.rate, s.n, s.horizon)
				if i == 0 {
					start = at
				}
				if i > 0 && at > start+time.Duration(issued)*interval {
					// Every token issued was due already: the limit
					// restarted from now and slot no longer holds.
					t.Fatalf("step %d ran %s after the first: too late for this table", i, at-start)
				}
				want := 0
				for k := issued + 1; want < min(s.n, burst) && slot(k, at) <= at+s.horizon; k++ {
					want++
				}
				if s.taken >= 0 && want != s.taken {
					t.Fatalf("step %d: the table says %d, the slots say %d", i, s.taken, want)
				}
				wantWait := slot(issued+1, at) - at
				if want > 0 {
					wantWait = slot(issued+want, at) - at
				}
				if taken != want || wait != wantWait {
					t.Errorf("step %d: Reserve(%d, %s) = %d, %s; want %d, %s", i, s.n, s.horizon, taken, wait, want, wantWait)
				}
				if taken > 0 && wait > s.horizon {
					t.Errorf("step %d: wait %s beyond the horizon %s", i, wait, s.horizon)
				}
				issued += taken
			}
		})
	}
}

// TestReserveConcurrently has 20 workers, each on its own connection,
// reserve 2 s of slots at 200/s, 1 to 8 tokens at a time (beyond a burst
// of 5), until none is left within the horizon. Every worker using its tokens when its wait is
// over, on the Redis clock, no window of any length t holds more than
// burst + rate*t tokens; and every slot within the horizon was handed out.
func TestReserveConcurrently(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	const horizon = 2 * time.Second
	for _, rate := range []throttle.Rate{
		{Count: 200, Per: time.Second},
		{Count: 200, Per: time.Second, Burst: 5},
	} {
		t.Run(rate.String(), func(t *testing.T) {
			t.Parallel()
			type use struct {
				at time.Duration // Redis time of the call plus its wait
				n  int
			}
			var (
				mu   sync.Mutex
				uses []use
				wg   sync.WaitGroup
			)
			key := "concurrent " + rate.String()
			for w := range 20 {
				l := newClockedLimiter(t, r)
				wg.Go(func() {
					for i := 0; ; i++ {
						taken, wait, err := l.Reserve(context.Background(), key, rate, 1+(w+i)%8, horizon)
						if err != nil {
							t.Error(err)
							return
						}
						if taken == 0 {
							if wait <= horizon {
								t.Errorf("none taken, yet the first free slot is in %s, within the horizon", wait)
							}
							return
						}
						if wait > horizon {
							t.Errorf("wait %s beyond the horizon", wait)
						}
						at := time.Duration(l.at.Load())*time.Microsecond + wait
						mu.Lock()
						uses = append(uses, use{at, taken})
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			// One instant per token, in order.
			var at []time.Duration
			for _, u := range uses {
				for range u.n {
					at = append(at, u.at)
				}
			}
			slices.Sort(at)
			burst := rate.Burst
			if burst == 0 {
				burst = rate.Count
			}
			if want := burst + int(horizon/(rate.Per/time.Duration(rate.Count))); len(at) < want {
				t.Errorf("%d tokens handed out, want at least %d: the burst and every slot within the horizon", len(at), want)
			}
			// The tokens from i to j lie in a window of at[j]-at[i].
			for i := range at {
				for j := i; j < len(at); j++ {
					span := at[j] - at[i]
					if n := j - i + 1; int64(n-burst)*int64(rate.Per) > int64(span)*int64(rate.Count) {
						t.Fatalf("%d tokens within %s at %s: more than the burst %d and the rate allow", n, span, rate, burst)
					}
				}
			}
		})
	}
}

// TestReserveHoldsItsSlotsAgainstTake: tokens reserved for later are no
// longer free now, and TakeRate waits until after them.
func TestReserveHoldsItsSlotsAgainstTake(t *testing.T) {
	t.Parallel()
	l := setupLimiter(t)
	ctx := context.Background()
	rate := throttle.Rate{Count: 10, Per: time.Minute} // a token every 6 s, bursts of 10
	for i, want := range []int{10, 10} {
		if taken, _, err := l.Reserve(ctx, "k", rate, 10, time.Minute); err != nil || taken != want {
			t.Fatalf("Reserve %d: %d, %v; want %d", i, taken, err, want)
		}
	}
	// Reserved: the burst now and one token every 6 s up to 60 s. The
	// next token TakeRate may have is free at 66 s.
	allowed, retryIn, err := l.TakeRate(ctx, "k", rate, 1)
	if err != nil || allowed != 0 || retryIn <= 65*time.Second || retryIn > 66*time.Second {
		t.Errorf("TakeRate after the reservations = %d, %s, %v; want 0, (65s, 66s]", allowed, retryIn, err)
	}
}

func TestReserveRejectsBadArguments(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	l := throttle.NewLimiter(r.Client, r.Prefix)
	ctx := context.Background()
	ok := throttle.Rate{Count: 10, Per: time.Second}
	for _, tt := range []struct {
		rate    throttle.Rate
		n       int
		horizon time.Duration
		err     string
	}{
		{rate: throttle.Rate{Count: 0, Per: time.Second}, n: 1, horizon: time.Second, err: "rate 0: want at least 1 event"},
		{rate: throttle.Rate{Count: 1}, n: 1, horizon: time.Second, err: "period 0s: must be positive"},
		{rate: throttle.Rate{Count: 1, Per: time.Second, Burst: -1}, n: 1, horizon: time.Second, err: "burst -1: must not be negative"},
		{rate: ok, n: 0, horizon: time.Second, err: "0 tokens: want at least 1"},
		{rate: ok, n: 1, horizon: 0, err: "horizon 0s: must be positive"},
		{rate: ok, n: 1, horizon: -time.Second, err: "horizon -1s: must be positive"},
	} {
		taken, wait, err := l.Reserve(ctx, "k", tt.rate, tt.n, tt.horizon)
		if err == nil || !strings.Contains(err.Error(), `throttle: reserve "k": `+tt.err) || taken != 0 || wait != 0 {
			t.Errorf("Reserve(%+v, %d, %s) = %d, %s, %v; want an error %q", tt.rate, tt.n, tt.horizon, taken, wait, err, tt.err)
		}
		if tt.horizon > 0 {
			// TakeRate refuses the same arguments the same way.
			if _, _, err := l.TakeRate(ctx, "k", tt.rate, tt.n); err == nil || !strings.Contains(err.Error(), `throttle: take "k": `+tt.err) {
				t.Errorf("TakeRate(%+v, %d) error %v; want %q", tt.rate, tt.n, err, tt.err)
			}
		}
	}
	if n, err := r.Client.Exists(ctx, r.Prefix+":rate:k").Result(); err != nil || n != 0 {
		t.Errorf("a refused call left state: %d, %v", n, err)
	}
}

package throttle_test

import (
	"context"
	"errors"
	"fmt"
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
	r := redistest.New(t)
	l := throttle.NewLimiter(r.Client, r.Prefix)
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
	r := redistest.New(t)
	l := throttle.NewLimiter(r.Client, r.Prefix)
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
	r := redistest.New(t)
	l := throttle.NewLimiter(r.Client, r.Prefix)
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
	r := redistest.New(t)
	l := throttle.NewLimiter(r.Client, r.Prefix)
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

package throttle_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/throttle"
	"github.com/missive-dev/missive/throttle/redistest"
)

func TestParseCapRules(t *testing.T) {
	t.Parallel()
	tests := []parseCase[[]throttle.CapRule]{
		{in: "", want: nil},
		{in: "email:marketing:2/7d, sms:1/24h, email:topic=promotions:1/1d", want: []throttle.CapRule{
			{Channel: "email", MarketingOnly: true, Limit: 2, Window: 7 * 24 * time.Hour},
			{Channel: "sms", Limit: 1, Window: 24 * time.Hour},
			{Channel: "email", Topic: "promotions", Limit: 1, Window: 24 * time.Hour},
		}},
		{in: "sms:marketing:topic=promotions:3/2w", want: []throttle.CapRule{
			{Channel: "sms", Topic: "promotions", MarketingOnly: true, Limit: 3, Window: 14 * 24 * time.Hour},
		}},
		{in: "email:5/d,email:1/90m", want: []throttle.CapRule{
			{Channel: "email", Limit: 5, Window: 24 * time.Hour},
			{Channel: "email", Limit: 1, Window: 90 * time.Minute},
		}},
		{in: "email:2", err: `cap rule 1 "email:2": "2": want limit/window`},
		{in: "sms:1/24h, sms:0/1d", err: `cap rule 2 "sms:0/1d": limit "0"`},
		{in: "sms:x/1d", err: `limit "x"`},
		{in: "sms:1/7x", err: `window "7x"`},
		{in: "sms:1/-1h", err: `window "-1h"`},
		{in: "sms:promo:1/1d", err: `qualifier "promo"`},
		{in: "sms:topic=:1/1d", err: "topic is empty"},
		{in: "s{ms:1/1d", err: `channel "s{ms": character '{'`},
		{in: "1/1d", err: "want channel"},
		{in: "sms:1/1d,,email:1/1d", err: "cap rule 2 is empty"},
	}
	testParse(t, "ParseCapRules", throttle.ParseCapRules, tests, func(t *testing.T, got []throttle.CapRule) {
		// String gives back what Parse reads.
		for _, r := range got {
			again, err := throttle.ParseCapRules(r.String())
			if err != nil || len(again) != 1 || again[0] != r {
				t.Errorf("round trip of %q: %v, %v", r.String(), again, err)
			}
		}
	})
}

type capsBundle struct {
	rdb  *redistest.Redis
	caps *throttle.Caps
}

func setupCaps(t testing.TB, rules string) capsBundle {
	t.Helper()
	rdb := redistest.New(t)
	return capsBundle{rdb: rdb, caps: newCaps(t, rdb, rules)}
}

// newCaps returns the Caps of rules on rdb.
func newCaps(t testing.TB, rdb *redistest.Redis, rules string) *throttle.Caps {
	t.Helper()
	rs, err := throttle.ParseCapRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	return throttle.NewCaps(rdb.Client, rdb.Prefix, rs)
}

// keys returns every key under the test's prefix.
func (b capsBundle) keys(t *testing.T) []string {
	t.Helper()
	ks, err := b.rdb.Client.Keys(context.Background(), b.rdb.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// step is one reservation at an offset from t0 and its expected answer.
type step struct {
	at   time.Duration
	req  throttle.CapRequest
	want bool
}

func runSteps(t *testing.T, c *throttle.Caps, steps []step) {
	t.Helper()
	ctx := context.Background()
	var got, want []string
	for i, s := range steps {
		ok, err := c.Reserve(ctx, t0.Add(s.at), s.req)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got = append(got, fmt.Sprintf("%d %s@%s: %v", i, s.req.SendID, s.at, ok))
		want = append(want, fmt.Sprintf("%d %s@%s: %v", i, s.req.SendID, s.at, s.want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reservations (-want +got):\n%s", diff)
	}
}

func mail(contact, id, topic string, marketing bool) throttle.CapRequest {
	return throttle.CapRequest{Contact: contact, Channel: "email", Topic: topic, SendID: id, Marketing: marketing}
}

func sms(contact, id string) throttle.CapRequest {
	return throttle.CapRequest{Contact: contact, Channel: "sms", Topic: "promotions", SendID: id, Marketing: true}
}

func TestCapsRules(t *testing.T) {
	t.Parallel()
	const d = 24 * time.Hour
	tests := []struct {
		name  string
		rules string
		steps []step
	}{
		{
			name:  "rolling window",
			rules: "email:2/7d",
			steps: []step{
				{0, mail("c1", "s1", "news", true), true},
				{1 * d, mail("c1", "s2", "news", true), true},
				{2 * d, mail("c1", "s3", "news", true), false},
				{7*d - time.Millisecond, mail("c1", "s3", "news", true), false},
				{7 * d, mail("c1", "s3", "news", true), true}, // s1 is exactly 7 days old: out
				{7*d + time.Hour, mail("c1", "s4", "news", true), false},
				{8 * d, mail("c1", "s4", "news", true), true}, // s2 out
				{8 * d, mail("c2", "s5", "news", true), true}, // another contact
			},
		},
		{
			name:  "idempotent send id",
			rules: "email:1/1d",
			steps: []step{
				{0, mail("c1", "s1", "news", true), true},
				{time.Minute, mail("c1", "s1", "news", true), true}, // a retry, not a second send
				{time.Hour, mail("c1", "s2", "news", true), false},
				{2 * time.Hour, mail("c1", "s1", "news", true), true},
			},
		},
		{
			name:  "idempotent send id under the limit",
			rules: "email:3/1d",
			steps: []step{
				{0, mail("c1", "s1", "news", true), true},
				{time.Minute, mail("c1", "s1", "news", true), true}, // a retry counts nothing
				{2 * time.Minute, mail("c1", "s1", "news", true), true},
				{time.Hour, mail("c1", "s2", "news", true), true},
				{2 * time.Hour, mail("c1", "s3", "news", true), true},
				{3 * time.Hour, mail("c1", "s4", "news", true), false},
				{4 * time.Hour, mail("c1", "s2", "news", true), true},
			},
		},
		{
			name:  "topic-specific rule",
			rules: "email:topic=promotions:1/1d, email:3/1d",
			steps: []step{
				{0, mail("c1", "p1", "promotions", true), true},
				{1, mail("c1", "p2", "promotions", true), false}, // promotions capped
				{2, mail("c1", "n1", "news", true), true},        // other topics still go
				{3, mail("c1", "n2", "news", true), true},
				{4, mail("c1", "n3", "news", true), false}, // 3 a day whatever the topic: p1, n1, n2
			},
		},
		{
			name:  "marketing-only rule does not count transactional",
			rules: "email:marketing:1/7d",
			steps: []step{
				{0, mail("c1", "o1", "orders", false), true},
				{1, mail("c1", "o2", "orders", false), true},
				{2, mail("c1", "m1", "news", true), true},
				{3, mail("c1", "m2", "news", true), false},
				{4, mail("c1", "o3", "orders", false), true}, // transactional is never held back
			},
		},
		{
			name:  "marketing-only and all sends keep separate counts",
			rules: "email:marketing:1/7d, email:2/1d",
			steps: []step{
				{0, mail("c1", "o1", "orders", false), true},
				{1, mail("c1", "m1", "news", true), true},
				{2, mail("c1", "o2", "orders", false), false}, // 2 a day reached
				{d, mail("c1", "o2", "orders", false), true},
				{d + 1, mail("c1", "m2", "news", true), false}, // 1 marketing a week
			},
		},
		{
			name:  "two windows on one key",
			rules: "sms:1/1d, sms:2/7d",
			steps: []step{
				{0, sms("c1", "s1"), true},
				{time.Hour, sms("c1", "s2"), false},
				{d, sms("c1", "s2"), true},
				{2 * d, sms("c1", "s3"), false}, // the short window would allow it; the week does not
				{7 * d, sms("c1", "s3"), true},
			},
		},
		{
			name:  "channels apart",
			rules: "sms:1/1d",
			steps: []step{
				{0, sms("c1", "s1"), true},
				{1, mail("c1", "e1", "news", true), true}, // no email rule
				{2, mail("c1", "e2", "news", true), true},
				{3, sms("c1", "s2"), false},
			},
		},
		{
			name:  "contacts with awkward ids stay apart",
			rules: "sms:1/1d",
			steps: []step{
				{0, sms("a}:sms", "s1"), true},
				{1, sms("a", "s2"), true},
				{2, sms("a{b}", "s3"), true},
				{3, sms("a%7Db", "s4"), true},
				{4, sms("a}b", "s5"), true},
				{5, sms("a", "s6"), false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupCaps(t, tt.rules)
			runSteps(t, b.caps, tt.steps)
		})
	}
}

func TestCapsNoRuleNoRedis(t *testing.T) {
	t.Parallel()
	// No rule applies to email: allowed, and nothing is written.
	b := setupCaps(t, "sms:1/1d")
	ok, err := b.caps.Reserve(context.Background(), t0, mail("c1", "e1", "news", true))
	if err != nil || !ok {
		t.Fatalf("Reserve = %v, %v; want true, nil", ok, err)
	}
	n, err := b.rdb.Client.Keys(context.Background(), b.rdb.Prefix+"*").Result()
	if err != nil || len(n) != 0 {
		t.Fatalf("keys after a send no rule applies to: %v, %v", n, err)
	}
}

func TestCapsRejectsBadRequest(t *testing.T) {
	t.Parallel()
	b := setupCaps(t, "sms:1/1d")
	for _, req := range []throttle.CapRequest{
		{Channel: "sms", SendID: "s"},
		{Contact: "c", SendID: "s"},
		{Contact: "c", Channel: "sms"},
	} {
		if _, err := b.caps.Reserve(context.Background(), t0, req); err == nil {
			t.Errorf("Reserve(%+v) gave no error", req)
		}
	}
}

func TestCapsRelease(t *testing.T) {
	t.Parallel()
	b := setupCaps(t, "email:marketing:1/7d, email:topic=promotions:1/1d, sms:1/1d")
	ctx := context.Background()
	runSteps(t, b.caps, []step{
		{0, mail("c1", "m1", "promotions", true), true},
		{1, mail("c1", "m2", "promotions", true), false},
	})
	if err := b.caps.Release(ctx, "c1", "email", "promotions", "m1"); err != nil {
		t.Fatal(err)
	}
	// Releasing twice, or something never reserved, is harmless.
	if err := b.caps.Release(ctx, "c1", "email", "promotions", "m1"); err != nil {
		t.Fatal(err)
	}
	if err := b.caps.Release(ctx, "c9", "push", "x", "nothing"); err != nil {
		t.Fatal(err)
	}
	runSteps(t, b.caps, []step{
		{2, mail("c1", "m2", "promotions", true), true},
		{3, mail("c1", "m3", "news", true), false},
	})
}

func TestCapsForget(t *testing.T) {
	t.Parallel()
	b := setupCaps(t, "email:marketing:1/7d, email:topic=promotions:1/1d, sms:1/1d")
	ctx := context.Background()
	runSteps(t, b.caps, []step{
		{0, mail("c1", "m1", "promotions", true), true},
		{1, sms("c1", "s1"), true},
		{2, sms("c1*", "s1"), true}, // a glob character in an id
		{3, sms("c10", "s1"), true},
	})
	// Five cap keys and the set of kinds of rules: no index per contact.
	if ks := b.keys(t); len(ks) != 6 {
		t.Fatalf("%d keys before Forget, want 6: %v", len(ks), ks)
	}
	if err := b.caps.Forget(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	want := []string{b.rdb.Prefix + ":cap:{c1*}:sms", b.rdb.Prefix + ":cap:{c10}:sms", b.rdb.Prefix + ":cap:kinds"}
	if diff := cmp.Diff(want, b.keys(t), sortStrings); diff != "" {
		t.Errorf("keys after Forget (-want +got):\n%s", diff)
	}
	runSteps(t, b.caps, []step{
		{4, mail("c1", "m2", "promotions", true), true},
		{5, sms("c1", "s2"), true},
	})
}

// TestCapsForgetRetiredRule: a key written under a rule the operator has
// since removed is still found, through the set of kinds of rules, without
// a scan.
func TestCapsForgetRetiredRule(t *testing.T) {
	t.Parallel()
	b := setupCaps(t, "email:topic=promotions:1/1d, sms:1/1d")
	ctx := context.Background()
	runSteps(t, b.caps, []step{
		{0, mail("c1", "m1", "promotions", true), true},
		{1, sms("c1", "s1"), true},
	})
	if err := newCaps(t, b.rdb, "sms:1/1d").Forget(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{b.rdb.Prefix + ":cap:kinds"}, b.keys(t)); diff != "" {
		t.Errorf("keys after Forget (-want +got):\n%s", diff)
	}
}

// TestCapsForgetIndexed: keys that reservations named in an index of the
// contact's keys, before the set of kinds existed, are found through it,
// those of a kind no rule names today too.
func TestCapsForgetIndexed(t *testing.T) {
	t.Parallel()
	b := setupCaps(t, "sms:1/1d")
	ctx := context.Background()
	base := b.rdb.Prefix + ":cap:{c1}:"
	for _, k := range []string{base + "sms", base + "email:topic=spring"} {
		if err := b.rdb.Client.ZAdd(ctx, k, redis.Z{Score: 1, Member: "s1"}).Err(); err != nil {
			t.Fatal(err)
		}
		if err := b.rdb.Client.SAdd(ctx, base+"~keys", k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.caps.Forget(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if ks := b.keys(t); len(ks) != 0 {
		t.Errorf("keys left after Forget: %v", ks)
	}
}

// TestCapsKeysOfAReservation: a reservation writes one sorted set per kind
// of rule that applies, with the TTL of its longest window, and nothing
// else of the contact.
func TestCapsKeysOfAReservation(t *testing.T) {
	t.Parallel()
	b := setupCaps(t, "email:marketing:2/7d, email:marketing:1/1d, email:topic=promotions:1/2d, sms:1/1d")
	ctx := context.Background()
	runSteps(t, b.caps, []step{{0, mail("c1", "m1", "promotions", true), true}})
	base := b.rdb.Prefix + ":cap:{c1}:"
	want := []string{base + "email:marketing", base + "email:topic=promotions", b.rdb.Prefix + ":cap:kinds"}
	if diff := cmp.Diff(want, b.keys(t), sortStrings); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	for k, ttl := range map[string]time.Duration{base + "email:marketing": 7 * 24 * time.Hour, base + "email:topic=promotions": 48 * time.Hour} {
		if got := b.rdb.Client.PTTL(ctx, k).Val(); got <= ttl-time.Minute || got > ttl {
			t.Errorf("TTL of %s: %v, want %v", k, got, ttl)
		}
	}
	kinds := b.rdb.Client.SMembers(ctx, b.rdb.Prefix+":cap:kinds").Val()
	if diff := cmp.Diff([]string{"email:marketing", "email:topic=promotions", "sms"}, kinds, sortStrings); diff != "" {
		t.Errorf("kinds (-want +got):\n%s", diff)
	}
}

func TestCapsReserveMany(t *testing.T) {
	t.Parallel()
	b := setupCaps(t, "email:marketing:2/7d, sms:1/1d")
	ctx := context.Background()
	reqs := []throttle.CapRequest{
		mail("c1", "e1", "news", true),
		mail("c1", "e2", "news", true),
		mail("c1", "e3", "news", true),    // third in a week: capped
		mail("c1", "o1", "orders", false), // transactional
		sms("c1", "s1"),
		sms("c1", "s2"), // capped
		sms("c2", "s3"),
		mail("c1", "e1", "news", true), // same send again: still reserved
		{Contact: "c3", Channel: "push", SendID: "p1"},
	}
	want := []bool{true, true, false, true, true, false, true, true, true}
	got, err := b.caps.ReserveMany(ctx, t0, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReserveMany (-want +got):\n%s", diff)
	}
	// A retried batch gives the same answers and counts nothing twice.
	got, err = b.caps.ReserveMany(ctx, t0.Add(time.Minute), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("retried ReserveMany (-want +got):\n%s", diff)
	}
	if n := b.rdb.Client.ZCard(ctx, b.rdb.Prefix+":cap:{c1}:email:marketing").Val(); n != 2 {
		t.Errorf("%d marketing reservations, want 2", n)
	}
	if got, err := b.caps.ReserveMany(ctx, t0, nil); err != nil || len(got) != 0 {
		t.Errorf("empty batch: %v, %v", got, err)
	}
}

// TestCapsReserveManyNoScript checks that a Redis that lost its scripts
// (restart, SCRIPT FLUSH) still gets a correct batch.
func TestCapsReserveManyNoScript(t *testing.T) {
	if redistest.Kind() == "url" {
		t.Skip("SCRIPT FLUSH would touch a shared server")
	}
	b := setupCaps(t, "sms:1/1d")
	ctx := context.Background()
	if err := b.rdb.Client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := b.caps.ReserveMany(ctx, t0, []throttle.CapRequest{sms("c1", "s1"), sms("c1", "s2"), sms("c2", "s3")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]bool{true, false, true}, got); diff != "" {
		t.Errorf("ReserveMany after SCRIPT FLUSH (-want +got):\n%s", diff)
	}
}

func TestCapsConcurrentSameContact(t *testing.T) {
	t.Parallel()
	b := setupCaps(t, "sms:2/1d")
	var wg sync.WaitGroup
	var granted atomic.Int32
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Go(func() {
			ok, err := b.caps.Reserve(context.Background(), t0, sms("c1", fmt.Sprint("s", i)))
			if err != nil {
				errs <- err
			}
			if ok {
				granted.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := granted.Load(); n != 2 {
		t.Errorf("%d of 50 concurrent reservations granted under a limit of 2", n)
	}
}

func TestCapsConcurrentManyContacts(t *testing.T) {
	t.Parallel()
	b := setupCaps(t, "sms:2/1d")
	const workers, contacts = 50, 100
	var mu sync.Mutex
	granted := map[string]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			reqs := make([]throttle.CapRequest, contacts)
			for c := range contacts {
				// Each worker walks the contacts from a different start.
				cc := (c + w*7) % contacts
				reqs[c] = sms(fmt.Sprint("c", cc), fmt.Sprintf("w%d-c%d", w, cc))
			}
			got, err := b.caps.ReserveMany(context.Background(), t0, reqs)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for i, ok := range got {
				if ok {
					granted[reqs[i].Contact]++
				}
			}
		})
	}
	wg.Wait()
	want := map[string]int{}
	for c := range contacts {
		want[fmt.Sprint("c", c)] = 2
	}
	if diff := cmp.Diff(want, granted); diff != "" {
		t.Errorf("grants per contact (-want +got):\n%s", diff)
	}
}

var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })

// BenchmarkReserveMany reserves batches of 500 marketing emails, under
// serve's default rule and under three rules, two of which apply: for
// contacts new to the caps (the first send of a window) and for contacts
// seen before (20,000 contacts in turn).
func BenchmarkReserveMany(b *testing.B) {
	for _, rules := range []string{"email:marketing:2/7d", "email:marketing:2/7d, email:topic=promotions:1/1d, sms:1/24h"} {
		for _, seen := range []bool{false, true} {
			b.Run(fmt.Sprintf("rules=%d/seen=%v", strings.Count(rules, ",")+1, seen), func(b *testing.B) {
				cb := setupCaps(b, rules)
				caps := cb.rdb.Client
				ctx := context.Background()
				const batch = 500
				reqs := make([]throttle.CapRequest, batch)
				b.ReportAllocs()
				n := 0
				cpu0 := redistest.CPU(b, caps)
				for b.Loop() {
					for i := range reqs {
						c := n
						if seen {
							c = n % 20000
						}
						reqs[i] = mail(fmt.Sprint("c", c), fmt.Sprint("s", n), "promotions", true)
						n++
					}
					if _, err := cb.caps.ReserveMany(ctx, t0, reqs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "reservations/s")
				b.ReportMetric((redistest.CPU(b, caps)-cpu0)/float64(n)*1e6, "redis-µs/reservation")
			})
		}
	}
}

// The per-request path, which Redis Cluster takes, gives the same answers.
func TestCapsPerRequestPath(t *testing.T) {
	t.Cleanup(throttle.ForcePerRequest())
	t.Run("ReserveMany", TestCapsReserveMany)
	t.Run("NoScript", TestCapsReserveManyNoScript)
	t.Run("ConcurrentManyContacts", TestCapsConcurrentManyContacts)
}

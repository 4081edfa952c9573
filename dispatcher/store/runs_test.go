package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/throttle/redistest"
)

// TestRecordDecisions writes decisions of every kind, of several channels,
// templates and refs in one call, and checks the records, the in-flight
// set and the counters; decisions written again change nothing.
func TestRecordDecisions(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	const wait = 15 * time.Minute
	until := testNow.Add(26 * time.Hour)
	send := func(c string, k channels.Kind) string { return dispatcher.SendID("r1", c, k) }
	ds := []Decision{
		{Send: send("c1", channels.Email), Contact: "c1", Channel: channels.Email, Topic: "news", Template: "mail", State: dispatcher.StateQueued},
		{Send: send("c1", channels.SMS), Contact: "c1", Channel: channels.SMS, Topic: "news", Template: "text", State: dispatcher.StateDeferred, Until: until},
		{Send: send("c2", channels.Email), Contact: "c2", Channel: channels.Email, Topic: "news", Template: "mail", State: dispatcher.StateSuppressed, Reason: "no_consent"},
		{Send: send("c3", channels.Email), Contact: "c3", Channel: channels.Email, Topic: "news", Template: "mail", State: dispatcher.StateSuppressed, Reason: "suppressed_bounce"},
		{Send: send("c4", channels.Email), Contact: "c4", Channel: channels.Email, Topic: "news", Template: "mail", State: dispatcher.StateQueued, Ref: "signup:h1"},
		{Send: send("c5", channels.SMS), Contact: "c5", Channel: channels.SMS, Topic: "news", Template: "text", State: dispatcher.StateSuppressed, Reason: "capped"},
	}
	if err := s.RecordDecisions(ctx, "r1", ds, wait); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		ids := make([]string, len(ds))
		for i, d := range ds {
			ids[i] = d.Send
		}
		got, err := s.Sends(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		var want []*dispatcher.Send
		for _, d := range ds {
			sd := &dispatcher.Send{ID: d.Send, Run: "r1", Contact: d.Contact, Channel: d.Channel, Topic: d.Topic, Template: d.Template,
				Ref: d.Ref, State: d.State, Reason: d.Reason, UpdatedAt: testNow}
			if !d.Until.IsZero() {
				sd.Until = d.Until
			}
			want = append(want, sd)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: send records (-want +got):\n%s", when, diff)
		}
		inflight, err := s.Redis.ZRangeWithScores(ctx, s.inflightKey("r1"), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		wantInflight := []redis.Z{
			{Score: float64(ms(testNow.Add(wait))), Member: ds[0].Send},
			{Score: float64(ms(testNow.Add(wait))), Member: ds[4].Send},
			{Score: float64(ms(until.Add(wait))), Member: ds[1].Send},
		}
		if diff := cmp.Diff(wantInflight, inflight, cmpopts.SortSlices(func(a, b redis.Z) bool { return a.Member.(string) < b.Member.(string) })); diff != "" {
			t.Errorf("%s: in flight (-want +got):\n%s", when, diff)
		}
		r, err := s.Run(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		wantCounts := map[string]int64{"planned": 6, "queued": 2, "deferred": 1, "no_consent": 1, "suppressed_bounce": 1, "capped": 1}
		if diff := cmp.Diff(wantCounts, r.Counters); diff != "" || !r.Balanced {
			t.Errorf("%s: counters (-want +got):\n%s", when, diff)
		}
		decided, err := s.Decisions(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		delete(wantCounts, "planned")
		if diff := cmp.Diff(wantCounts, decided); diff != "" {
			t.Errorf("%s: decisions (-want +got):\n%s", when, diff)
		}
		for _, d := range ds {
			ttlAbout(t, s, s.SendKey(d.Send), time.Hour)
		}
	}
	check("first call")

	// A retried batch: the same sends, decided otherwise this time.
	again := make([]Decision, len(ds))
	for i, d := range ds {
		d.State, d.Reason, d.Until = dispatcher.StateSuppressed, "capped", time.Time{}
		again[i] = d
	}
	if err := s.RecordDecisions(ctx, "r1", again, wait); err != nil {
		t.Fatal(err)
	}
	check("second call")
}

// TestRecordDecisionsMany writes more decisions than one script call and
// one in-flight ZADD take.
func TestRecordDecisionsMany(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	const n = 2345
	ds := make([]Decision, n)
	for i := range ds {
		c := fmt.Sprintf("c%05d", i)
		ds[i] = Decision{Send: dispatcher.SendID("r1", c, channels.Email), Contact: c, Channel: channels.Email, Topic: "news", Template: "mail",
			State: dispatcher.StateQueued}
		if i%3 == 0 {
			ds[i].State, ds[i].Reason = dispatcher.StateSuppressed, "no_consent"
		}
	}
	if err := s.RecordDecisions(ctx, "r1", ds, time.Minute); err != nil {
		t.Fatal(err)
	}
	queued := int64(n - (n+2)/3)
	if got := s.Redis.ZCard(ctx, s.inflightKey("r1")).Val(); got != queued {
		t.Errorf("%d sends in flight, want %d", got, queued)
	}
	r, err := s.Run(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int64{"planned": n, "queued": queued, "no_consent": n - queued}, r.Counters); diff != "" || !r.Balanced {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	last, err := s.Send(ctx, ds[n-1].Send)
	if err != nil || last.Contact != "c02344" || last.State != dispatcher.StateQueued {
		t.Errorf("last send: %+v %v", last, err)
	}
}

// BenchmarkRecordDecisions records batches of 500 queued sends, as the
// gate does.
func BenchmarkRecordDecisions(b *testing.B) {
	r := redistest.New(b)
	s := NewStore(r.Client, r.Prefix, []byte("test-secret-test-secret-test-secret!"), func() time.Time { return testNow }, time.Hour)
	ctx := b.Context()
	ds := make([]Decision, 500)
	n := 0
	cpu0 := redistest.CPU(b, s.Redis)
	b.ReportAllocs()
	for b.Loop() {
		for i := range ds {
			c := fmt.Sprintf("c%07d", n)
			n++
			ds[i] = Decision{Send: dispatcher.SendID("r1", c, channels.Email), Contact: c, Channel: channels.Email, Topic: "news",
				Template: "mail", State: dispatcher.StateQueued}
		}
		if err := s.RecordDecisions(ctx, "r1", ds, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "sends/s")
	b.ReportMetric((redistest.CPU(b, s.Redis)-cpu0)/float64(n)*1e6, "redis-µs/send")
}

// TestTransitionsOfOneSendInOneCall: changes of the same send in one
// script call see each other, as if made one after the other: a claim
// adds one to the attempts each time, an overdue check reads the deadline
// the change before set, and the in-flight set ends as the last change
// left it.
func TestTransitionsOfOneSendInOneCall(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	ds := []Decision{
		{Send: dispatcher.SendID("r1", "c1", channels.Email), Contact: "c1", Channel: channels.Email, Topic: "news", Template: "mail", State: dispatcher.StateQueued},
		{Send: dispatcher.SendID("r1", "c2", channels.Email), Contact: "c2", Channel: channels.Email, Topic: "news", Template: "mail", State: dispatcher.StateQueued},
	}
	if err := s.RecordDecisions(ctx, "r1", ds, time.Hour); err != nil {
		t.Fatal(err)
	}
	a, b := ds[0].Send, ds[1].Send
	soon, later := testNow.Add(time.Minute), testNow.Add(time.Hour)
	ts := []Transition{
		// a: claimed twice over (queued again in between), then due soon.
		{Send: a, From: dispatcher.StateQueued, To: dispatcher.StateSending, Deadline: later, Fields: []any{"attempts", 1}},
		{Send: a, From: dispatcher.StateSending, To: dispatcher.StateQueued, Deadline: soon},
		{Send: a, From: dispatcher.StateQueued, To: dispatcher.StateSending, Deadline: soon, Fields: []any{"attempts", 1}},
		// b: due later, so not overdue at soon; then leaves the set.
		{Send: b, From: dispatcher.StateQueued, To: dispatcher.StateSending, Deadline: later},
		{Send: b, From: dispatcher.StateSending, To: dispatcher.StateFailed, Reason: dispatcher.ReasonAmbiguous, Overdue: soon},
		{Send: b, From: dispatcher.StateSending, To: dispatcher.StateSent},
		// a is overdue at soon: the deadline the change before set.
		{Send: a, From: dispatcher.StateSending, To: dispatcher.StateQueued, Deadline: later, Overdue: soon},
	}
	rs, err := s.TransitionSends(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	var applied []bool
	for _, r := range rs {
		applied = append(applied, r.Applied)
	}
	if diff := cmp.Diff([]bool{true, true, true, true, false, true, true}, applied); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	got, err := s.Sends(ctx, []string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].State != dispatcher.StateQueued || got[0].Attempts != 2 || got[1].State != dispatcher.StateSent {
		t.Errorf("a %s after %d attempts, b %s; want a queued after 2, b sent", got[0].State, got[0].Attempts, got[1].State)
	}
	inflight, err := s.Redis.ZRangeWithScores(ctx, s.inflightKey("r1"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := []redis.Z{{Score: float64(ms(later)), Member: a}}
	if diff := cmp.Diff(want, inflight); diff != "" {
		t.Errorf("in flight (-want +got):\n%s", diff)
	}
	r, err := s.Run(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Counters["queued"] != 1 || r.Counters["sent"] != 1 || r.Counters["sending"] != 0 || !r.Balanced {
		t.Errorf("counters %v (balanced %v), want 1 queued and 1 sent", r.Counters, r.Balanced)
	}
}

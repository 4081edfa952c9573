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

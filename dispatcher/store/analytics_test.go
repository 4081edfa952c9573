package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/throttle/redistest"
)

func TestProviderGroup(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"ana@gmail.com":          "gmail",
		"ana@GoogleMail.com":     "gmail",
		"ana@hotmail.fr":         "microsoft",
		"ana@outlook.com":        "microsoft",
		"ana@live.com":           "microsoft",
		"ana@yahoo.fr":           "yahoo",
		"ana@orange.fr":          "orange",
		"ana@wanadoo.fr":         "orange",
		"ana@free.fr":            "free",
		"ana@Petite-Boite.fr":    "petite-boite.fr",
		"ana@example.com.":       "example.com",
		"ana@localhost":          store.OtherDomain,
		"no-at-sign":             store.OtherDomain,
		"ana@exämple.fr":         store.OtherDomain,
		"ana@a:b.fr":             store.OtherDomain,
		"ana@" + long(254) + ".": store.OtherDomain,
	} {
		if got := store.ProviderGroup(addr); got != want {
			t.Errorf("ProviderGroup(%q) = %q, want %q", addr, got, want)
		}
	}
}

func long(n int) string { return strings.Repeat("a", n-3) + ".fr" }

// analyticsBundle is a store on a real Redis whose clock the test moves.
type analyticsBundle struct {
	r     *redistest.Redis
	st    *store.Store
	clock *storetest.Clock
}

// analyticsStart is 10:20 UTC: the hour bucket starts at 10:00.
var analyticsStart = time.Date(2026, 3, 2, 10, 20, 0, 0, time.UTC)

func setupAnalytics(t *testing.T) *analyticsBundle {
	t.Helper()
	r := redistest.New(t)
	clk := storetest.NewClock(analyticsStart)
	return &analyticsBundle{r: r, st: storetest.New(t, r.Client, r.Prefix, clk.Now, "k1"), clock: clk}
}

// leave makes one send of run per address, claimed, and settles them as
// sent in one call, as the send path does, counting them. It returns the
// send ids.
func (b *analyticsBundle) leave(t *testing.T, campaign, run string, addrs ...string) []string {
	t.Helper()
	var ts []store.Transition
	var evs []store.Event
	var ids []string
	for i, a := range addrs {
		id := storetest.Send(t, b.st, b.clock.Now(), campaign, run, fmt.Sprintf("c%03d", i), channels.Email, dispatcher.StateSending)
		dom := store.ProviderGroup(a)
		ts = append(ts, store.Transition{Send: id, From: dispatcher.StateSending, To: dispatcher.StateSent,
			Fields: []any{store.SendDomainField, dom}})
		evs = append(evs, store.Event{Run: run, Topic: "news", Metric: store.MetricEmailSent, Domain: dom})
		ids = append(ids, id)
	}
	rs, err := b.st.TransitionSends(context.Background(), ts, evs...)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if !r.Applied {
			t.Fatalf("send %s not settled", ids[i])
		}
	}
	return ids
}

// feedback counts a piece of feedback about send, as the feedback handler
// does.
func (b *analyticsBundle) feedback(t *testing.T, send, name, metric string) {
	t.Helper()
	ctx := context.Background()
	sd, dom, err := b.st.SendAndDomain(ctx, send)
	if err != nil {
		t.Fatal(err)
	}
	var evs []store.Event
	if metric != "" {
		evs = append(evs, store.Event{Run: sd.Run, Topic: sd.Topic, Metric: metric, Domain: dom})
	}
	topic := ""
	if name == store.FeedbackUnsubscribes {
		topic = sd.Topic
	}
	if err := b.st.CountFeedback(ctx, sd.Run, topic, name, evs...); err != nil {
		t.Fatal(err)
	}
}

func addrs(n int, domain string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("p%d@%s", i, domain)
	}
	return out
}

func ptr(f float64) *float64 { return &f }

// sentPerDomain lists domains as "domain:sent", in their order.
func sentPerDomain(ds []store.DomainCounts) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s:%d", d.Domain, d.Sent))
	}
	return out
}

func TestRunAnalytics(t *testing.T) {
	t.Parallel()
	b := setupAnalytics(t)
	ctx := context.Background()
	// 10:20: 12 to gmail, 10 to orange (wanadoo.fr and orange.fr), 3 to a
	// small company.
	var to []string
	to = append(to, addrs(6, "gmail.com")...)
	to = append(to, addrs(6, "googlemail.com")...)
	to = append(to, addrs(5, "orange.fr")...)
	to = append(to, addrs(5, "wanadoo.fr")...)
	to = append(to, addrs(3, "petite-boite.fr")...)
	ids := b.leave(t, "spring", "r1", to...)
	// 11:05: 2 hard bounces at gmail, one at the small company, one soft
	// at orange, 5 deliveries at orange; 12:40: a complaint at gmail, an
	// unsubscribe.
	b.clock.Add(45 * time.Minute)
	for _, i := range []int{0, 1, 22} {
		b.feedback(t, ids[i], "bounced_hard", store.MetricEmailBouncedHard)
	}
	b.feedback(t, ids[12], "bounced_soft", store.MetricEmailBouncedSoft)
	for i := 13; i < 18; i++ {
		b.feedback(t, ids[i], "delivered", store.MetricEmailDelivered)
	}
	b.clock.Add(95 * time.Minute)
	b.feedback(t, ids[5], "complained", store.MetricEmailComplained)
	b.feedback(t, ids[6], store.FeedbackUnsubscribes, "")

	rep, err := b.st.RunAnalytics(ctx, "r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	h := func(hh int) time.Time { return time.Date(2026, 3, 2, hh, 0, 0, 0, time.UTC) }
	want := &store.Report{
		Run: "r1", Bucket: "hour",
		Series: []store.Bucket{
			{Start: h(10), Counts: store.Counts{Email: store.EmailCounts{Sent: 25}}},
			{Start: h(11), Counts: store.Counts{Email: store.EmailCounts{BouncedHard: 3, BouncedSoft: 1, Delivered: 5}}},
			{Start: h(12), Counts: store.Counts{Email: store.EmailCounts{Complained: 1}, Unsubscribed: 1}},
		},
		Totals: store.Counts{Email: store.EmailCounts{Sent: 25, Delivered: 5, BouncedHard: 3, BouncedSoft: 1, Complained: 1}, Unsubscribed: 1},
		// 3/25 hard bounces; 1 complaint and 1 unsubscribe of 21 accepted.
		Rates: store.Rates{BounceRate: ptr(3.0 / 25), ComplaintRate: ptr(1.0 / 21), UnsubscribeRate: ptr(1.0 / 21), ComplaintLevel: store.LevelAboveLimit},
		Domains: []store.DomainCounts{
			{Domain: "gmail", EmailCounts: store.EmailCounts{Sent: 12, BouncedHard: 2, Complained: 1}, BounceRate: ptr(2.0 / 12), ComplaintRate: ptr(1.0 / 10), ComplaintLevel: store.LevelAboveLimit},
			{Domain: "orange", EmailCounts: store.EmailCounts{Sent: 10, Delivered: 5, BouncedSoft: 1}, BounceRate: ptr(0), ComplaintRate: ptr(0), ComplaintLevel: store.LevelOK},
			// petite-boite.fr: 3 recipients, under k = 10.
			{Domain: store.OtherDomain, EmailCounts: store.EmailCounts{Sent: 3, BouncedHard: 1}, BounceRate: ptr(1.0 / 3), ComplaintRate: ptr(0), ComplaintLevel: store.LevelOK},
		},
		MinDomainRecipients: store.DefaultMinDomainRecipients,
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("RunAnalytics (-want +got):\n%s", diff)
	}

	// With k = 11, orange (10 recipients) joins "other" too.
	rep, err = b.st.RunAnalytics(ctx, "r1", 11)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"gmail:12", "other:13"}, sentPerDomain(rep.Domains)); diff != "" {
		t.Errorf("domains with k = 11 (-want +got):\n%s", diff)
	}

	// A run without events has an empty report, not an error.
	rep, err = b.st.RunAnalytics(ctx, "r-none", 0)
	if err != nil || len(rep.Series) != 0 || len(rep.Domains) != 0 || rep.Rates.ComplaintLevel != store.LevelNoData || rep.Rates.BounceRate != nil {
		t.Errorf("empty run: %+v, %v", rep, err)
	}
}

func TestRatesThresholds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		sent, complained int64
		want             string
	}{
		{0, 0, store.LevelNoData},
		{10000, 9, store.LevelOK},
		{10000, 10, store.LevelAboveRecommended},
		{10000, 29, store.LevelAboveRecommended},
		{10000, 30, store.LevelAboveLimit},
	} {
		r := store.RatesOf(store.Counts{Email: store.EmailCounts{Sent: tt.sent, Complained: tt.complained}})
		if r.ComplaintLevel != tt.want {
			t.Errorf("%d complaints of %d: %s, want %s", tt.complained, tt.sent, r.ComplaintLevel, tt.want)
		}
	}
}

// A topic's report sums its runs by day; a domain is shown only when one
// run reached k of its recipients, however many messages it got over the
// period.
func TestTopicAnalytics(t *testing.T) {
	t.Parallel()
	b := setupAnalytics(t)
	ctx := context.Background()
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }
	// March 2: 10 at free.fr, 6 at a small company; March 3: 6 more at the
	// small company (12 messages over two days, never 10 in one run).
	r1 := b.leave(t, "spring", "r1", append(addrs(10, "free.fr"), addrs(6, "petite-boite.fr")...)...)
	b.clock.Add(24 * time.Hour)
	r2 := b.leave(t, "spring", "r2", addrs(6, "petite-boite.fr")...)
	b.feedback(t, r1[0], "bounced_hard", store.MetricEmailBouncedHard) // counted on March 3
	b.feedback(t, r2[0], "complained", store.MetricEmailComplained)
	b.feedback(t, r2[1], store.FeedbackUnsubscribes, "")

	rep, err := b.st.TopicAnalytics(ctx, "news", day(1), day(3), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := &store.Report{
		Topic: "news", Bucket: "day", From: "2026-03-01", To: "2026-03-03",
		Series: []store.Bucket{
			{Start: day(2), Counts: store.Counts{Email: store.EmailCounts{Sent: 16}}},
			{Start: day(3), Counts: store.Counts{Email: store.EmailCounts{Sent: 6, BouncedHard: 1, Complained: 1}, Unsubscribed: 1}},
		},
		Totals: store.Counts{Email: store.EmailCounts{Sent: 22, BouncedHard: 1, Complained: 1}, Unsubscribed: 1},
		Rates:  store.Rates{BounceRate: ptr(1.0 / 22), ComplaintRate: ptr(1.0 / 21), UnsubscribeRate: ptr(1.0 / 21), ComplaintLevel: store.LevelAboveLimit},
		Domains: []store.DomainCounts{
			{Domain: "free", EmailCounts: store.EmailCounts{Sent: 10, BouncedHard: 1}, BounceRate: ptr(0.1), ComplaintRate: ptr(0), ComplaintLevel: store.LevelOK},
			{Domain: store.OtherDomain, EmailCounts: store.EmailCounts{Sent: 12, Complained: 1}, BounceRate: ptr(0), ComplaintRate: ptr(1.0 / 12), ComplaintLevel: store.LevelAboveLimit},
		},
		MinDomainRecipients: 10,
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("TopicAnalytics (-want +got):\n%s", diff)
	}

	// March 3 alone: the bounce of a March 2 message, and free.fr still
	// shown: its run reached 10 recipients there.
	rep, err = b.st.TopicAnalytics(ctx, "news", day(3), day(3), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Domains) != 2 || rep.Domains[0].Domain != "free" || rep.Domains[0].Sent != 0 || rep.Domains[0].BouncedHard != 1 {
		t.Errorf("March 3 domains: %+v", rep.Domains)
	}

	// Bad periods.
	for _, p := range [][2]time.Time{{day(3), day(2)}, {day(1).AddDate(0, 0, -store.MaxAnalyticsDays), day(1)}} {
		_, err := b.st.TopicAnalytics(ctx, "news", p[0], p[1], 0)
		if !dispatcher.IsCode(err, dispatcher.CodeInvalid) {
			t.Errorf("period %v: %v, want invalid", p, err)
		}
	}
}

// Counters are kept 400 days: a run's past its last event, a topic's day
// past the day.
func TestAnalyticsRetention(t *testing.T) {
	t.Parallel()
	b := setupAnalytics(t)
	ctx := context.Background()
	b.leave(t, "spring", "r1", "a@gmail.com")
	rdb := b.r.Client
	keys, err := rdb.Keys(ctx, b.r.Prefix+":*an*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("analytics keys %v, want a run's and a topic day's", keys)
	}
	for _, k := range keys {
		at, err := rdb.ExpireTime(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := analyticsStart.Add(store.AnalyticsRetention)
		if strings.Contains(k, ":topican:") {
			want = time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC).Add(store.AnalyticsRetention)
		}
		if got := time.Unix(int64(at/time.Second), 0); !got.Equal(want) {
			t.Errorf("%s expires at %s, want %s", k, got, want)
		}
	}
}

// The settlement of a chunk counts its analytics in its own round trip
// and its own script call, on a single Redis: no command more for 8 sends
// than for none, nor for 16, whatever their domains.
func TestSettlementCountsInOneRoundTrip(t *testing.T) {
	t.Parallel()
	b := setupAnalytics(t)
	ctx := context.Background()
	// A client of its own, to count what the settlement sends.
	rdb := redis.NewClient(b.r.Options)
	t.Cleanup(func() { rdb.Close() })
	var cmds, roundTrips atomic.Int64
	redistest.OnCommand(rdb, func(redis.Cmder) { cmds.Add(1) })
	rdb.AddHook(tripHook{&roundTrips})
	st := storetest.New(t, rdb, b.r.Prefix, b.clock.Now, "k1")

	settle := func(run string, n int, count bool) (int64, int64) {
		t.Helper()
		var ts []store.Transition
		var evs []store.Event
		for i := range n {
			id := storetest.Send(t, st, b.clock.Now(), "spring", run, fmt.Sprintf("c%03d", i), channels.Email, dispatcher.StateSending)
			dom := store.ProviderGroup(fmt.Sprintf("p@d%d.example", i%5))
			ts = append(ts, store.Transition{Send: id, From: dispatcher.StateSending, To: dispatcher.StateSent, Fields: []any{store.SendDomainField, dom}})
			if count {
				evs = append(evs, store.Event{Run: run, Topic: "news", Metric: store.MetricEmailSent, Domain: dom})
			}
		}
		c0, r0 := cmds.Load(), roundTrips.Load()
		if _, err := st.TransitionSends(ctx, ts, evs...); err != nil {
			t.Fatal(err)
		}
		return cmds.Load() - c0, roundTrips.Load() - r0
	}
	bare, bareTrips := settle("r0", 8, false)
	for _, n := range []int{8, 16} {
		got, trips := settle(fmt.Sprintf("r%d", n), n, true)
		if got != bare || trips != bareTrips {
			t.Errorf("settling %d sends with their counts: %d commands in %d round trips, want %d in %d", n, got, trips, bare, bareTrips)
		}
	}
	rep, err := st.RunAnalytics(ctx, "r16", 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Email.Sent != 16 {
		t.Errorf("sent %d, want 16", rep.Totals.Email.Sent)
	}
	day := b.clock.Now()
	topic, err := st.TopicAnalytics(ctx, "news", day, day, 1)
	if err != nil {
		t.Fatal(err)
	}
	if topic.Totals.Email.Sent != 24 {
		t.Errorf("topic's day: sent %d, want 24 (8 + 16)", topic.Totals.Email.Sent)
	}
}

// A settlement run again because Redis forgot the transition script
// (restart, SCRIPT FLUSH) counts once.
func TestSettlementCountsOnceAfterScriptFlush(t *testing.T) {
	if redistest.Kind() == "url" {
		t.Skip("SCRIPT FLUSH would touch a shared server")
	}
	b := setupAnalytics(t)
	ctx := context.Background()
	ids := []string{
		storetest.Send(t, b.st, b.clock.Now(), "spring", "r1", "c1", channels.Email, dispatcher.StateSending),
		storetest.Send(t, b.st, b.clock.Now(), "spring", "r1", "c2", channels.Email, dispatcher.StateSending),
	}
	if err := b.r.Client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var ts []store.Transition
	var evs []store.Event
	for _, id := range ids {
		ts = append(ts, store.Transition{Send: id, From: dispatcher.StateSending, To: dispatcher.StateSent})
		evs = append(evs, store.Event{Run: "r1", Topic: "news", Metric: store.MetricEmailSent, Domain: "gmail"})
	}
	if _, err := b.st.TransitionSends(ctx, ts, evs...); err != nil {
		t.Fatal(err)
	}
	rep, err := b.st.RunAnalytics(ctx, "r1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Email.Sent != 2 || len(rep.Domains) != 1 || rep.Domains[0].Sent != 2 {
		t.Errorf("after a script flush: totals %+v, domains %+v; want 2 sent at gmail", rep.Totals, rep.Domains)
	}
}

// tripHook counts round trips: one per command sent alone, one per
// pipeline.
type tripHook struct{ n *atomic.Int64 }

func (h tripHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h tripHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h tripHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// A run of single sends may reach one person many times: it counts its
// distinct recipients per domain, and a domain is shown only when they
// reach k, however many messages went there; in the topic's report too.
func TestSingleSendRunsCountRecipients(t *testing.T) {
	t.Parallel()
	b := setupAnalytics(t)
	ctx := context.Background()
	const run = "api-orders-receipt-v1-20260302"
	var evs []store.Event
	// 12 messages to 2 people at a small company, 12 to 12 people at
	// gmail, in calls of 8.
	for i := range 12 {
		evs = append(evs,
			store.Event{Run: run, Topic: "orders", Metric: store.MetricEmailSent, Domain: "petite-boite.fr", Recipient: fmt.Sprintf("c%d", i%2)},
			store.Event{Run: run, Topic: "orders", Metric: store.MetricEmailSent, Domain: "gmail", Recipient: fmt.Sprintf("g%d", i)})
	}
	for len(evs) > 0 {
		n := min(len(evs), 8)
		if err := b.st.CountEvents(ctx, evs[:n]...); err != nil {
			t.Fatal(err)
		}
		evs = evs[n:]
	}
	rep, err := b.st.RunAnalytics(ctx, run, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"gmail:12", "other:12"}, sentPerDomain(rep.Domains)); diff != "" {
		t.Errorf("run domains (-want +got):\n%s", diff)
	}
	top, err := b.st.TopicAnalytics(ctx, "orders", analyticsStart, analyticsStart, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"gmail:12", "other:12"}, sentPerDomain(top.Domains)); diff != "" {
		t.Errorf("topic domains (-want +got):\n%s", diff)
	}
	// What is kept of the recipients cannot give them back: a
	// HyperLogLog per domain, which expires.
	keys, err := b.r.Client.Keys(ctx, b.r.Prefix+"*:rc:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("recipient keys %v, want one per domain", keys)
	}
	for _, k := range keys {
		if typ := b.r.Client.Type(ctx, k).Val(); typ != "string" {
			t.Errorf("%s is a %s, want a HyperLogLog", k, typ)
		}
		if ttl := b.r.Client.TTL(ctx, k).Val(); ttl <= 0 || ttl > 7*24*time.Hour {
			t.Errorf("%s expires in %s, want a week at most", k, ttl)
		}
	}
}

// On a Redis Cluster, a run's counters live in the run's slot and a
// topic's in the topic's: the settlement, the feedback and the reports
// reach both in their one round trip.
func TestClusterAnalytics(t *testing.T) {
	c := redistest.NewCluster(t)
	clk := storetest.NewClock(analyticsStart)
	st := storetest.New(t, c.Client, c.Prefix, clk.Now, "k1")
	if !store.IsCluster(st.Redis) {
		t.Fatal("not a cluster client")
	}
	b := &analyticsBundle{st: st, clock: clk}
	ctx := context.Background()
	var ids []string
	for r := range 3 {
		ids = append(ids, b.leave(t, "spring", fmt.Sprintf("r%d", r), addrs(10, "gmail.com")...)...)
	}
	b.feedback(t, ids[0], "complained", store.MetricEmailComplained)
	b.feedback(t, ids[25], store.FeedbackUnsubscribes, "")
	if err := st.CountEvents(ctx, store.Event{Run: "api-1", Topic: "news", Metric: store.MetricEmailSent, Domain: "free", Recipient: "c1"}); err != nil {
		t.Fatal(err)
	}
	rep, err := st.TopicAnalytics(ctx, "news", analyticsStart, analyticsStart, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Counts{Email: store.EmailCounts{Sent: 31, Complained: 1}, Unsubscribed: 1}
	if diff := cmp.Diff(want, rep.Totals); diff != "" {
		t.Errorf("topic totals (-want +got):\n%s", diff)
	}
	if len(rep.Domains) != 2 || rep.Domains[0].Domain != "gmail" || rep.Domains[0].Sent != 30 || rep.Domains[1].Domain != store.OtherDomain {
		t.Errorf("topic domains %+v, want gmail with 30 and other", rep.Domains)
	}
	rep, err = st.RunAnalytics(ctx, "api-1", 1)
	if err != nil || len(rep.Domains) != 1 || rep.Domains[0].Domain != "free" {
		t.Errorf("run of single sends: %+v, %v", rep, err)
	}
}

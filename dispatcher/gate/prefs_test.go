package gate

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/throttle"
	"github.com/missive-dev/missive/throttle/redistest"
)

// prefBundle is a store on a real Redis with a marketing and a
// transactional topic, and contacts who granted both on email.
type prefBundle struct {
	rdb   *redistest.Redis
	st    *store.Store
	clock *storetest.Clock
	news  *dispatcher.Topic
	order *dispatcher.Topic
}

func setupPrefs(t *testing.T, ids ...string) *prefBundle {
	t.Helper()
	r := redistest.New(t)
	clock := storetest.NewClock(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	st := storetest.New(t, r.Client, r.Prefix, clock.Now, "k1")
	ctx := context.Background()
	b := &prefBundle{rdb: r, st: st, clock: clock,
		news:  &dispatcher.Topic{ID: "news", Kind: dispatcher.Marketing},
		order: &dispatcher.Topic{ID: "orders", Kind: dispatcher.Transactional}}
	for _, tp := range []*dispatcher.Topic{b.news, b.order} {
		if err := st.PutTopic(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		c := &dispatcher.Contact{ID: id, Email: id + "@example.com", Timezone: "Europe/Paris"}
		if err := st.UpsertContact(ctx, c, "Europe/Paris"); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordConsent(ctx, id, dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: dispatcher.Granted}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func (b *prefBundle) contacts(t *testing.T, ids ...string) []*dispatcher.Contact {
	t.Helper()
	out := make([]*dispatcher.Contact, len(ids))
	for i, id := range ids {
		c, err := b.st.Contact(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = c
	}
	return out
}

func (b *prefBundle) decide(t *testing.T, g *Gate, topic *dispatcher.Topic, run string, cs []*dispatcher.Contact) map[string]string {
	t.Helper()
	camp := &dispatcher.Campaign{ID: "c", Topic: topic.ID, Channels: []channels.Kind{channels.Email},
		Templates: map[channels.Kind]string{channels.Email: "mail"}}
	ds, err := g.Decide(context.Background(), b.clock.Now(), Job{Run: run, Campaign: camp, Topic: topic}, cs)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range ds {
		got[d.Contact] = d.State + " " + d.Reason
	}
	return got
}

// A pause the recipient set holds their marketing messages, and only
// while it lasts; transactional ones still go; lifting it lets them go.
func TestGatePausedByRecipient(t *testing.T) {
	t.Parallel()
	b := setupPrefs(t, "paused", "lapsed", "lifted", "free")
	ctx := context.Background()
	now := b.clock.Now()
	pause := func(id string, until time.Time) {
		t.Helper()
		v := ""
		if !until.IsZero() {
			v = until.UTC().Format(time.RFC3339)
		}
		if err := b.st.RecordConsent(ctx, id, dispatcher.ConsentEvent{Kind: dispatcher.PreferencePause, Value: v, Source: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	pause("paused", now.Add(10*24*time.Hour))
	pause("lapsed", now.Add(-time.Minute))
	pause("lifted", now.Add(10*24*time.Hour))
	pause("lifted", time.Time{})

	g := New(Config{Loader: b.st})
	cs := b.contacts(t, "paused", "lapsed", "lifted", "free")
	got := b.decide(t, g, b.news, "r1", cs)
	want := map[string]string{
		"paused": "suppressed " + ReasonPausedByRecipient,
		"lapsed": "queued ",
		"lifted": "queued ",
		"free":   "queued ",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("marketing decisions (-want +got):\n%s", diff)
	}
	got = b.decide(t, g, b.order, "r2", cs)
	for _, id := range []string{"paused", "lapsed", "lifted", "free"} {
		want[id] = "queued "
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("transactional decisions (-want +got):\n%s", diff)
	}

	// The send path reads the same at its claim: a pause set after the
	// decision holds the message.
	pause("free", now.Add(time.Hour))
	checked, err := b.st.LoadChecks(ctx, b.news, []store.CheckRequest{{Contact: "free", Channel: channels.Email, Address: "free@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := Verdict(checked[0], true, now); r != ReasonPausedByRecipient {
		t.Errorf("verdict after a pause: %q", r)
	}
	if r := Verdict(checked[0], true, now.Add(time.Hour)); r != "" {
		t.Errorf("verdict once the pause ended: %q", r)
	}
	rep, err := b.st.VerifyLedger(ctx, "lifted")
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Events != 3 {
		t.Errorf("ledger of a paused and lifted contact: %+v", rep)
	}
}

// The pace a recipient chose for a topic caps it across runs, on top of
// the operator's caps (whose reason wins when both are reached); other
// topics and transactional ones are not counted by it.
func TestGateRecipientFrequencyAcrossRuns(t *testing.T) {
	t.Parallel()
	b := setupPrefs(t, "weekly", "monthly", "every", "silent", "busy")
	ctx := context.Background()
	for id, f := range map[string]string{"weekly": dispatcher.FrequencyWeekly, "monthly": dispatcher.FrequencyMonthly,
		"every": dispatcher.FrequencyEvery, "busy": dispatcher.FrequencyWeekly} {
		if err := b.st.RecordConsent(ctx, id, dispatcher.ConsentEvent{Kind: dispatcher.PreferenceFrequency, Topic: "news", Value: f, Source: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	promos := &dispatcher.Topic{ID: "promos", Kind: dispatcher.Marketing}
	if err := b.st.PutTopic(ctx, promos); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RecordConsent(ctx, "weekly", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "promos", State: dispatcher.Granted}); err != nil {
		t.Fatal(err)
	}
	rules, err := throttle.ParseCapRules("email:marketing:3/7d")
	if err != nil {
		t.Fatal(err)
	}
	caps := throttle.NewCaps(b.rdb.Client, b.rdb.Prefix, rules)
	g := New(Config{Loader: b.st, Caps: caps})
	all := b.contacts(t, "weekly", "monthly", "every", "silent", "busy")

	// busy already had 3 marketing emails this week: the operator's cap,
	// until they are a week old.
	for i, run := range []string{"o1", "o2", "o3"} {
		if _, err := caps.Reserve(ctx, b.clock.Now().Add(-time.Duration(i+1)*time.Hour), throttle.CapRequest{Contact: "busy", Channel: "email", Topic: "promos", SendID: run, Marketing: true}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		after time.Duration
		run   string
		topic *dispatcher.Topic
		want  map[string]string
	}{
		{0, "r1", b.news, map[string]string{"weekly": "queued ", "monthly": "queued ", "every": "queued ", "silent": "queued ", "busy": "suppressed capped"}},
		{24 * time.Hour, "r2", b.news, map[string]string{"weekly": "suppressed recipient_frequency", "monthly": "suppressed recipient_frequency", "every": "queued ", "silent": "queued ", "busy": "suppressed capped"}},
		{24 * time.Hour, "r3", b.order, map[string]string{"weekly": "queued ", "monthly": "queued ", "every": "queued ", "silent": "queued ", "busy": "queued "}},
		{8 * 24 * time.Hour, "r4", b.news, map[string]string{"weekly": "queued ", "monthly": "suppressed recipient_frequency", "every": "queued ", "silent": "queued ", "busy": "queued "}},
	}
	start := b.clock.Now()
	for _, s := range steps {
		b.clock.Set(start.Add(s.after))
		if diff := cmp.Diff(s.want, b.decide(t, g, s.topic, s.run, all)); diff != "" {
			t.Errorf("run %s, %s later (-want +got):\n%s", s.run, s.after, diff)
		}
	}
	// Another marketing topic is not counted by the pace chosen for news.
	got := b.decide(t, g, promos, "r5", b.contacts(t, "weekly"))
	if got["weekly"] != "queued " {
		t.Errorf("promos to weekly: %q", got["weekly"])
	}
}

// Marketing sends outside the days and hours a recipient prefers wait for
// the next preferred moment the operator's quiet hours also allow, in the
// recipient's zone, across a change of the clocks; transactional ones do
// not wait for it, and hours that share no moment with the quiet hours
// leave the quiet hours alone to decide.
func TestGatePreferredHoursAcrossDST(t *testing.T) {
	t.Parallel()
	b := setupPrefs(t, "evenings", "sundays", "any")
	ctx := context.Background()
	for id, h := range map[string]string{"evenings": "mon-fri 18:00-24:00", "sundays": "sun 10:00-12:00"} {
		if err := b.st.RecordConsent(ctx, id, dispatcher.ConsentEvent{Kind: dispatcher.PreferenceHours, Value: h, Source: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	quiet, err := throttle.ParseCalendar("mon-sat 08:00-20:00")
	if err != nil {
		t.Fatal(err)
	}
	g := New(Config{Loader: b.st, Quiet: map[channels.Kind]throttle.Calendar{channels.Email: quiet}})
	paris := mustLoc(t, "Europe/Paris")
	// Saturday 24 October 2026, 19:00 in Paris (UTC+2); the clocks go
	// back in the night to Sunday (UTC+1).
	b.clock.Set(time.Date(2026, 10, 24, 19, 0, 0, 0, paris))
	all := b.contacts(t, "evenings", "sundays", "any")
	decide := func(topic *dispatcher.Topic, run string) map[string]string {
		t.Helper()
		camp := &dispatcher.Campaign{ID: "c", Topic: topic.ID, Channels: []channels.Kind{channels.Email},
			Templates: map[channels.Kind]string{channels.Email: "mail"}}
		ds, err := g.Decide(ctx, b.clock.Now(), Job{Run: run, Campaign: camp, Topic: topic}, all)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, d := range ds {
			got[d.Contact] = d.State + " " + d.Reason
			if !d.Until.IsZero() {
				got[d.Contact] += d.Until.UTC().Format(time.RFC3339)
			}
		}
		return got
	}
	want := map[string]string{
		// Monday 26 October 18:00 in Paris is 17:00 UTC (16:00 before the change).
		"evenings": "deferred 2026-10-26T17:00:00Z",
		"sundays":  "queued ",
		"any":      "queued ",
	}
	if diff := cmp.Diff(want, decide(b.news, "r1")); diff != "" {
		t.Errorf("marketing (-want +got):\n%s", diff)
	}
	want["evenings"] = "queued "
	if diff := cmp.Diff(want, decide(b.order, "r2")); diff != "" {
		t.Errorf("transactional (-want +got):\n%s", diff)
	}
	// Saturday 21:00: the quiet hours close; the evening person waits for
	// Monday 18:00 still, the others for Monday 08:00.
	b.clock.Set(time.Date(2026, 10, 24, 21, 0, 0, 0, paris))
	want = map[string]string{
		"evenings": "deferred 2026-10-26T17:00:00Z",
		"sundays":  "deferred 2026-10-26T07:00:00Z",
		"any":      "deferred 2026-10-26T07:00:00Z",
	}
	if diff := cmp.Diff(want, decide(b.news, "r3")); diff != "" {
		t.Errorf("marketing after the quiet hours closed (-want +got):\n%s", diff)
	}
}

package api

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	gatepkg "github.com/missive-dev/missive/dispatcher/gate"
	"github.com/missive-dev/missive/throttle"
)

// A campaign run on a Sunday defers its SMS to Monday morning and keeps
// them queued in Redis for that time: deferred, never dropped.
func TestQuietHoursDeferSMS(t *testing.T) {
	t.Parallel()
	paris := mustLoc(t, "Europe/Paris")
	sunday := time.Date(2027, 1, 3, 12, 0, 0, 0, paris)
	b := setup(t, withConfig(func(c *app.Config) {
		c.Now = func() time.Time { return sunday }
		c.Quiet = map[channels.Kind]throttle.Calendar{channels.SMS: throttle.DefaultSMSCalendar(2027)}
	}))
	ctx := context.Background()
	b.seedBasics(t)
	for id, phone := range map[string]string{"a": "+33612345671", "b": "+33612345672", "c": "+33612345673"} {
		must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: id, Phone: phone}, "Europe/Paris"))
		grantConsent(t, b, id, channels.SMS)
	}
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "all"}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "sunday", Topic: "newsletter", Segment: "all",
		Channels: []channels.Kind{channels.SMS}, Templates: map[channels.Kind]string{channels.SMS: "news-sms"}}))
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "sunday", sunday)
	must(t, err)
	var r *dispatcher.Run
	waitFor(t, "three deferred sends", 20*time.Second, func() bool {
		r, err = b.d.Store.Run(ctx, run)
		must(t, err)
		return r.Counters["deferred"] == 3
	})
	b.waitParked(t, 10*time.Second) // the batch has enqueued what it decided
	if r.Counters["deferred"] != 3 || r.Counters["planned"] != 3 || !r.Balanced {
		t.Fatalf("counters %v, want 3 deferred", r.Counters)
	}
	monday8 := time.Date(2027, 1, 4, 8, 0, 0, 0, paris)
	insp := asynq.NewInspectorFromRedisClient(b.redis.Client)
	tasks, err := insp.ListScheduledTasks(b.d.Pipeline.Queue("send"))
	must(t, err)
	if len(tasks) == 0 {
		t.Fatal("no scheduled send task: deferred sends were dropped")
	}
	for _, task := range tasks {
		if task.NextProcessAt.Before(monday8) || task.NextProcessAt.After(monday8.Add(2*time.Minute)) {
			t.Errorf("deferred task runs at %s, want Monday 08:00-08:02 Paris", task.NextProcessAt.In(paris))
		}
	}
	if len(b.twilio.Messages()) != 0 {
		t.Errorf("SMS sent on a Sunday")
	}
	// The deferred tasks wait in Redis with ids only.
	assertQueuesHoldNo(t, b, "+33612345671", "+33612345672", "+33612345673", "News for")
}

// Every gate reason, in order of the checks, for marketing and
// transactional topics, and the fallback from one channel to the next.
func TestGateReasons(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.seedBasics(t)
	s := b.d.Store
	contacts := []*dispatcher.Contact{
		{ID: "ok", Email: "ok@example.com", Phone: "+33612345601"},
		{ID: "nothing"},
		{ID: "landline", Phone: "+33142345678"},
		{ID: "bounced", Email: "bounced@example.com"},
		{ID: "complained", Email: "complained@example.com"},
		{ID: "stopped", Phone: "+33612345602"},
		{ID: "left", Email: "left@example.com"},
		{ID: "silent", Email: "silent@example.com"},
		{ID: "withdrawn", Email: "withdrawn@example.com"},
		{ID: "full", Email: "full@example.com"},
		{ID: "sms-only", Email: "smsonly@example.com", Phone: "+33612345603"},
	}
	for _, c := range contacts {
		must(t, s.UpsertContact(ctx, c, "Europe/Paris"))
	}
	for _, id := range []string{"ok", "landline", "bounced", "complained", "stopped", "left", "withdrawn", "full", "sms-only"} {
		grantConsent(t, b, id, channels.Email, channels.SMS)
	}
	must(t, s.RecordConsent(ctx, "withdrawn", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Withdrawn, Source: "one-click"}))
	must(t, s.RecordConsent(ctx, "sms-only", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Withdrawn, Source: "preference-page"}))
	must(t, s.Suppress(ctx, channels.Email, "bounced@example.com", dispatcher.SuppressBounce, time.Time{}))
	must(t, s.Suppress(ctx, channels.Email, "complained@example.com", dispatcher.SuppressComplaint, time.Time{}))
	must(t, s.Suppress(ctx, channels.SMS, "+33612345602", dispatcher.SuppressStop, time.Time{}))
	must(t, s.Suppress(ctx, channels.Email, "left@example.com", dispatcher.SuppressUnsubscribe, time.Now().Add(time.Hour)))
	for _, id := range []string{"x1", "x2"} {
		_, err := b.d.Caps.Reserve(ctx, time.Now(), throttle.CapRequest{Contact: "full", Channel: "email", Topic: "newsletter", SendID: id, Marketing: true})
		must(t, err)
	}
	newsletter, _ := s.Topic(ctx, "newsletter")
	orders, _ := s.Topic(ctx, "orders")
	decide := func(topic *dispatcher.Topic, fallback bool, ks ...channels.Kind) map[string]string {
		t.Helper()
		camp := &dispatcher.Campaign{ID: "c", Channels: ks, Fallback: fallback, Templates: map[channels.Kind]string{channels.Email: "news-mail", channels.SMS: "news-sms"}}
		ds, err := b.d.Gate.Decide(ctx, time.Now(), gatepkg.Job{Run: "r-" + topic.ID + fmt.Sprint(fallback), Campaign: camp, Topic: topic}, contacts)
		must(t, err)
		out := map[string]string{}
		for _, d := range ds {
			out[d.Contact+"/"+string(d.Channel)] = d.State
			if d.Reason != "" {
				out[d.Contact+"/"+string(d.Channel)] = d.Reason
			}
		}
		return out
	}
	got := decide(newsletter, false, channels.Email)
	want := map[string]string{
		"ok/email": "queued", "nothing/email": "no_address", "landline/email": "no_address",
		"bounced/email": "suppressed_bounce", "complained/email": "suppressed_complaint", "stopped/email": "no_address",
		"left/email": "suppressed_unsubscribe", "silent/email": "no_consent", "withdrawn/email": "no_consent",
		"full/email": "capped", "sms-only/email": "no_consent",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("marketing email (-want +got):\n%s", diff)
	}
	// Transactional: no consent needed, suppression still holds, no caps on
	// marketing-only rules.
	got = decide(orders, false, channels.SMS)
	want = map[string]string{
		"ok/sms": "queued", "nothing/sms": "no_address", "landline/sms": "invalid_address",
		"bounced/sms": "no_address", "complained/sms": "no_address", "stopped/sms": "suppressed_stop",
		"left/sms": "no_address", "silent/sms": "no_address", "withdrawn/sms": "no_address",
		"full/sms": "no_address", "sms-only/sms": "queued",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("transactional SMS (-want +got):\n%s", diff)
	}
	// Fallback: the first channel that passes address, suppression and
	// consent; else the first channel's reason.
	got = decide(newsletter, true, channels.Email, channels.SMS)
	for k, v := range map[string]string{"ok/email": "queued", "sms-only/sms": "queued", "silent/email": "no_consent", "nothing/email": "no_address", "stopped/email": "no_address"} {
		if got[k] != v {
			t.Errorf("fallback: %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if len(got) != len(contacts) {
		t.Errorf("fallback decided %d sends for %d contacts", len(got), len(contacts))
	}
}

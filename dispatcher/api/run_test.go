package api

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	gatepkg "github.com/missive-dev/missive/dispatcher/gate"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle"
	"github.com/missive-dev/missive/throttle/redistest"
)

// seedMailing creates n contacts with email consent in segment "all" and a
// campaign "mailing" on email.
func seedMailing(t *testing.T, b *testBundle, n int) {
	t.Helper()
	ctx := context.Background()
	b.seedBasics(t)
	for i := range n {
		c := &dispatcher.Contact{ID: fmt.Sprintf("m%04d", i), Email: fmt.Sprintf("m%04d@example.com", i)}
		must(t, b.d.Store.UpsertContact(ctx, c, "Europe/Paris"))
		grantConsent(t, b, c.ID, channels.Email)
	}
	must(t, b.d.Store.PutSegment(ctx, &dispatcher.Segment{ID: "all"}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "mailing", Topic: "newsletter", Segment: "all",
		Channels: []channels.Kind{channels.Email}, Templates: map[channels.Kind]string{channels.Email: "news-mail"}}))
}

// startMailing seeds the "mailing" campaign for n contacts (seedMailing),
// starts a worker and a run of the campaign, and returns the run.
func startMailing(t *testing.T, b *testBundle, n int) string {
	t.Helper()
	seedMailing(t, b, n)
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(context.Background(), "mailing", time.Now())
	must(t, err)
	return run
}

// runMailing sends the "mailing" campaign to n contacts and returns the
// run, once it is done.
func runMailing(t *testing.T, b *testBundle, n int) string {
	t.Helper()
	run := startMailing(t, b, n)
	b.waitRun(t, run, 20*time.Second)
	return run
}

func assertEachOnce(t *testing.T, b *testBundle, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range b.smtp.Messages() {
		for _, r := range m.To {
			seen[r]++
		}
	}
	for r, k := range seen {
		if k != 1 {
			t.Errorf("%s received %d messages", r, k)
		}
	}
	if len(seen) != n {
		t.Errorf("%d recipients received a message, want %d", len(seen), n)
	}
}

// A worker stopped in the middle of a run, with its queued tasks lost on
// top of that, and a new worker started: every recipient gets exactly one
// message, and the run balances.
func TestWorkerStoppedMidRunDeliversEachOnce(t *testing.T) {
	t.Parallel()
	const n = 600
	b := setup(t, withConfig(func(c *app.Config) {
		c.Concurrency = 2
		c.SendChunk = 10
		c.InflightDeadline = time.Second
	}))
	seedMailing(t, b, n)
	ctx := context.Background()
	stop := b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	b.smtp.Wait(n/5, 20*time.Second)
	stop()
	got := len(b.smtp.Messages())
	if got >= n {
		t.Fatalf("the run finished before the worker was stopped (%d messages); the test proves nothing", got)
	}
	// Lose every task still queued: only the reconciler can save them now.
	insp := asynq.NewInspectorFromRedisClient(b.redis.Client)
	lost, err := insp.DeleteAllPendingTasks(b.d.Pipeline.Queue("send"))
	must(t, err)
	t.Logf("stopped after %d of %d messages; %d queued tasks lost", got, n, lost)

	b.startWorker(t)
	r := b.waitRun(t, run, 60*time.Second)
	assertEachOnce(t, b, n)
	if r.Counters["sent"] != n || !r.Balanced {
		t.Errorf("counters %v, balanced %v; want %d sent", r.Counters, r.Balanced, n)
		for i := range n {
			if s, err := b.d.Store.Send(ctx, dispatcher.SendID(run, fmt.Sprintf("m%04d", i), channels.Email)); err == nil && s.State != dispatcher.StateSent {
				t.Logf("send %d: %s/%s code %q attempts %d", i, s.State, s.Reason, s.ErrorCode, s.Attempts)
			}
		}
		t.Log(b.logs.String())
	}
}

// The same run started twice (two schedulers, a retried API call) makes
// one run and one message per recipient.
func TestDoubleTriggerSendsOnce(t *testing.T) {
	t.Parallel()
	const n = 50
	b := setup(t)
	seedMailing(t, b, n)
	ctx := context.Background()
	at := time.Now().Truncate(time.Second)
	run1, err := b.d.Pipeline.StartRun(ctx, "mailing", at)
	must(t, err)
	run2, err := b.d.Pipeline.StartRun(ctx, "mailing", at)
	must(t, err)
	if run1 != run2 {
		t.Fatalf("two runs for one firing: %s, %s", run1, run2)
	}
	b.startWorker(t)
	b.startWorker(t) // two workers on the same queues
	r := b.waitRun(t, run1, 30*time.Second)
	assertEachOnce(t, b, n)
	if r.Counters["sent"] != n {
		t.Errorf("sent %d, want %d", r.Counters["sent"], n)
	}
}

// A worker that died during the provider call leaves its send "sending":
// the reconciler settles it as ambiguous and never sends it again, and the
// run still balances and completes.
func TestReconcilerSettlesAbandonedSend(t *testing.T) {
	t.Parallel()
	b := setup(t, withClock(time.Now()))
	clock := b.clock.Now()
	seedMailing(t, b, 1)
	ctx := context.Background()
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", clock)
	must(t, err)
	st, err := b.d.Pipeline.LoadRun(ctx, run)
	must(t, err)
	must(t, b.d.Store.Redis.SAdd(ctx, b.d.Store.RunKey(run)+":bseen", 0).Err())
	must(t, b.d.Pipeline.GateBatch(ctx, st, []string{"m0000"}, false))
	must(t, b.d.Store.Redis.HSet(ctx, b.d.Store.RunKey(run), "batches", 1, "plan_finished", 1).Err())
	must(t, b.d.Pipeline.FinishBatch(ctx, run, "0"))
	id := dispatcher.SendID(run, "m0000", channels.Email)
	// The claim, then nothing: the worker died.
	res, err := b.d.Store.TransitionSend(ctx, storepkg.Transition{Send: id, From: pipeline.InflightStates, To: dispatcher.StateSending, Deadline: clock.Add(time.Minute)})
	must(t, err)
	if !res.Applied {
		t.Fatal("claim not applied")
	}
	if n, err := b.d.Pipeline.Reconcile(ctx); err != nil || n != 0 {
		t.Fatalf("Reconcile before the lease ran out touched %d sends (%v)", n, err)
	}
	// A reconciler that listed the send as overdue before the claim must
	// not settle it after: the change applies only while still overdue.
	res, err = b.d.Store.TransitionSend(ctx, storepkg.Transition{Send: id, From: dispatcher.StateSending, To: dispatcher.StateFailed, Reason: dispatcher.ReasonAmbiguous, Overdue: clock})
	must(t, err)
	if res.Applied {
		t.Fatal("a send claimed since it was listed was settled as ambiguous")
	}
	b.clock.Add(2 * time.Minute)
	if n, err := b.d.Pipeline.Reconcile(ctx); err != nil || n != 1 {
		t.Fatalf("Reconcile after the lease = %d, %v; want 1", n, err)
	}
	s, err := b.d.Store.Send(ctx, id)
	must(t, err)
	if s.State != dispatcher.StateFailed || s.Reason != dispatcher.ReasonAmbiguous {
		t.Errorf("send %s/%s, want failed/ambiguous", s.State, s.Reason)
	}
	b.startWorker(t)
	r := b.waitRun(t, run, 10*time.Second)
	if !r.Balanced || r.Counters["failed"] != 1 {
		t.Errorf("counters %v", r.Counters)
	}
	// Neither the send's own task nor a reconciler pass sends it: wait
	// until the reconciler has looked again and the queues ran it all.
	b.loops.waitReconciles(t, 2)
	b.waitIdle(t, 20*time.Second)
	if n := len(b.smtp.Messages()); n != 0 {
		t.Errorf("%d messages sent for an abandoned send", n)
	}
}

// startSlowMailing starts the "mailing" campaign to n contacts with email
// paced at 40 a second, and returns once the first messages arrived and
// every send is decided. The relay answers the last contact 451 until the
// test accepts it (slowMailingLast): on a loaded machine the others may
// all have gone by then, and the run must still be under way when the
// test pauses or cancels it.
func startSlowMailing(t *testing.T, n int) (*testBundle, string) {
	t.Helper()
	b := setup(t, withConfig(func(c *app.Config) {
		c.ProviderRates = map[channels.Kind]throttle.Rate{channels.Email: {Count: 40, Per: time.Second, Burst: 1}}
		c.Concurrency = 2
		c.SendChunk = 5
	}))
	b.smtp.Reject(slowMailingLast(n), 451, "4.7.1", "try later")
	run := startMailing(t, b, n)
	b.smtp.Wait(5, 10*time.Second)
	b.waitDecided(t, run, n)
	return b, run
}

// slowMailingLast is the address startSlowMailing holds back.
func slowMailingLast(n int) string { return fmt.Sprintf("m%04d@example.com", n-1) }

// waitDecided waits until every one of the n sends of run is decided:
// those not sent yet wait in their tasks.
func (b *testBundle) waitDecided(t *testing.T, run string, n int) {
	t.Helper()
	waitFor(t, "every send decided", 20*time.Second, func() bool {
		r, err := b.d.Store.Run(context.Background(), run)
		return err == nil && r.Counters["planned"] == int64(n)
	})
}

func TestPauseHoldsAndResumeFinishes(t *testing.T) {
	t.Parallel()
	const n = 60
	b, run := startSlowMailing(t, n)
	ctx := context.Background()
	c, err := b.d.Pipeline.SetCampaignState(ctx, "mailing", "pause")
	must(t, err)
	if c.State != dispatcher.Paused {
		t.Fatalf("campaign %s after pause", c.State)
	}
	// What was mid-send settles; every other task of the run, picked up
	// since the pause, is put back for later. Then run those tasks again
	// while paused: they send nothing.
	b.waitParked(t, 10*time.Second)
	held := len(b.smtp.Messages())
	if held >= n {
		t.Fatal("the run finished before the pause; the test proves nothing")
	}
	r, err := b.d.Store.Run(ctx, run)
	must(t, err)
	if r.Counters["sent"] != int64(held) || r.Counters["queued"] != int64(n-held) {
		t.Fatalf("paused with %d messages received, counters %v; want them sent and the rest queued", held, r.Counters)
	}
	insp := asynq.NewInspectorFromRedisClient(b.redis.Client)
	if k, err := insp.RunAllRetryTasks(b.d.Pipeline.Queue("send")); err != nil || k == 0 {
		t.Fatalf("%d put back tasks run again (%v); want some", k, err)
	}
	b.waitParked(t, 10*time.Second)
	if got := len(b.smtp.Messages()); got != held {
		t.Fatalf("%d messages left while paused", got-held)
	}
	if _, err := b.d.Pipeline.SetCampaignState(ctx, "mailing", "pause"); !dispatcher.IsCode(err, dispatcher.CodeConflict) {
		t.Errorf("pausing a paused campaign: %v, want a conflict", err)
	}
	b.smtp.Accept(slowMailingLast(n))
	resumeToTheEnd(t, b, run, n)
}

func TestCancelSettlesWhatWaits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 60
	b, run := startSlowMailing(t, n)
	_, err := b.d.Pipeline.SetCampaignState(ctx, "mailing", "cancel")
	must(t, err)
	var r *dispatcher.Run
	waitFor(t, "the cancelled run to balance with nothing in flight", 10*time.Second, func() bool {
		r, err = b.d.Store.Run(ctx, run)
		must(t, err)
		return r.Balanced && r.Counters["queued"] == 0 && r.Counters["sending"] == 0
	})
	sent := len(b.smtp.Messages())
	// The tasks still queued find the run cancelled and send nothing.
	b.waitIdle(t, 20*time.Second)
	if got := len(b.smtp.Messages()); got != sent {
		t.Errorf("%d messages left after the cancel", got-sent)
	}
	if r.State != dispatcher.RunCancelled || r.Counters["sent"]+r.Counters["cancelled"] != n || r.Counters["cancelled"] == 0 {
		t.Errorf("run %s with %v; want cancelled, sent + cancelled = %d", r.State, r.Counters, n)
	}
	if int64(sent) != r.Counters["sent"] {
		t.Errorf("%d messages arrived, the run counts %d sent", sent, r.Counters["sent"])
	}
	if _, err := b.d.Pipeline.SetCampaignState(ctx, "mailing", "resume"); !dispatcher.IsCode(err, dispatcher.CodeConflict) {
		t.Errorf("resuming a cancelled campaign: %v, want a conflict", err)
	}
}

// A cancel ends its campaign cancelled, even when the reconciler, once
// the runs are cancelled and before the campaign is, finds the campaign
// with no run under way and settles it (completed).
func TestCancelWinsOverTheReconciler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := startSlowMailing(t, 20)
	var once sync.Once
	redistest.OnCommand(b.redis.Client, func(cmd redis.Cmder) {
		if args := cmd.Args(); cmd.Name() == "srem" && len(args) > 1 && strings.HasSuffix(fmt.Sprint(args[1]), ":runs:active") {
			once.Do(func() {
				if _, err := b.d.Pipeline.Reconcile(ctx); err != nil {
					t.Errorf("reconcile: %v", err)
				}
			})
		}
	})
	c, err := b.d.Pipeline.SetCampaignState(ctx, "mailing", "cancel")
	must(t, err)
	stored, err := b.d.Store.Campaign(ctx, "mailing")
	must(t, err)
	if c.State != dispatcher.Cancelled || stored.State != dispatcher.Cancelled {
		t.Errorf("campaign %s, stored %s after a cancel; want cancelled", c.State, stored.State)
	}
}

// A relay that answers 451 makes the send wait and try again; once it
// accepts, the message goes out once.
func TestTemporaryFailureRetries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.smtp.Reject("m0001@example.com", 451, "4.7.1", "try later")
	run := startMailing(t, b, 3)
	ctx := context.Background()
	id := dispatcher.SendID(run, "m0001", channels.Email)
	waitFor(t, "a first refused attempt", 10*time.Second, func() bool {
		s, err := b.d.Store.Send(ctx, id)
		return err == nil && s.Attempts >= 1 && s.State == dispatcher.StateQueued
	})
	s, _ := b.d.Store.Send(ctx, id)
	if s.ErrorCode != "4.7.1" {
		t.Errorf("error code %q, want 4.7.1", s.ErrorCode)
	}
	b.smtp.Accept("m0001@example.com")
	r := b.waitRun(t, run, 30*time.Second)
	assertEachOnce(t, b, 3)
	s, _ = b.d.Store.Send(ctx, id)
	if s.State != dispatcher.StateSent || s.Attempts < 2 {
		t.Errorf("send %s after %d attempts, want sent after 2 or more", s.State, s.Attempts)
	}
	if r.Counters["sent"] != 3 || !r.Balanced {
		t.Errorf("counters %v", r.Counters)
	}
}

// The last retry of a temporary failure fails the send for good, and the
// run still balances.
func TestRetriesExhausted(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *app.Config) { c.MaxRetry = 1 }))
	b.smtp.Reject("m0000@example.com", 421, "4.3.0", "busy")
	run := startMailing(t, b, 2)
	ctx := context.Background()
	r := b.waitRun(t, run, 30*time.Second)
	if r.Counters["sent"] != 1 || r.Counters["failed"] != 1 || !r.Balanced {
		t.Errorf("counters %v, want 1 sent and 1 failed", r.Counters)
	}
	s, _ := b.d.Store.Send(ctx, dispatcher.SendID(run, "m0000", channels.Email))
	if s.State != dispatcher.StateFailed || s.Reason != dispatcher.ReasonExhausted {
		t.Errorf("send %s/%s, want failed/%s", s.State, s.Reason, dispatcher.ReasonExhausted)
	}
}

// A relay that refuses our credentials fails no recipient: the sends wait,
// queued, and go once the channel works again.
func TestSenderRefusedKeepsSendsQueued(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.smtp.RejectSender(535, "5.7.8", "authentication failed")
	run := startMailing(t, b, 3)
	ctx := context.Background()
	// The refused sends are retried soon, so the run's counters move
	// between "queued" and "sending": wait for a moment all three are
	// queued again after an attempt, and check on every read that none
	// failed.
	waitFor(t, "a refused attempt, then the sends queued again", 10*time.Second, func() bool {
		s, err := b.d.Store.Send(ctx, dispatcher.SendID(run, "m0000", channels.Email))
		if err != nil || s.Attempts < 1 {
			return false
		}
		r, err := b.d.Store.Run(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		if r.Counters["failed"] != 0 {
			t.Fatalf("counters %v: a refused sender must fail no send", r.Counters)
		}
		return r.Counters["queued"] == 3
	})
	b.smtp.RejectSender(0, "", "")
	b.waitRun(t, run, 30*time.Second)
	assertEachOnce(t, b, 3)
}

// Consent and suppression are checked again right before a send leaves:
// an opt-out recorded while the send waits in the queue wins.
func TestRecheckBeforeSending(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedMailing(t, b, 3)
	ctx := context.Background()
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	st, err := b.d.Pipeline.LoadRun(ctx, run)
	must(t, err)
	// Gate the batch by hand: the sends wait in the queue, no worker yet.
	must(t, b.d.Pipeline.GateBatch(ctx, st, []string{"m0000", "m0001", "m0002"}, false))
	r, _ := b.d.Store.Run(ctx, run)
	if r.Counters["queued"] != 3 {
		t.Fatalf("counters %v, want 3 queued", r.Counters)
	}
	must(t, b.d.Store.RecordConsent(ctx, "m0000", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Withdrawn, Source: "one-click"}))
	must(t, b.d.Store.Suppress(ctx, channels.Email, "m0001@example.com", dispatcher.SuppressComplaint, time.Time{}))
	b.startWorker(t)
	r = b.waitRun(t, run, 20*time.Second)
	want := map[string]int64{"planned": 3, "sent": 1, "no_consent": 1, "suppressed_complaint": 1}
	if diff := cmp.Diff(want, r.Counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	assertEachOnce(t, b, 1)
	if m := b.smtp.Messages(); len(m) != 1 || m[0].To[0] != "m0002@example.com" {
		t.Errorf("messages went to %v", m)
	}
}

// setupQuietSunday builds a Dispatcher whose clock stands on a Sunday noon
// in Paris, under the French SMS quiet hours (SMS wait for Monday 08:00),
// with the topics and templates seeded.
func setupQuietSunday(t *testing.T) (b *testBundle, sunday time.Time) {
	t.Helper()
	paris, err := time.LoadLocation("Europe/Paris")
	must(t, err)
	sunday = time.Date(2027, 1, 3, 12, 0, 0, 0, paris)
	b = setup(t, withConfig(func(c *app.Config) {
		c.Now = func() time.Time { return sunday }
		c.Quiet = map[channels.Kind]throttle.Calendar{channels.SMS: throttle.DefaultSMSCalendar(2027)}
	}), withBasics())
	return b, sunday
}

// A campaign run on a Sunday defers its SMS to Monday morning and keeps
// them queued in Redis for that time: deferred, never dropped.
func TestQuietHoursDeferSMS(t *testing.T) {
	t.Parallel()
	b, sunday := setupQuietSunday(t)
	paris := sunday.Location()
	ctx := context.Background()
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
	b := setup(t, withBasics())
	ctx := context.Background()
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
	tests := []struct {
		name     string
		topic    *dispatcher.Topic
		fallback bool
		channels []channels.Kind
		want     map[string]string
	}{
		{"marketing email", newsletter, false, []channels.Kind{channels.Email}, map[string]string{
			"ok/email": "queued", "nothing/email": "no_address", "landline/email": "no_address",
			"bounced/email": "suppressed_bounce", "complained/email": "suppressed_complaint", "stopped/email": "no_address",
			"left/email": "suppressed_unsubscribe", "silent/email": "no_consent", "withdrawn/email": "no_consent",
			"full/email": "capped", "sms-only/email": "no_consent",
		}},
		// Transactional: no consent needed, suppression still holds, no caps
		// on marketing-only rules.
		{"transactional SMS", orders, false, []channels.Kind{channels.SMS}, map[string]string{
			"ok/sms": "queued", "nothing/sms": "no_address", "landline/sms": "invalid_address",
			"bounced/sms": "no_address", "complained/sms": "no_address", "stopped/sms": "suppressed_stop",
			"left/sms": "no_address", "silent/sms": "no_address", "withdrawn/sms": "no_address",
			"full/sms": "no_address", "sms-only/sms": "queued",
		}},
		// Fallback: the first channel that passes address, suppression and
		// consent; else the first channel's reason.
		{"fallback", newsletter, true, []channels.Kind{channels.Email, channels.SMS}, map[string]string{
			"ok/email": "queued", "nothing/email": "no_address", "landline/email": "no_address",
			"bounced/email": "suppressed_bounce", "complained/email": "suppressed_complaint", "stopped/email": "no_address",
			"left/email": "suppressed_unsubscribe", "silent/email": "no_consent", "withdrawn/email": "no_consent",
			"full/email": "capped", "sms-only/sms": "queued",
		}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, decide(tt.topic, tt.fallback, tt.channels...)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

// Two scheduler processes on one Redis: a campaign due once fires one run,
// and a cron campaign fires once per match.
func TestTwoSchedulersFireOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedMailing(t, b, 5)
	ctx := context.Background()
	soon := time.Now().Truncate(time.Second).Add(time.Second)
	if _, err := b.d.Pipeline.ScheduleCampaign(ctx, "mailing", dispatcher.Schedule{At: soon}); err != nil {
		t.Fatal(err)
	}
	// A second dispatcher on the same Redis, with its own connections,
	// stands for another process.
	opts := *b.redis.Options
	rdb2 := redis.NewClient(&opts)
	t.Cleanup(func() { rdb2.Close() })
	loops2 := countLoops(rdb2, b.cfg.Prefix)
	cfg2 := b.cfg
	cfg2.Redis = rdb2
	d2, err := app.New(cfg2)
	must(t, err)
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, d := range []*app.Dispatcher{b.d, d2} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Scheduler.Run(sctx, 20*time.Millisecond) }()
	}
	b.startWorker(t)
	var runs []string
	waitFor(t, "a run", 20*time.Second, func() bool {
		runs, err = b.d.Store.Runs(ctx, "mailing")
		must(t, err)
		return len(runs) > 0
	})
	// Time for a second firing, if there were one: both schedulers, the
	// leader and the one waiting to take over, tick again.
	b.loops.waitTicks(t, 3)
	loops2.waitTicks(t, 3)
	cancel()
	wg.Wait()
	runs, _ = b.d.Store.Runs(ctx, "mailing")
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
	b.waitRun(t, runs[0], 20*time.Second)
	assertEachOnce(t, b, 5)
	waitFor(t, "the one-shot campaign to complete after its run", 10*time.Second, func() bool {
		c, err := b.d.Store.Campaign(ctx, "mailing")
		must(t, err)
		return c.State == dispatcher.Completed
	})
}

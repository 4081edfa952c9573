package api

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/throttle"
)

// slowEmail paces email at rate a second so a run lasts long enough to be
// paused or cancelled in the middle.
func slowEmail(rate int) option {
	return withConfig(func(c *app.Config) {
		c.ProviderRates = map[channels.Kind]throttle.Rate{channels.Email: {Count: rate, Per: time.Second, Burst: 1}}
		c.Concurrency = 2
		c.SendChunk = 5
	})
}

func TestPauseHoldsAndResumeFinishes(t *testing.T) {
	t.Parallel()
	const n = 60
	b := setup(t, slowEmail(40))
	seedMailing(t, b, n)
	ctx := context.Background()
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	b.smtp.Wait(5, 10*time.Second)
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
	_, err = b.d.Pipeline.SetCampaignState(ctx, "mailing", "resume")
	must(t, err)
	r = b.waitRun(t, run, 30*time.Second)
	assertEachOnce(t, b, n)
	if !r.Balanced || r.Counters["sent"] != n {
		t.Errorf("counters %v", r.Counters)
	}
}

func TestCancelSettlesWhatWaits(t *testing.T) {
	t.Parallel()
	const n = 60
	b := setup(t, slowEmail(40))
	seedMailing(t, b, n)
	ctx := context.Background()
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	b.smtp.Wait(5, 10*time.Second)
	_, err = b.d.Pipeline.SetCampaignState(ctx, "mailing", "cancel")
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

// A relay that answers 451 makes the send wait and try again; once it
// accepts, the message goes out once.
func TestTemporaryFailureRetries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedMailing(t, b, 3)
	b.smtp.Reject("m0001@example.com", 451, "4.7.1", "try later")
	ctx := context.Background()
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
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
	seedMailing(t, b, 2)
	b.smtp.Reject("m0000@example.com", 421, "4.3.0", "busy")
	ctx := context.Background()
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
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
	seedMailing(t, b, 3)
	b.smtp.RejectSender(535, "5.7.8", "authentication failed")
	ctx := context.Background()
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	waitFor(t, "a refused attempt", 10*time.Second, func() bool {
		s, err := b.d.Store.Send(ctx, dispatcher.SendID(run, "m0000", channels.Email))
		return err == nil && s.Attempts >= 1 && s.State == dispatcher.StateQueued
	})
	r, _ := b.d.Store.Run(ctx, run)
	if r.Counters["failed"] != 0 || r.Counters["queued"] != 3 {
		t.Fatalf("counters %v: a refused sender must fail no send", r.Counters)
	}
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

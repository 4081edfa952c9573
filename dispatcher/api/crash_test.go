package api

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
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

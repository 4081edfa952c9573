package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// RunWorker processes plan, batch and send tasks until ctx ends, then shuts
// down in order: it stops taking tasks, lets running ones finish (a send in
// the middle of a provider call always finishes), and returns. It also runs
// the reconciler.
func (d *Pipeline) RunWorker(ctx context.Context) error {
	return d.ServeQueues(ctx, d.Queues())
}

// ServeQueues runs a worker on the given queues and their weights until
// ctx ends, with the reconciler beside it.
func (d *Pipeline) ServeQueues(ctx context.Context, queues map[string]int) error {
	srv := asynq.NewServerFromRedisClient(d.Store.Redis, asynq.Config{
		Concurrency:              d.cfg.Concurrency,
		Queues:                   queues,
		RetryDelayFunc:           RetryDelay,
		IsFailure:                IsFailure,
		ShutdownTimeout:          20 * time.Second,
		DelayedTaskCheckInterval: time.Second,
		// An idle worker looks for work every 20 ms, not every second: a
		// run goes plan -> batch -> send, and each hop waits for the next
		// look (first message 367 ms at 100 ms, 120 ms at 20 ms, measured
		// with missive bench). The price: an idle worker process costs
		// Redis about 1.4% of a core (435 commands/s) instead of 0.4%.
		TaskCheckInterval: 20 * time.Millisecond,
		Logger:            asynqLogger{d.log},
		LogLevel:          asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if IsFailure(err) {
				d.log.Warn("task failed", "type", t.Type(), "error", err)
			}
		}),
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypePlan, func(ctx context.Context, t *asynq.Task) error { return d.handlePlan(ctx, t, queues) })
	mux.HandleFunc(TypeBatch, func(ctx context.Context, t *asynq.Task) error { return d.handleBatch(ctx, t, queues) })
	mux.HandleFunc(TypeSend, d.handleSend)
	mux.HandleFunc(TypeWebhook, d.handleWebhook)
	mux.HandleFunc(TypeSequence, d.handleSequence)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	d.log.Info("worker started", "concurrency", d.cfg.Concurrency)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.reconcileLoop(ctx)
	}()
	outboxDone := make(chan struct{})
	go func() {
		defer close(outboxDone)
		if queues[d.Queue("webhook")] > 0 {
			d.webhookOutboxLoop(ctx)
		}
	}()
	<-ctx.Done()
	<-outboxDone
	srv.Shutdown()
	// asynq gives up on a task past its shutdown timeout, not on the chunk
	// the task was handing over: the messages that left are settled
	// before the process may exit.
	d.handing.wait()
	<-done
	d.log.Info("worker stopped")
	return nil
}

// handovers counts what is in flight and lets one wait until none is.
type handovers struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n falls to 0; nil while nobody waits
}

func (h *handovers) start() {
	h.mu.Lock()
	h.n++
	h.mu.Unlock()
}

func (h *handovers) end() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n--; h.n == 0 && h.idle != nil {
		close(h.idle)
		h.idle = nil
	}
}

// wait returns once nothing is in flight.
func (h *handovers) wait() {
	h.mu.Lock()
	if h.n == 0 {
		h.mu.Unlock()
		return
	}
	if h.idle == nil {
		h.idle = make(chan struct{})
	}
	idle := h.idle
	h.mu.Unlock()
	<-idle
}

func (d *Pipeline) reconcileLoop(ctx context.Context) {
	every(ctx, d.cfg.ReconcileEvery, func() {
		if _, err := d.Reconcile(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("reconcile", "error", err)
		}
	})
}

// every calls f each period until ctx ends.
func every(ctx context.Context, period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// Reconcile finds sends whose in-flight deadline passed: queued or deferred
// ones are enqueued again (their ids make that safe), and ones left
// "sending" by a worker that died are settled as ambiguous, never sent
// again. It returns how many sends it touched.
func (d *Pipeline) Reconcile(ctx context.Context) (int, error) {
	runs, err := d.Store.ActiveRuns(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, run := range runs {
		// A run whose starter died before it enqueued the plan (the
		// campaign may already say it fired, so no one starts it again)
		// is planned here. Its plan's task id derives from the run: a plan
		// waiting in the queue makes this a no-op, and a run that was
		// planned has left this state.
		if state, err := d.Store.RunField(ctx, run, "state"); err != nil {
			return total, err
		} else if state == dispatcher.RunPlanning {
			if err := d.enqueue(ctx, TypePlan, planPayload{Run: run}, asynq.Queue(d.Queue("plan")), asynq.TaskID(run+"~plan")); err != nil {
				return total, err
			}
		}
		// A run left open by a crash after its last send completes here.
		if err := d.FinishBatch(ctx, run, ""); err != nil {
			return total, err
		}
		ids, err := d.Store.Overdue(ctx, run, 1000)
		if err != nil {
			return total, err
		}
		if len(ids) == 0 {
			continue
		}
		sends, err := d.Store.Sends(ctx, ids)
		if err != nil {
			return total, err
		}
		var requeue []storepkg.Decision
		var settle []storepkg.Transition
		var drop []string
		now := d.cfg.Now()
		for i, s := range sends {
			switch {
			case s == nil:
				// Expired or erased: drop it from the in-flight set.
				drop = append(drop, ids[i])
			case s.State == dispatcher.StateSending:
				// Only if still overdue: a worker may have claimed it since
				// it was listed.
				settle = append(settle, storepkg.Transition{Send: s.ID, From: dispatcher.StateSending, To: dispatcher.StateFailed, Reason: dispatcher.ReasonAmbiguous, Overdue: now})
			case s.State == dispatcher.StateQueued || s.State == dispatcher.StateDeferred:
				requeue = append(requeue, storepkg.Decision{Send: s.ID, State: dispatcher.StateQueued})
				settle = append(settle, storepkg.Transition{Send: s.ID, From: s.State, To: s.State, Reason: "", Deadline: now.Add(d.cfg.InflightDeadline), Overdue: now})
			default:
				drop = append(drop, ids[i])
			}
		}
		// Best effort, as before: what stays is dropped on the next round.
		if err := d.Store.DropInflight(ctx, run, drop...); err != nil {
			d.log.Warn("reconcile: drop settled sends from the in-flight set", "run", run, "error", err)
		}
		if err := d.applyTransitions(ctx, "", settle); err != nil {
			return total, err
		}
		// A fresh task id: the first task may still exist, done or lost.
		for i := range requeue {
			_, h, _ := dispatcher.SplitSendID(requeue[i].Send)
			if err := d.enqueue(ctx, TypeSend, sendPayload{Run: run, Sends: []string{h}},
				asynq.Queue(d.sendQueue(h)), asynq.TaskID(requeue[i].Send+"~r"+now.Format("20060102150405"))); err != nil {
				return total, err
			}
		}
		total += len(ids)
		d.log.Info("reconciled", "run", run, "requeued", len(requeue), "settled", len(settle)-len(requeue))
	}
	return total, d.settleCampaigns(ctx)
}

// settleCampaigns settles the running campaigns left with no run under
// way, when their last two runs completed at once (each saw the other
// still open).
func (d *Pipeline) settleCampaigns(ctx context.Context) error {
	cs, err := d.Store.Campaigns(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if c.State == dispatcher.Running {
			if err := d.settleCampaign(ctx, c.ID, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// asynqLogger sends asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "queue") }

func (a asynqLogger) Info(args ...any) { a.l.Info(fmt.Sprint(args...), "component", "queue") }

func (a asynqLogger) Warn(args ...any) { a.l.Warn(fmt.Sprint(args...), "component", "queue") }

func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "queue") }

func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "queue") }

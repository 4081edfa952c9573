package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeWebhook delivers an outbound webhook event: its payload names the
// endpoint and the event, never the event's body, which waits in Redis,
// sealed.
const TypeWebhook = "missive:webhook"

type webhookPayload struct {
	Endpoint string `json:"endpoint"`
	Event    string `json:"event"`
}

// Webhooks is what the worker needs of the outbound webhooks: delivering
// an event after the ones queued before it for the same contact
// (outbound.Webhooks).
type Webhooks interface {
	// Deliver returns an error to retry later: a busy queue (busy
	// reports which) is retried soon and does not count as a failure.
	Deliver(ctx context.Context, endpoint, event string, lastTry bool) error
}

// SetWebhooks sets the outbound webhooks the worker delivers, and busy,
// which tells the error of a queue another worker is draining. Without
// it, webhook tasks are dropped.
func (d *Pipeline) SetWebhooks(w Webhooks, busy func(error) bool) {
	d.webhooks, d.webhookBusy = w, busy
}

// webhookOutboxEvery is how often a worker hands the events queued by
// Emit to the queue.
const webhookOutboxEvery = 100 * time.Millisecond

// handleWebhook delivers one event (and those before it for its contact).
func (d *Pipeline) handleWebhook(ctx context.Context, t *asynq.Task) error {
	var p webhookPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("webhook: %v: %w", err, asynq.SkipRetry)
	}
	if d.webhooks == nil {
		return nil
	}
	err := d.webhooks.Deliver(ctx, p.Endpoint, p.Event, isLastTry(ctx))
	if err != nil && d.webhookBusy != nil && d.webhookBusy(err) {
		return &snoozeError{d: 500 * time.Millisecond}
	}
	return err
}

// webhookOutboxLoop hands the events Emit queued (one Redis write in the
// operation that caused them) to asynq, one task per event, until ctx
// ends.
func (d *Pipeline) webhookOutboxLoop(ctx context.Context) {
	every(ctx, webhookOutboxEvery, func() {
		if err := d.HandOverWebhooks(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("webhook outbox", "error", err)
		}
	})
}

// HandOverWebhooks enqueues a delivery task for each event in the
// webhook outbox. An event popped and not enqueued (a crash between the
// two) still waits in its contact's queue: the next event of that contact
// for that endpoint delivers it first.
func (d *Pipeline) HandOverWebhooks(ctx context.Context) error {
	for {
		pairs, err := d.Store.PopWebhookOutbox(ctx, 100)
		if err != nil || len(pairs) == 0 {
			return err
		}
		for _, p := range pairs {
			// No task id: a pair is popped once, and a replay of an event
			// whose task was archived (dropped after its retries) needs a
			// task of its own.
			err := d.enqueue(ctx, TypeWebhook, webhookPayload{Endpoint: p[0], Event: p[1]},
				asynq.Queue(d.Queue("webhook")))
			if err != nil && !errors.Is(err, context.Canceled) {
				d.log.Warn("webhook event not enqueued", "endpoint", p[0], "event", p[1], "error", err)
			}
		}
	}
}

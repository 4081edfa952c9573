package pipeline

import (
	"context"
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
	p, err := decodePayload[webhookPayload](t, "webhook")
	if err != nil {
		return err
	}
	if d.webhooks == nil {
		return nil
	}
	err = d.webhooks.Deliver(ctx, p.Endpoint, p.Event, isLastTry(ctx))
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

// webhookHandOverLease is how long one worker holds the hand-over of the
// outbox; a worker that dies leaves it to another when it ends.
const webhookHandOverLease = 10 * time.Second

// HandOverWebhooks enqueues a delivery task for each event in the webhook
// outbox, then takes the events out of the outbox: a crash in between
// leaves them there, and the next hand-over enqueues them again under the
// same task ids (a second task for an event delivered already finds its
// queue without it). One worker hands over at a time; the others skip.
func (d *Pipeline) HandOverWebhooks(ctx context.Context) error {
	// A read first: an idle outbox costs no write.
	if entries, err := d.Store.PeekWebhookOutbox(ctx, 1); err != nil || len(entries) == 0 {
		return err
	}
	release, err := d.Store.Lock(ctx, "webhook-outbox", webhookHandOverLease)
	if err != nil || release == nil {
		return err
	}
	defer release(context.WithoutCancel(ctx))
	for {
		entries, err := d.Store.PeekWebhookOutbox(ctx, 100)
		if err != nil || len(entries) == 0 {
			return err
		}
		for _, e := range entries {
			if e.Endpoint == "" {
				continue // not an entry: taken out with the others
			}
			opts := []asynq.Option{asynq.Queue(d.Queue("webhook"))}
			if e.Nonce != "" {
				// The hand-over's id, not the event's: a replay of an event
				// whose task was archived (dropped after its retries)
				// needs a task of its own.
				opts = append(opts, asynq.TaskID("wh~"+e.Endpoint+"~"+e.Event+"~"+e.Nonce))
			}
			if err := d.enqueue(ctx, TypeWebhook, webhookPayload{Endpoint: e.Endpoint, Event: e.Event}, opts...); err != nil {
				return err
			}
		}
		if err := d.Store.AckWebhookOutbox(ctx, entries); err != nil {
			return err
		}
	}
}

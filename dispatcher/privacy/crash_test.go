package privacy_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
)

// lostTx makes the next MULTI/EXEC whose commands touch key fail after
// Redis ran it, as when the process dies between the write and its reply.
type lostTx struct {
	key   string
	armed atomic.Bool
}

func (h *lostTx) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *lostTx) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *lostTx) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		touches := slices.ContainsFunc(cmds, func(c redis.Cmder) bool {
			return slices.ContainsFunc(c.Args()[1:], func(a any) bool { return a == h.key })
		})
		if err == nil && touches && h.armed.CompareAndSwap(true, false) {
			return errors.New("connection reset")
		}
		return err
	}
}

// An erasure whose process died once the contact record was deleted is
// not finished by calling again (the contact is gone): by then the events
// waiting for webhooks that receive addresses are gone too.
func TestEraseDiedAfterTheRecordLeavesNoWebhookEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	b.putLeaving(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.st.PutWebhook(ctx, &store.WebhookEndpoint{ID: "crm", URL: "https://crm.example/hook", Events: []string{"sent"},
		IncludeAddress: true, Secret: "whsec-123"}))
	must(b.st.QueueWebhookEvents(ctx, []store.WebhookEvent{{Endpoint: "crm", ID: "msg_1", Contact: "leaving",
		Body: []byte(`{"type":"sent","data":{"contact":"leaving","address":"leaving@example.com"}}`)}}))
	hook := &lostTx{key: b.st.ContactKey("leaving")}
	hook.armed.Store(true)
	b.r.Client.AddHook(hook)

	if _, err := b.p.EraseContact(ctx, "leaving"); err == nil {
		t.Fatal("EraseContact, its reply lost: no error")
	}
	if _, err := b.p.EraseContact(ctx, "leaving"); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		t.Fatalf("EraseContact again: %v, want not found", err)
	}
	if _, _, err := b.st.WebhookEvent(ctx, "crm", "msg_1"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("webhook event holding the erased address: %v, want not found", err)
	}
}

// diesAfterPipeline lets the first pipeline that match accepts through,
// then fails its reply and every command after it until revived: the
// process died right after that pipeline.
type diesAfterPipeline struct {
	match       func([]redis.Cmder) bool
	armed, dead atomic.Bool
}

var errDead = errors.New("connection reset")

func (h *diesAfterPipeline) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *diesAfterPipeline) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		return next(ctx, cmd)
	}
}

func (h *diesAfterPipeline) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		err := next(ctx, cmds)
		if err == nil && h.match(cmds) && h.armed.CompareAndSwap(true, false) {
			h.dead.Store(true)
			return errDead
		}
		return err
	}
}

// An erasure whose process died once it had deleted the contact's send
// records is finished by calling again, their entries in their runs'
// indexes blanked too: a second call finds no record to lead it there.
func TestEraseDiedAfterTheSendsBlanksTheRunIndex(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	l := b.putLeaving(t)
	hook := &diesAfterPipeline{match: func(cmds []redis.Cmder) bool {
		return slices.ContainsFunc(cmds, func(c redis.Cmder) bool {
			return c.Name() == "unlink" && len(c.Args()) > 1 && c.Args()[1] == b.st.SendKey(l.queued)
		})
	}}
	hook.armed.Store(true)
	b.r.Client.AddHook(hook)
	if _, err := b.p.EraseContact(ctx, "leaving"); err == nil {
		t.Fatal("EraseContact, its process dead after deleting the sends: no error")
	}
	hook.dead.Store(false)
	if hook.armed.Load() {
		t.Fatal("the sends were never deleted: the test proves nothing")
	}
	if _, err := b.p.EraseContact(ctx, "leaving"); err != nil {
		t.Fatalf("EraseContact again: %v", err)
	}
	for _, run := range []string{"r1", "r2", "api-r1"} {
		ids, err := b.r.Client.LRange(ctx, b.st.RunKey(run)+":sends", 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if id == l.queued || id == l.deferred || id == l.sent || id == l.api {
				t.Errorf("run %s's index still names the erased send %s", run, id)
			}
		}
	}
}

// An erasure whose process died once the record was deleted, before the
// id left the list of contacts, takes it out when asked again: no walk of
// the contacts, nor their count, keeps an erased contact.
func TestEraseDiedAfterTheRecordLeavesNoContactID(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	b.putLeaving(t)
	hook := &lostTx{key: b.st.ContactKey("leaving")}
	hook.armed.Store(true)
	b.r.Client.AddHook(hook)
	if _, err := b.p.EraseContact(ctx, "leaving"); err == nil {
		t.Fatal("EraseContact, its reply lost: no error")
	}
	if _, err := b.p.EraseContact(ctx, "leaving"); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		t.Fatalf("EraseContact again: %v, want not found", err)
	}
	ids, err := b.st.ContactIDs(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ids, "leaving") {
		t.Errorf("contact ids %v still name the erased contact", ids)
	}
}

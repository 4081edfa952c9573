package privacy_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle/redistest"
)

// An erasure whose process died once the contact record was deleted is
// not finished by calling again (the contact is gone): by then the events
// waiting for webhooks that receive addresses are gone too.
func TestEraseDiedAfterTheRecordLeavesNoWebhookEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	b.putLeaving(t)
	must(t, b.st.PutWebhook(ctx, &store.WebhookEndpoint{ID: "crm", URL: "https://crm.example/hook", Events: []string{"sent"},
		IncludeAddress: true, Secret: "whsec-123"}))
	must(t, b.st.QueueWebhookEvents(ctx, []store.WebhookEvent{{Endpoint: "crm", ID: "msg_1", Contact: "leaving",
		Body: []byte(`{"type":"sent","data":{"contact":"leaving","address":"leaving@example.com"}}`)}}))
	redistest.LoseReply(b.r.Client, redistest.Touching("del", b.st.ContactKey("leaving")))

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

// An erasure whose process died once it had deleted the contact's send
// records is finished by calling again, their entries in their runs'
// indexes blanked too: a second call finds no record to lead it there.
func TestEraseDiedAfterTheSendsBlanksTheRunIndex(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	l := b.putLeaving(t)
	crash := redistest.CrashAfter(b.r.Client, redistest.Write("unlink", b.st.SendKey(l.queued)))
	if _, err := b.p.EraseContact(ctx, "leaving"); err == nil {
		t.Fatal("EraseContact, its process dead after deleting the sends: no error")
	}
	crash.Revive(t)
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
	redistest.LoseReply(b.r.Client, redistest.Touching("del", b.st.ContactKey("leaving")))
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

package signup_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/signup"
	"github.com/missive-dev/missive/throttle/redistest"
)

// A sign-up of an address without a contact, whose process died once it
// had stored the provisional record holding the address, leaves that
// record where erasure finds it: through the address's pending sign-ups.
func TestSignupDiedAfterItsProvisionalRecordIsErasable(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	s, st, _ := setupOn(t, r, nil)
	ctx := context.Background()
	crash := redistest.CrashAfter(r.Client, redistest.Write("set", ":c:{s-"))
	in := &signup.Input{Topics: []string{"newsletter"}, Channel: channels.Email, Address: "ana@example.com", Locale: "fr", Wording: "v3"}
	if err := s.Submit(ctx, in, "iphash", "test-agent"); err == nil {
		t.Fatal("Submit, its process dead after the provisional record: no error")
	}
	crash.Revive(t)

	if _, err := st.DeletePendingSignupsOf(ctx, channels.Email, "ana@example.com"); err != nil {
		t.Fatal(err)
	}
	left, err := r.Client.Keys(ctx, r.Prefix+":c:{s-*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("the erasure of the address left %v", left)
	}
}

// A confirmation whose process died once it had granted the consents,
// before it told what it did, tells it when confirmed again: the
// sequences a sign-up starts and the webhooks hear of it.
func TestConfirmationDiedAfterItsGrantTellsItsEvents(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	var mu sync.Mutex
	var events []dispatcher.Event
	s, _, snd := setupOn(t, r, dispatcher.EmitFunc(func(_ context.Context, e dispatcher.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}))
	ctx := context.Background()
	in := &signup.Input{Topics: []string{"newsletter"}, Channel: channels.Email, Address: "ana@example.com", Locale: "fr", Wording: "v3"}
	if err := s.Submit(ctx, in, "iphash", "test-agent"); err != nil {
		t.Fatal(err)
	}
	ref := snd.all()[0].Ref
	crash := redistest.CrashAfter(r.Client, redistest.Write("hset", ":signups"))
	if _, _, err := s.Confirm(ctx, ref, channels.Email, "email-link", nil); err == nil {
		t.Fatal("Confirm, its process dead after the grant: no error")
	}
	crash.Revive(t)
	mu.Lock()
	events = nil // what the dead process had not told
	mu.Unlock()

	if outcome, _, err := s.Confirm(ctx, ref, channels.Email, "email-link", nil); err != nil || outcome != signup.OutcomeAlready {
		t.Fatalf("confirmed again: %v %v, want already", outcome, err)
	}
	mu.Lock()
	defer mu.Unlock()
	var types []string
	for _, e := range events {
		types = append(types, e.Type+" "+e.Topic)
	}
	if !slices.Contains(types, dispatcher.EventSignupConfirmed+" newsletter") || !slices.Contains(types, dispatcher.EventConsentChanged+" newsletter") {
		t.Errorf("events told %v, want the sign-up's confirmation and its consent change", types)
	}
}

// A confirmation of a sign-up whose address became a contact's meanwhile,
// whose process died once it had dropped the provisional record, grants
// the consents to that contact when confirmed again.
func TestConfirmationDiedAfterDroppingItsProvisionalRecordGrants(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	s, st, snd := setupOn(t, r, nil)
	ctx := context.Background()
	in := &signup.Input{Topics: []string{"newsletter"}, Channel: channels.Email, Address: "ana@example.com", Locale: "fr", Wording: "v3"}
	if err := s.Submit(ctx, in, "iphash", "test-agent"); err != nil {
		t.Fatal(err)
	}
	ref := snd.all()[0].Ref
	// The upstream system makes the contact of the address meanwhile.
	if err := st.UpsertContact(ctx, &dispatcher.Contact{ID: "ana", Email: "ana@example.com"}, "Europe/Paris"); err != nil {
		t.Fatal(err)
	}
	crash := redistest.CrashAfter(r.Client, redistest.Write("unlink", ":c:{s-"))
	if _, _, err := s.Confirm(ctx, ref, channels.Email, "email-link", nil); err == nil {
		t.Fatal("Confirm, its process dead after dropping the provisional record: no error")
	}
	crash.Revive(t)

	if outcome, _, err := s.Confirm(ctx, ref, channels.Email, "email-link", nil); err != nil || outcome == 0 {
		t.Fatalf("confirmed again: %v %v, want granted or already", outcome, err)
	}
	cs, err := st.Consents(ctx, "ana")
	if err != nil {
		t.Fatal(err)
	}
	if cs["email/newsletter"] != dispatcher.Granted {
		t.Errorf("consents of the address's contact %v, want newsletter granted", cs)
	}
}

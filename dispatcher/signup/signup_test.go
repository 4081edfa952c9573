package signup_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/signup"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/throttle"
	"github.com/missive-dev/missive/throttle/redistest"
)

// sender records the confirmations handed to the send path.
type sender struct {
	mu   sync.Mutex
	sent []pipeline.OneSend
}

func (s *sender) DecideOne(_ context.Context, o pipeline.OneSend) (*dispatcher.Send, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, o)
	return &dispatcher.Send{ID: "x", State: dispatcher.StateQueued}, nil
}

func (s *sender) all() []pipeline.OneSend {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]pipeline.OneSend(nil), s.sent...)
}

func setup(t *testing.T) (*signup.Signups, *store.Store, *sender) {
	t.Helper()
	return setupOn(t, redistest.New(t), nil)
}

// setupOn is setup on r, telling events (nil: none).
func setupOn(t *testing.T, r *redistest.Redis, events dispatcher.Events) (*signup.Signups, *store.Store, *sender) {
	t.Helper()
	now := func() time.Time { return time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) }
	st := storetest.New(t, r.Client, r.Prefix, now, "k1")
	if err := st.PutTopic(context.Background(), &dispatcher.Topic{ID: "newsletter", Name: "La lettre", Kind: dispatcher.Marketing}); err != nil {
		t.Fatal(err)
	}
	snd := &sender{}
	s, err := signup.New(signup.Config{Store: st, Pipeline: snd, Limiter: throttle.NewLimiter(r.Client, r.Prefix),
		Secret: []byte("signup-test-secret-0123456789abcdef"), PublicURL: "https://missive.example", Now: now,
		Events: events, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s, st, snd
}

// A sign-up hands one confirmation to the one send path, transactional,
// not held by quiet hours, naming its pending sign-up; its link confirms
// once, and only the topics asked for are granted.
func TestSignupConfirmsOnce(t *testing.T) {
	t.Parallel()
	s, st, snd := setup(t)
	ctx := context.Background()
	in := &signup.Input{Topics: []string{"newsletter"}, Channel: channels.Email, Address: "ana@example.com", Locale: "fr", Wording: "v3"}
	if err := s.Submit(ctx, in, "iphash", "test-agent"); err != nil {
		t.Fatal(err)
	}
	sent := snd.all()
	if len(sent) != 1 {
		t.Fatalf("%d confirmations sent, want 1", len(sent))
	}
	o := sent[0]
	if o.Campaign != dispatcher.SignupCampaign || !o.Requested || o.Ref == "" || o.Topic.ID != signup.ConfirmationTopic ||
		o.Topic.Kind != dispatcher.Transactional || o.Channel != channels.Email {
		t.Errorf("confirmation send %+v: want a requested, transactional send of the signup campaign naming its sign-up", o)
	}
	attr, locale, err := s.ConfirmationData(ctx, o.Ref)
	if err != nil {
		t.Fatal(err)
	}
	link := attr["confirm_url"]
	token, ok := strings.CutPrefix(link, "https://missive.example/subscribe/confirm/")
	if !ok || !signup.ValidToken(token) || locale != "fr" || attr["topics"] != "La lettre" {
		t.Fatalf("confirmation data %v %q", attr, locale)
	}
	if signup.TokenHash(token) != o.Ref {
		t.Errorf("the link's token does not name the pending sign-up")
	}
	outcome, _, err := s.Confirm(ctx, o.Ref, channels.Email, "email-link", nil)
	if err != nil || outcome != signup.OutcomeGranted {
		t.Fatalf("first confirmation: %v %v", outcome, err)
	}
	if outcome, _, err := s.Confirm(ctx, o.Ref, channels.Email, "email-link", nil); err != nil || outcome != signup.OutcomeAlready {
		t.Errorf("second confirmation: %v %v, want already", outcome, err)
	}
	id, err := st.ContactIDByAddress(ctx, channels.Email, "ana@example.com")
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := st.ConsentLedger(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(ledger) != 1 || ledger[0].State != dispatcher.Granted || ledger[0].Topic != "newsletter" || ledger[0].Source != "signup" {
		t.Errorf("ledger %+v: want one grant of newsletter from the sign-up", ledger)
	}
	// Once confirmed, the confirmation has nothing left to say.
	if _, _, err := s.ConfirmationData(ctx, o.Ref); err == nil {
		t.Errorf("confirmation data of a confirmed sign-up: no error")
	}
}

// A suppressed address gets no confirmation, and the answer does not say
// so.
func TestSignupOfASuppressedAddress(t *testing.T) {
	t.Parallel()
	s, st, snd := setup(t)
	ctx := context.Background()
	if err := st.Suppress(ctx, channels.Email, "gone@example.com", dispatcher.SuppressComplaint, time.Time{}); err != nil {
		t.Fatal(err)
	}
	in := &signup.Input{Topics: []string{"newsletter"}, Channel: channels.Email, Address: "gone@example.com", Locale: "en", Wording: "v3"}
	if err := s.Submit(ctx, in, "iphash", ""); err != nil {
		t.Fatalf("sign-up of a suppressed address: %v, want the same answer as any", err)
	}
	if n := len(snd.all()); n != 0 {
		t.Errorf("%d confirmations sent to a suppressed address", n)
	}
}

func TestCheckSignupTopics(t *testing.T) {
	t.Parallel()
	s, st, _ := setup(t)
	ctx := context.Background()
	if err := st.PutTopic(ctx, &dispatcher.Topic{ID: "orders", Kind: dispatcher.Transactional}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ids  []string
		want bool
	}{{[]string{"newsletter"}, true}, {nil, false}, {[]string{"orders"}, false}, {[]string{"newsletter", "nope"}, false}} {
		err := s.CheckSignupTopics(ctx, tt.ids)
		if (err == nil) != tt.want || (err != nil && !dispatcher.IsCode(err, dispatcher.CodeInvalid)) {
			t.Errorf("CheckSignupTopics(%v) = %v, want ok %v", tt.ids, err, tt.want)
		}
	}
}

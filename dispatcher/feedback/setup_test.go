package feedback_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
	"github.com/missive-dev/missive/dispatcher/feedback"
	"github.com/missive-dev/missive/dispatcher/metrics"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/throttle/redistest"
)

// start is when every test begins; its clock moves only when told.
var start = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

var secret = bytes.Repeat([]byte("s"), 32)

var _ feedback.Runs = (*storetest.Runs)(nil)

type testBundle struct {
	r     *redistest.Redis
	st    *store.Store
	h     *feedback.Handler
	runs  *storetest.Runs
	clock *storetest.Clock
	m     *metrics.Metrics
}

const bounceDomain = "b.example"

// setup returns a Handler on a store of its own, with bounces to
// bounceDomain, under policy (zero fields take the defaults), and the
// topics news (marketing) and orders (transactional).
func setup(t testing.TB, policy feedback.Policy) *testBundle {
	t.Helper()
	r := redistest.New(t)
	clk := storetest.NewClock(start)
	st := storetest.New(t, r.Client, r.Prefix, clk.Now, "k1")
	ctx := context.Background()
	for _, tp := range []dispatcher.Topic{{ID: "news", Kind: dispatcher.Marketing}, {ID: "orders", Kind: dispatcher.Transactional}} {
		if err := st.PutTopic(ctx, &tp); err != nil {
			t.Fatal(err)
		}
	}
	runs := &storetest.Runs{}
	m := metrics.New()
	h, err := feedback.New(feedback.Config{Store: st, Consent: consent.New(st, clk.Now), Runs: runs, Policy: policy,
		Secret: secret, BounceDomain: bounceDomain, Metrics: m, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{r: r, st: st, h: h, runs: runs, clock: clk, m: m}
}

// Addresses of the contact c1.
const (
	email = "ana@example.com"
	phone = "+33612345678"
)

// putContact stores c1 with both addresses and consents to news on both
// channels and to orders by email.
func (b *testBundle) putContact(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if err := b.st.UpsertContact(ctx, &dispatcher.Contact{ID: "c1", Email: email, Phone: phone}, "Europe/Paris"); err != nil {
		t.Fatal(err)
	}
	for _, e := range []dispatcher.ConsentEvent{
		{Channel: channels.Email, Topic: "news", State: dispatcher.Granted},
		{Channel: channels.SMS, Topic: "news", State: dispatcher.Granted},
		{Channel: channels.Email, Topic: "orders", State: dispatcher.Granted},
	} {
		if err := b.st.RecordConsent(ctx, "c1", e); err != nil {
			t.Fatal(err)
		}
	}
}

// sentTo makes the run (of campaign) and a send of it to contact on
// channel k, as the pipeline leaves it once the provider took it: sent,
// and out of the run's in-flight set. It returns the send id.
func (b *testBundle) sentTo(t testing.TB, campaign, run, contact string, k channels.Kind) string {
	t.Helper()
	return storetest.Send(t, b.st, b.clock.Now(), campaign, run, contact, k, dispatcher.StateSent)
}

// setupSent is setup under the default policy with c1 stored
// (putContact) and sent a message of run r1 of the campaign spring on k,
// email if k is empty; it returns the send id.
func setupSent(t testing.TB, k channels.Kind) (*testBundle, string) {
	t.Helper()
	b := setup(t, feedback.Policy{})
	b.putContact(t)
	return b, b.sentTo(t, "spring", "r1", "c1", cmp.Or(k, channels.Email))
}

// outcome is what feedback changed.
type outcome struct {
	State, Reason, ErrorCode string
	// Feedback are the run's feedback counters.
	Feedback map[string]int64
	// Suppression is the entry of the contact's address on the send's
	// channel, nil for none.
	Suppression *dispatcher.Suppression
	// Consents are c1's current consents.
	Consents map[string]dispatcher.ConsentState
}

func (b *testBundle) outcome(t testing.TB, send string) outcome {
	t.Helper()
	ctx := context.Background()
	var o outcome
	sd, err := b.st.Send(ctx, send)
	if err != nil {
		t.Fatal(err)
	}
	o.State, o.Reason, o.ErrorCode = sd.State, sd.Reason, sd.ErrorCode
	r, err := b.st.Run(ctx, sd.Run)
	if err != nil {
		t.Fatal(err)
	}
	o.Feedback = r.Feedback
	o.Suppression = b.suppression(t, sd.Channel)
	if o.Consents, err = b.st.Consents(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	return o
}

// suppression returns the entry of c1's address on k, or nil.
func (b *testBundle) suppression(t testing.TB, k channels.Kind) *dispatcher.Suppression {
	t.Helper()
	addr := map[channels.Kind]string{channels.Email: email, channels.SMS: phone}[k]
	sup, err := b.st.Suppression(context.Background(), k, addr)
	if errors.Is(err, dispatcher.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return sup
}

// consentsOf c1 as putContact leaves them, with changes.
func consentsOf(changes ...string) map[string]dispatcher.ConsentState {
	m := map[string]dispatcher.ConsentState{"email/news": dispatcher.Granted, "sms/news": dispatcher.Granted, "email/orders": dispatcher.Granted}
	for _, c := range changes {
		m[c] = dispatcher.Withdrawn
	}
	return m
}

func mustRecord(t testing.TB, h *feedback.Handler, ev channels.Feedback) {
	t.Helper()
	if err := h.RecordDelivery(context.Background(), ev); err != nil {
		t.Fatalf("RecordDelivery(%s %s): %v", ev.Kind, ev.Send, err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	r := redistest.New(t)
	st := store.NewStore(r.Client, r.Prefix, secret, time.Now, time.Hour)
	cm := consent.New(st, time.Now)
	tests := []struct {
		name    string
		cfg     feedback.Config
		wantErr bool
	}{
		{"complete", feedback.Config{Store: st, Consent: cm, Secret: secret}, false},
		{"no store", feedback.Config{Consent: cm, Secret: secret}, true},
		{"no consent manager", feedback.Config{Store: st, Secret: secret}, true},
		{"a secret of 31 bytes", feedback.Config{Store: st, Consent: cm, Secret: secret[:31]}, true},
		{"no secret", feedback.Config{Store: st, Consent: cm}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := feedback.New(tt.cfg)
			if (err != nil) != tt.wantErr || (h == nil) == (err == nil) {
				t.Errorf("New = %v, %v; want an error: %v", h, err, tt.wantErr)
			}
		})
	}
}

package webhook_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms/twilioproto"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/dispatcher/webhook"
	"github.com/missive-dev/missive/throttle/redistest"
)

const publicURL = "https://missive.example"

// recorder keeps the feedback the hooks hand over; err is returned by
// every call.
type recorder struct {
	mu  sync.Mutex
	got []channels.Feedback
	err error
}

func (r *recorder) RecordDelivery(_ context.Context, f channels.Feedback) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.got = append(r.got, f)
	return nil
}

func (r *recorder) recorded() []channels.Feedback {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]channels.Feedback(nil), r.got...)
}

// confirmer records the numbers whose SMS sign-up a YES confirmed.
type confirmer struct {
	mu   sync.Mutex
	sids []string
}

func (c *confirmer) ConfirmSMSOptIn(_ context.Context, _, sid string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sids = append(c.sids, sid)
	return true, nil
}

type bundle struct {
	st  *store.Store
	rec *recorder
	yes *confirmer
	srv *httptest.Server
}

func setup(t *testing.T, token string) *bundle {
	t.Helper()
	r := redistest.New(t)
	now := func() time.Time { return time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) }
	st := storetest.New(t, r.Client, r.Prefix, now, "k1")
	b := &bundle{st: st, rec: &recorder{}, yes: &confirmer{}}
	h := webhook.New(webhook.Config{Store: st, Feedback: b.rec, Consent: consent.New(st, now), Signups: b.yes,
		TwilioAuthToken: token, ValidTwilioSignature: twilioproto.ValidSignature, PublicURL: publicURL,
		Now: now, Logger: slog.New(slog.DiscardHandler)})
	mux := http.NewServeMux()
	h.Mount(mux)
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	return b
}

// post sends form to path, signed for our public URL with token ("": no
// signature).
func (b *bundle) post(t *testing.T, path string, form url.Values, token string) *http.Response {
	t.Helper()
	req := twiliotest.Request(b.srv.URL+path, form.Encode(), "")
	if token != "" {
		req = twiliotest.SignedRequest(b.srv.URL+path, publicURL+path, token, form)
	}
	res, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

const sid = "SM0123456789abcdef0123456789abcdef"

func TestTwilioRoutesNeedAToken(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	for _, path := range []string{"/webhooks/twilio/status", "/webhooks/twilio/inbound"} {
		if res := b.post(t, path, url.Values{"MessageSid": {sid}}, ""); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s without a token configured: %d, want 404", path, res.StatusCode)
		}
	}
}

// A status callback of a message Missive sent becomes the feedback of its
// send, with the number tried; forged, unknown and uninteresting ones
// change nothing.
func TestTwilioStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, twiliotest.AuthToken)
	ctx := context.Background()
	send := dispatcher.SendID("run-1", "c1", channels.SMS)
	if err := b.st.SetProviderIDs(ctx, map[string]string{sid: send}); err != nil {
		t.Fatal(err)
	}
	bounce := twiliotest.StatusForm(sid, "+33612345678", "undelivered", "30005")
	tests := []struct {
		name   string
		form   url.Values
		token  string
		status int
		want   []channels.Feedback
	}{
		{"forged", bounce, "00000000000000000000000000000000", http.StatusForbidden, nil},
		{"unsigned", bounce, "", http.StatusForbidden, nil},
		{"sent says nothing new", twiliotest.StatusForm(sid, "+33612345678", "sent", ""), twiliotest.AuthToken, http.StatusOK, nil},
		{"unknown message", twiliotest.StatusForm(twiliotest.NewMessageSID(), "+33612345678", "delivered", ""), twiliotest.AuthToken, http.StatusOK, nil},
		{"no MessageSid", url.Values{"MessageStatus": {"delivered"}}, twiliotest.AuthToken, http.StatusBadRequest, nil},
		{"hard bounce", bounce, twiliotest.AuthToken, http.StatusOK, []channels.Feedback{{Send: send, Channel: channels.SMS,
			Address: "+33612345678", Kind: channels.HardBounce, Code: "30005", Source: "twilio"}}},
	}
	for _, tt := range tests {
		before := len(b.rec.recorded())
		res := b.post(t, "/webhooks/twilio/status", tt.form, tt.token)
		if res.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, res.StatusCode, tt.status)
		}
		got := b.rec.recorded()[before:]
		for i := range got {
			got[i].At = time.Time{}
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: feedback (-want +got):\n%s", tt.name, diff)
		}
	}
	// A failure to record asks Twilio to retry.
	b.rec.mu.Lock()
	b.rec.err = errors.New("redis down")
	b.rec.mu.Unlock()
	if res := b.post(t, "/webhooks/twilio/status", bounce, twiliotest.AuthToken); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("record failed: status %d, Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

// STOP suppresses the number once per message, START lifts it, YES
// confirms a sign-up.
func TestTwilioInboundKeywords(t *testing.T) {
	t.Parallel()
	b := setup(t, twiliotest.AuthToken)
	ctx := context.Background()
	const from = "+33612345678"
	msg := func(n int, body string) url.Values {
		return twiliotest.InboundForm("SM"+strings.Repeat(string(rune('0'+n)), 32), from, body)
	}
	suppressed := func() string {
		sup, err := b.st.Suppression(ctx, channels.SMS, from)
		if errors.Is(err, dispatcher.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return sup.Reason
	}
	if res := b.post(t, "/webhooks/twilio/inbound", msg(1, "stop"), twiliotest.AuthToken); res.StatusCode != http.StatusOK {
		t.Fatalf("STOP: %d", res.StatusCode)
	}
	if got := suppressed(); got != dispatcher.SuppressStop {
		t.Errorf("after STOP the number is suppressed for %q, want stop", got)
	}
	if res := b.post(t, "/webhooks/twilio/inbound", msg(2, "START"), twiliotest.AuthToken); res.StatusCode != http.StatusOK {
		t.Fatalf("START: %d", res.StatusCode)
	}
	if got := suppressed(); got != "" {
		t.Errorf("after START the number is still suppressed for %q", got)
	}
	// The STOP delivered again changes nothing: its message was handled.
	if res := b.post(t, "/webhooks/twilio/inbound", msg(1, "stop"), twiliotest.AuthToken); res.StatusCode != http.StatusOK {
		t.Fatalf("STOP again: %d", res.StatusCode)
	}
	if got := suppressed(); got != "" {
		t.Errorf("a redelivered STOP suppressed the number again (%q)", got)
	}
	b.yes.mu.Lock()
	defer b.yes.mu.Unlock()
	if diff := cmp.Diff([]string{msg(2, "").Get("MessageSid")}, b.yes.sids); diff != "" {
		t.Errorf("sign-ups confirmed by (-want +got):\n%s", diff)
	}
}

package api

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/feedback"
	gatepkg "github.com/missive-dev/missive/dispatcher/gate"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
)

// End-to-end tests of Twilio's webhooks: inbound keywords (STOP, START,
// HELP, the YES of a sign-up) and the status callbacks of the messages
// Missive sent, through the HTTP server, the store and the gate.

const (
	inboundPath      = "/webhooks/twilio/inbound"
	twilioStatusPath = "/webhooks/twilio/status"
	// twilioPublicURL is setup's PublicURL, which Twilio is configured to
	// call with the routes. The test server listens elsewhere
	// (127.0.0.1:port), which proves the handlers sign with the public
	// URL, not the Host.
	twilioPublicURL = "https://missive.example"
	// stopPhone is the contact's number; otherPhone has no contact.
	stopPhone  = "+33612345678"
	otherPhone = "+33698765432"
)

// twilioHarness is a dispatcher with Twilio webhooks on, served by a real
// HTTP server, and one contact (c1, stopPhone) who consented to SMS for
// newsletter and promos and to email for newsletter.
type twilioHarness struct {
	b   *testBundle
	srv *httptest.Server
	// volatile names keys left out of snapshots: state the sends leave
	// behind that expires on its own.
	volatile []string
}

// withTwilioWebhooks turns Twilio's webhooks on.
func withTwilioWebhooks() option {
	return withConfig(func(c *app.Config) {
		c.TwilioAuthToken, c.ValidTwilioSignature = twiliotest.AuthToken, sms.ValidSignature
	})
}

// twilioSetup is setup with Twilio's webhooks on and no caps (the gate is
// asked several times per test), seeded with c1, seen through the Twilio
// helpers; it checks that the logs hold no number and no token.
func twilioSetup(t *testing.T, opts ...option) *twilioHarness {
	t.Helper()
	b := setup(t, append([]option{withTwilioWebhooks(), withConfig(func(c *app.Config) { c.Caps = []throttle.CapRule{} })}, opts...)...)
	ctx := context.Background()
	s := b.d.Store
	b.seedBasics(t)
	must(t, s.PutTopic(ctx, &dispatcher.Topic{ID: "promos", Kind: dispatcher.Marketing}))
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "c1", Email: "c1@example.com", Phone: stopPhone}, "Europe/Paris"))
	for _, e := range []dispatcher.ConsentEvent{
		{Channel: channels.SMS, Topic: "newsletter", State: dispatcher.Granted, Source: "api"},
		{Channel: channels.SMS, Topic: "promos", State: dispatcher.Granted, Source: "api"},
		{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Granted, Source: "api"},
	} {
		must(t, s.RecordConsent(ctx, "c1", e))
	}
	t.Cleanup(func() {
		logs := b.logs.String()
		for _, secret := range []string{stopPhone, stopPhone[1:], otherPhone, otherPhone[1:], twiliotest.AuthToken} {
			if strings.Contains(logs, secret) {
				t.Errorf("logs hold a phone number or the auth token:\n%s", logs)
			}
		}
	})
	return &twilioHarness{b: b, srv: b.srv}
}

type twilioResp struct {
	status int
	ctype  string
	body   string
}

// do makes req to the test server.
func (h *twilioHarness) do(t *testing.T, req *http.Request) twilioResp {
	t.Helper()
	res, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return twilioResp{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), body: string(b)}
}

// post sends a raw body to path with a signature ("" for none).
func (h *twilioHarness) post(t *testing.T, path, body, sig string) twilioResp {
	t.Helper()
	return h.do(t, twiliotest.Request(h.srv.URL+path, body, sig))
}

// send posts form to path signed as Twilio signs it.
func (h *twilioHarness) send(t *testing.T, path string, form url.Values) twilioResp {
	t.Helper()
	return h.do(t, twiliotest.SignedRequest(h.srv.URL+path, twilioPublicURL+path, twiliotest.AuthToken, form))
}

// sms sends one inbound SMS and wants a 200 TwiML answer, which it returns.
func (h *twilioHarness) sms(t *testing.T, from, body string) (sid, twiml string) {
	t.Helper()
	sid = twiliotest.NewMessageSID()
	r := h.send(t, inboundPath, twiliotest.InboundForm(sid, from, body))
	if r.status != http.StatusOK {
		t.Fatalf("SMS %q: status %d: %s", body, r.status, r.body)
	}
	if mt, _, _ := mime.ParseMediaType(r.ctype); mt != "text/xml" {
		t.Fatalf("SMS %q: Content-Type %q", body, r.ctype)
	}
	return sid, r.body
}

// status posts a signed status callback of the message sid to stopPhone
// and wants it handled: 200 with empty TwiML.
func (h *twilioHarness) status(t *testing.T, sid, status, code string) {
	t.Helper()
	if r := h.send(t, twilioStatusPath, twiliotest.StatusForm(sid, stopPhone, status, code)); r.status != http.StatusOK || r.body != emptyTwiML {
		t.Fatalf("%s %s: %d %s", status, code, r.status, r.body)
	}
}

// forged is a request a webhook must refuse with 403: path (query
// included), body and X-Twilio-Signature.
type forged struct{ name, path, body, sig string }

// refuses checks that the webhook at path refuses, changing nothing:
// with 403 form signed for another URL or token, or changed after
// signing, and the requests in more; with 400 form signed but with a
// broken MessageSid, and the signed forms in invalid; with 413, 415 and
// 405 a body too large, JSON and a GET.
func (h *twilioHarness) refuses(t *testing.T, path string, form url.Values, more []forged, invalid map[string]url.Values) {
	t.Helper()
	signedURL := twilioPublicURL + path
	sign := func(u string, f url.Values) string { return twiliotest.Sign(twiliotest.AuthToken, u, f) }
	other := map[string]string{inboundPath: twilioStatusPath, twilioStatusPath: inboundPath}[path]
	body := form.Encode()
	for _, tc := range append([]forged{
		{"no signature", path, body, ""},
		{"garbage signature", path, body, "c2lnbmF0dXJl"},
		{"other token", path, body, twiliotest.Sign(strings.Repeat("0", 32), signedURL, form)},
		{"signed for the Host the server listens on", path, body, sign(h.srv.URL+path, form)},
		{"signed for another host", path, body, sign("https://evil.example"+path, form)},
		{"signed for http", path, body, sign("http://missive.example"+path, form)},
		{"signed for the other webhook", path, body, sign(twilioPublicURL+other, form)},
		{"signed without the query sent", path + "?x=1", body, sign(signedURL, form)},
		{"signed with another query", path + "?x=1", body, sign(signedURL+"?x=2", form)},
		{"parameter added after signing", path, body + "&Extra=1", sign(signedURL, form)},
	}, more...) {
		before := h.snapshot(t)
		if r := h.post(t, tc.path, tc.body, tc.sig); r.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403: %s", tc.name, r.status, r.body)
		}
		h.unchanged(t, before, tc.name)
	}

	sid := form.Get("MessageSid")
	signed := map[string]url.Values{
		"no MessageSid":       twiliotest.With(form, "MessageSid", ""),
		"upper-case sid":      twiliotest.With(form, "MessageSid", strings.ToUpper(sid)),
		"sid of a call":       twiliotest.With(form, "MessageSid", "CA"+sid[2:]),
		"sid with a key part": twiliotest.With(form, "MessageSid", sid+":x"),
	}
	maps.Copy(signed, invalid)
	for name, f := range signed {
		before := h.snapshot(t)
		if r := h.send(t, path, f); r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", name, r.status, r.body)
		}
		h.unchanged(t, before, name)
	}

	before := h.snapshot(t)
	big := body + "&Pad=" + strings.Repeat("a", maxFormBody)
	if r := h.post(t, path, big, sign(signedURL, form)); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("body over 64 KiB: status %d, want 413", r.status)
	}
	req := twiliotest.Request(h.srv.URL+path, `{"Body":"STOP"}`, sign(signedURL, nil))
	req.Header.Set("Content-Type", "application/json")
	if r := h.do(t, req); r.status != http.StatusUnsupportedMediaType {
		t.Errorf("JSON body: status %d, want 415", r.status)
	}
	req, err := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
	must(t, err)
	if r := h.do(t, req); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", r.status)
	}
	h.unchanged(t, before, "refused requests")
}

// snapshot is every key of the test's prefix with its serialised value:
// equal snapshots mean nothing was written.
func (h *twilioHarness) snapshot(t *testing.T) map[string]string {
	t.Helper()
	return snapshotRedis(t, h.b, h.volatile...)
}

func (h *twilioHarness) unchanged(t *testing.T, before map[string]string, what string) {
	t.Helper()
	if diff := cmp.Diff(before, h.snapshot(t)); diff != "" {
		t.Errorf("%s changed Redis (-before +after):\n%s", what, diff)
	}
}

// suppression is the number's SMS suppression entry, zero when there is
// none.
func (h *twilioHarness) suppression(t *testing.T, phone string) dispatcher.Suppression {
	t.Helper()
	sup, err := h.b.d.Store.Suppression(context.Background(), channels.SMS, phone)
	if err == dispatcher.ErrNotFound {
		return dispatcher.Suppression{}
	}
	must(t, err)
	return *sup
}

// gateSMS is what the gate decides for a newsletter SMS to c.
func (h *twilioHarness) gateSMS(t *testing.T, c *dispatcher.Contact) string {
	t.Helper()
	ctx := context.Background()
	topic, err := h.b.d.Store.Topic(ctx, "newsletter")
	must(t, err)
	camp := &dispatcher.Campaign{ID: "c", Channels: []channels.Kind{channels.SMS}, Templates: map[channels.Kind]string{channels.SMS: "news-sms"}}
	ds, err := h.b.d.Gate.Decide(ctx, time.Now(), gatepkg.Job{Run: "r-" + twiliotest.NewMessageSID(), Campaign: camp, Topic: topic}, []*dispatcher.Contact{c})
	must(t, err)
	if len(ds) != 1 {
		t.Fatalf("gate: %d decisions", len(ds))
	}
	if ds[0].Reason != "" {
		return ds[0].Reason
	}
	return ds[0].State
}

func (h *twilioHarness) contact(t *testing.T) *dispatcher.Contact {
	t.Helper()
	c, err := h.b.d.Store.Contact(context.Background(), "c1")
	must(t, err)
	return c
}

// entry is a ledger event without its time.
type entry struct {
	Channel, Topic, State, Source, SID string
}

// seeded is the ledger twilioSetup writes.
var seeded = []entry{
	{"sms", "newsletter", "granted", "api", ""},
	{"sms", "promos", "granted", "api", ""},
	{"email", "newsletter", "granted", "api", ""},
}

// smsState is what keywords may change for c1 and stopPhone.
type smsState struct {
	Ledger       []entry
	Consents     map[string]dispatcher.ConsentState
	Unsubscribes map[string]int64 // by topic, zero counts left out
	Suppression  string
	Gate         string // the gate's decision for a newsletter SMS
}

func (h *twilioHarness) state(t *testing.T) smsState {
	t.Helper()
	ctx := context.Background()
	st := smsState{Unsubscribes: map[string]int64{}, Suppression: h.suppression(t, stopPhone).Reason, Gate: h.gateSMS(t, h.contact(t))}
	l, err := h.b.d.Store.ConsentLedger(ctx, "c1")
	must(t, err)
	for _, e := range l {
		st.Ledger = append(st.Ledger, entry{string(e.Channel), e.Topic, string(e.State), e.Source, e.Evidence["message_sid"]})
	}
	st.Consents, err = h.b.d.Store.Consents(ctx, "c1")
	must(t, err)
	for _, topic := range []string{"newsletter", "promos", "orders"} {
		m, err := h.b.d.Store.TopicFeedback(ctx, topic)
		must(t, err)
		if n := m[storepkg.FeedbackUnsubscribes]; n != 0 {
			st.Unsubscribes[topic] = n
		}
	}
	return st
}

// wantState compares c1's state with want.
func (h *twilioHarness) wantState(t *testing.T, want smsState, what string) {
	t.Helper()
	if diff := cmp.Diff(want, h.state(t), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// stopped is c1's state once the STOP sid withdrew its SMS consents.
func stopped(sid string) smsState {
	return smsState{
		Ledger: append(slices.Clone(seeded),
			entry{"sms", "newsletter", "withdrawn", "sms-stop", sid},
			entry{"sms", "promos", "withdrawn", "sms-stop", sid}),
		Consents:     map[string]dispatcher.ConsentState{"sms/newsletter": dispatcher.Withdrawn, "sms/promos": dispatcher.Withdrawn, "email/newsletter": dispatcher.Granted},
		Unsubscribes: map[string]int64{"newsletter": 1, "promos": 1},
		Suppression:  dispatcher.SuppressStop,
		Gate:         "suppressed_stop",
	}
}

func twiml(msg string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(msg))
	return `<?xml version="1.0" encoding="UTF-8"?><Response><Message>` + b.String() + `</Message></Response>`
}

const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response/>`

var (
	stopReply  = "Vous ne recevrez plus de SMS de Missive. Répondez START pour revenir. / You will get no more texts from Missive. Reply START to come back."
	startReply = "Les SMS de Missive sont réactivés. Répondez STOP pour vous désabonner. / Texts from Missive are back on. Reply STOP to opt out."
	helpReply  = "SMS de Missive. Répondez STOP pour ne plus en recevoir, START pour revenir. / Texts from Missive. Reply STOP to opt out, START to opt back in."
)

func TestTwilioReplies(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{stopReply, startReply, helpReply} {
		if si := templates.Segments(msg); si.Encoding != "GSM-7" || si.Parts != 1 {
			t.Errorf("reply %q: %+v, want one GSM-7 segment", msg, si)
		}
	}
}

func TestTwilioInboundStop(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		"stop", " Stop ", "STOP", "Stop.", "stop!", "STOP !!", "\tstop\r\n", "stopall", "Unsubscribe", "CANCEL",
		"end", "Quit", "ARRET", "arrêt", "Arrêt.", "ARRÊT",
	} {
		t.Run(body, func(t *testing.T) {
			t.Parallel()
			h := twilioSetup(t)
			sid, reply := h.sms(t, stopPhone, body)
			if reply != twiml(stopReply) {
				t.Errorf("reply %s", reply)
			}
			h.wantState(t, stopped(sid), "after STOP")
		})
	}
}

func TestTwilioInboundStopThenStart(t *testing.T) {
	t.Parallel()
	for _, start := range []string{"START", "start", " Yes ", "unstop!"} {
		t.Run(start, func(t *testing.T) {
			t.Parallel()
			h := twilioSetup(t)
			ctx := context.Background()
			// promos was left by link before STOP: START must not bring it back.
			must(t, h.b.d.Store.RecordConsent(ctx, "c1", dispatcher.ConsentEvent{Channel: channels.SMS, Topic: "promos", State: dispatcher.Withdrawn, Source: "one-click"}))
			stopSID, _ := h.sms(t, stopPhone, "STOP")
			if got := h.gateSMS(t, h.contact(t)); got != "suppressed_stop" {
				t.Fatalf("after STOP the gate decides %q", got)
			}
			startSID, reply := h.sms(t, stopPhone, start)
			if reply != twiml(startReply) {
				t.Errorf("reply %s", reply)
			}
			h.wantState(t, smsState{
				Ledger: append(slices.Clone(seeded),
					entry{"sms", "promos", "withdrawn", "one-click", ""},
					entry{"sms", "newsletter", "withdrawn", "sms-stop", stopSID},
					entry{"sms", "newsletter", "granted", "sms-stop", startSID}),
				Consents: map[string]dispatcher.ConsentState{"sms/newsletter": dispatcher.Granted, "sms/promos": dispatcher.Withdrawn, "email/newsletter": dispatcher.Granted},
				// Only the STOP counted as an unsubscribe.
				Unsubscribes: map[string]int64{"newsletter": 1},
				Gate:         dispatcher.StateQueued,
			}, "after START")
		})
	}
}

func TestTwilioInboundStartKeepsOtherSuppressions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("bounce", func(t *testing.T) {
		t.Parallel()
		h := twilioSetup(t)
		must(t, h.b.d.Store.Suppress(ctx, channels.SMS, stopPhone, dispatcher.SuppressBounce, time.Time{}))
		h.sms(t, stopPhone, "START")
		if got := h.suppression(t, stopPhone).Reason; got != dispatcher.SuppressBounce {
			t.Errorf("START: suppression %q, want bounce", got)
		}
		// A STOP must not turn the bounce into a stop that START lifts.
		h.sms(t, stopPhone, "STOP")
		h.sms(t, stopPhone, "START")
		if got := h.suppression(t, stopPhone).Reason; got != dispatcher.SuppressBounce {
			t.Errorf("STOP, START: suppression %q, want bounce", got)
		}
		if got := h.gateSMS(t, h.contact(t)); got != "suppressed_bounce" {
			t.Errorf("gate decides %q", got)
		}
	})
	t.Run("temporary entry becomes stop", func(t *testing.T) {
		t.Parallel()
		h := twilioSetup(t)
		must(t, h.b.d.Store.Suppress(ctx, channels.SMS, stopPhone, dispatcher.SuppressUnsubscribe, time.Now().Add(time.Hour)))
		h.sms(t, stopPhone, "STOP")
		if sup := h.suppression(t, stopPhone); sup.Reason != dispatcher.SuppressStop || !sup.Until.IsZero() {
			t.Errorf("suppression %+v, want a permanent stop", sup)
		}
		if ttl := h.b.cfg.Redis.TTL(ctx, h.b.d.Store.Key("sup", h.b.d.Store.AddressHash(channels.SMS, stopPhone))).Val(); ttl != -1 {
			t.Errorf("stop entry has a TTL (%v)", ttl)
		}
	})
}

func TestTwilioInboundHelpChangesNothing(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"HELP", "help", " Info. "} {
		t.Run(body, func(t *testing.T) {
			t.Parallel()
			h := twilioSetup(t)
			before := h.snapshot(t)
			_, reply := h.sms(t, stopPhone, body)
			if reply != twiml(helpReply) {
				t.Errorf("reply %s", reply)
			}
			h.unchanged(t, before, "HELP")
		})
	}
	t.Run("sender name is escaped", func(t *testing.T) {
		t.Parallel()
		h := twilioSetup(t, withConfig(func(c *app.Config) { c.SenderName = "Rive & <Co>" }))
		_, reply := h.sms(t, stopPhone, "help")
		if !strings.Contains(reply, "SMS de Rive &amp; &lt;Co&gt;.") || strings.Contains(reply, "<Co>") {
			t.Errorf("reply %s", reply)
		}
	})
}

func TestTwilioInboundOtherTextChangesNothing(t *testing.T) {
	t.Parallel()
	h := twilioSetup(t)
	for _, body := range []string{
		"", "hello", "S T O P", "stop please", "STOPP", "¡stop", "please stop", "STARTED", "HELPME",
		"<b>STOP</b>", "STOP\r\nX-Header: 1", "stop\x00", strings.Repeat("STOP ", 20),
		"</Message><Redirect>https://evil.example</Redirect>", "]]><!--",
	} {
		before := h.snapshot(t)
		_, reply := h.sms(t, stopPhone, body)
		if reply != emptyTwiML {
			t.Errorf("%q: reply %s", body, reply)
		}
		h.unchanged(t, before, body)
	}
}

func TestTwilioInboundStopFromUnknownNumber(t *testing.T) {
	t.Parallel()
	h := twilioSetup(t)
	_, reply := h.sms(t, otherPhone, "Stop")
	if reply != twiml(stopReply) {
		t.Errorf("reply %s", reply)
	}
	if got := h.suppression(t, otherPhone).Reason; got != dispatcher.SuppressStop {
		t.Errorf("suppression %q, want stop", got)
	}
	h.wantState(t, smsState{Ledger: seeded, Consents: map[string]dispatcher.ConsentState{
		"sms/newsletter": dispatcher.Granted, "sms/promos": dispatcher.Granted, "email/newsletter": dispatcher.Granted,
	}, Gate: dispatcher.StateQueued}, "c1's state changed")
	// A contact imported later with that number is still stopped.
	ctx := context.Background()
	late := &dispatcher.Contact{ID: "late", Phone: otherPhone}
	must(t, h.b.d.Store.UpsertContact(ctx, late, "Europe/Paris"))
	must(t, h.b.d.Store.RecordConsent(ctx, "late", dispatcher.ConsentEvent{Channel: channels.SMS, Topic: "newsletter", State: dispatcher.Granted}))
	if got := h.gateSMS(t, late); got != "suppressed_stop" {
		t.Errorf("gate decides %q, want suppressed_stop", got)
	}
}

func TestTwilioInboundAttacks(t *testing.T) {
	t.Parallel()
	h := twilioSetup(t)
	valid := twiliotest.InboundForm(twiliotest.NewMessageSID(), stopPhone, "STOP")
	sign := func(f url.Values) string {
		return twiliotest.Sign(twiliotest.AuthToken, twilioPublicURL+inboundPath, f)
	}
	twice := twiliotest.With(valid, "From", otherPhone, stopPhone)
	h.refuses(t, inboundPath, valid, []forged{
		{"body changed after signing", inboundPath, twiliotest.With(valid, "Body", "START").Encode(), sign(valid)},
		{"number changed after signing", inboundPath, twiliotest.With(valid, "From", otherPhone).Encode(), sign(valid)},
		{"parameter given twice", inboundPath, twice.Encode(), sign(twice)},
		{"parameter given twice, first signed", inboundPath, valid.Encode() + "&From=" + url.QueryEscape(otherPhone), sign(valid)},
		{"signature of an empty form", inboundPath, "", sign(nil)[:10]},
	}, map[string]url.Values{
		"no From":           twiliotest.With(valid, "From", ""),
		"From not E.164":    twiliotest.With(valid, "From", "0612345678"),
		"From not a number": twiliotest.With(valid, "From", "+33<script>"),
	})

	// The valid request works; the same request again is answered alike
	// and changes nothing.
	r1 := h.send(t, inboundPath, valid)
	if r1.status != http.StatusOK || r1.body != twiml(stopReply) {
		t.Fatalf("valid request: %d %s", r1.status, r1.body)
	}
	before := h.snapshot(t)
	for range 3 {
		if r := h.send(t, inboundPath, valid); r != r1 {
			t.Errorf("replay answered %+v, first answer %+v", r, r1)
		}
	}
	h.unchanged(t, before, "replay")

	// A STOP replayed after START does not stop the number again.
	startSID, _ := h.sms(t, stopPhone, "START")
	before = h.snapshot(t)
	h.send(t, inboundPath, valid)
	h.unchanged(t, before, "STOP replayed after START")
	sid := valid.Get("MessageSid")
	want := stopped(sid)
	want.Ledger = append(want.Ledger,
		entry{"sms", "newsletter", "granted", "sms-stop", startSID},
		entry{"sms", "promos", "granted", "sms-stop", startSID})
	want.Consents = map[string]dispatcher.ConsentState{"sms/newsletter": dispatcher.Granted, "sms/promos": dispatcher.Granted, "email/newsletter": dispatcher.Granted}
	want.Suppression, want.Gate = "", dispatcher.StateQueued
	h.wantState(t, want, "after STOP, START and the STOP replayed")
	ttl := h.b.cfg.Redis.TTL(context.Background(), h.b.d.Store.Key("twilio", "sid", sid)).Val()
	if ttl < 6*24*time.Hour || ttl > 7*24*time.Hour {
		t.Errorf("message record TTL %v, want 7 days", ttl)
	}
}

func TestTwilioInboundConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	h := twilioSetup(t)
	form := twiliotest.InboundForm(twiliotest.NewMessageSID(), stopPhone, "STOP")
	// A request that finds the message being handled asks for a retry.
	if statuses := h.sendConcurrently(t, inboundPath, form, 12, http.StatusOK, http.StatusServiceUnavailable); !slices.Contains(statuses, http.StatusOK) {
		t.Errorf("no request succeeded: %v", statuses)
	}
	h.wantState(t, stopped(form.Get("MessageSid")), "after the same STOP 12 times at once")
}

// sendConcurrently posts form, signed as Twilio does, n times at once to
// path, checks that each answer is one of want, and returns the statuses.
func (h *twilioHarness) sendConcurrently(t *testing.T, path string, form url.Values, n int, want ...int) []int {
	t.Helper()
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range statuses {
		wg.Go(func() {
			res, err := h.srv.Client().Do(twiliotest.SignedRequest(h.srv.URL+path, twilioPublicURL+path, twiliotest.AuthToken, form))
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses[i] = res.StatusCode
		})
	}
	wg.Wait()
	for _, s := range statuses {
		if !slices.Contains(want, s) {
			t.Errorf("statuses %v, want each in %v", statuses, want)
			break
		}
	}
	return statuses
}

func TestTwilioWebhooksOffWithoutToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for path, form := range map[string]url.Values{
		inboundPath:      twiliotest.InboundForm(twiliotest.NewMessageSID(), stopPhone, "STOP"),
		twilioStatusPath: twiliotest.StatusForm(twiliotest.NewMessageSID(), stopPhone, "undelivered", "30005"),
	} {
		res, err := b.srv.Client().Do(twiliotest.SignedRequest(b.srv.URL+path, twilioPublicURL+path, "", form))
		must(t, err)
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", path, res.StatusCode)
		}
	}
	if _, err := b.d.Store.Suppression(context.Background(), channels.SMS, stopPhone); err != dispatcher.ErrNotFound {
		t.Errorf("suppression lookup: %v, want not found", err)
	}
}

// serveTwilioFuzz serves body, posted to path as Twilio posts, with h:
// signed for the form it holds when signed is set and it is a form.
func serveTwilioFuzz(h http.Handler, path, body string, signed bool) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if form, err := url.ParseQuery(body); signed && err == nil {
		req.Header.Set("X-Twilio-Signature", twiliotest.Sign(twiliotest.AuthToken, twilioPublicURL+path, form))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// addTwilioSeeds adds each body, signed and not.
func addTwilioSeeds(f *testing.F, bodies []string) {
	for _, s := range bodies {
		f.Add(s, true)
		f.Add(s, false)
	}
}

// FuzzTwilioInbound checks that no form, signed or not, gets a server
// error, and that a TwiML answer is well-formed XML that never carries
// markup from the request.
func FuzzTwilioInbound(f *testing.F) {
	addTwilioSeeds(f, twiliotest.InboundSeeds(stopPhone))
	d := setup(f, withTwilioWebhooks(), withoutLogs()).d
	ctx := context.Background()
	if err := d.Store.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Kind: dispatcher.Marketing}); err != nil {
		f.Fatal(err)
	}
	if err := d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "c1", Phone: stopPhone}, "Europe/Paris"); err != nil {
		f.Fatal(err)
	}
	h := Handler(d, nil)
	f.Fuzz(func(t *testing.T, body string, signed bool) {
		rec := serveTwilioFuzz(h, inboundPath, body, signed)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusOK {
			return
		}
		if _, _, err := twiliotest.ReadTwiML(rec.Body.String()); err != nil {
			t.Fatalf("%v: %s", err, rec.Body)
		}
	})
}

// statusHarness is a twilioHarness whose worker sends SMS campaigns to c1
// through the Twilio API double.
type statusHarness struct {
	*twilioHarness
	runs int
}

func statusSetup(t *testing.T, opts ...option) *statusHarness {
	t.Helper()
	h := twilioSetup(t, append([]option{withWorker()}, opts...)...)
	must(t, h.b.d.Store.PutSegment(context.Background(), &dispatcher.Segment{ID: "c1-only", Contacts: []string{"c1"}}))
	// The provider rate limiter's state is left behind by the sends.
	h.volatile = []string{":rate:"}
	return &statusHarness{twilioHarness: h}
}

// sendSMS runs a new one-shot SMS campaign to c1 and returns its run, the
// send, and the message SID the Twilio double gave it, which Missive
// recorded when the message was accepted.
func (h *statusHarness) sendSMS(t *testing.T) (run, send, sid string) {
	t.Helper()
	ctx := context.Background()
	h.runs++
	camp := fmt.Sprintf("sms-%d", h.runs)
	must(t, h.b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: camp, Topic: "newsletter", Segment: "c1-only",
		Channels: []channels.Kind{channels.SMS}, Templates: map[channels.Kind]string{channels.SMS: "news-sms"}}))
	run, err := h.b.d.Pipeline.StartRun(ctx, camp, time.Now())
	must(t, err)
	if r := h.b.waitRun(t, run, 20*time.Second); r.Counters[dispatcher.StateSent] != 1 {
		t.Fatalf("run %s: counters %v, want one SMS sent", run, r.Counters)
	}
	send = dispatcher.SendID(run, "c1", channels.SMS)
	sd, err := h.b.d.Store.Send(ctx, send)
	must(t, err)
	i := slices.IndexFunc(h.b.twilio.Messages(), func(m twiliotest.Sent) bool { return m.SID == sd.Provider })
	if sd.Provider == "" || i < 0 || h.b.twilio.Messages()[i].To != stopPhone {
		t.Fatalf("send %s: provider id %q is not a message the Twilio double took for c1", send, sd.Provider)
	}
	return run, send, sd.Provider
}

// outcome is what feedback may change about one send.
type outcome struct {
	State, Reason, ErrorCode string
	Counters, Feedback       map[string]int64
	Suppression              string
	Suspended                bool // suppressed for a time, not for good
}

func (h *twilioHarness) outcome(t *testing.T, run, send string) outcome {
	t.Helper()
	ctx := context.Background()
	sd, err := h.b.d.Store.Send(ctx, send)
	must(t, err)
	r, err := h.b.d.Store.Run(ctx, run)
	must(t, err)
	sup := h.suppression(t, stopPhone)
	return outcome{State: sd.State, Reason: sd.Reason, ErrorCode: sd.ErrorCode, Counters: r.Counters, Feedback: r.Feedback,
		Suppression: sup.Reason, Suspended: !sup.Until.IsZero()}
}

// Twilio answers 429 to a message twice: the send is tried again in its
// task, waiting longer each time, and leaves once.
func TestTwilioTooManyRequestsRetried(t *testing.T) {
	t.Parallel()
	h := statusSetup(t)
	h.b.twilio.FailOnce(stopPhone, 429, 20429)
	h.b.twilio.FailOnce(stopPhone, 429, 20429)
	run, send, _ := h.sendSMS(t)
	if n := h.b.twilio.Failed(); n != 2 {
		t.Errorf("the double answered 429 %d times, want 2", n)
	}
	if n := len(h.b.twilio.Messages()); n != 1 {
		t.Errorf("%d messages taken, want 1", n)
	}
	got := h.outcome(t, run, send)
	if got.State != dispatcher.StateSent || got.ErrorCode != "" {
		t.Errorf("send %s, error code %q, want sent without one", got.State, got.ErrorCode)
	}
	sd, err := h.b.d.Store.Send(context.Background(), send)
	must(t, err)
	if sd.Attempts != 3 {
		t.Errorf("%d claims, want 3", sd.Attempts)
	}
}

func TestTwilioStatusDelivered(t *testing.T) {
	t.Parallel()
	h := statusSetup(t)
	run, send, sid := h.sendSMS(t)

	// Progress Missive already knows of writes nothing, and neither does
	// a status it does not know.
	before := h.snapshot(t)
	for _, st := range []string{"accepted", "queued", "sending", "sent", "scheduled", "partially_delivered"} {
		h.status(t, sid, st, "")
	}
	h.unchanged(t, before, "queued, sending, sent")

	h.status(t, sid, "delivered", "")
	want := outcome{State: dispatcher.StateDelivered, Counters: map[string]int64{"planned": 1, dispatcher.StateDelivered: 1},
		Feedback: map[string]int64{feedback.FeedbackDelivered: 1}}
	if diff := cmp.Diff(want, h.outcome(t, run, send)); diff != "" {
		t.Errorf("after delivered (-want +got):\n%s", diff)
	}

	// The same callback again, a read receipt, and statuses that come
	// late change nothing at all.
	before = h.snapshot(t)
	for _, st := range []string{"delivered", "delivered", "sent", "sending", "queued"} {
		h.status(t, sid, st, "")
	}
	h.unchanged(t, before, "duplicate and late callbacks")
	// A failure reported after the delivery cannot undo it.
	h.status(t, sid, "read", "")
	h.status(t, sid, "undelivered", "30007")
	h.status(t, sid, "failed", "")
	if diff := cmp.Diff(want, h.outcome(t, run, send)); diff != "" {
		t.Errorf("after late callbacks (-want +got):\n%s", diff)
	}
	if got := h.gateSMS(t, h.contact(t)); got != dispatcher.StateQueued {
		t.Errorf("gate decides %q, want queued", got)
	}
}

func TestTwilioStatusFailures(t *testing.T) {
	t.Parallel()
	bounced := func(reason, code, sup string) outcome {
		return outcome{State: dispatcher.StateBounced, Reason: reason, ErrorCode: code, Counters: map[string]int64{"planned": 1, dispatcher.StateBounced: 1},
			Feedback: map[string]int64{feedback.FeedbackHardBounces: 1}, Suppression: sup}
	}
	failed := func(code string) outcome {
		return outcome{State: dispatcher.StateFailed, Reason: string(channels.Undelivered), ErrorCode: code, Counters: map[string]int64{"planned": 1, dispatcher.StateFailed: 1},
			Feedback: map[string]int64{feedback.FeedbackFailed: 1}}
	}
	cases := []struct {
		status, code string
		want         outcome
		gate         string
	}{
		{"undelivered", "30005", bounced(string(channels.HardBounce), "30005", dispatcher.SuppressBounce), "suppressed_bounce"},
		{"undelivered", "30006", bounced(string(channels.HardBounce), "30006", dispatcher.SuppressBounce), "suppressed_bounce"},
		{"failed", "21211", bounced(string(channels.HardBounce), "21211", dispatcher.SuppressBounce), "suppressed_bounce"},
		{"failed", "21614", bounced(string(channels.HardBounce), "21614", dispatcher.SuppressBounce), "suppressed_bounce"},
		{"undelivered", "21610", bounced(string(channels.OptedOut), "21610", dispatcher.SuppressStop), "suppressed_stop"},
		{"failed", "21610", bounced(string(channels.OptedOut), "21610", dispatcher.SuppressStop), "suppressed_stop"},
		// Not the recipient's fault: the send failed, the number is kept.
		{"undelivered", "30007", failed("30007"), dispatcher.StateQueued},
		{"failed", "30008", failed("30008"), dispatcher.StateQueued},
		{"failed", "21408", failed("21408"), dispatcher.StateQueued},
		{"undelivered", "", failed(""), dispatcher.StateQueued},
		// One soft bounce is counted and changes neither state nor number.
		{"undelivered", "30003", outcome{State: dispatcher.StateSent, Counters: map[string]int64{"planned": 1, dispatcher.StateSent: 1},
			Feedback: map[string]int64{feedback.FeedbackSoftBounces: 1}}, dispatcher.StateQueued},
	}
	for _, tc := range cases {
		name := tc.status + "-" + tc.code
		if tc.code == "" {
			name = tc.status + "-none"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := statusSetup(t)
			run, send, sid := h.sendSMS(t)
			h.status(t, sid, "sent", "")
			h.status(t, sid, tc.status, tc.code)
			if diff := cmp.Diff(tc.want, h.outcome(t, run, send)); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			if got := h.gateSMS(t, h.contact(t)); got != tc.gate {
				t.Errorf("gate decides %q, want %q", got, tc.gate)
			}
			// Twilio's retry of the callback, and a delivery reported after
			// the failure, change nothing.
			before := h.snapshot(t)
			h.status(t, sid, tc.status, tc.code)
			h.status(t, sid, "sent", "")
			h.unchanged(t, before, "the same callback again")
			h.status(t, sid, "delivered", "")
			got := h.outcome(t, run, send)
			if tc.want.State == dispatcher.StateSent {
				tc.want.State, tc.want.Counters = dispatcher.StateDelivered, map[string]int64{"planned": 1, dispatcher.StateDelivered: 1}
				tc.want.Feedback[feedback.FeedbackDelivered] = 1
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("outcome after late callbacks (-want +got):\n%s", diff)
			}
		})
	}
}

// Soft bounces (30003) on three sends to the same number within the window
// suspend it for a time; the same send bouncing twice counts once.
func TestTwilioStatusSoftBouncesSuspend(t *testing.T) {
	t.Parallel()
	// Each callback is recorded at the clock's time: a minute apart, as
	// real ones come, and each at its own time.
	h := statusSetup(t, withClock(time.Now()))
	clock := h.b.clock
	run1, send1, sid1 := h.sendSMS(t)
	_, _, sid2 := h.sendSMS(t)
	h.status(t, sid1, "undelivered", "30003")
	clock.Add(time.Minute)
	h.status(t, sid1, "undelivered", "30003")
	clock.Add(time.Minute)
	h.status(t, sid2, "undelivered", "30003")
	if got := h.suppression(t, stopPhone).Reason; got != "" {
		t.Fatalf("suppressed (%s) after soft bounces on two sends", got)
	}
	if got := h.outcome(t, run1, send1); got.State != dispatcher.StateSent || got.Feedback[feedback.FeedbackSoftBounces] != 1 {
		t.Errorf("first send: %+v, want sent with one soft bounce", got)
	}
	_, _, sid3 := h.sendSMS(t)
	clock.Add(time.Minute)
	h.status(t, sid3, "undelivered", "30003")
	if sup, now := h.suppression(t, stopPhone), clock.Now(); sup.Reason != dispatcher.SuppressBounce || sup.Until.Before(now.Add(29*24*time.Hour)) || sup.Until.After(now.Add(31*24*time.Hour)) {
		t.Errorf("suppression %+v, want a bounce for 30 days", sup)
	}
	if got := h.gateSMS(t, h.contact(t)); got != "suppressed_bounce" {
		t.Errorf("gate decides %q, want suppressed_bounce", got)
	}
}

func TestTwilioStatusConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	h := statusSetup(t)
	run, send, sid := h.sendSMS(t)
	h.sendConcurrently(t, twilioStatusPath, twiliotest.StatusForm(sid, stopPhone, "undelivered", "30005"), 12, http.StatusOK)
	got := h.outcome(t, run, send)
	if got.State != dispatcher.StateBounced || got.Feedback[feedback.FeedbackHardBounces] != 1 || got.Counters[dispatcher.StateBounced] != 1 {
		t.Errorf("outcome %+v, want bounced and counted once", got)
	}
}

func TestTwilioStatusUnknownMessage(t *testing.T) {
	t.Parallel()
	h := statusSetup(t)
	h.sendSMS(t)
	before := h.snapshot(t)
	for _, st := range [][2]string{{"delivered", ""}, {"undelivered", "30005"}, {"failed", "21610"}, {"undelivered", "30003"}} {
		h.status(t, twiliotest.NewMessageSID(), st[0], st[1])
	}
	h.unchanged(t, before, "callbacks for messages Missive does not know")
	if got := h.suppression(t, stopPhone).Reason; got != "" {
		t.Errorf("suppressed (%s) by a message that is not ours", got)
	}
}

func TestTwilioStatusAttacks(t *testing.T) {
	t.Parallel()
	h := statusSetup(t)
	run, send, sid := h.sendSMS(t)
	valid := twiliotest.StatusForm(sid, stopPhone, "delivered", "")
	with := func(k, v string) url.Values { return twiliotest.With(valid, k, v) }
	sign := func(f url.Values) string {
		return twiliotest.Sign(twiliotest.AuthToken, twilioPublicURL+twilioStatusPath, f)
	}
	bounce := twiliotest.StatusForm(sid, stopPhone, "undelivered", "30005")
	twice := twiliotest.With(valid, "MessageStatus", "delivered", "undelivered")
	h.refuses(t, twilioStatusPath, bounce, []forged{
		{"status changed after signing", twilioStatusPath, with("MessageStatus", "undelivered").Encode(), sign(valid)},
		{"error code changed after signing", twilioStatusPath, with("ErrorCode", "21610").Encode(), sign(with("ErrorCode", "30007"))},
		{"error code added after signing", twilioStatusPath, bounce.Encode(), sign(with("MessageStatus", "undelivered"))},
		{"sid changed after signing", twilioStatusPath, bounce.Encode(), sign(with("MessageSid", twiliotest.NewMessageSID()))},
		{"number changed after signing", twilioStatusPath, with("To", otherPhone).Encode(), sign(valid)},
		{"parameter given twice", twilioStatusPath, twice.Encode(), sign(twice)},
		{"parameter given twice, first signed", twilioStatusPath, bounce.Encode() + "&ErrorCode=21610", sign(bounce)},
	}, map[string]url.Values{
		"no MessageStatus":       with("MessageStatus", ""),
		"status with markup":     with("MessageStatus", "<delivered>"),
		"upper-case status":      with("MessageStatus", "DELIVERED"),
		"error code not numeric": with("ErrorCode", "30005;DROP"),
		"error code too long":    with("ErrorCode", strings.Repeat("3", 40)),
		"negative error code":    with("ErrorCode", "-30005"),
	})
	if got := h.outcome(t, run, send); got.State != dispatcher.StateSent || got.Suppression != "" {
		t.Fatalf("refused requests changed the send: %+v", got)
	}

	// Signed as Twilio signs it, query included, the delivery is taken.
	r := h.post(t, twilioStatusPath+"?rc=3&rp=all", valid.Encode(), twiliotest.Sign(twiliotest.AuthToken, twilioPublicURL+twilioStatusPath+"?rc=3&rp=all", valid))
	if r.status != http.StatusOK || r.body != emptyTwiML {
		t.Fatalf("valid request: %d %s", r.status, r.body)
	}
	if got := h.outcome(t, run, send); got.State != dispatcher.StateDelivered || got.Feedback[feedback.FeedbackDelivered] != 1 {
		t.Errorf("valid request: %+v, want delivered", got)
	}
}

// FuzzTwilioStatus checks that no form, signed or not, gets a server
// error, and that a handled callback is answered with empty TwiML. The
// seeds include a message Missive really sent.
func FuzzTwilioStatus(f *testing.F) {
	check := func(err error) {
		if err != nil {
			f.Fatal(err)
		}
	}
	b := setup(f, withTwilioWebhooks())
	ctx := context.Background()
	s := b.d.Store
	check(s.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Kind: dispatcher.Marketing}))
	check(s.PutTemplate(ctx, &templates.Template{ID: "news-sms", SMS: &templates.SMS{Body: "News"}}))
	check(s.UpsertContact(ctx, &dispatcher.Contact{ID: "c1", Phone: stopPhone}, "Europe/Paris"))
	check(s.RecordConsent(ctx, "c1", dispatcher.ConsentEvent{Channel: channels.SMS, Topic: "newsletter", State: dispatcher.Granted, Source: "api"}))
	check(s.PutSegment(ctx, &dispatcher.Segment{ID: "c1-only", Contacts: []string{"c1"}}))
	check(b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "sms", Topic: "newsletter", Segment: "c1-only",
		Channels: []channels.Kind{channels.SMS}, Templates: map[channels.Kind]string{channels.SMS: "news-sms"}}))
	stop := b.startWorker(f)
	run, err := b.d.Pipeline.StartRun(ctx, "sms", time.Now())
	check(err)
	if _, err := b.twilio.Wait(1, 20*time.Second); err != nil {
		f.Fatal(err)
	}
	var sid string
	waitFor(f, "the SMS to be sent", 20*time.Second, func() bool {
		if sd, err := s.Send(ctx, dispatcher.SendID(run, "c1", channels.SMS)); err == nil && sd.State == dispatcher.StateSent {
			sid = sd.Provider
		}
		return sid != ""
	})
	stop()

	addTwilioSeeds(f, twiliotest.StatusSeeds(sid, stopPhone))
	h := b.srv.Config.Handler
	f.Fuzz(func(t *testing.T, body string, signed bool) {
		rec := serveTwilioFuzz(h, twilioStatusPath, body, signed)
		switch rec.Code {
		case http.StatusOK:
			if rec.Body.String() != emptyTwiML {
				t.Fatalf("answer %q for %q", rec.Body, body)
			}
		case http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// A sign-up by phone: the number gets an SMS asking for YES, nothing is
// granted until the YES comes back through the signed Twilio webhook, then
// the ledger holds the consent with its wording version and evidence.
func TestSignupBySMSConfirmedWithYes(t *testing.T) {
	t.Parallel()
	h := twilioSetup(t)
	h.b.startWorker(t)
	ctx := context.Background()
	const phone = "+33611223344"
	form := url.Values{"topics": {"newsletter"}, "phone": {phone}, "wording": {"sms-v2"}, "locale": {"fr"}}
	resp, err := h.srv.Client().Post(h.srv.URL+"/subscribe", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("subscribe answered %d", resp.StatusCode)
	}
	msgs, err := h.b.twilio.Wait(1, 10*time.Second)
	must(t, err)
	if msgs[0].To != phone || !strings.Contains(msgs[0].Body, "YES") {
		t.Fatalf("confirmation SMS to %q: %q", msgs[0].To, msgs[0].Body)
	}
	id := h.b.pendingContact(t)
	if cs, _ := h.b.d.Store.Consents(ctx, id); cs["sms/newsletter"] == dispatcher.Granted {
		t.Fatal("consent granted before the YES")
	}
	h.sms(t, phone, "yes")
	cs, err := h.b.d.Store.Consents(ctx, id)
	must(t, err)
	if cs["sms/newsletter"] != dispatcher.Granted {
		t.Fatalf("consents after YES: %v", cs)
	}
	ledger, err := h.b.d.Store.ConsentLedger(ctx, id)
	must(t, err)
	last := ledger[len(ledger)-1]
	if last.Source != "signup" || last.Evidence["wording"] != "sms-v2" || last.Evidence["confirmed_via"] != "sms-yes" || last.Evidence["message_sid"] == "" {
		t.Errorf("ledger entry %+v", last)
	}
}

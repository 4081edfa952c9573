package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"io"
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

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	gatepkg "github.com/missive-dev/missive/dispatcher/gate"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
)

const (
	inboundPath = "/webhooks/twilio/inbound"
	// twilioURL is what Twilio is configured to call: setup's PublicURL
	// and the route. The test server listens elsewhere (127.0.0.1:port),
	// which proves the handler signs with the public URL, not the Host.
	twilioURL = "https://missive.example" + inboundPath
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

func newMessageSID(t testing.TB) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "SM" + hex.EncodeToString(b[:])
}

// smsForm is the form of an inbound SMS webhook, as Twilio posts it.
func smsForm(sid, from, body string) url.Values {
	return url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "SmsMessageSid": {sid},
		"AccountSid": {twiliotest.AccountSID}, "MessagingServiceSid": {"MG" + strings.Repeat("0", 32)},
		"From": {from}, "To": {"+33757000000"}, "Body": {body},
		"NumMedia": {"0"}, "NumSegments": {"1"}, "FromCountry": {"FR"}, "ApiVersion": {"2010-04-01"},
	}
}

type twilioResp struct {
	status int
	ctype  string
	body   string
}

// refusesMalformed checks that path answers a signed body over the form
// limit with 413, a JSON body with 415 and a GET with 405; the caller
// checks that nothing changed.
func (h *twilioHarness) refusesMalformed(t *testing.T, path, signedURL string, form url.Values) {
	t.Helper()
	big := form.Encode() + "&Pad=" + strings.Repeat("a", maxFormBody)
	if r := h.post(t, path, big, twiliotest.Sign(twiliotest.AuthToken, signedURL, form)); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("body over 64 KiB: status %d, want 413", r.status)
	}
	req, err := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(`{"Body":"STOP"}`))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Twilio-Signature", twiliotest.Sign(twiliotest.AuthToken, signedURL, nil))
	if res, err := h.srv.Client().Do(req); err != nil || res.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("JSON body: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if res, err := h.srv.Client().Get(h.srv.URL + path); err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v", res, err)
	} else {
		res.Body.Close()
	}
}

// post sends a raw body with a signature ("" for none).
func (h *twilioHarness) post(t *testing.T, path, body, sig string) twilioResp {
	t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set("X-Twilio-Signature", sig)
	}
	res, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return twilioResp{status: res.StatusCode, ctype: res.Header.Get("Content-Type"), body: string(b)}
}

// send posts form signed as Twilio signs it.
func (h *twilioHarness) send(t *testing.T, form url.Values) twilioResp {
	t.Helper()
	return h.post(t, inboundPath, form.Encode(), twiliotest.Sign(twiliotest.AuthToken, twilioURL, form))
}

// sms sends one inbound SMS and wants a 200 TwiML answer, which it returns.
func (h *twilioHarness) sms(t *testing.T, from, body string) (sid, twiml string) {
	t.Helper()
	sid = newMessageSID(t)
	r := h.send(t, smsForm(sid, from, body))
	if r.status != http.StatusOK {
		t.Fatalf("SMS %q: status %d: %s", body, r.status, r.body)
	}
	if mt, _, _ := mime.ParseMediaType(r.ctype); mt != "text/xml" {
		t.Fatalf("SMS %q: Content-Type %q", body, r.ctype)
	}
	return sid, r.body
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

// suppression is the reason the number is suppressed for SMS, or "".
func (h *twilioHarness) suppression(t *testing.T, phone string) string {
	t.Helper()
	sup, err := h.b.d.Store.Suppression(context.Background(), channels.SMS, phone)
	if err == dispatcher.ErrNotFound {
		return ""
	}
	must(t, err)
	return sup.Reason
}

// gateSMS is what the gate decides for a newsletter SMS to c.
func (h *twilioHarness) gateSMS(t *testing.T, c *dispatcher.Contact) string {
	t.Helper()
	ctx := context.Background()
	topic, err := h.b.d.Store.Topic(ctx, "newsletter")
	must(t, err)
	camp := &dispatcher.Campaign{ID: "c", Channels: []channels.Kind{channels.SMS}, Templates: map[channels.Kind]string{channels.SMS: "news-sms"}}
	ds, err := h.b.d.Gate.Decide(ctx, time.Now(), gatepkg.Job{Run: "r-" + newMessageSID(t), Campaign: camp, Topic: topic}, []*dispatcher.Contact{c})
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

func (h *twilioHarness) ledger(t *testing.T) []entry {
	t.Helper()
	l, err := h.b.d.Store.ConsentLedger(context.Background(), "c1")
	must(t, err)
	var out []entry
	for _, e := range l {
		out = append(out, entry{string(e.Channel), e.Topic, string(e.State), e.Source, e.Evidence["message_sid"]})
	}
	return out
}

func (h *twilioHarness) consents(t *testing.T) map[string]dispatcher.ConsentState {
	t.Helper()
	m, err := h.b.d.Store.Consents(context.Background(), "c1")
	must(t, err)
	return m
}

func (h *twilioHarness) unsubscribes(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, topic := range []string{"newsletter", "promos", "orders"} {
		m, err := h.b.d.Store.TopicFeedback(context.Background(), topic)
		must(t, err)
		if n := m[storepkg.FeedbackUnsubscribes]; n != 0 {
			out[topic] = n
		}
	}
	return out
}

// seeded is the ledger twilioSetup writes.
var seeded = []entry{
	{"sms", "newsletter", "granted", "api", ""},
	{"sms", "promos", "granted", "api", ""},
	{"email", "newsletter", "granted", "api", ""},
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
			if got := h.suppression(t, stopPhone); got != dispatcher.SuppressStop {
				t.Errorf("suppression %q, want stop", got)
			}
			want := append(slices.Clone(seeded),
				entry{"sms", "newsletter", "withdrawn", "sms-stop", sid},
				entry{"sms", "promos", "withdrawn", "sms-stop", sid})
			if diff := cmp.Diff(want, h.ledger(t)); diff != "" {
				t.Errorf("ledger (-want +got):\n%s", diff)
			}
			wantCur := map[string]dispatcher.ConsentState{"sms/newsletter": dispatcher.Withdrawn, "sms/promos": dispatcher.Withdrawn, "email/newsletter": dispatcher.Granted}
			if diff := cmp.Diff(wantCur, h.consents(t)); diff != "" {
				t.Errorf("consents (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]int64{"newsletter": 1, "promos": 1}, h.unsubscribes(t)); diff != "" {
				t.Errorf("unsubscribe counters (-want +got):\n%s", diff)
			}
			if got := h.gateSMS(t, h.contact(t)); got != "suppressed_stop" {
				t.Errorf("gate decides %q, want suppressed_stop", got)
			}
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
			if got := h.suppression(t, stopPhone); got != "" {
				t.Errorf("still suppressed (%s) after START", got)
			}
			want := append(slices.Clone(seeded),
				entry{"sms", "promos", "withdrawn", "one-click", ""},
				entry{"sms", "newsletter", "withdrawn", "sms-stop", stopSID},
				entry{"sms", "newsletter", "granted", "sms-stop", startSID})
			if diff := cmp.Diff(want, h.ledger(t)); diff != "" {
				t.Errorf("ledger (-want +got):\n%s", diff)
			}
			wantCur := map[string]dispatcher.ConsentState{"sms/newsletter": dispatcher.Granted, "sms/promos": dispatcher.Withdrawn, "email/newsletter": dispatcher.Granted}
			if diff := cmp.Diff(wantCur, h.consents(t)); diff != "" {
				t.Errorf("consents (-want +got):\n%s", diff)
			}
			if got := h.gateSMS(t, h.contact(t)); got != dispatcher.StateQueued {
				t.Errorf("after START the gate decides %q, want queued", got)
			}
			// Only the STOP counted as an unsubscribe.
			if diff := cmp.Diff(map[string]int64{"newsletter": 1}, h.unsubscribes(t)); diff != "" {
				t.Errorf("unsubscribe counters (-want +got):\n%s", diff)
			}
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
		if got := h.suppression(t, stopPhone); got != dispatcher.SuppressBounce {
			t.Errorf("START: suppression %q, want bounce", got)
		}
		// A STOP must not turn the bounce into a stop that START lifts.
		h.sms(t, stopPhone, "STOP")
		h.sms(t, stopPhone, "START")
		if got := h.suppression(t, stopPhone); got != dispatcher.SuppressBounce {
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
		sup, err := h.b.d.Store.Suppression(ctx, channels.SMS, stopPhone)
		must(t, err)
		if sup.Reason != dispatcher.SuppressStop || !sup.Until.IsZero() {
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
	if got := h.suppression(t, otherPhone); got != dispatcher.SuppressStop {
		t.Errorf("suppression %q, want stop", got)
	}
	if diff := cmp.Diff(seeded, h.ledger(t)); diff != "" {
		t.Errorf("c1's ledger changed (-want +got):\n%s", diff)
	}
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
	valid := smsForm(newMessageSID(t), stopPhone, "STOP")
	sign := func(u string, f url.Values) string { return twiliotest.Sign(twiliotest.AuthToken, u, f) }
	with := func(k, v string) url.Values {
		f := url.Values{}
		for name, vs := range valid {
			f[name] = slices.Clone(vs)
		}
		f.Set(k, v)
		return f
	}
	twice := with("From", otherPhone)
	twice.Add("From", stopPhone)
	cases := []struct {
		name, path, body, sig string
	}{
		{"no signature", inboundPath, valid.Encode(), ""},
		{"garbage signature", inboundPath, valid.Encode(), "c2lnbmF0dXJl"},
		{"other token", inboundPath, valid.Encode(), twiliotest.Sign(strings.Repeat("0", 32), twilioURL, valid)},
		{"signed for the Host the server listens on", inboundPath, valid.Encode(), sign(h.srv.URL+inboundPath, valid)},
		{"signed for another host", inboundPath, valid.Encode(), sign("https://evil.example"+inboundPath, valid)},
		{"signed for http", inboundPath, valid.Encode(), sign("http://missive.example"+inboundPath, valid)},
		{"signed for another path", inboundPath, valid.Encode(), sign("https://missive.example/webhooks/twilio/status", valid)},
		{"signed without the query sent", inboundPath + "?x=1", valid.Encode(), sign(twilioURL, valid)},
		{"body changed after signing", inboundPath, with("Body", "START").Encode(), sign(twilioURL, valid)},
		{"number changed after signing", inboundPath, with("From", otherPhone).Encode(), sign(twilioURL, valid)},
		{"parameter added after signing", inboundPath, valid.Encode() + "&Extra=1", sign(twilioURL, valid)},
		{"parameter given twice", inboundPath, twice.Encode(), sign(twilioURL, twice)},
		{"parameter given twice, first signed", inboundPath, valid.Encode() + "&From=" + url.QueryEscape(otherPhone), sign(twilioURL, valid)},
		{"signature of an empty form", inboundPath, "", sign(twilioURL, nil)[:10]},
	}
	for _, tc := range cases {
		before := h.snapshot(t)
		r := h.post(t, tc.path, tc.body, tc.sig)
		if r.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403: %s", tc.name, r.status, r.body)
		}
		h.unchanged(t, before, tc.name)
	}

	// Signed but malformed: 400, nothing changed.
	for name, f := range map[string]url.Values{
		"no MessageSid":       with("MessageSid", ""),
		"upper-case sid":      with("MessageSid", strings.ToUpper(valid.Get("MessageSid"))),
		"sid of a call":       with("MessageSid", "CA"+strings.Repeat("a", 32)),
		"sid with a key part": with("MessageSid", valid.Get("MessageSid")+":x"),
		"no From":             with("From", ""),
		"From not E.164":      with("From", "0612345678"),
		"From not a number":   with("From", "+33<script>"),
	} {
		before := h.snapshot(t)
		if r := h.send(t, f); r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", name, r.status, r.body)
		}
		h.unchanged(t, before, name)
	}

	// Too large, wrong type, wrong method.
	before := h.snapshot(t)
	h.refusesMalformed(t, inboundPath, twilioURL, valid)
	h.unchanged(t, before, "refused requests")

	// The valid request works; the same request again is answered alike
	// and changes nothing.
	r1 := h.send(t, valid)
	if r1.status != http.StatusOK || r1.body != twiml(stopReply) {
		t.Fatalf("valid request: %d %s", r1.status, r1.body)
	}
	before = h.snapshot(t)
	for range 3 {
		r := h.send(t, valid)
		if r != r1 {
			t.Errorf("replay answered %+v, first answer %+v", r, r1)
		}
	}
	h.unchanged(t, before, "replay")

	// A STOP replayed after START does not stop the number again.
	startSID, _ := h.sms(t, stopPhone, "START")
	before = h.snapshot(t)
	h.send(t, valid)
	h.unchanged(t, before, "STOP replayed after START")
	if got := h.suppression(t, stopPhone); got != "" {
		t.Errorf("suppressed (%s) by a replayed STOP", got)
	}
	sid := valid.Get("MessageSid")
	want := append(slices.Clone(seeded),
		entry{"sms", "newsletter", "withdrawn", "sms-stop", sid},
		entry{"sms", "promos", "withdrawn", "sms-stop", sid},
		entry{"sms", "newsletter", "granted", "sms-stop", startSID},
		entry{"sms", "promos", "granted", "sms-stop", startSID})
	if diff := cmp.Diff(want, h.ledger(t)); diff != "" {
		t.Errorf("ledger (-want +got):\n%s", diff)
	}
	ttl := h.b.cfg.Redis.TTL(context.Background(), h.b.d.Store.Key("twilio", "sid", sid)).Val()
	if ttl < 6*24*time.Hour || ttl > 7*24*time.Hour {
		t.Errorf("message record TTL %v, want 7 days", ttl)
	}
}

func TestTwilioInboundConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	h := twilioSetup(t)
	form := smsForm(newMessageSID(t), stopPhone, "STOP")
	statuses := postSignedConcurrently(t, h.srv, inboundPath, twilioURL, form, 12)
	for _, s := range statuses {
		if s != http.StatusOK && s != http.StatusServiceUnavailable {
			t.Errorf("statuses %v", statuses)
			break
		}
	}
	if !slices.Contains(statuses, http.StatusOK) {
		t.Errorf("no request succeeded: %v", statuses)
	}
	sid := form.Get("MessageSid")
	want := append(slices.Clone(seeded),
		entry{"sms", "newsletter", "withdrawn", "sms-stop", sid},
		entry{"sms", "promos", "withdrawn", "sms-stop", sid})
	if diff := cmp.Diff(want, h.ledger(t)); diff != "" {
		t.Errorf("ledger (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"newsletter": 1, "promos": 1}, h.unsubscribes(t)); diff != "" {
		t.Errorf("unsubscribe counters (-want +got):\n%s", diff)
	}
}

func TestTwilioInboundOffWithoutToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := b.srv
	form := smsForm(newMessageSID(t), stopPhone, "STOP")
	req, _ := http.NewRequest("POST", srv.URL+inboundPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliotest.Sign("", twilioURL, form))
	res, err := srv.Client().Do(req)
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("status %d, want 404", res.StatusCode)
	}
	if _, err := b.d.Store.Suppression(context.Background(), channels.SMS, stopPhone); err != dispatcher.ErrNotFound {
		t.Errorf("suppression lookup: %v, want not found", err)
	}
}

// FuzzTwilioInbound checks that no form, signed or not, gets a server
// error, and that a TwiML answer is well-formed XML that never carries
// markup from the request.
func FuzzTwilioInbound(f *testing.F) {
	for _, s := range []string{
		smsForm("SM"+strings.Repeat("a", 32), stopPhone, "STOP").Encode(),
		smsForm("SM"+strings.Repeat("b", 32), stopPhone, "start").Encode(),
		smsForm("SM"+strings.Repeat("c", 32), otherPhone, "HELP").Encode(),
		smsForm("MM"+strings.Repeat("d", 32), stopPhone, "<b>STOP</b>\r\n").Encode(),
		"MessageSid=SM&From=%2B&Body=stop", "Body=%zz", "From=a&From=b", "a=1;b=2", "%", "&&&=", "\xff=\xfe",
		"MessageSid=SM" + strings.Repeat("e", 32) + "&From=%2B33612345678&Body=arr%C3%AAt",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
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
		req := httptest.NewRequest("POST", inboundPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if form, err := url.ParseQuery(body); signed && err == nil {
			req.Header.Set("X-Twilio-Signature", twiliotest.Sign(twiliotest.AuthToken, twilioURL, form))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusOK {
			return
		}
		out := rec.Body.String()
		dec := xml.NewDecoder(strings.NewReader(out))
		elems := 0
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("TwiML is not XML: %v: %s", err, out)
			}
			if se, ok := tok.(xml.StartElement); ok {
				elems++
				if se.Name.Local != "Response" && se.Name.Local != "Message" {
					t.Fatalf("unexpected element %s: %s", se.Name.Local, out)
				}
			}
		}
		if elems == 0 || elems > 2 {
			t.Fatalf("TwiML with %d elements: %s", elems, out)
		}
	})
}

// postSignedConcurrently posts form, signed for publicURL as Twilio does,
// n times at once to path on srv, and returns the statuses.
func postSignedConcurrently(t *testing.T, srv *httptest.Server, path, publicURL string, form url.Values, n int) []int {
	t.Helper()
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range statuses {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Twilio-Signature", twiliotest.Sign(twiliotest.AuthToken, publicURL, form))
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses[i] = res.StatusCode
		})
	}
	wg.Wait()
	return statuses
}

package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/outbound"
)

// receivedEvent is an event as a receiver saw it, signature checked.
type receivedEvent struct {
	ID   string
	Type string
	Data map[string]string
	Body string
}

// receiver is an upstream system's webhook endpoint: a real HTTP server
// that checks each call's signature as the Standard Webhooks specification
// tells a receiver to (specVerify, written from the specification, not
// from Missive's signer) and answers the statuses of fail in turn, then
// 200.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	fail   []int
	got    []receivedEvent // accepted (2xx) calls, in order
	calls  int
	bad    int // calls whose signature did not verify
}

func newReceiver(t *testing.T, fail ...int) *receiver {
	r := &receiver{t: t, fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if err := specVerify(r.secret, req.Header, body, time.Now()); err != nil {
		r.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if len(r.fail) > 0 {
		status := r.fail[0]
		r.fail = r.fail[1:]
		w.WriteHeader(status)
		return
	}
	var p struct {
		Type string
		Data map[string]string
	}
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("event body: %v", err)
	}
	r.got = append(r.got, receivedEvent{ID: req.Header.Get(outbound.HeaderID), Type: p.Type, Data: p.Data, Body: string(body)})
	w.WriteHeader(http.StatusNoContent)
}

// specVerify checks a webhook call as https://www.standardwebhooks.com
// says a receiver does: the secret is the base64 after "whsec_"; the
// signed content is "<webhook-id>.<webhook-timestamp>.<body>"; the
// signature header holds space-separated "v1,<base64 HMAC-SHA256>"
// values, one of which must match, compared in constant time; the
// timestamp (Unix seconds) must lie within five minutes of now.
func specVerify(secret string, h http.Header, body []byte, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		return fmt.Errorf("secret: not whsec_<base64>")
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || id == "" {
		return fmt.Errorf("missing webhook-id or webhook-timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp outside the tolerance")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := []byte(base64.StdEncoding.EncodeToString(m.Sum(nil)))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if v, got, ok := strings.Cut(sig, ","); ok && v == "v1" && hmac.Equal([]byte(got), want) {
			return nil
		}
	}
	return fmt.Errorf("no signature matches")
}

func (r *receiver) events() []receivedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedEvent(nil), r.got...)
}

// checkEvents waits until the receiver got as many events as want names
// (what names them), then checks that they are want, in order, as summary
// puts each, and that none carries addr.
func (r *receiver) checkEvents(t *testing.T, what, addr string, summary func(receivedEvent) string, want ...string) {
	t.Helper()
	waitFor(t, what, 30*time.Second, func() bool { return len(r.events()) >= len(want) })
	var got []string
	for _, e := range r.events() {
		got = append(got, summary(e))
		if strings.Contains(e.Body, addr) {
			t.Errorf("event %s carries the address", e.Type)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// register registers the receiver for events and returns the endpoint.
func (r *receiver) register(t *testing.T, b *testBundle, body string) outbound.Endpoint {
	t.Helper()
	res := b.api.do("POST", "/v1/webhooks", body)
	if res.status != http.StatusCreated {
		t.Fatalf("register: %d %s", res.status, res.body)
	}
	var ep outbound.Endpoint
	must(t, json.Unmarshal(res.body, &ep))
	r.mu.Lock()
	r.secret = ep.Secret
	r.mu.Unlock()
	return ep
}

func consentBody(state string) string {
	return fmt.Sprintf(`{"channel":"email","topic":"newsletter","state":%q,"source":"api"}`, state)
}

func TestWebhookEventsInOrderUnderRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics(), withWorker())
	ctx := context.Background()
	const addr = "ana.webhook@example.com"
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "ana", Email: addr}, "Europe/Paris"))
	// The first call fails: the events after it must wait for its retry.
	rc := newReceiver(t, http.StatusInternalServerError)
	ep := rc.register(t, b, fmt.Sprintf(`{"url":%q,"events":["consent.changed"]}`, rc.srv.URL+"/hooks"))
	if !strings.HasPrefix(ep.Secret, "whsec_") || ep.IncludeAddress {
		t.Fatalf("registration answered %+v", ep)
	}
	if audit := b.api.do("GET", "/v1/audit?limit=1", ""); !strings.Contains(string(audit.body), `"action":"webhook.create","target":"`+ep.ID+`"`) || strings.Contains(string(audit.body), rc.srv.URL) {
		t.Errorf("audit: %s", audit.body)
	}

	states := []string{"granted", "withdrawn", "granted", "withdrawn"}
	for _, st := range states {
		if res := b.api.do("POST", "/v1/contacts/ana/consents", consentBody(st)); res.status != http.StatusCreated {
			t.Fatalf("consent: %d %s", res.status, res.body)
		}
	}
	waitFor(t, "every event delivered", 30*time.Second, func() bool { return len(rc.events()) == len(states) })
	got := rc.events()
	var order []string
	for _, e := range got {
		order = append(order, e.Data["state"])
		if e.Type != dispatcher.EventConsentChanged || e.Data["contact"] != "ana" || e.Data["topic"] != "newsletter" || e.Data["reason"] != "api" {
			t.Errorf("event %+v", e)
		}
		if strings.Contains(e.Body, addr) || e.Data["address"] != "" {
			t.Errorf("an event carries the address without include_address: %s", e.Body)
		}
	}
	if diff := cmp.Diff(states, order); diff != "" {
		t.Errorf("events out of order (-want +got):\n%s", diff)
	}
	rc.mu.Lock()
	if rc.bad != 0 || rc.calls != len(states)+1 {
		t.Errorf("%d calls, %d with a bad signature; want %d, none", rc.calls, rc.bad, len(states)+1)
	}
	rc.mu.Unlock()

	// The log: the failed attempt, then one success an event, newest first.
	var log struct {
		Deliveries []struct {
			EventID   string `json:"event_id"`
			Status    int
			LatencyMS *int64 `json:"latency_ms"`
			Error     string
		}
	}
	// A delivery is logged once its answer is read, after the receiver
	// counted the event: wait for the last one.
	var res resp
	waitFor(t, "every attempt logged", 10*time.Second, func() bool {
		res = b.api.do("GET", "/v1/webhooks/"+ep.ID+"/deliveries", "")
		if res.status != http.StatusOK {
			t.Fatalf("deliveries: %d %s", res.status, res.body)
		}
		must(t, json.Unmarshal(res.body, &log))
		return len(log.Deliveries) >= len(states)+1
	})
	if len(log.Deliveries) != len(states)+1 {
		t.Fatalf("deliveries: %s", res.body)
	}
	first := log.Deliveries[len(log.Deliveries)-1]
	if first.EventID != got[0].ID || first.Status != 500 || first.Error != "status" || first.LatencyMS == nil {
		t.Errorf("first attempt logged %+v, want event %s answered 500", first, got[0].ID)
	}
	for i, d := range log.Deliveries[:len(states)] {
		if want := got[len(states)-1-i].ID; d.EventID != want || d.Status != 204 || d.Error != "" {
			t.Errorf("attempt %d logged %+v, want %s delivered", i, d, want)
		}
	}
	if strings.Contains(string(res.body), addr) || strings.Contains(string(res.body), rc.srv.URL) {
		t.Errorf("the delivery log holds an address or the URL: %s", res.body)
	}

	// A replay delivers the same event again, with the same id.
	res = b.api.do("POST", "/v1/webhooks/"+ep.ID+"/replay", fmt.Sprintf(`{"event_id":%q}`, got[1].ID))
	if res.status != http.StatusAccepted {
		t.Fatalf("replay: %d %s", res.status, res.body)
	}
	waitFor(t, "the replay", 30*time.Second, func() bool { return len(rc.events()) == len(states)+1 })
	if again := rc.events()[len(states)]; again.ID != got[1].ID || again.Body != got[1].Body {
		t.Errorf("replay delivered %+v, want %+v", again, got[1])
	}
	if res := b.api.do("POST", "/v1/webhooks/"+ep.ID+"/replay", `{"event_id":"msg_000000000000000000000000"}`); res.status != http.StatusNotFound {
		t.Errorf("replay of an unknown event: %d %s", res.status, res.body)
	}

	// Nothing in Redis holds the address or the secret in the clear.
	for k, v := range snapshotRedis(t, b) {
		if strings.Contains(v, addr) || strings.Contains(v, ep.Secret) || strings.Contains(v, strings.TrimPrefix(ep.Secret, "whsec_")) {
			t.Errorf("key %s holds the address or the secret in the clear", k)
		}
	}
	// Nor the logs.
	if logs := b.logs.String(); strings.Contains(logs, addr) || strings.Contains(logs, ep.Secret) {
		t.Error("the logs hold the address or the secret")
	}

	// Listing shows no secret; deleting stops deliveries.
	res = b.api.do("GET", "/v1/webhooks", "")
	if res.status != http.StatusOK || strings.Contains(string(res.body), ep.Secret) || !strings.Contains(string(res.body), ep.ID) {
		t.Errorf("list: %d %s", res.status, res.body)
	}
	if res := b.api.do("DELETE", "/v1/webhooks/"+ep.ID, ""); res.status != http.StatusNoContent {
		t.Errorf("delete: %d %s", res.status, res.body)
	}
	if res := b.api.do("GET", "/v1/webhooks/"+ep.ID+"/deliveries", ""); res.status != http.StatusNotFound {
		t.Errorf("deliveries of a deleted endpoint: %d %s", res.status, res.body)
	}
}

func TestWebhookIncludeAddress(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics(), withWorker())
	ctx := context.Background()
	const addr = "bo.webhook@example.com"
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "bo", Email: addr}, "Europe/Paris"))
	// The second endpoint's only event fails once: the queue's own retry
	// (with backoff) delivers it.
	with, without := newReceiver(t), newReceiver(t, http.StatusServiceUnavailable)
	with.register(t, b, fmt.Sprintf(`{"url":%q,"events":["consent.changed","unsubscribed"],"include_address":true}`, with.srv.URL))
	without.register(t, b, fmt.Sprintf(`{"url":%q,"events":["unsubscribed"]}`, without.srv.URL))

	// A withdrawal on the preference page: consent.changed and unsubscribed.
	_, err := b.d.Consent.Withdraw(ctx, "bo", "email", "newsletter", "preference-page", nil)
	must(t, err)
	waitFor(t, "the events", 30*time.Second, func() bool { return len(with.events()) == 2 && len(without.events()) == 1 })
	types := map[string]bool{}
	for _, e := range with.events() {
		types[e.Type] = true
		if e.Data["address"] != addr {
			t.Errorf("include_address: event %s without the address", e.Type)
		}
	}
	if !types["consent.changed"] || !types["unsubscribed"] {
		t.Errorf("events %v, want consent.changed and unsubscribed", types)
	}
	if e := without.events()[0]; e.Type != "unsubscribed" || strings.Contains(e.Body, addr) || e.Data["reason"] != "preference-page" {
		t.Errorf("event without address: %s", e.Body)
	}
	without.mu.Lock()
	if without.calls != 2 || without.bad != 0 {
		t.Errorf("%d calls (%d badly signed), want 2: a 503 and its retry", without.calls, without.bad)
	}
	without.mu.Unlock()
	// The endpoint that receives addresses is a recipient in the register.
	reg := b.api.do("GET", "/v1/register", "")
	host := strings.TrimPrefix(with.srv.URL, "http://")
	if !strings.Contains(string(reg.body), "outbound webhook ("+host+")") || strings.Contains(string(reg.body), strings.TrimPrefix(without.srv.URL, "http://")) {
		t.Errorf("register recipients: %s", reg.body)
	}
	for k, v := range snapshotRedis(t, b) {
		if strings.Contains(v, addr) {
			t.Errorf("key %s holds the address in the clear", k)
		}
	}
}

func TestWebhookRegistrationRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct{ body, field string }{
		{`{"url":"http://crm.example.com/hooks","events":["bounced"]}`, "url"},
		{`{"url":"ftp://crm.example.com/hooks","events":["bounced"]}`, "url"},
		{`{"url":"https://user:pw@crm.example.com/hooks","events":["bounced"]}`, "url"},
		{`{"url":"not a url","events":["bounced"]}`, "url"},
		{`{"events":["bounced"]}`, "url"},
		{`{"url":"https://crm.example.com/hooks","events":["opened"]}`, "events"},
		{`{"url":"https://crm.example.com/hooks","events":[]}`, "events"},
		{`{"url":"https://crm.example.com/hooks","events":["bounced","bounced"]}`, "events"},
		{`{"url":"https://crm.example.com/hooks","events":"bounced"}`, "events"},
		{`{"url":"https://crm.example.com/hooks","events":["bounced"],"include_address":"yes"}`, "include_address"},
		{`{"url":"https://crm.example.com/hooks","events":["bounced"],"secret":"whsec_x"}`, "secret"},
	} {
		before := snapshotRedis(t, b)
		res := b.api.do("POST", "/v1/webhooks", tc.body)
		if diff := cmp.Diff(apiErr("invalid", tc.field), errorShape(res.json(t))); res.status != http.StatusUnprocessableEntity || diff != "" {
			t.Errorf("%s: %d, error (-want +got):\n%s", tc.body, res.status, diff)
		}
		if diff := cmp.Diff(before, snapshotRedis(t, b)); diff != "" {
			t.Errorf("%s changed Redis:\n%s", tc.body, diff)
		}
	}
	if res := b.api.do("POST", "/v1/webhooks/wh_000000000000000000000000/replay", `{"event_id":"msg_000000000000000000000000"}`); res.status != http.StatusNotFound {
		t.Errorf("replay on an unknown endpoint: %d %s", res.status, res.body)
	}
	if res := b.api.do("POST", "/v1/webhooks/wh_000000000000000000000000/replay", `{"event_id":"nope"}`); res.status != http.StatusUnprocessableEntity {
		t.Errorf("replay of a malformed event id: %d %s", res.status, res.body)
	}
	if res := b.api.do("DELETE", "/v1/webhooks/x", ""); res.status != http.StatusNotFound {
		t.Errorf("delete of a malformed id: %d", res.status)
	}
}

func TestWebhookFeedbackEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics(), withWorker())
	ctx := context.Background()
	const addr = "cy.webhook@example.com"
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "cy", Email: addr}, "Europe/Paris"))
	rc := newReceiver(t)
	rc.register(t, b, fmt.Sprintf(`{"url":%q,"events":["bounced","suppressed","complained","delivered"]}`, rc.srv.URL))

	// A bounce report naming only the address: bounced, then suppressed.
	must(t, b.d.Feedback.RecordDelivery(ctx, channels.Feedback{Channel: channels.Email, Address: addr, Kind: channels.HardBounce, Code: "5.1.1", Source: "dsn"}))
	rc.checkEvents(t, "the bounce's events", addr, func(e receivedEvent) string {
		return e.Type + "/" + e.Data["reason"] + "/" + e.Data["contact"] + "/" + e.Data["channel"]
	}, "suppressed/bounce/cy/email", "bounced/hard_bounce/cy/email")
}

func TestWebhookSignupConfirmed(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	rc := newReceiver(t)
	rc.register(t, b, fmt.Sprintf(`{"url":%q,"events":["signup.confirmed","consent.changed"],"include_address":true}`, rc.srv.URL))
	if w := b.subscribeForm("198.51.100.7", signupValues("dana@example.com", "newsletter")); w.Code != http.StatusAccepted {
		t.Fatalf("POST /subscribe: %d %s", w.Code, w.Body)
	}
	// Nothing is told before the confirmation.
	token := b.confirmToken(t, "dana@example.com")
	if n := len(rc.events()); n != 0 {
		t.Fatalf("%d events before the confirmation", n)
	}
	if w := b.do("POST", "/subscribe/confirm/"+token, "203.0.113.9", formCT, ""); w.Code != http.StatusOK {
		t.Fatalf("POST confirm: %d %s", w.Code, w.Body)
	}
	waitFor(t, "the confirmation's events", 30*time.Second, func() bool { return len(rc.events()) == 2 })
	got := map[string]receivedEvent{}
	for _, e := range rc.events() {
		got[e.Type] = e
	}
	c, s := got["consent.changed"], got["signup.confirmed"]
	if c.Data["state"] != "granted" || c.Data["reason"] != "signup" || c.Data["topic"] != "newsletter" {
		t.Errorf("consent.changed: %s", c.Body)
	}
	if s.Data["topic"] != "newsletter" || s.Data["channel"] != "email" || s.Data["contact"] != c.Data["contact"] || s.Data["contact"] == "" {
		t.Errorf("signup.confirmed: %s", s.Body)
	}
	if s.Data["address"] != "dana@example.com" {
		t.Errorf("include_address: signup.confirmed without the address: %s", s.Body)
	}
}

func TestWebhookSendFailed(t *testing.T) {
	t.Parallel()
	b := setup(t, withWorker())
	sendSetup(t, b)
	b.smtp.Reject("buyer@example.com", 550, "5.1.1", "mailbox unknown")
	rc := newReceiver(t)
	rc.register(t, b, fmt.Sprintf(`{"url":%q,"events":["failed"]}`, rc.srv.URL))
	res := b.api.do("POST", "/v1/sends", orderSend, "Idempotency-Key", "order-1042-failed")
	if res.status != http.StatusAccepted && res.status != http.StatusCreated {
		t.Fatalf("send: %d %s", res.status, res.body)
	}
	var sent struct{ Send string }
	must(t, json.Unmarshal(res.body, &sent))
	waitFor(t, "the failed event", 30*time.Second, func() bool { return len(rc.events()) == 1 })
	e := rc.events()[0]
	if e.Type != "failed" || e.Data["contact"] != "buyer" || e.Data["send"] != sent.Send || e.Data["topic"] != "orders" || e.Data["channel"] != "email" || e.Data["reason"] == "" {
		t.Errorf("failed event: %s (send %s)", e.Body, sent.Send)
	}
	if strings.Contains(e.Body, "buyer@example.com") {
		t.Errorf("the event carries the address: %s", e.Body)
	}
}

func TestWebhookEventsWithAddressErased(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics()) // no worker: the events wait
	ctx := context.Background()
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "eve", Email: "eve.webhook@example.com"}, "Europe/Paris"))
	rc := newReceiver(t)
	with := rc.register(t, b, fmt.Sprintf(`{"url":%q,"events":["consent.changed"],"include_address":true}`, rc.srv.URL))
	without := rc.register(t, b, fmt.Sprintf(`{"url":%q,"events":["consent.changed"]}`, rc.srv.URL+"/ids"))
	if res := b.api.do("POST", "/v1/contacts/eve/consents", consentBody("granted")); res.status != http.StatusCreated {
		t.Fatalf("consent: %d %s", res.status, res.body)
	}
	res := b.api.do("DELETE", "/v1/contacts/eve", "")
	var rep struct{ Erased map[string]int }
	must(t, json.Unmarshal(res.body, &rep))
	if res.status != http.StatusOK || rep.Erased["webhook_events"] != 1 {
		t.Fatalf("erasure: %d %s, want the event with the address erased", res.status, res.body)
	}
	var withKeys, withoutKeys int
	for k := range snapshotRedis(t, b) {
		if strings.Contains(k, ":wh:{"+with.ID+"}:") {
			withKeys++
		}
		if strings.Contains(k, ":wh:{"+without.ID+"}:ev:") {
			withoutKeys++
		}
	}
	if withKeys != 0 || withoutKeys != 1 {
		t.Errorf("after erasure: %d keys of the endpoint with addresses (want 0), %d events of the other (want 1)", withKeys, withoutKeys)
	}
}

func TestWebhookEventDroppedThenReplayed(t *testing.T) {
	t.Parallel()
	// One retry: the event fails twice, is dropped, then replayed.
	b := setup(t, withBasics(), withWorker(), withConfig(func(c *app.Config) { c.Tuning.MaxRetry = 1 }))
	ctx := context.Background()
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "fay", Email: "fay.webhook@example.com"}, "Europe/Paris"))
	rc := newReceiver(t, http.StatusBadGateway, http.StatusBadGateway)
	ep := rc.register(t, b, fmt.Sprintf(`{"url":%q,"events":["consent.changed"]}`, rc.srv.URL))
	if res := b.api.do("POST", "/v1/contacts/fay/consents", consentBody("granted")); res.status != http.StatusCreated {
		t.Fatalf("consent: %d %s", res.status, res.body)
	}
	type delivery struct {
		EventID string `json:"event_id"`
		Status  int
		Error   string
	}
	deliveries := func() []delivery {
		var log struct{ Deliveries []delivery }
		must(t, json.Unmarshal(b.api.do("GET", "/v1/webhooks/"+ep.ID+"/deliveries", "").body, &log))
		return log.Deliveries
	}
	waitFor(t, "the event dropped", 30*time.Second, func() bool {
		ds := deliveries()
		return len(ds) > 0 && ds[0].Error == "dropped"
	})
	ds := deliveries()
	if len(ds) != 3 || ds[1].Status != 502 || ds[2].Status != 502 || ds[0].EventID != ds[1].EventID {
		t.Fatalf("log %+v, want two 502s then dropped", ds)
	}
	if n := len(rc.events()); n != 0 {
		t.Fatalf("%d events accepted, want none", n)
	}
	if res := b.api.do("POST", "/v1/webhooks/"+ep.ID+"/replay", fmt.Sprintf(`{"event_id":%q}`, ds[0].EventID)); res.status != http.StatusAccepted {
		t.Fatalf("replay: %d %s", res.status, res.body)
	}
	waitFor(t, "the replayed event", 30*time.Second, func() bool { return len(rc.events()) == 1 })
	if e := rc.events()[0]; e.ID != ds[0].EventID || e.Data["state"] != "granted" {
		t.Errorf("replayed %+v", e)
	}
}

// Consents written by the bulk import and an address put on the
// suppression list through the API are told too, without the address.
func TestWebhookImportAndSuppressionEvents(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics(), withWorker())
	const addr = "dee.webhook@example.com"
	rc := newReceiver(t)
	rc.register(t, b, fmt.Sprintf(`{"url":%q,"events":["consent.changed","suppressed"]}`, rc.srv.URL))

	res := b.api.do("POST", "/v1/contacts/import", `{"id":"dee","email":"`+addr+`","consents":[{"channel":"email","topic":"newsletter","state":"granted"}]}`+"\n",
		"Content-Type", "application/x-ndjson")
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"imported":1`) {
		t.Fatalf("import: %d %s", res.status, res.body)
	}
	if res := b.api.do("POST", "/v1/suppressions", `{"channel":"email","address":"`+addr+`","reason":"unsubscribe"}`); res.status != http.StatusCreated {
		t.Fatalf("suppress: %d %s", res.status, res.body)
	}
	// An address that is no contact's tells nobody.
	if res := b.api.do("POST", "/v1/suppressions", `{"channel":"email","address":"nobody@example.com","reason":"unsubscribe"}`); res.status != http.StatusCreated {
		t.Fatalf("suppress: %d %s", res.status, res.body)
	}
	rc.checkEvents(t, "the import's and the suppression's events", addr, func(e receivedEvent) string {
		return e.Type + "/" + e.Data["contact"] + "/" + e.Data["channel"] + "/" + e.Data["state"] + e.Data["reason"]
	}, "consent.changed/dee/email/grantedimport", "suppressed/dee/email/unsubscribe")
}

// The test receiver's check accepts the specification's own example and
// refuses it altered.
func TestSpecVerifyExample(t *testing.T) {
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	const secret, body = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `{"test": 2432232314}`
	at := time.Unix(1614265330, 0)
	if err := specVerify(secret, h, []byte(body), at); err != nil {
		t.Fatalf("the specification's example: %v", err)
	}
	if specVerify(secret, h, []byte(body+" "), at) == nil || specVerify(secret, h, []byte(body), at.Add(6*time.Minute)) == nil {
		t.Error("an altered body or a late call verifies")
	}
}

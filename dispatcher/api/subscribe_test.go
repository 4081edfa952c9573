package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/page"
	"github.com/missive-dev/missive/dispatcher/signup"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// setupSignup builds a Dispatcher with a worker, to send confirmations,
// and two marketing topics and a transactional one.
func setupSignup(t *testing.T) *testBundle {
	t.Helper()
	b := setup(t, withWorker())
	ctx := context.Background()
	must(t, b.d.Store.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Name: "La lettre", Kind: dispatcher.Marketing}))
	must(t, b.d.Store.PutTopic(ctx, &dispatcher.Topic{ID: "promotions", Name: "Promotions", Kind: dispatcher.Marketing}))
	must(t, b.d.Store.PutTopic(ctx, &dispatcher.Topic{ID: "orders", Kind: dispatcher.Transactional}))
	return b
}

// do serves one request from the client at ip, in process: the client's
// address is what the sign-up limits count.
func (b *testBundle) do(method, target, ip, contentType, body string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.RemoteAddr = ip + ":40000"
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	b.srv.Config.Handler.ServeHTTP(w, r)
	return w
}

const formCT = "application/x-www-form-urlencoded"

func (b *testBundle) subscribeForm(ip string, v url.Values, header ...string) *httptest.ResponseRecorder {
	return b.do("POST", "/subscribe", ip, formCT, v.Encode(), header...)
}

var confirmLinkRe = regexp.MustCompile(`https://missive\.example/subscribe/confirm/([A-Za-z0-9_-]{43})`)

// confirmLink returns the token of the confirmation link in the email to
// rcpt, waiting for it.
func (b *testBundle) confirmToken(t *testing.T, rcpt string) string {
	t.Helper()
	var m smtptest.Received
	waitFor(t, "the confirmation email to "+rcpt, 10*time.Second, func() bool {
		msgs := b.smtp.Messages()
		i := slices.IndexFunc(msgs, func(m smtptest.Received) bool { return slices.Contains(m.To, rcpt) })
		if i >= 0 {
			m = msgs[i]
		}
		return i >= 0
	})
	data := strings.ReplaceAll(string(m.Data), "=\r\n", "")
	sm := confirmLinkRe.FindStringSubmatch(data)
	if sm == nil {
		t.Fatalf("the confirmation email has no link:\n%s", m.Data)
	}
	return sm[1]
}

func signupValues(email string, topics ...string) url.Values {
	return url.Values{"email": {email}, "topics": topics, "wording": {"newsletter-v3"}, "form": {"home-footer"}, "locale": {"fr"}}
}

func TestSubscribeEmailDoubleOptIn(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	ctx := context.Background()
	s := b.d.Store
	const addr = "Alice@Example.com"
	ua := "Mozilla/5.0 <script>x</script>\r\nX-Injected: 1 " + strings.Repeat("é", 200)

	w := b.subscribeForm("198.51.100.7", signupValues(addr, "newsletter", "promotions"), "User-Agent", ua)
	if w.Code != http.StatusAccepted {
		t.Fatalf("POST /subscribe: %d %s", w.Code, w.Body)
	}
	// Until confirmed, the address is held by a provisional record only.
	id := b.pendingContact(t)
	if !regexp.MustCompile(`^s-[0-9a-f]{16}$`).MatchString(id) {
		t.Errorf("new contact id %q, want s- and 16 hex digits", id)
	}
	c, err := s.Contact(ctx, id)
	must(t, err)
	if c.Email != "Alice@example.com" || c.Locale != "fr" || c.Phone != "" || len(c.Attributes) != 0 || len(c.Tags) != 0 {
		t.Errorf("contact holds more or other than the address and locale: %+v", c)
	}
	// Nothing is granted before confirmation.
	assertLedger(t, b, id, 0)

	token := b.confirmToken(t, "Alice@example.com")
	h := sha256hex(token)
	if ttl := b.redis.Client.TTL(ctx, s.PendingKey(h)).Val(); ttl < 47*time.Hour || ttl > 48*time.Hour {
		t.Errorf("pending record TTL %s, want 48h", ttl)
	}
	var ps signup.Pending
	must(t, json.Unmarshal([]byte(b.redis.Client.Get(ctx, s.PendingKey(h)).Val()), &ps))
	if ps.Contact != id || ps.Channel != channels.Email || ps.Wording != "newsletter-v3" || ps.IPHash == "" || ps.Created.IsZero() {
		t.Errorf("pending record: %+v", ps)
	}
	raw := b.redis.Client.Get(ctx, s.PendingKey(h)).Val()
	if strings.Contains(strings.ToLower(raw), "alice") || strings.Contains(raw, "198.51.100.7") || strings.Contains(raw, token) {
		t.Errorf("pending record holds the address, the IP or the token: %s", raw)
	}

	// GET shows a button and changes nothing (link scanners).
	page := b.do("GET", "/subscribe/confirm/"+token, "203.0.113.9", "", "")
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), `method="post"`) || !strings.Contains(page.Body.String(), "La lettre") {
		t.Fatalf("GET confirm: %d %s", page.Code, page.Body)
	}
	if page.Header().Get("X-Frame-Options") != "DENY" {
		t.Error("the confirmation page may be framed")
	}
	assertLedger(t, b, id, 0)

	before := time.Now().UTC()
	w = b.do("POST", "/subscribe/confirm/"+token, "203.0.113.9", formCT, "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Inscription confirmée") {
		t.Fatalf("POST confirm: %d %s", w.Code, w.Body)
	}
	led := assertLedger(t, b, id, 2)
	var topics []string
	for _, e := range led {
		topics = append(topics, e.Topic)
		if e.Channel != channels.Email || e.State != dispatcher.Granted || e.Source != "signup" {
			t.Errorf("ledger event %+v", e)
		}
		if e.At.Before(before.Add(-time.Second)) || e.At.After(time.Now().Add(time.Second)) {
			t.Errorf("ledger time %s is not the confirmation time", e.At)
		}
		ev := e.Evidence
		wantKeys := []string{"confirmed_via", "form", "ip_hash", "requested_at", "user_agent", "wording"}
		var keys []string
		for k := range ev {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if diff := cmp.Diff(wantKeys, keys); diff != "" {
			t.Errorf("evidence keys (-want +got):\n%s", diff)
		}
		if ev["wording"] != "newsletter-v3" || ev["form"] != "home-footer" || ev["confirmed_via"] != "email-link" || ev["ip_hash"] != ps.IPHash {
			t.Errorf("evidence %v", ev)
		}
		if _, err := time.Parse(time.RFC3339, ev["requested_at"]); err != nil {
			t.Errorf("requested_at %q: %v", ev["requested_at"], err)
		}
		if len(ev["user_agent"]) > 200 || strings.ContainsAny(ev["user_agent"], "\r\n") || !strings.HasPrefix(ev["user_agent"], "Mozilla/5.0 <script>") {
			t.Errorf("user agent not truncated or cleaned: %q", ev["user_agent"])
		}
	}
	slices.Sort(topics)
	if diff := cmp.Diff([]string{"newsletter", "promotions"}, topics); diff != "" {
		t.Errorf("granted topics (-want +got):\n%s", diff)
	}
	cur, err := s.Consents(ctx, id)
	must(t, err)
	if cur["email/newsletter"] != dispatcher.Granted || cur["email/promotions"] != dispatcher.Granted || len(cur) != 2 {
		t.Errorf("current consents %v", cur)
	}
	for _, topic := range []string{"newsletter", "promotions"} {
		fb, err := s.TopicFeedback(ctx, topic)
		must(t, err)
		if fb[storepkg.FeedbackConfirmations] != 1 {
			t.Errorf("%s confirmations = %d, want 1", topic, fb[storepkg.FeedbackConfirmations])
		}
	}
	if n := b.redis.Client.Exists(ctx, s.PendingKey(h)).Val(); n != 0 {
		t.Error("the pending record outlived its confirmation")
	}

	// A second confirmation grants nothing more.
	w = b.do("POST", "/subscribe/confirm/"+token, "203.0.113.9", formCT, "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "déjà confirmée") {
		t.Fatalf("second POST confirm: %d %s", w.Code, w.Body)
	}
	assertLedger(t, b, id, 2)
	if fb, _ := s.TopicFeedback(ctx, "newsletter"); fb[storepkg.FeedbackConfirmations] != 1 {
		t.Errorf("confirmations counted twice: %v", fb)
	}
	// The confirmation topic exists, transactional.
	if tp, err := s.Topic(ctx, signup.ConfirmationTopic); err != nil || tp.Kind != dispatcher.Transactional {
		t.Errorf("confirmation topic: %+v %v", tp, err)
	}
	for _, secret := range []string{"alice@example.com", "Alice@example.com", token, "198.51.100.7"} {
		if strings.Contains(b.logs.String(), secret) {
			t.Errorf("logs hold an address, a token or an IP")
		}
	}
	assertQueuesHoldNo(t, b, "lice@", token, "198.51.100.7")
}

func assertLedger(t *testing.T, b *testBundle, id string, n int) []dispatcher.ConsentEvent {
	t.Helper()
	led, err := b.d.Store.ConsentLedger(context.Background(), id)
	must(t, err)
	if len(led) != n {
		t.Fatalf("ledger holds %d events, want %d: %+v", len(led), n, led)
	}
	return led
}

func TestSubscribeConfirmExpiredOrUnknown(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	ctx := context.Background()
	if w := b.subscribeForm("198.51.100.8", signupValues("bob@example.com", "newsletter")); w.Code != http.StatusAccepted {
		t.Fatalf("POST /subscribe: %d %s", w.Code, w.Body)
	}
	token := b.confirmToken(t, "bob@example.com")
	id := b.pendingContact(t)
	// Expiry is Redis's TTL: the record is simply gone.
	must(t, b.redis.Client.Del(ctx, b.d.Store.PendingKey(sha256hex(token))).Err())
	for _, tok := range []string{token, strings.Repeat("A", 43), "short", "<script>"} {
		for _, m := range []string{"GET", "POST"} {
			w := b.do(m, "/subscribe/confirm/"+url.PathEscape(tok), "203.0.113.9", formCT, "")
			if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "expiré") {
				t.Errorf("%s confirm with an expired or unknown token: %d %s", m, w.Code, w.Body)
			}
		}
	}
	assertLedger(t, b, id, 0)
	if fb, _ := b.d.Store.TopicFeedback(ctx, "newsletter"); fb[storepkg.FeedbackConfirmations] != 0 {
		t.Errorf("confirmation counted for an expired token")
	}
}

func TestSubscribeSameAnswerForEveryAddress(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	ctx := context.Background()
	s := b.d.Store
	known := dispatcher.Contact{ID: "known", Email: "known@example.com", Attributes: map[string]string{"first_name": "Kim"}}
	must(t, s.UpsertContact(ctx, &known, "Europe/Paris"))
	grantConsent(t, b, "known", channels.Email) // already subscribed to newsletter
	must(t, s.Suppress(ctx, channels.Email, "gone@example.com", dispatcher.SuppressComplaint, time.Time{}))

	type answer struct {
		Code int
		Body string
		CT   string
	}
	answers := map[string]answer{}
	for i, addr := range []string{"known@example.com", "new@example.com", "gone@example.com"} {
		for _, html := range []bool{false, true} {
			ip := fmt.Sprintf("198.51.100.%d", 20+i*2+btoi(html))
			var hdr []string
			if html {
				hdr = []string{"Accept", "text/html"}
			}
			start := time.Now()
			w := b.subscribeForm(ip, signupValues(addr, "newsletter"), hdr...)
			if took := time.Since(start); took < subscribeFloor {
				t.Errorf("answer for an address came in %s, before the floor %s", took, subscribeFloor)
			}
			a := answer{w.Code, w.Body.String(), w.Header().Get("Content-Type")}
			key := fmt.Sprint(html)
			if prev, ok := answers[key]; ok && prev != a {
				t.Errorf("answers differ by address (html=%v):\n%+v\n%+v", html, prev, a)
			}
			answers[key] = a
			if a.Code != http.StatusAccepted || strings.Contains(a.Body, "@") {
				t.Errorf("answer %+v", a)
			}
		}
	}
	// known and new get a confirmation each (two requests each), the
	// suppressed address nothing, once the queues ran what the sign-ups
	// enqueued.
	b.smtp.Wait(4, 10*time.Second)
	b.waitIdle(t, 20*time.Second)
	var rcpts []string
	for _, m := range b.smtp.Messages() {
		rcpts = append(rcpts, m.To...)
	}
	slices.Sort(rcpts)
	want := []string{"known@example.com", "known@example.com", "new@example.com", "new@example.com"}
	if diff := cmp.Diff(want, rcpts); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
	if _, err := s.ContactIDByAddress(ctx, channels.Email, "gone@example.com"); err == nil {
		t.Error("a contact was created for a suppressed address")
	}
	if c, _ := s.Contact(ctx, "known"); c.Attributes["first_name"] != "Kim" {
		t.Error("the known contact was changed")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestSubscribeRateLimits(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	// Per client: 5 a minute, whatever the requests are.
	for i := range 5 {
		w := b.do("POST", "/subscribe", "192.0.2.50", "application/json", `{"topics":["newsletter"]}`)
		if w.Code != http.StatusUnprocessableEntity {
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := b.subscribeForm("192.0.2.50", signupValues("eve@example.com", "newsletter"))
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("6th request: %d (Retry-After %q) %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if !strings.Contains(w.Body.String(), "rate_limited") {
		t.Errorf("429 body %s", w.Body)
	}
	w = b.subscribeForm("192.0.2.50", signupValues("eve@example.com", "newsletter"), "Accept", "text/html")
	if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "Trop de demandes") {
		t.Errorf("429 for a browser: %d %s", w.Code, w.Body)
	}
	// Another client is not held back.
	if w := b.subscribeForm("192.0.2.51", signupValues("eve@example.com", "newsletter")); w.Code != http.StatusAccepted {
		t.Fatalf("other client: %d", w.Code)
	}

	// Per address: 3 confirmations an hour, from however many clients; the
	// answer does not change.
	var first string
	for i := range 5 {
		w := b.subscribeForm(fmt.Sprintf("192.0.2.%d", 100+i), signupValues("target@example.com", "newsletter"))
		if w.Code != http.StatusAccepted || (first != "" && w.Body.String() != first) {
			t.Fatalf("request %d for one address: %d %s", i, w.Code, w.Body)
		}
		first = w.Body.String()
	}
	b.smtp.Wait(4, 10*time.Second)
	b.waitIdle(t, 20*time.Second)
	n := 0
	for _, m := range b.smtp.Messages() {
		if slices.Contains(m.To, "target@example.com") {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d confirmations sent to one address, want 3", n)
	}
}

func TestSubscribeValidation(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	const secret = "<b>secret</b>\r\nBcc: victim@example.org"
	cases := []struct {
		name, ct, body, field string
		status                int
	}{
		{"no wording", formCT, "topics=newsletter&email=a%40example.com", "wording", 422},
		{"wording with CRLF", formCT, "topics=newsletter&email=a%40example.com&wording=v1%0D%0ABcc%3A+x", "wording", 422},
		{"wording too long", formCT, "topics=newsletter&email=a%40example.com&wording=" + strings.Repeat("v", 65), "wording", 422},
		{"form with HTML", formCT, "topics=newsletter&email=a%40example.com&wording=v1&form=%3Cb%3E", "form", 422},
		{"bad email", formCT, "topics=newsletter&wording=v1&email=" + url.QueryEscape(secret), "email", 422},
		{"email with a name", formCT, "topics=newsletter&wording=v1&email=" + url.QueryEscape("Eve <eve@example.com>"), "email", 422},
		{"bad phone", formCT, "topics=newsletter&wording=v1&phone=" + url.QueryEscape("+33 "+secret), "phone", 422},
		{"landline", formCT, "topics=newsletter&wording=v1&phone=%2B33142345678", "phone", 422},
		{"both", formCT, "topics=newsletter&wording=v1&email=a%40example.com&phone=%2B33612345678", "email", 422},
		{"neither", formCT, "topics=newsletter&wording=v1", "email", 422},
		{"email twice", formCT, "topics=newsletter&wording=v1&email=a%40example.com&email=b%40example.com", "email", 422},
		{"no topics", formCT, "wording=v1&email=a%40example.com", "topics", 422},
		{"bad topic id", formCT, "topics=%3Cscript%3E&wording=v1&email=a%40example.com", "topics", 422},
		{"unknown topic", formCT, "topics=nope&wording=v1&email=a%40example.com", "topics", 422},
		{"transactional topic", formCT, "topics=orders&wording=v1&email=a%40example.com", "topics", 422},
		{"locale", formCT, "topics=newsletter&wording=v1&email=a%40example.com&locale=de", "locale", 422},
		{"json bad email", "application/json", `{"topics":["newsletter"],"wording":"v1","email":` + jsonString(secret) + `}`, "email", 422},
		{"json topics type", "application/json", `{"topics":3,"wording":"v1","email":"a@example.com"}`, "topics", 422},
		{"json unknown field", "application/json", `{"topics":"newsletter","wording":"v1","email":"a@example.com","x":1}`, "x", 422},
		{"content type", "text/plain", "hello", "Content-Type", 422},
		{"too large", formCT, "topics=newsletter&wording=v1&email=a%40example.com&pad=" + strings.Repeat("x", 17<<10), "body", 413},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := b.do("POST", "/subscribe", fmt.Sprintf("10.1.%d.1", i), tc.ct, tc.body)
			var got struct{ Error dispatcher.Error }
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != tc.status || got.Error.Field != tc.field {
				t.Fatalf("status %d, field %q, want %d %q: %s", w.Code, got.Error.Field, tc.status, tc.field, w.Body)
			}
			for _, leak := range []string{"secret", "victim", "eve@", "a@example"} {
				if strings.Contains(w.Body.String(), leak) {
					t.Errorf("the answer echoes the input: %s", w.Body)
				}
			}
		})
	}

	// A browser gets the form back with the message, in its language, and
	// without the address.
	v := url.Values{"topics": {"newsletter", "promotions"}, "wording": {"v1"}, "locale": {"en"}, "email": {secret}}
	w := b.subscribeForm("10.2.0.1", v, "Accept", "text/html")
	body := w.Body.String()
	if w.Code != 422 || !strings.Contains(body, "Please give a valid email address.") || !strings.Contains(body, `role="alert"`) {
		t.Fatalf("re-rendered form: %d %s", w.Code, body)
	}
	if strings.Contains(body, "secret") || strings.Contains(body, "victim") {
		t.Errorf("the re-rendered form echoes the address: %s", body)
	}
	if !strings.Contains(body, `value="newsletter" checked`) || !strings.Contains(body, `value="promotions" checked`) {
		t.Errorf("the re-rendered form lost the chosen topics: %s", body)
	}
	// Nothing was recorded by any of these.
	if n, _ := b.d.Store.CountContacts(context.Background()); n != 0 {
		t.Errorf("%d contacts created by invalid requests", n)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestSubscribeJSONAndTopicsAsList(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	ctx := context.Background()
	w := b.do("POST", "/subscribe", "10.3.0.1", "application/json",
		`{"topics":"newsletter, promotions","email":"jo@example.com","wording":"v2"}`, "Accept-Language", "en-GB,en;q=0.9,fr;q=0.8")
	if w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), `"status":"pending"`) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	token := b.confirmToken(t, "jo@example.com")
	ps, err := b.d.Signups.Pending(ctx, sha256hex(token))
	must(t, err)
	if ps == nil || ps.Locale != "en" || !slices.Equal(ps.Topics, []string{"newsletter", "promotions"}) || ps.Form != "" {
		t.Errorf("pending %+v", ps)
	}
}

func TestSubscribeSMSConfirmedByYes(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	ctx := context.Background()
	s := b.d.Store
	const phone = "+33612345671"
	w := b.subscribeForm("10.4.0.1", url.Values{"phone": {phone}, "topics": {"newsletter"}, "wording": {"sms-v1"}})
	if w.Code != http.StatusAccepted {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	msgs, err := b.twilio.Wait(1, 10*time.Second)
	must(t, err)
	if msgs[0].To != phone || !strings.Contains(msgs[0].Body, "Reply YES to confirm") {
		t.Errorf("confirmation SMS %+v", msgs[0])
	}
	id := b.pendingContact(t)
	assertLedger(t, b, id, 0)

	ok, err := b.d.Signups.ConfirmSMSOptIn(ctx, "+33 6 12 34 56 71", "SM0123456789abcdef0123456789abcdef")
	if err != nil || !ok {
		t.Fatalf("ConfirmSMSOptIn = %v, %v", ok, err)
	}
	led := assertLedger(t, b, id, 1)
	e := led[0]
	if e.Channel != channels.SMS || e.Topic != "newsletter" || e.Source != "signup" || e.Evidence["confirmed_via"] != "sms-yes" ||
		e.Evidence["wording"] != "sms-v1" || e.Evidence["message_sid"] != "SM0123456789abcdef0123456789abcdef" {
		t.Errorf("ledger event %+v", e)
	}
	if fb, _ := s.TopicFeedback(ctx, "newsletter"); fb[storepkg.FeedbackConfirmations] != 1 {
		t.Errorf("confirmations %v", fb)
	}
	// A second YES, an unknown number and a bad one grant nothing.
	for _, p := range []string{phone, "+33612345672", "not a number"} {
		if ok, err := b.d.Signups.ConfirmSMSOptIn(ctx, p, "SMx"); ok || err != nil {
			t.Errorf("ConfirmSMSOptIn(%s) = %v, %v", "...", ok, err)
		}
	}
	assertLedger(t, b, id, 1)
	if strings.Contains(b.logs.String(), phone) {
		t.Error("logs hold the phone number")
	}
}

func TestSubscribeFormPage(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	w := b.do("GET", "/subscribe/form?topics=newsletter,promotions&locale=fr&form=home", "10.5.0.1", "", "")
	body := w.Body.String()
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors *") || w.Header().Get("X-Frame-Options") != "" {
		t.Errorf("the form cannot be framed: CSP %q, XFO %q", csp, w.Header().Get("X-Frame-Options"))
	}
	wording := formWordingID(b, page.French, channels.Email)
	for _, want := range []string{`<html lang="fr">`, `<label for="email">Adresse e-mail</label>`, `name="wording" value="` + wording + `"`,
		"version " + wording[:12], `name="form" value="home"`, `name="locale" value="fr"`, `<legend>`, "La lettre", `value="newsletter">`} {
		if !strings.Contains(body, want) {
			t.Errorf("the form lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "checked") || strings.Contains(body, "<script") {
		t.Error("the form pre-checks a topic or runs a script")
	}
	w = b.do("GET", "/subscribe/form?topics=newsletter&channel=sms", "10.5.0.1", "", "", "Accept-Language", "en-US,en;q=0.8")
	if body := w.Body.String(); w.Code != 200 || !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, `type="tel"`) ||
		!strings.Contains(body, `type="hidden" name="topics" value="newsletter"`) {
		t.Errorf("English SMS form: %d %s", w.Code, body)
	}
	for _, q := range []string{"", "topics=orders", "topics=nope", "topics=%3Cscript%3E"} {
		if w := b.do("GET", "/subscribe/form?"+q, "10.5.0.1", "", ""); w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), "<script>") {
			t.Errorf("form for %q: %d", q, w.Code)
		}
	}
	// The confirmation pages keep refusing frames.
	if w := b.do("GET", "/subscribe/confirm/x", "10.5.0.1", "", ""); w.Header().Get("X-Frame-Options") != "DENY" {
		t.Error("the confirmation page may be framed")
	}
}

// formWordingID is the id of the consent text the built-in form shows
// and posts.
func formWordingID(b *testBundle, lang page.Lang, k channels.Kind) string {
	return dispatcher.WordingID(string(lang), page.FormWording(lang, b.d.Config.SenderName, k))
}

// TestConsentWordings: the exact text of each consent wording is stored
// once, named by its hash: the built-in form's on its first sign-up,
// others through the API; an event naming an id with no stored text is
// refused, and the ledger verifies the texts it names.
func TestConsentWordings(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	ctx := context.Background()
	s := b.d.Store
	h := Handler(b.d, []APIKey{{ID: "test", Secret: eraseTestKey}})
	call := func(method, path, body string) (int, string) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+eraseTestKey)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}

	// The built-in form: its text is stored when a sign-up uses it, and
	// the confirmed consent names it.
	v := signupValues("form@example.com", "newsletter")
	v.Set("wording", formWordingID(b, page.French, channels.Email))
	if w := b.subscribeForm("198.51.100.8", v); w.Code != http.StatusAccepted {
		t.Fatalf("sign-up: %d %s", w.Code, w.Body)
	}
	id := b.pendingContact(t)
	if w := b.do("POST", "/subscribe/confirm/"+b.confirmToken(t, "form@example.com"), "203.0.113.9", formCT, ""); w.Code != http.StatusOK {
		t.Fatalf("confirm: %d %s", w.Code, w.Body)
	}
	stored, err := s.Wording(ctx, v.Get("wording"))
	if err != nil || stored.Lang != "fr" || stored.Text != page.FormWording(page.French, b.d.Config.SenderName, channels.Email) {
		t.Fatalf("stored wording: %+v, %v", stored, err)
	}
	rep, err := s.VerifyLedger(ctx, id)
	if err != nil || rep.Events != 1 || !rep.OK() {
		t.Fatalf("ledger: %+v, %v", rep, err)
	}

	// A site's own wording, stored through the API, once.
	body := `{"lang":"en","text":"Yes, send me the monthly newsletter. I can leave at any time."}`
	code, out := call("POST", "/v1/wordings", body)
	var wd dispatcher.Wording
	if code != http.StatusCreated || json.Unmarshal([]byte(out), &wd) != nil || !dispatcher.IsWordingID(wd.ID) {
		t.Fatalf("POST /v1/wordings: %d %s", code, out)
	}
	if code, again := call("POST", "/v1/wordings", body); code != http.StatusOK || !strings.Contains(again, wd.ID) {
		t.Errorf("the same text again: %d %s", code, again)
	}
	if code, got := call("GET", "/v1/wordings/"+wd.ID, ""); code != http.StatusOK || !strings.Contains(got, "monthly newsletter") {
		t.Errorf("GET /v1/wordings: %d %s", code, got)
	}
	for _, bad := range []string{`{"lang":"en"}`, `{"lang":"english!","text":"x"}`, `{"lang":"en","text":"x","extra":1}`} {
		if code, out := call("POST", "/v1/wordings", bad); code != http.StatusBadRequest && code != http.StatusUnprocessableEntity {
			t.Errorf("POST /v1/wordings %s: %d %s", bad, code, out)
		}
	}
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "api1", Email: "api1@example.com"}, "Europe/Paris"))
	consent := func(wording string) (int, string) {
		return call("POST", "/v1/contacts/api1/consents", `{"channel":"email","topic":"newsletter","state":"granted","evidence":{"wording":"`+wording+`"}}`)
	}
	if code, out := consent(wd.ID); code != http.StatusCreated {
		t.Fatalf("consent naming a stored wording: %d %s", code, out)
	}
	unknown := dispatcher.WordingID("en", "a text never stored")
	if code, out := consent(unknown); code == http.StatusCreated || !strings.Contains(out, "evidence.wording") {
		t.Errorf("consent naming no stored wording: %d %s", code, out)
	}
	v = signupValues("other@example.com", "newsletter")
	v.Set("wording", unknown)
	if w := b.subscribeForm("198.51.100.9", v); w.Code == http.StatusAccepted || !strings.Contains(w.Body.String(), "wording") {
		t.Errorf("sign-up naming no stored wording: %d %s", w.Code, w.Body)
	}

	// The stored text edited by hand: the ledger no longer vouches for it.
	key := b.redis.Prefix + ":wording:" + wd.ID
	raw := b.redis.Client.Get(ctx, key).Val()
	b.redis.Client.Set(ctx, key, strings.Replace(raw, "monthly", "daily", 1), 0)
	rep, err = s.VerifyLedger(ctx, "api1")
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].Kind != "wording_missing" {
		t.Errorf("ledger after the wording was edited: %+v, %v", rep, err)
	}
}

// TestSignupLanguage: the form and the sign-up take their language from
// page.Negotiate: the explicit locale, else Accept-Language, else English
// (the sign-up used to fall back to French).
func TestSignupLanguage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	must(t, b.d.Store.PutTopic(context.Background(), &dispatcher.Topic{ID: "newsletter", Name: "La lettre", Kind: dispatcher.Marketing}))
	h := b.srv.Config.Handler
	for _, tc := range []struct{ locale, accept, want string }{
		{"", "", "en"}, {"", "de", "en"}, {"", "en", "en"}, {"", "en-US,fr;q=0.5", "en"}, {"", "fr-CA,en;q=0.9", "fr"},
		{"", "de,en;q=0.2,fr;q=0.1", "en"}, {"", "en;q=x", "en"}, {"", "de-DE, fr;q=0.8, en;q=0.5", "fr"},
		{"fr", "en", "fr"}, {"en", "fr", "en"}, {"de", "fr", "fr"},
	} {
		r := httptest.NewRequest("GET", "/subscribe/form?topics=newsletter&locale="+tc.locale, nil)
		r.Header.Set("Accept-Language", tc.accept)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if body := w.Body.String(); w.Code != http.StatusOK || !strings.Contains(body, `<html lang="`+tc.want+`">`) ||
			!strings.Contains(body, `name="locale" value="`+tc.want+`"`) {
			t.Errorf("form for locale %q, Accept-Language %q: %d, want a form in %s:\n%s", tc.locale, tc.accept, w.Code, tc.want, body)
		}
	}

	// A sign-up that names no language of ours records English.
	r := httptest.NewRequest("POST", "/subscribe", strings.NewReader(`{"topics":["newsletter"],"email":"de@example.com","wording":"v1"}`))
	r.RemoteAddr = "10.6.0.1:40000"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept-Language", "de-DE")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusAccepted {
		t.Fatalf("POST /subscribe: %d %s", w.Code, w.Body)
	}
	c, err := b.d.Store.Contact(context.Background(), b.pendingContact(t))
	must(t, err)
	if c.Locale != "en" {
		t.Errorf("contact locale %q, want en", c.Locale)
	}
}

// FuzzSubscribeForm posts arbitrary bodies: the answer is never a server
// error and never echoes the address.
func FuzzSubscribeForm(f *testing.F) {
	b := setup(f)
	ctx := context.Background()
	if err := b.d.Store.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Kind: dispatcher.Marketing}); err != nil {
		f.Fatal(err)
	}
	h := b.srv.Config.Handler
	f.Add(formCT, "topics=newsletter&email=a%40example.com&wording=v1")
	f.Add(formCT, "topics=newsletter,,newsletter&phone=%2B33612345678&wording=v1&locale=en")
	f.Add(formCT, "topics=%ZZ&email=%")
	f.Add(formCT, "topics=newsletter&email=a%40example.com&wording=v1&form=f&locale=fr&locale=en")
	f.Add("application/json", `{"topics":["newsletter"],"email":"a@example.com","wording":"v1"}`)
	f.Add("application/json", `{"topics":null,"email":null}`)
	f.Add("application/json; charset=utf-8", `{"topics":[1]}`)
	f.Add("multipart/form-data; boundary=x", "--x\r\n")
	f.Add("", "")
	n := 0
	f.Fuzz(func(t *testing.T, ct, body string) {
		n++
		r := httptest.NewRequest("POST", "/subscribe", strings.NewReader(body))
		r.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1", n>>16&255, n>>8&255, n&255)
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Accept", "text/html")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q %q: %s", w.Code, ct, body, w.Body)
		}
		if vals, err := url.ParseQuery(body); err == nil {
			if e := vals.Get("email"); len(e) > 6 && strings.Contains(w.Body.String(), e) {
				t.Fatalf("the answer echoes the address %q", e)
			}
		}
	})
}

// TestSubscribeConfirmationAmbiguous: a confirmation goes the one send
// path, so a relay that drops the connection after the message was handed
// over leaves the send failed as ambiguous, tried once: it is never sent
// again, as a campaign send would not be.
func TestSubscribeConfirmationAmbiguous(t *testing.T) {
	t.Parallel()
	b := setupSignup(t)
	ctx := context.Background()
	const addr = "dropped@example.com"
	b.smtp.DropAfterData(addr)
	if w := b.subscribeForm("198.51.100.9", signupValues(addr, "newsletter")); w.Code != http.StatusAccepted {
		t.Fatalf("POST /subscribe: %d %s", w.Code, w.Body)
	}
	id := b.pendingContact(t)
	var sd *dispatcher.Send
	waitFor(t, "the confirmation send to fail", 10*time.Second, func() bool {
		sends, err := b.d.Store.ContactSends(ctx, id)
		must(t, err)
		if len(sends) == 1 {
			sd = sends[0]
		}
		return sd != nil && sd.State == dispatcher.StateFailed
	})
	if sd.Reason != dispatcher.ReasonAmbiguous || sd.Attempts != 1 || sd.Topic != signup.ConfirmationTopic || sd.Ref == "" {
		t.Errorf("confirmation send %+v, want failed (ambiguous) after 1 attempt, topic %s, with a ref", sd, signup.ConfirmationTopic)
	}
}

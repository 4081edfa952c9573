package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
)

// prefStart is the time the preference tests' clock stands at.
var prefStart = time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)

// setupAna builds a Dispatcher whose clock stands at prefStart, with two
// marketing topics, one transactional topic and the contact "ana" (email
// and phone, email newsletter consent).
func setupAna(t *testing.T) *testBundle {
	t.Helper()
	b := setup(t, withClock(prefStart), withBasics())
	ctx := context.Background()
	s := b.d.Store
	must(t, s.PutTopic(ctx, &dispatcher.Topic{ID: "promotions", Name: "Promotions", Kind: dispatcher.Marketing, Description: "Sales and offers"}))
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "ana", Email: "ana@example.com", Phone: "+33612345678",
		Attributes: map[string]string{"first_name": "Ana"}, Tags: []string{"vip"}}, "Europe/Paris"))
	grantConsent(t, b, "ana", channels.Email)
	return b
}

// assertHas fails t for each of wants that body, the page named page,
// lacks.
func assertHas(t *testing.T, page, body string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(body, want) {
			t.Errorf("%s lacks %q", page, want)
		}
	}
}

// prefURL returns the preference page URL of contact, as a message to it
// about the newsletter in run "run-1" would carry it.
func (b *testBundle) prefURL(t *testing.T, contact string) string {
	t.Helper()
	tok, err := b.d.Signer.Sign(templates.Claims{Contact: contact, Channel: "email", Topic: "newsletter",
		Send: dispatcher.SendID("run-1", contact, channels.Email)})
	must(t, err)
	return templates.PreferencesURL(b.srv.URL, tok)
}

var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

func get(t *testing.T, u string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	must(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

func postForm(t *testing.T, u string, form url.Values, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	must(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirect.Do(req)
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp, string(body)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf opens the page and returns the CSRF token of its forms.
func csrfOf(t *testing.T, pageURL string) string {
	t.Helper()
	resp, body := get(t, pageURL)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET preference page: %d", resp.StatusCode)
	}
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("preference page has no CSRF token")
	}
	return m[1]
}

func (b *testBundle) ledger(t *testing.T, contact string) []dispatcher.ConsentEvent {
	t.Helper()
	l, err := b.d.Store.ConsentLedger(context.Background(), contact)
	must(t, err)
	return l
}

// submitPreferences posts form to the preference page at u and wants the
// redirect (303) to wantLoc that follows a change.
func (b *testBundle) submitPreferences(t *testing.T, u string, form url.Values, wantLoc string) {
	t.Helper()
	resp, _ := postForm(t, u, form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST: %d, want 303", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != wantLoc {
		t.Errorf("redirect to %q, want %q", loc, wantLoc)
	}
}

// assertPageChanges checks that the ledger of contact, from its event
// before on, holds exactly the changes "state channel/topic" (as
// "withdrawn email/newsletter"), recorded by the preference page now.
func (b *testBundle) assertPageChanges(t *testing.T, contact string, before int, changes ...string) {
	t.Helper()
	var want []dispatcher.ConsentEvent
	for _, c := range changes {
		state, key, _ := strings.Cut(c, " ")
		ch, topic, _ := strings.Cut(key, "/")
		want = append(want, dispatcher.ConsentEvent{Channel: channels.Kind(ch), Topic: topic, State: dispatcher.ConsentState(state),
			Source: "preference-page", Evidence: map[string]string{"page": "preferences"}, At: b.clock.Now().UTC()})
	}
	if diff := cmp.Diff(want, b.ledger(t, contact)[before:]); diff != "" {
		t.Errorf("ledger events (-want +got):\n%s", diff)
	}
}

func (b *testBundle) unsubscribes(t *testing.T, run, topic string) (runCount, topicCount int64) {
	t.Helper()
	ctx := context.Background()
	f, err := b.d.Store.TopicFeedback(ctx, topic)
	must(t, err)
	m, err := b.redis.Client.HGetAll(ctx, b.d.Store.RunKey(run)).Result()
	must(t, err)
	return storepkg.RunFeedback(m)[storepkg.FeedbackUnsubscribes], f[storepkg.FeedbackUnsubscribes]
}

func TestPreferencePageLanguage(t *testing.T) {
	t.Parallel()
	b := setupAna(t)
	ctx := context.Background()
	for _, c := range []dispatcher.Contact{{ID: "fr", Email: "fr@example.com", Locale: "fr-FR"}, {ID: "en", Email: "en@example.com", Locale: "en-GB"},
		{ID: "none", Email: "none@example.com"}} {
		must(t, b.d.Store.UpsertContact(ctx, &c, "Europe/Paris"))
	}
	tests := []struct {
		name, contact, query, accept string
		want                         string
	}{
		{"locale fr", "fr", "", "", "fr"},
		{"locale wins over header", "en", "", "fr-FR,fr;q=0.9", "en"},
		{"header when no locale", "none", "", "de-DE, fr;q=0.8, en;q=0.5", "fr"},
		{"header weights", "none", "", "en;q=0.4, fr-CA;q=0.6", "fr"},
		{"header equal weights: first", "none", "", "en-US, fr", "en"},
		{"default english", "none", "", "de, it;q=0.5", "en"},
		{"switch link wins", "en", "?lang=fr", "en", "fr"},
		{"switch to english", "fr", "?lang=en", "", "en"},
		{"bad lang ignored", "fr", "?lang=de", "", "fr"},
	}
	title := map[string]string{"fr": "<h1>Vos préférences</h1>", "en": "<h1>Your preferences</h1>"}
	other := map[string]string{"fr": `href="?lang=en"`, "en": `href="?lang=fr"`}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := b.prefURL(t, tt.contact) + tt.query
			resp, body := get(t, u, "Accept-Language", tt.accept)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if !strings.Contains(body, `<html lang="`+tt.want+`">`) || !strings.Contains(body, title[tt.want]) {
				t.Errorf("page is not in %s", tt.want)
			}
			if !strings.Contains(body, other[tt.want]) {
				t.Errorf("no link to switch from %s", tt.want)
			}
			// An explicit choice survives the form submission.
			explicit := strings.HasPrefix(tt.query, "?lang=") && tt.query != "?lang=de"
			if got := strings.Contains(body, `?lang=`+tt.want+`">`); got != explicit {
				t.Errorf("form keeps ?lang: %v, want %v", got, explicit)
			}
		})
	}
	resp, _ := get(t, b.prefURL(t, "fr"))
	for h, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
}

func TestPreferencePageShowsWhatWeHoldEscaped(t *testing.T) {
	t.Parallel()
	b := setupAna(t)
	ctx := context.Background()
	s := b.d.Store
	must(t, s.PutTopic(ctx, &dispatcher.Topic{ID: "events", Name: `<b>Events</b>`, Kind: dispatcher.Marketing, Description: `"><img src=x onerror=alert(2)>`}))
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "eve", Email: "eve@example.com", Locale: "en", Timezone: "America/New_York",
		Attributes: map[string]string{"bio": "<script>alert(1)</script>", "note": "line one\r\nSet-Cookie: stolen=1"},
		Tags:       []string{"early-bird"}}, "Europe/Paris"))
	must(t, s.RecordConsent(ctx, "eve", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "events", State: dispatcher.Granted, Source: "import",
		Evidence: map[string]string{"form": `<iframe src="//evil">`}}))
	must(t, s.Suppress(ctx, channels.Email, "eve@example.com", dispatcher.SuppressComplaint, time.Time{}))
	// Tags are validated on upsert; a record from elsewhere may not be.
	c, err := s.Contact(ctx, "eve")
	must(t, err)
	c.Tags = append(c.Tags, "</td><script>alert(3)</script>")
	raw, err := s.SealContact(c)
	must(t, err)
	must(t, b.redis.Client.Set(ctx, s.ContactKey("eve"), raw, 0).Err())

	resp, body := get(t, b.prefURL(t, "eve"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, bad := range []string{"<script>", "<img", "<iframe", "<b>Events", "</td><script"} {
		if strings.Contains(body, bad) {
			t.Errorf("page holds unescaped %q", bad)
		}
	}
	if resp.Header.Get("Set-Cookie") != "" {
		t.Error("an attribute's CRLF made a header")
	}
	assertHas(t, "page", body,
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"&lt;b&gt;Events&lt;/b&gt;",
		"&lt;iframe src=&#34;//evil&#34;&gt;",
		"&lt;/td&gt;&lt;script&gt;alert(3)&lt;/script&gt;",
		"line one\r\nSet-Cookie: stolen=1",
		// The profile, consents, history and suppressions.
		"eve@example.com", "America/New_York", "early-bird",
		"<td>email</td><td>&lt;b&gt;Events&lt;/b&gt;</td><td>given</td><td>14 Mar 2025, 05:30 EDT</td><td>import</td>",
		"<td>14 Mar 2025, 05:30 EDT</td><td>email</td><td>&lt;b&gt;Events&lt;/b&gt;</td><td>given</td><td>import</td><td>form: &lt;iframe",
		"<td>email</td><td>eve@example.com</td><td>spam complaint</td><td>14 Mar 2025, 05:30 EDT</td><td>permanent</td>",
	)
}

func TestPreferencePageControls(t *testing.T) {
	t.Parallel()
	b := setupAna(t)
	_, body := get(t, b.prefURL(t, "ana"))
	assertHas(t, "page", body,
		// Every marketing topic x channel with an address, checked when granted.
		`<input type="checkbox" id="t-email-newsletter" name="on" value="email/newsletter" checked>`,
		`<input type="checkbox" id="t-email-promotions" name="on" value="email/promotions" aria-describedby="t-email-promotions-d">`,
		`<input type="checkbox" id="t-sms-newsletter" name="on" value="sms/newsletter">`,
		`<label for="t-sms-promotions">Promotions<span class="desc" id="t-sms-promotions-d">Sales and offers</span></label>`,
		// Transactional: on, not toggleable, explained.
		`<input type="checkbox" id="t-email-orders" checked disabled aria-describedby="tx-note">`,
		`id="tx-note">Service messages`,
		"<legend>Emails <span class=\"addr\">— ana@example.com</span></legend>",
		"<legend>Text messages (SMS) <span class=\"addr\">— &#43;33612345678</span></legend>",
		`name="do" value="unsubscribe-all"`,
		"None of your addresses is blocked.",
	)
	if strings.Contains(body, `name="shown" value="email/orders"`) || strings.Contains(body, `name="on" value="email/orders"`) {
		t.Error("a transactional topic can be toggled")
	}
	if strings.Contains(body, "<script") {
		t.Error("the page carries a script")
	}
}

func TestPreferenceTogglesRecordExactlyTheChanges(t *testing.T) {
	t.Parallel()
	b := setupAna(t)
	u := b.prefURL(t, "ana")
	before := len(b.ledger(t, "ana"))
	form := url.Values{
		"csrf": {csrfOf(t, u)},
		"do":   {"save"},
		// orders is transactional and nope is no topic: both are ignored.
		"shown": {"email/newsletter", "email/promotions", "sms/newsletter", "sms/promotions", "email/orders", "email/nope", "push/newsletter"},
		"on":    {"email/promotions", "sms/newsletter", "email/orders", "email/nope"},
	}
	saved := strings.TrimPrefix(u, b.srv.URL) + "?saved=1"
	b.submitPreferences(t, u, form, saved)
	b.assertPageChanges(t, "ana", before, "withdrawn email/newsletter", "granted email/promotions", "granted sms/newsletter")
	cur, err := b.d.Store.Consents(context.Background(), "ana")
	must(t, err)
	if diff := cmp.Diff(map[string]dispatcher.ConsentState{"email/newsletter": dispatcher.Withdrawn, "email/promotions": dispatcher.Granted, "sms/newsletter": dispatcher.Granted}, cur); diff != "" {
		t.Errorf("consents (-want +got):\n%s", diff)
	}
	if r, tp := b.unsubscribes(t, "run-1", "newsletter"); r != 1 || tp != 1 {
		t.Errorf("unsubscribes: run %d, topic %d; want 1, 1", r, tp)
	}

	// The same form again changes nothing.
	b.clock.Add(time.Minute)
	b.submitPreferences(t, u, form, saved)
	if got := len(b.ledger(t, "ana")) - before; got != 3 {
		t.Errorf("after the same form again: %d events, want 3", got)
	}
	if r, tp := b.unsubscribes(t, "run-1", "newsletter"); r != 1 || tp != 1 {
		t.Errorf("unsubscribes after the same form: run %d, topic %d; want 1, 1", r, tp)
	}

	// The page after the redirect confirms and shows the new state.
	_, body := get(t, u+"?saved=1")
	assertHas(t, "page after saving", body,
		`role="status">Your preferences are saved.`,
		`value="email/newsletter">`, `value="email/promotions" checked`, `value="sms/newsletter" checked>`,
		"<td>this page</td><td>page: preferences</td>",
	)
}

func TestPreferenceUnsubscribeFromEverything(t *testing.T) {
	t.Parallel()
	b := setupAna(t)
	ctx := context.Background()
	s := b.d.Store
	for _, e := range []dispatcher.ConsentEvent{
		{Channel: channels.SMS, Topic: "promotions", State: dispatcher.Granted},
		{Channel: channels.Email, Topic: "promotions", State: dispatcher.Withdrawn},
		{Channel: channels.Email, Topic: "orders", State: dispatcher.Granted}, // transactional: stays
		{Channel: channels.SMS, Topic: "retired", State: dispatcher.Granted},  // a topic since deleted
	} {
		must(t, s.RecordConsent(ctx, "ana", e))
	}
	u := b.prefURL(t, "ana") + "?lang=fr"
	before := len(b.ledger(t, "ana"))
	form := url.Values{"csrf": {csrfOf(t, u)}, "do": {"unsubscribe-all"}}
	saved := strings.TrimPrefix(u, b.srv.URL) + "&saved=all"
	b.submitPreferences(t, u, form, saved)
	b.assertPageChanges(t, "ana", before, "withdrawn email/newsletter", "withdrawn sms/promotions", "withdrawn sms/retired")
	cur, err := s.Consents(ctx, "ana")
	must(t, err)
	if cur["email/orders"] != dispatcher.Granted {
		t.Error("unsubscribing from everything touched a transactional topic")
	}
	for topic, n := range map[string]int64{"newsletter": 1, "promotions": 1, "retired": 1} {
		if _, got := b.unsubscribes(t, "run-1", topic); got != n {
			t.Errorf("topic %s unsubscribes %d, want %d", topic, got, n)
		}
	}
	if r, _ := b.unsubscribes(t, "run-1", "newsletter"); r != 3 {
		t.Errorf("run unsubscribes %d, want 3", r)
	}
	b.submitPreferences(t, u, form, saved)
	if got := len(b.ledger(t, "ana")) - before; got != 3 {
		t.Errorf("after a second click: %d events, want 3", got)
	}
	_, body := get(t, b.prefURL(t, "ana")+"?lang=fr&saved=all")
	if !strings.Contains(body, `role="status">Vous êtes désabonné(e) de tous les messages marketing.`) {
		t.Error("no confirmation banner")
	}
	if strings.Contains(body, `name="on" value="email/newsletter" checked`) || strings.Contains(body, `name="on" value="sms/promotions" checked`) {
		t.Error("a marketing topic is still ticked")
	}
}

func TestPreferenceCSRFRejected(t *testing.T) {
	t.Parallel()
	b := setupAna(t)
	ctx := context.Background()
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "bob", Email: "bob@example.com"}, "Europe/Paris"))
	u := b.prefURL(t, "ana")
	good := csrfOf(t, u)
	bobs := csrfOf(t, b.prefURL(t, "bob"))
	flipped := []byte(good)
	flipped[len(flipped)-2] ^= 1
	bucket, mac, _ := strings.Cut(good, ".")
	future := (&handler{d: b.d}).prefCSRF("ana", b.clock.Now().Add(prefCSRFBucket))
	save := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "do": {"unsubscribe-all"}}
	}
	tests := []struct {
		name   string
		form   url.Values
		header []string
		age    time.Duration
	}{
		{"missing", url.Values{"do": {"unsubscribe-all"}}, nil, 0},
		{"empty", save(""), nil, 0},
		{"wrong", save(string(flipped)), nil, 0},
		{"other bucket", save(bucket + "1." + mac), nil, 0},
		{"no bucket", save(mac), nil, 0},
		{"another contact's", save(bobs), nil, 0},
		{"from the future", save(future), nil, 0},
		{"expired", save(good), nil, prefCSRFTTL + time.Second},
		{"cross-site fetch", save(good), []string{"Sec-Fetch-Site", "cross-site"}, 0},
		{"same-site fetch", save(good), []string{"Sec-Fetch-Site", "same-site"}, 0},
		{"foreign origin", save(good), []string{"Origin", "https://evil.example"}, 0},
	}
	before := b.ledger(t, "ana")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.clock.Add(tt.age)
			defer b.clock.Add(-tt.age)
			resp, body := postForm(t, u, tt.form, tt.header...)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("status %d, want 403", resp.StatusCode)
			}
			if !strings.Contains(body, "nothing was changed") {
				t.Error("the 403 page does not say nothing changed")
			}
		})
	}
	if diff := cmp.Diff(before, b.ledger(t, "ana")); diff != "" {
		t.Errorf("a rejected form changed the ledger:\n%s", diff)
	}
	// Still valid just under two hours, from the browser's own page.
	b.clock.Add(prefCSRFTTL - prefCSRFBucket)
	resp, _ := postForm(t, u, save(good), "Sec-Fetch-Site", "same-origin", "Origin", "null")
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("valid form: %d, want 303", resp.StatusCode)
	}
	resp, _ = postForm(t, u, save(csrfOf(t, u)), "Origin", b.srv.URL)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("valid form with our Origin: %d, want 303", resp.StatusCode)
	}
	if got := len(b.ledger(t, "ana")) - len(before); got != 1 {
		t.Errorf("%d ledger events, want 1", got)
	}
}

func TestPreferenceTokenTampering(t *testing.T) {
	t.Parallel()
	b := setupAna(t)
	ctx := context.Background()
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "bob", Email: "bob@example.com"}, "Europe/Paris"))
	grantConsent(t, b, "bob", channels.Email)
	u := b.prefURL(t, "ana")
	tok := strings.TrimPrefix(u, b.srv.URL+"/preferences/")
	bobTok := strings.TrimPrefix(b.prefURL(t, "bob"), b.srv.URL+"/preferences/")
	payload, mac, _ := strings.Cut(tok, ".")
	bobPayload, _, _ := strings.Cut(bobTok, ".")
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	other, err := templates.NewSigner(map[string][]byte{"k1": []byte("another-secret-another-secret-another!")}, "k1")
	must(t, err)
	forged, err := other.Sign(templates.Claims{Contact: "ana", Channel: "email", Topic: "newsletter"})
	must(t, err)
	bad := map[string]string{
		"payload char flipped": flip(payload, 5) + "." + mac,
		"mac char flipped":     payload + "." + flip(mac, 3),
		"truncated":            tok[:len(tok)-4],
		"no mac":               payload,
		"another contact's payload with this mac": bobPayload + "." + mac,
		"signed with another key":                 forged,
		"garbage":                                 "x%0D%0ASet-Cookie:%20a=1",
	}
	csrf := csrfOf(t, u)
	ledgers := map[string][]dispatcher.ConsentEvent{"ana": b.ledger(t, "ana"), "bob": b.ledger(t, "bob")}
	for name, tk := range bad {
		t.Run(name, func(t *testing.T) {
			pu := b.srv.URL + "/preferences/" + tk
			resp, body := get(t, pu)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("GET: %d, want 400", resp.StatusCode)
			}
			if strings.Contains(body, "@example.com") {
				t.Error("the error page shows personal data")
			}
			if resp.Header.Get("Set-Cookie") != "" {
				t.Error("the token made a header")
			}
			resp, _ = postForm(t, pu, url.Values{"csrf": {csrf}, "do": {"unsubscribe-all"}})
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("POST: %d, want 400", resp.StatusCode)
			}
		})
	}
	// Bob's own token with Ana's form: the CSRF token is Ana's.
	resp, _ := postForm(t, b.srv.URL+"/preferences/"+bobTok, url.Values{"csrf": {csrf}, "do": {"unsubscribe-all"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("Bob's token with Ana's form: %d, want 403", resp.StatusCode)
	}
	for id, l := range ledgers {
		if diff := cmp.Diff(l, b.ledger(t, id)); diff != "" {
			t.Errorf("%s's ledger changed:\n%s", id, diff)
		}
	}

	// A valid token of a contact that is gone: 404, before and after the form.
	gone := b.prefURL(t, "gone")
	resp, body := get(t, gone)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no longer hold") {
		t.Errorf("unknown contact: %d, want 404 page", resp.StatusCode)
	}
	csrf = csrfOf(t, u)
	must(t, b.redis.Client.Del(ctx, b.d.Store.ContactKey("ana")).Err())
	resp, _ = postForm(t, u, url.Values{"csrf": {csrf}, "do": {"unsubscribe-all"}})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("erased contact POST: %d, want 404", resp.StatusCode)
	}
	if diff := cmp.Diff(ledgers["ana"], b.ledger(t, "ana")); diff != "" {
		t.Errorf("erased contact's ledger changed:\n%s", diff)
	}
}

func TestPreferenceFormLimits(t *testing.T) {
	t.Parallel()
	b := setupAna(t)
	u := b.prefURL(t, "ana")
	before := b.ledger(t, "ana")
	big := url.Values{"csrf": {csrfOf(t, u)}, "do": {"unsubscribe-all"}, "pad": {strings.Repeat("a", maxFormBody)}}
	if resp, _ := postForm(t, u, big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized form: %d, want 413", resp.StatusCode)
	}
	if resp, _ := postForm(t, u, url.Values{"csrf": {csrfOf(t, u)}, "do": {"drop-tables"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown action: %d, want 400", resp.StatusCode)
	}
	if diff := cmp.Diff(before, b.ledger(t, "ana")); diff != "" {
		t.Errorf("ledger changed:\n%s", diff)
	}
}

// A campaign is queued; a recipient clicks the one-click link of the
// message waiting for them before any worker sends it: that message is not
// sent, and the run counts both the decision and the unsubscribe.
func TestOneClickBeforeTheWorkerRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedMailing(t, b, 3)
	ctx := context.Background()
	srv := b.srv

	// Plan and gate only: the sends wait in their queue.
	stopGate := b.startGate(1)
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	waitFor(t, "three queued sends", 10*time.Second, func() bool {
		r, err := b.d.Store.Run(ctx, run)
		return err == nil && r.Counters["queued"] == 3
	})
	must(t, stopGate())

	// The link the waiting message carries, clicked as RFC 8058 says.
	send := dispatcher.SendID(run, "m0001", channels.Email)
	link, err := b.d.Pipeline.UnsubscribeURL("m0001", channels.Email, "newsletter", send)
	must(t, err)
	if code := b.oneClick(t, srv.URL, link); code != http.StatusOK {
		t.Fatalf("one-click answered %d", code)
	}

	b.startWorker(t)
	r := b.waitRun(t, run, 20*time.Second)
	if r.Counters["sent"] != 2 || r.Counters["no_consent"] != 1 || !r.Balanced {
		t.Errorf("counters %v, want 2 sent and 1 no_consent", r.Counters)
	}
	if r.Feedback[storepkg.FeedbackUnsubscribes] != 1 {
		t.Errorf("run feedback %v, want 1 unsubscribe", r.Feedback)
	}
	for _, m := range b.smtp.Messages() {
		if m.To[0] == "m0001@example.com" {
			t.Error("the message went out after its recipient unsubscribed")
		}
	}
	f, err := b.d.Store.TopicFeedback(ctx, "newsletter")
	must(t, err)
	if f[storepkg.FeedbackUnsubscribes] != 1 {
		t.Errorf("topic feedback %v, want 1 unsubscribe", f)
	}
	// A second click changes nothing and counts nothing.
	code := b.oneClick(t, srv.URL, link)
	if r, _ := b.d.Store.Run(ctx, run); r.Feedback[storepkg.FeedbackUnsubscribes] != 1 || code != http.StatusOK {
		t.Errorf("second click: status %d, feedback %v", code, r.Feedback)
	}
}

// oneClick posts the RFC 8058 one-click body to link, served at srvURL in
// place of the public URL, and returns the status.
func (b *testBundle) oneClick(t testing.TB, srvURL, link string) int {
	t.Helper()
	res, err := http.Post(srvURL+strings.TrimPrefix(link, b.cfg.PublicURL), "application/x-www-form-urlencoded",
		strings.NewReader("List-Unsubscribe=One-Click"))
	must(t, err)
	res.Body.Close()
	return res.StatusCode
}

// Token keys rotate: links signed with the old key keep working while it
// is listed, new links use the new key, and a removed key's links stop.
func TestTokenKeyRotation(t *testing.T) {
	t.Parallel()
	old := []byte("old-token-key-old-token-key-0123456789")
	next := []byte("new-token-key-new-token-key-0123456789")
	b := setup(t, withConfig(func(c *app.Config) { c.TokenKeys, c.ActiveTokenKey = map[string][]byte{"k1": old}, "k1" }))
	seedMailing(t, b, 1)
	oldLink, err := b.d.Pipeline.UnsubscribeURL("m0000", channels.Email, "newsletter", "")
	must(t, err)

	click := func(d *app.Dispatcher, link string) int {
		srv := httptest.NewServer(Handler(d, nil))
		defer srv.Close()
		return b.oneClick(t, srv.URL, link)
	}
	rotated := b.cfg
	rotated.TokenKeys, rotated.ActiveTokenKey = map[string][]byte{"k2": next, "k1": old}, "k2"
	d2, err := app.New(rotated)
	must(t, err)
	newLink, err := d2.Pipeline.UnsubscribeURL("m0000", channels.Email, "newsletter", "")
	must(t, err)
	if newLink == oldLink {
		t.Fatal("the new key signs the same token")
	}
	if code := click(d2, oldLink); code != http.StatusOK {
		t.Errorf("old link during the grace period: %d, want 200", code)
	}
	retired := b.cfg
	retired.TokenKeys, retired.ActiveTokenKey = map[string][]byte{"k2": next}, "k2"
	d3, err := app.New(retired)
	must(t, err)
	if code := click(d3, oldLink); code != http.StatusBadRequest {
		t.Errorf("old link after its key was removed: %d, want 400", code)
	}
	if code := click(d3, newLink); code != http.StatusOK {
		t.Errorf("new link: %d, want 200", code)
	}
}

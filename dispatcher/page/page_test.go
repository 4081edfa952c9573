package page

import (
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/templates/golden"
)

// sample holds the values a caller fills views with; the escaping test
// swaps them for hostile ones.
type sample struct {
	topic, description, sender, address, attr, tag, evidence, action, form string
}

var plain = sample{topic: "La lettre", description: "Une fois par mois", sender: "Missive", address: "ana@example.com",
	attr: "Ana", tag: "vip", evidence: "home-footer", action: "/u/tok.en", form: "home"}

// hostile puts markup wherever a caller passes a value through.
var hostile = sample{
	topic:       `<script>alert(1)</script>`,
	description: `"><img src=x onerror=alert(2)>`,
	sender:      `</title><script>alert(3)</script>`,
	address:     `<iframe src="//evil">@example.com`,
	attr:        "</td><script>alert(4)</script>\r\nSet-Cookie: a=1",
	tag:         `<b onmouseover=alert(5)>`,
	evidence:    `<iframe src="//evil">`,
	action:      `javascript:alert(6)`,
	form:        `"><script>alert(7)</script>`,
}

// fixture is one page as a handler would write it.
type fixture struct {
	name   string
	render func(w http.ResponseWriter, l Lang, s sample)
}

var at = time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)

// testWordingID stands for the id a caller gives the form's wording.
const testWordingID = "5e0c2f9d0b7a4e1c8a3f6d2b9e7c1a4f0d8b6e3c2a9f7d5b1e4c8a0f3d6b2e9c"

func fixtures() []fixture {
	return []fixture{
		{"message-invalid-link", func(w http.ResponseWriter, l Lang, s sample) {
			Message(w, http.StatusBadRequest, l, InvalidUnsubscribeLink)
		}},
		{"message-signup-confirmed", func(w http.ResponseWriter, l Lang, s sample) {
			Message(w, http.StatusOK, l, SignupConfirmed, s.topic+", "+s.description)
		}},
		{"embedded-signup-failed", func(w http.ResponseWriter, l Lang, s sample) {
			EmbeddedMessage(w, http.StatusUnprocessableEntity, l, SignupFailed, BadPhone)
		}},
		{"unsubscribe", func(w http.ResponseWriter, l Lang, s sample) {
			Unsubscribe(w, UnsubscribeView{Lang: l, Topic: s.topic, Channel: channels.Email, Action: s.action})
		}},
		{"unsubscribe-done-sms", func(w http.ResponseWriter, l Lang, s sample) {
			Unsubscribe(w, UnsubscribeView{Lang: l, Topic: s.topic, Channel: channels.SMS, Done: true})
		}},
		{"confirm", func(w http.ResponseWriter, l Lang, s sample) {
			Confirm(w, ConfirmView{Lang: l, Topics: []string{s.topic, "Promotions"}, Action: s.action})
		}},
		{"form-email", func(w http.ResponseWriter, l Lang, s sample) {
			SignupForm(w, http.StatusOK, FormView{Lang: l, Sender: s.sender, Channel: channels.Email, Form: s.form, WordingID: testWordingID,
				Topics: []FormTopic{{ID: "newsletter", Name: s.topic, Description: s.description}, {ID: "promotions", Name: "Promotions"}}})
		}},
		{"form-email-error", func(w http.ResponseWriter, l Lang, s sample) {
			SignupForm(w, http.StatusUnprocessableEntity, FormView{Lang: l, Sender: s.sender, Channel: channels.Email, Error: BadEmail, WordingID: testWordingID,
				Topics: []FormTopic{{ID: "newsletter", Name: s.topic, Checked: true}, {ID: "promotions", Name: "Promotions"}}})
		}},
		{"form-sms-single", func(w http.ResponseWriter, l Lang, s sample) {
			SignupForm(w, http.StatusUnprocessableEntity, FormView{Lang: l, Sender: s.sender, Channel: channels.SMS, Error: BadPhone, WordingID: testWordingID,
				Topics: []FormTopic{{ID: "newsletter", Name: s.topic, Description: s.description}}})
		}},
		{"preferences", func(w http.ResponseWriter, l Lang, s sample) {
			ny, err := time.LoadLocation("America/New_York")
			if err != nil {
				panic(err)
			}
			Preferences(w, PreferencesView{Lang: l, Sender: s.sender, Action: s.action, CSRF: "2413.c2lnbmVk", Saved: "1", Location: ny,
				Channels: []PreferenceChannel{
					{Channel: channels.Email, Address: s.address, Topics: []PreferenceTopic{
						{ID: "newsletter", Name: s.topic, Description: s.description, Checked: true},
						{ID: "promotions", Name: "Promotions"},
						{ID: "orders", Name: "Orders", Description: "Receipts", Transactional: true},
					}},
					{Channel: channels.SMS, Address: "+33612345678"},
				},
				Profile: Profile{Email: s.address, Phone: "+33612345678", Timezone: "America/New_York", Locale: "fr-FR",
					Tags: []string{s.tag, "early-bird"}, Attributes: map[string]string{"first_name": s.attr, "city": "Lyon"},
					Created: at, Updated: at.Add(time.Hour)},
				Consents: []Consent{{Channel: channels.Email, Topic: s.topic, State: "granted", Source: "import", At: at},
					{Channel: channels.SMS, Topic: "retired", State: "withdrawn", Source: "signup", At: at}},
				History: []Consent{
					{Channel: channels.SMS, Topic: "retired", State: "withdrawn", Source: "sms-stop", At: at.Add(time.Hour)},
					{Channel: channels.Email, Topic: s.topic, State: "granted", Source: "import", At: at,
						Evidence: map[string]string{"form": s.evidence, "ip_hash": "ab12"}},
				},
				HistoryCut: 500,
				Suppressions: []Suppression{{Channel: channels.Email, Address: s.address, Reason: "complaint", At: at},
					{Channel: channels.SMS, Address: "+33612345678", Reason: "bounce", At: at, Until: at.Add(72 * time.Hour)}},
			})
		}},
		{"preferences-no-address", func(w http.ResponseWriter, l Lang, s sample) {
			Preferences(w, PreferencesView{Lang: l, Sender: s.sender, Action: s.action, CSRF: "2413.c2lnbmVk", Saved: "all"})
		}},
	}
}

// dump is a response as the golden files hold it: status, headers, body.
func dump(r *httptest.ResponseRecorder) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", r.Code)
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.Header() {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(r.Header()[k], ", "))
	}
	b.WriteString("\n")
	b.WriteString(r.Body.String())
	return b.String()
}

// TestGolden renders every page in both languages against
// testdata/<page>.<lang>.golden; go test -update rewrites them.
func TestGolden(t *testing.T) {
	eachPage(t, plain, func(t *testing.T, name string, w *httptest.ResponseRecorder) {
		golden.Check(t, name+".golden", dump(w))
	})
}

// eachPage renders every page in both languages with the values of s and
// hands each, in its own subtest named page.lang, to check.
func eachPage(t *testing.T, s sample, check func(t *testing.T, name string, w *httptest.ResponseRecorder)) {
	for _, f := range fixtures() {
		for _, l := range langs {
			name := f.name + "." + string(l)
			t.Run(name, func(t *testing.T) {
				w := httptest.NewRecorder()
				f.render(w, l, s)
				check(t, name, w)
			})
		}
	}
}

// TestHeaders checks what every page sends: only the sign-up form and its
// answers may be framed.
func TestHeaders(t *testing.T) {
	frameable := map[string]bool{"embedded-signup-failed": true, "form-email": true, "form-email-error": true, "form-sms-single": true}
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			f.render(w, English, plain)
			want := map[string]string{
				"Content-Type":            "text/html; charset=utf-8",
				"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
				"X-Frame-Options":         "DENY",
				"Referrer-Policy":         "no-referrer",
				"X-Content-Type-Options":  "nosniff",
				"Cache-Control":           "no-store",
			}
			if frameable[f.name] {
				want["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors *"
				want["X-Frame-Options"] = ""
			}
			if strings.HasPrefix(f.name, "preferences") {
				want["Content-Language"] = "en"
			}
			got := map[string]string{}
			for k := range w.Header() {
				got[k] = w.Header().Get(k)
			}
			for k := range want {
				if want[k] == "" {
					delete(want, k)
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHostileValuesAreEscaped renders every page with markup in every
// value a caller passes through: none may come out as markup.
func TestHostileValuesAreEscaped(t *testing.T) {
	eachPage(t, hostile, func(t *testing.T, _ string, w *httptest.ResponseRecorder) {
		body := w.Body.String()
		for _, bad := range []string{"<script", "<img", "<iframe", "<b ", "</td><script", "</title><script", "javascript:"} {
			if strings.Contains(body, bad) {
				t.Errorf("the page holds %q unescaped:\n%s", bad, body)
			}
		}
		if w.Header().Get("Set-Cookie") != "" {
			t.Error("a value made a header")
		}
	})
	// And the escaped text is there, so that the test above can fail.
	w := httptest.NewRecorder()
	for _, f := range fixtures() {
		if f.name == "preferences" {
			f.render(w, English, hostile)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"&#34;&gt;&lt;img src=x onerror=alert(2)&gt;",
		"&lt;/title&gt;&lt;script&gt;alert(3)&lt;/script&gt;",
		"&lt;/td&gt;&lt;script&gt;alert(4)&lt;/script&gt;\r\nSet-Cookie: a=1",
		"form: &lt;iframe src=&#34;//evil&#34;&gt;",
		`action="#ZgotmplZ"`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("the preference page lacks %q", want)
		}
	}
}

// TestTemplateErrorGivesTheErrorPage: a page that fails to render is
// replaced whole by the temporary error page, never half written.
func TestTemplateErrorGivesTheErrorPage(t *testing.T) {
	broken := template.Must(template.New("broken").Parse(`<p>{{.Missing}}</p>`))
	w := httptest.NewRecorder()
	render(w, http.StatusOK, true, broken, struct{}{}, English, English)
	if w.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", w.Code)
	}
	body := w.Body.String()
	if !strings.HasPrefix(body, "<!doctype html>") || !strings.Contains(body, "<h1>Temporary error</h1>") || strings.Contains(body, "<p><") {
		t.Errorf("body:\n%s", body)
	}
	if w.Header().Get("X-Frame-Options") != "DENY" || w.Header().Get("Content-Language") != "" {
		t.Errorf("headers %v", w.Header())
	}
}

// TestViewLangOutsideOursIsDefault: a view with no language (or one we
// do not write in) renders in Default rather than failing.
func TestViewLangOutsideOursIsDefault(t *testing.T) {
	for _, l := range []Lang{"", "de", "FR"} {
		w := httptest.NewRecorder()
		Preferences(w, PreferencesView{Lang: l})
		if !strings.Contains(w.Body.String(), `<html lang="en">`) || w.Header().Get("Content-Language") != "en" {
			t.Errorf("Lang %q: not rendered in English", l)
		}
	}
}

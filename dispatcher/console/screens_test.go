package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
)

// templateValues is the template editor's form.
func templateValues(id, tok string) url.Values {
	return url.Values{"csrf": {tok}, "id": {id}, "email.subject": {"Bonjour {{.Attr.first_name}}"},
		"email.html": {"<p>Hi {{.Attr.first_name}}</p>"}, "email.text": {"Hi {{.Attr.first_name}}"},
		"sms.body": {"Hi {{.Attr.first_name}}, -10% today"}, "sample": {"first_name=Zoé"}}
}

func TestTemplateEditor(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx := context.Background()
	mark := b.signedIn(t, "mark")
	tok := mark.csrf("/console/templates/new")

	// Saved, listed, versioned.
	if a := mark.post("/console/templates", templateValues("promo", tok)); a.status != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", a.status, a.body)
	}
	tpl, err := b.d.Store.Template(ctx, "promo")
	must(t, err)
	if tpl.Version != 1 || tpl.SMS == nil || tpl.Email.Subject != "Bonjour {{.Attr.first_name}}" {
		t.Errorf("stored: %+v", tpl)
	}
	if a := mark.get("/console/templates?lang=en"); !strings.Contains(a.body, `data-template="promo"`) || !strings.Contains(a.body, `data-template="news-mail"`) {
		t.Errorf("list: %d\n%s", a.status, a.body)
	}
	// The same id again is a conflict shown next to the id.
	if a := mark.post("/console/templates", templateValues("promo", tok)); a.status != http.StatusConflict || !strings.Contains(errorAfter(a.body, "id"), "already") {
		t.Errorf("duplicate: %d %q", a.status, errorAfter(a.body, "id"))
	}

	// The preview renders the form's template with the sample data, GSM-7
	// then UCS-2 when a character outside GSM-7 is typed.
	form := templateValues("", tok)
	a := mark.post("/console/templates/promo/preview?lang=en", form)
	if a.status != http.StatusOK || !strings.Contains(a.body, `id="preview-subject">Bonjour Zoé<`) ||
		!strings.Contains(a.body, `data-parts="1" data-encoding="GSM-7"`) {
		t.Errorf("preview: %d\n%s", a.status, a.body)
	}
	if !strings.Contains(a.body, templates.OptOutFR) || !strings.Contains(a.body, "List-Unsubscribe-Post") {
		t.Error("the preview lacks the marketing obligations (STOP line, one-click headers)")
	}
	// The HTML part is shown in a sandboxed frame, as text of its srcdoc:
	// a script in it neither lands in the page nor runs.
	xss := templateValues("", tok)
	xss.Set("email.html", `<p>Hi</p><script>alert(1)</script>`)
	if a := mark.post("/console/templates/promo/preview", xss); a.status != http.StatusOK || strings.Contains(a.body, "<script>alert") ||
		!strings.Contains(a.body, `<iframe class="mail" sandbox`) {
		t.Errorf("HTML part preview: %d", a.status)
	}
	form.Set("sms.body", "Hi {{.Attr.first_name}} 😀")
	if a := mark.post("/console/templates/promo/preview", form); !strings.Contains(a.body, `data-encoding="UCS-2"`) {
		t.Errorf("UCS-2 not shown:\n%s", a.body)
	}
	if got, _ := b.d.Store.Template(ctx, "promo"); got.Version != 1 {
		t.Error("a preview saved the template")
	}

	// Errors of the template are shown next to their part, in each language.
	for _, tc := range []struct{ lang, field, value, want string }{
		{"en", "email.html", "<p>{{.Attr.first_nme}}", `missing variable &#34;first_nme&#34;`},
		{"fr", "email.subject", "{{range .Attr}}x{{end}}", "range"},
		{"en", "sample", "no equals sign", "must be name=value"},
	} {
		f := templateValues("", tok)
		f.Set(tc.field, tc.value)
		a := mark.post("/console/templates/promo/preview?lang="+tc.lang, f)
		if a.status != http.StatusUnprocessableEntity || !strings.Contains(errorAfter(a.body, tc.field), tc.want) ||
			!strings.Contains(a.body, `<html lang="`+tc.lang+`">`) {
			t.Errorf("%s=%q: %d %q", tc.field, tc.value, a.status, errorAfter(a.body, tc.field))
		}
	}
	// A save with an error changes nothing.
	f := templateValues("", tok)
	f.Set("email.html", "<p>{{.Attr.first_name")
	if a := mark.post("/console/templates/promo", f); a.status != http.StatusUnprocessableEntity || errorAfter(a.body, "email.html") == "" {
		t.Errorf("bad save: %d", a.status)
	}
	if got, _ := b.d.Store.Template(ctx, "promo"); got.Version != 1 {
		t.Error("a refused save changed the template")
	}

	// The page documents the language in both languages.
	for lang, word := range map[string]string{"fr": "Le langage des modèles", "en": "The template language"} {
		if a := mark.get("/console/templates/promo?lang=" + lang); !strings.Contains(a.body, word) || !strings.Contains(a.body, "UnsubscribeURL") {
			t.Errorf("reference in %s missing", lang)
		}
	}
}

func TestTemplatePreviewRoles(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx := context.Background()
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "real", Email: "real.person@example.org",
		Attributes: map[string]string{"first_name": "Réelle"}}, "Europe/Paris"))
	form := func(c *client, contact string) url.Values {
		f := templateValues("", c.csrf("/console/templates/news-mail"))
		f.Set("contact", contact)
		return f
	}
	// An admin previews with a real contact's data.
	ana := b.signedIn(t, "ana")
	if a := ana.post("/console/templates/news-mail/preview", form(ana, "real")); a.status != http.StatusOK || !strings.Contains(a.body, "Bonjour Réelle") {
		t.Errorf("admin with a contact: %d\n%s", a.status, a.body)
	}
	if a := ana.post("/console/templates/news-mail/preview", form(ana, "ghost")); !strings.Contains(errorAfter(a.body, "contact"), "names no contact") {
		t.Errorf("unknown contact: %d", a.status)
	}
	// A marketer and a read-only user preview with sample data only.
	for _, name := range []string{"mark", "rita"} {
		c := b.signedIn(t, name)
		if a := c.get("/console/templates/news-mail"); strings.Contains(a.body, `name="contact"`) {
			t.Errorf("%s is offered a real contact's preview", name)
		}
		a := c.post("/console/templates/news-mail/preview", form(c, "real"))
		if a.status != http.StatusForbidden || strings.Contains(a.body, "Réelle") {
			t.Errorf("%s with a contact: %d", name, a.status)
		}
		f := form(c, "")
		if a := c.post("/console/templates/news-mail/preview", f); a.status != http.StatusOK || !strings.Contains(a.body, "Bonjour Zoé") {
			t.Errorf("%s with sample data: %d", name, a.status)
		}
	}
	// A read-only user cannot save, nor without a CSRF token anyone.
	rita := b.signedIn(t, "rita")
	if a := rita.post("/console/templates/news-mail", form(rita, "")); a.status != http.StatusForbidden {
		t.Errorf("read-only save: %d", a.status)
	}
	f := form(ana, "")
	f.Del("csrf")
	if a := ana.post("/console/templates/news-mail", f); a.status != http.StatusForbidden {
		t.Errorf("save without a token: %d", a.status)
	}
	if got, _ := b.d.Store.Template(ctx, "news-mail"); got.Version != 1 {
		t.Error("a refused save changed the template")
	}
}

func TestSegmentsAndTopics(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx := context.Background()
	b.seedContacts(t, 3)
	mark := b.signedIn(t, "mark")
	tok := mark.csrf("/console/segments/new")
	a := mark.get("/console/segments")
	if !strings.Contains(a.body, `<td class="num" data-count>3</td>`) {
		t.Errorf("segment count:\n%s", a.body)
	}
	seg := url.Values{"csrf": {tok}, "id": {"lyon"}, "tags_all": {"vip"}, "where": {"city eq Lyon\nlevel in gold | silver"}, "contacts": {""}}
	if a := mark.post("/console/segments", seg); a.status != http.StatusSeeOther {
		t.Fatalf("create segment: %d\n%s", a.status, a.body)
	}
	sg, err := b.d.Store.Segment(ctx, "lyon")
	must(t, err)
	want := []dispatcher.Predicate{{Attr: "city", Op: "eq", Value: "Lyon"}, {Attr: "level", Op: "in", Values: []string{"gold", "silver"}}}
	if diff := cmp.Diff(want, sg.Where); diff != "" || len(sg.TagsAll) != 1 {
		t.Errorf("segment (-want +got):\n%s", diff)
	}
	// The count of a segment by attributes is the admin's only, as the
	// API's is the contacts scope's.
	if a := mark.get("/console/segments"); !strings.Contains(a.body, `data-segment="lyon"`) || strings.Contains(a.body, "<td class=\"num\" data-count>0</td>") {
		t.Errorf("a marketer sees the count of a segment by attributes:\n%s", a.body)
	}
	if a := mark.get("/console/segments/lyon"); !strings.Contains(a.body, `id="segment-uncounted"`) || strings.Contains(a.body, `id="segment-count"`) {
		t.Error("a marketer sees the count of a segment by attributes on its page")
	}
	if a := b.signedIn(t, "ana").get("/console/segments/lyon"); !strings.Contains(a.body, `<p id="segment-count">0 contacts match today.</p>`) {
		t.Errorf("an admin does not see the count of a segment by attributes:\n%s", a.body)
	}
	for _, tc := range []struct{ field, value, lang, want string }{
		{"where", "city equals Lyon", "en", "line 1 must be"},
		{"id", "Bad Id", "fr", "must"},
	} {
		f := url.Values{"csrf": {tok}, "id": {"other"}, "tags_all": {"vip"}}
		f.Set(tc.field, tc.value)
		a := mark.post("/console/segments?lang="+tc.lang, f)
		if a.status != http.StatusUnprocessableEntity || !strings.Contains(errorAfter(a.body, tc.field), tc.want) {
			t.Errorf("segment %s=%q: %d %q", tc.field, tc.value, a.status, errorAfter(a.body, tc.field))
		}
	}
	if a := mark.post("/console/segments", seg); a.status != http.StatusConflict {
		t.Errorf("duplicate segment: %d", a.status)
	}

	// Topics: listed with their feedback counters; created; a wrong kind
	// is shown next to the field.
	must(t, b.d.Store.CountEvents(ctx))
	a = mark.get("/console/topics?lang=fr")
	if !strings.Contains(a.body, `data-topic="newsletter"`) || !strings.Contains(a.body, `data-feedback="complained"`) || !strings.Contains(a.body, "plaintes") {
		t.Errorf("topics:\n%s", a.body)
	}
	top := url.Values{"csrf": {tok}, "id": {"orders"}, "name": {"Orders"}, "kind": {"transactional"}}
	if a := mark.post("/console/topics", top); a.status != http.StatusSeeOther {
		t.Fatalf("create topic: %d\n%s", a.status, a.body)
	}
	if tp, err := b.d.Store.Topic(ctx, "orders"); err != nil || tp.Kind != dispatcher.Transactional {
		t.Errorf("topic: %+v %v", tp, err)
	}
	top.Set("kind", "spam")
	if a := mark.post("/console/topics/orders", top); a.status != http.StatusUnprocessableEntity || errorAfter(a.body, "kind") == "" {
		t.Errorf("bad kind: %d", a.status)
	}
	rita := b.signedIn(t, "rita")
	top.Set("kind", "marketing")
	top.Set("csrf", rita.csrf("/console/topics"))
	if a := rita.post("/console/topics/orders", top); a.status != http.StatusForbidden {
		t.Errorf("read-only edits a topic: %d", a.status)
	}
	if tp, _ := b.d.Store.Topic(ctx, "orders"); tp.Kind != dispatcher.Transactional {
		t.Error("a refused edit changed the topic")
	}
}

func TestSuppressions(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx := context.Background()
	const addr = "Someone.Private@Example.org"
	ana := b.signedIn(t, "ana")
	tok := ana.csrf("/console/suppressions")
	if a := ana.post("/console/suppressions/add", url.Values{"csrf": {tok}, "channel": {"email"}, "address": {addr}, "reason": {"complaint"}}); a.status != http.StatusSeeOther {
		t.Fatalf("add: %d\n%s", a.status, a.body)
	}
	if _, err := b.d.Store.Suppression(ctx, channels.Email, "someone.private@example.org"); err != nil {
		t.Fatalf("not suppressed: %v", err)
	}
	mark := b.signedIn(t, "mark")
	mtok := mark.csrf("/console/suppressions")
	a := mark.post("/console/suppressions/lookup?lang=en", url.Values{"csrf": {mtok}, "channel": {"email"}, "address": {addr}})
	if a.status != http.StatusOK || !strings.Contains(a.body, "This address is suppressed.") || strings.Contains(strings.ToLower(a.body), "someone.private") {
		t.Errorf("lookup: %d\n%s", a.status, a.body)
	}
	if strings.Contains(a.body, `id="suppression-add"`) {
		t.Error("a marketer is offered to add a suppression")
	}
	if a := mark.post("/console/suppressions/remove", url.Values{"csrf": {mtok}, "channel": {"email"}, "address": {addr}}); a.status != http.StatusForbidden {
		t.Errorf("marketer removes: %d", a.status)
	}
	if a := b.signedIn(t, "rita").get("/console/suppressions"); a.status != http.StatusForbidden {
		t.Errorf("read-only sees suppressions: %d", a.status)
	}
	for _, tc := range []struct {
		field string
		form  url.Values
	}{
		{"address", url.Values{"channel": {"email"}, "address": {"not an address"}}},
		{"channel", url.Values{"channel": {"fax"}, "address": {addr}}},
		{"until", url.Values{"channel": {"email"}, "address": {addr}, "until": {"2001-01-01"}}},
	} {
		tc.form.Set("csrf", tok)
		a := ana.post("/console/suppressions/add?lang=fr", tc.form)
		i := strings.Index(a.body, `id="suppression-add"`)
		if a.status != http.StatusUnprocessableEntity || i < 0 || errorAfter(a.body[:i], tc.field) != "" {
			t.Fatalf("%s: %d, or an error shown in the lookup form", tc.field, a.status)
		}
		add := a.body[i:]
		if errorAfter(add, tc.field) == "" || strings.Count(a.body, `class="field-error"`) != 1 {
			t.Errorf("%s: the error is not shown once, next to the field of the form sent", tc.field)
		}
	}
	if a := ana.post("/console/suppressions/remove", url.Values{"csrf": {tok}, "channel": {"email"}, "address": {addr}}); a.status != http.StatusSeeOther {
		t.Fatalf("remove: %d", a.status)
	}
	if _, err := b.d.Store.Suppression(ctx, channels.Email, "someone.private@example.org"); err == nil {
		t.Error("still suppressed")
	}
	if strings.Contains(strings.ToLower(b.logs.String()), "someone.private") {
		t.Error("the address is in the logs")
	}
}

func TestContactPage(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx := context.Background()
	b.seedContacts(t, 1) // c000, c000@example.com, consented by the API
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "c000", Email: "c000@example.com", Phone: "+33612345678",
		Attributes: map[string]string{"first_name": "Secret"}, Tags: []string{"vip"}}, "Europe/Paris"))

	// An admin finds the contact by its address and sees everything.
	ana := b.signedIn(t, "ana")
	tok := ana.csrf("/console/contacts")
	a := ana.post("/console/contacts/find", url.Values{"csrf": {tok}, "op": {"address"}, "channel": {"email"}, "address": {"C000@Example.com"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/console/contacts/c000" {
		t.Fatalf("lookup: %d %q", a.status, a.header.Get("Location"))
	}
	a = ana.get("/console/contacts/c000?lang=en")
	for _, want := range []string{"c000@example.com", "&#43;33612345678", "Secret", `data-consent="email/newsletter"`, `data-ok="true"`, "Ledger verified: 1 events", `id="erase-contact"`} {
		if !strings.Contains(a.body, want) {
			t.Errorf("admin's contact page lacks %s", want)
		}
	}
	if a := ana.post("/console/contacts/find", url.Values{"csrf": {tok}, "op": {"address"}, "channel": {"email"}, "address": {"nobody@example.com"}}); a.status != http.StatusNotFound || errorAfter(a.body, "address") == "" {
		t.Errorf("unknown address: %d", a.status)
	}
	if a := ana.post("/console/contacts/find", url.Values{"csrf": {tok}, "op": {"id"}, "id": {"ghost"}}); a.status != http.StatusNotFound || errorAfter(a.body, "id") == "" {
		t.Errorf("unknown id: %d", a.status)
	}

	// A marketer finds it too, without its personal data; a read-only
	// user opens it by id only.
	for _, name := range []string{"mark", "rita"} {
		c := b.signedIn(t, name)
		a := c.get("/console/contacts/c000?lang=fr")
		if a.status != http.StatusOK || !strings.Contains(a.body, `id="no-personal"`) || !strings.Contains(a.body, `data-ok="true"`) {
			t.Errorf("%s: %d\n%s", name, a.status, a.body)
		}
		for _, secret := range []string{"c000@example.com", "33612345678", "Secret", `id="erase-contact"`, `id="export-contact"`} {
			if strings.Contains(a.body, secret) {
				t.Errorf("%s sees %s", name, secret)
			}
		}
		for _, path := range []string{"/console/contacts/c000/export", "/console/contacts/c000/erase"} {
			if a := c.get(path); a.status != http.StatusForbidden {
				t.Errorf("%s GET %s: %d", name, path, a.status)
			}
		}
		if a := c.post("/console/contacts/c000/erase", url.Values{"csrf": {c.csrf("/console/contacts")}, "confirm": {"c000"}}); a.status != http.StatusForbidden {
			t.Errorf("%s erases: %d", name, a.status)
		}
		lookup := c.post("/console/contacts/find", url.Values{"csrf": {c.csrf("/console/contacts")}, "op": {"address"}, "channel": {"email"}, "address": {"c000@example.com"}})
		if wantStatus := map[string]int{"mark": http.StatusSeeOther, "rita": http.StatusForbidden}[name]; lookup.status != wantStatus {
			t.Errorf("%s looks up by address: %d, want %d", name, lookup.status, wantStatus)
		}
	}

	// The export is the API's JSON.
	a = ana.get("/console/contacts/c000/export")
	if a.status != http.StatusOK || !strings.Contains(a.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d", a.status)
	}
	var got, want map[string]any
	must(t, json.Unmarshal([]byte(a.body), &got))
	exp, err := b.d.Privacy.ExportContact(ctx, "c000")
	must(t, err)
	raw, _ := json.Marshal(exp)
	must(t, json.Unmarshal(raw, &want))
	delete(got, "exported_at")
	delete(want, "exported_at")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("export differs from the API's (-api +console):\n%s", diff)
	}

	// Erasure asks for the id, then erases.
	if a := ana.get("/console/contacts/c000/erase"); a.status != http.StatusOK || !strings.Contains(a.body, `id="confirm-erase"`) {
		t.Fatalf("confirmation: %d", a.status)
	}
	if a := ana.post("/console/contacts/c000/erase?lang=en", url.Values{"csrf": {tok}, "confirm": {"c001"}}); a.status != http.StatusUnprocessableEntity || errorAfter(a.body, "confirm") == "" {
		t.Errorf("wrong confirmation: %d", a.status)
	}
	if ok, _ := b.d.Store.ContactExists(ctx, "c000"); !ok {
		t.Fatal("erased without confirmation")
	}
	if a := ana.post("/console/contacts/c000/erase", url.Values{"confirm": {"c000"}}); a.status != http.StatusForbidden {
		t.Errorf("erase without a token: %d", a.status)
	}
	if a := ana.post("/console/contacts/c000/erase", url.Values{"csrf": {tok}, "confirm": {"c000"}}); a.status != http.StatusOK || !strings.Contains(a.body, `id="erased"`) {
		t.Fatalf("erase: %d\n%s", a.status, a.body)
	}
	if a := ana.get("/console/contacts/c000"); a.status != http.StatusNotFound {
		t.Errorf("erased contact's page: %d", a.status)
	}
	if strings.Contains(b.logs.String(), "c000@example.com") {
		t.Error("an address is in the logs")
	}
}

func TestAnalyticsPages(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx := context.Background()
	started := b.startSpring(t, nil)
	var evs []store.Event
	for i := range 400 {
		evs = append(evs, store.Event{Run: started.Run, Topic: "newsletter", Metric: store.MetricEmailSent, Domain: "gmail"})
		if i < 390 {
			evs = append(evs, store.Event{Run: started.Run, Topic: "newsletter", Metric: store.MetricEmailDelivered, Domain: "gmail"})
		}
	}
	evs = append(evs, store.Event{Run: started.Run, Topic: "newsletter", Metric: store.MetricEmailComplained, Domain: "gmail"},
		store.Event{Run: started.Run, Topic: "newsletter", Metric: store.MetricEmailComplained, Domain: "gmail"},
		store.Event{Run: started.Run, Topic: "newsletter", Metric: store.MetricUnsubscribed})
	must(t, b.d.Store.CountEvents(ctx, evs...))
	rita := b.signedIn(t, "rita")
	for _, path := range []string{"/console/runs/" + started.Run + "/analytics", "/console/topics/newsletter/analytics"} {
		for lang, word := range map[string]string{"fr": "Taux de plainte", "en": "Complaint rate"} {
			a := rita.get(path + "?lang=" + lang)
			if a.status != http.StatusOK || !strings.Contains(a.body, word) {
				t.Errorf("%s in %s: %d\n%s", path, lang, a.status, a.body)
				continue
			}
			// 2 complaints of 400 accepted: 0.5 %, past the 0.3 % limit.
			for _, want := range []string{`id="rate-complaint">0.50 %`, `data-level="above_limit" id="complaint"`, `data-domain="gmail"`, `data-series="delivered"`, `<svg class="chart"`} {
				if !strings.Contains(a.body, want) {
					t.Errorf("%s in %s lacks %s", path, lang, want)
				}
			}
		}
	}
	if a := rita.get("/console/topics/newsletter/analytics?from=yesterday"); a.status != http.StatusUnprocessableEntity || errorAfter(a.body, "from") == "" {
		t.Errorf("bad from: %d", a.status)
	}
	if a := rita.get("/console/topics/newsletter/analytics?from=2020-01-01&to=2026-01-01"); a.status != http.StatusUnprocessableEntity {
		t.Errorf("too long a period: %d", a.status)
	}
	// Linked from the run, campaign and topic pages.
	for _, path := range []string{"/console/runs/" + started.Run, "/console/campaigns/spring"} {
		if a := rita.get(path); !strings.Contains(a.body, "/console/runs/"+started.Run+"/analytics") {
			t.Errorf("%s does not link the run's analytics", path)
		}
	}
	if a := rita.get("/console/topics"); !strings.Contains(a.body, "/console/topics/newsletter/analytics") {
		t.Error("the topics do not link their analytics")
	}
}

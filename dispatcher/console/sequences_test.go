package console

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/templates"
)

// seqStart is the clock of the sequence tests: a Tuesday, 11:00 in Paris.
var seqStart = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// setupSequence is setup with a clock at seqStart, a template with both
// parts, the sequence welcome (wait 2 days then until 09:00, send the
// email, else the SMS; stopped by the tag customer) and contacts c000 and
// c001, enrolled and past their first step: their wait ends on Friday 4
// December at 09:00 in Paris (08:00 UTC).
func setupSequence(t *testing.T, worker bool) (*testBundle, *storetest.Clock) {
	t.Helper()
	clock := storetest.NewClock(seqStart)
	b := setup(t, worker, func(c *app.Config) { c.Now = clock.Now })
	ctx := context.Background()
	must(t, b.d.Store.PutTemplate(ctx, &templates.Template{ID: "welcome-mail",
		Email: &templates.Email{Subject: "Welcome", Text: "Welcome aboard!"}, SMS: &templates.SMS{Body: "Welcome aboard!"}}))
	_, _, err := b.d.Sequences.Put(ctx, &dispatcher.Sequence{ID: "welcome", Name: "Welcome", Topic: "newsletter",
		Trigger: dispatcher.SequenceTrigger{Signup: true}, StopTags: []string{"customer"},
		Steps: []dispatcher.SequenceStep{
			{Wait: &dispatcher.Wait{Days: 2, At: "09:00"}},
			{Send: &dispatcher.StepSend{Channel: channels.Email, Template: "welcome-mail", Fallback: channels.SMS}},
		}}, false)
	must(t, err)
	b.seedContacts(t, 2)
	for _, c := range []string{"c000", "c001"} {
		if _, created, err := b.d.Sequences.Enrol(ctx, "welcome", c, dispatcher.TriggerAPI, nil); err != nil || !created {
			t.Fatalf("enrol %s: %v %v", c, created, err)
		}
	}
	must(t, b.d.Sequences.Fire(ctx, "welcome", []string{"c000", "c001"}))
	return b, clock
}

// sequenceValues is the form of the sequence welcome, edited: a day's
// wait until 10:00, an empty row, the email else the SMS, 36 hours, the
// SMS.
func sequenceValues(tok string) url.Values {
	return url.Values{"csrf": {tok}, "name": {"Welcome, second take"}, "topic": {"newsletter"}, "trigger.signup": {"on"},
		"stop_tags":    {"customer, churned"},
		"steps.0.kind": {"wait"}, "steps.0.days": {"1"}, "steps.0.at": {"10:00"},
		"steps.1.kind": {""}, "steps.1.channel": {""},
		"steps.2.kind": {"send"}, "steps.2.channel": {"email"}, "steps.2.template": {"welcome-mail"}, "steps.2.fallback": {"sms"},
		"steps.3.kind": {"wait"}, "steps.3.duration": {"36h"},
		"steps.4.kind": {"send"}, "steps.4.channel": {"sms"}, "steps.4.template": {"welcome-mail"},
	}
}

// errorOf returns the error shown for the form's field (data-err), as the
// page reads, or "".
func errorOf(body, field string) string {
	m := regexp.MustCompile(`<p class="field-error" role="alert" data-err="` + regexp.QuoteMeta(field) + `">([^<]*)</p>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func TestSequenceListAndPage(t *testing.T) {
	t.Parallel()
	b, _ := setupSequence(t, false)
	ctx := context.Background()
	if _, err := b.d.Sequences.Stop(ctx, "welcome", "c001"); err != nil {
		t.Fatal(err)
	}
	mark := b.signedIn(t, "mark")
	a := mark.get("/console/sequences?lang=en")
	if a.status != http.StatusOK {
		t.Fatalf("list: %d\n%s", a.status, a.body)
	}
	row := a.body[strings.Index(a.body, `data-sequence="welcome"`):]
	row = html.UnescapeString(row[:strings.Index(row, "</tr>")])
	for _, want := range []string{`href="/console/sequences/welcome"`, "<td>newsletter</td>", `<td class="num">1</td>`, `data-state="running"`,
		`data-count="active">1<`, `data-count="enrolled">2<`, `data-count="completed">0<`, "by an operator 1",
		`action="/console/sequences/welcome/pause"`} {
		if !strings.Contains(row, want) {
			t.Errorf("list row lacks %s:\n%s", want, row)
		}
	}
	if !strings.Contains(a.body, `id="new-sequence"`) || !strings.Contains(a.body, `href="/console/sequences" aria-current="page">Sequences</a>`) {
		t.Error("the list lacks its nav entry or the new sequence link")
	}
	if a := mark.get("/console/sequences?lang=fr"); a.status != http.StatusOK || !strings.Contains(html.UnescapeString(a.body), "par un opérateur 1") ||
		!strings.Contains(a.body, `aria-current="page">Séquences</a>`) {
		t.Errorf("list in French: %d", a.status)
	}

	// The sequence in words, with its counts and its form, in both
	// languages.
	for _, lang := range []struct {
		code string
		want []string
	}{
		{"en", []string{"Wait 2 days, until 09:00 in the recipient's zone", "Send email welcome-mail, else SMS",
			"on a confirmed sign-up to the topic “newsletter”", "<code>customer</code>", "no: a contact goes through it once",
			`data-count="stopped:by_operator">1<`, `data-count="stopped:left_topic">0<`, `id="sequence-pause"`, "Move running enrolments to this version"}},
		{"fr", []string{"Attendre 2 jours, jusqu'à 09:00 dans le fuseau du destinataire", "Envoyer l'e-mail welcome-mail, sinon par SMS",
			"à l'inscription confirmée au sujet « newsletter »", "non : un contact ne la suit qu'une fois", "arrêtés : par un opérateur"}},
	} {
		a := mark.get("/console/sequences/welcome?lang=" + lang.code)
		body := html.UnescapeString(a.body)
		if a.status != http.StatusOK || !strings.Contains(body, `<html lang="`+lang.code+`">`) {
			t.Fatalf("sequence page in %s: %d\n%s", lang.code, a.status, a.body)
		}
		for _, want := range lang.want {
			if !strings.Contains(body, want) {
				t.Errorf("sequence page in %s lacks %q", lang.code, want)
			}
		}
	}
	// The form holds the steps and three empty rows.
	a = mark.get("/console/sequences/welcome")
	for i, want := range map[string]bool{"0": true, "4": true, "5": false} {
		if got := strings.Contains(a.body, `name="steps.`+i+`.kind"`); got != want {
			t.Errorf("row %s in the form: %v, want %v", i, got, want)
		}
	}
	if !strings.Contains(a.body, `<option value="wait" selected>`) || !strings.Contains(a.body, `<option value="welcome-mail" selected>`) {
		t.Error("the form does not hold the sequence's steps")
	}
	for _, path := range []string{"/console/sequences/new?lang=fr", "/console/sequences/new?lang=en"} {
		if a := mark.get(path); a.status != http.StatusOK || !strings.Contains(a.body, `id="f-id"`) || !strings.Contains(a.body, `name="steps.2.kind"`) {
			t.Errorf("%s: %d", path, a.status)
		}
	}
	if a := mark.get("/console/sequences/ghost"); a.status != http.StatusNotFound {
		t.Errorf("unknown sequence: %d, want 404", a.status)
	}

	// A read-only user sees the list and the page, with no button and no
	// form.
	rita := b.signedIn(t, "rita")
	for _, path := range []string{"/console/sequences", "/console/sequences/welcome"} {
		a := rita.get(path)
		if a.status != http.StatusOK {
			t.Errorf("read-only GET %s: %d", path, a.status)
		}
		for _, offer := range []string{"/pause", "/resume", `id="new-sequence"`, `id="sequence-form"`} {
			if strings.Contains(a.body, offer) {
				t.Errorf("read-only %s offers %s", path, offer)
			}
		}
	}
}

func TestSequenceEdit(t *testing.T) {
	t.Parallel()
	b, _ := setupSequence(t, false)
	ctx := context.Background()
	mark := b.signedIn(t, "mark")
	tok := mark.csrf("/console/sequences/welcome")

	// A version made, the empty row ignored, the enrolments moved.
	form := sequenceValues(tok)
	form.Set("move_enrolments", "on")
	a := mark.post("/console/sequences/welcome", form)
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/console/sequences/welcome?saved=2" {
		t.Fatalf("save: %d to %q\n%s", a.status, a.header.Get("Location"), a.body)
	}
	seq, err := b.d.Store.Sequence(ctx, "welcome")
	must(t, err)
	if seq.Version != 2 || seq.MovedFrom != 2 || seq.Name != "Welcome, second take" || len(seq.Steps) != 4 ||
		seq.Steps[0].Wait == nil || seq.Steps[0].Wait.Days != 1 || seq.Steps[0].Wait.At != "10:00" ||
		seq.Steps[1].Send == nil || seq.Steps[1].Send.Fallback != channels.SMS || seq.Steps[2].Wait.Duration != "36h" ||
		seq.Steps[3].Send.Channel != channels.SMS || strings.Join(seq.StopTags, ",") != "customer,churned" || !seq.Trigger.Signup {
		t.Fatalf("saved sequence: %+v", seq)
	}
	a = mark.get("/console/sequences/welcome?saved=2&lang=en")
	body := html.UnescapeString(a.body)
	for _, want := range []string{"Version 2 saved.", "Wait 1 day, until 10:00 in the recipient's zone", "Wait 36 hours", "Send SMS welcome-mail",
		"Enrolments of versions before 2 move to the current one"} {
		if !strings.Contains(body, want) {
			t.Errorf("page after the save lacks %q", want)
		}
	}
	// Saving it again unchanged makes no version.
	if a := mark.post("/console/sequences/welcome", sequenceValues(tok)); a.status != http.StatusSeeOther || a.header.Get("Location") != "/console/sequences/welcome?saved=none" {
		t.Errorf("unchanged save: %d to %q", a.status, a.header.Get("Location"))
	}

	// A bad field: the error next to it, naming it; what was typed kept;
	// no version.
	for _, tc := range []struct {
		name        string
		set         map[string]string
		field, want string
	}{
		{"unknown template", map[string]string{"steps.2.template": "nope"}, "steps.2.template", "Step 3, Template: names no template"},
		{"template without the part", map[string]string{"steps.4.template": "news-mail"}, "steps.4.template", "Step 5, Template: has no sms part"},
		{"no topic", map[string]string{"topic": ""}, "topic", "Topic: is required"},
		{"unknown topic", map[string]string{"topic": "promotions"}, "topic", "Topic: names no topic"},
		{"days not a number", map[string]string{"steps.0.days": "two"}, "steps.0.days", "Step 1, Days: must be a whole number of days"},
		{"bad time of day", map[string]string{"steps.0.at": "25:00"}, "steps.0.at", "Step 1, At: must be a time of day HH:MM"},
		{"bad duration", map[string]string{"steps.3.duration": "soon"}, "steps.3.duration", "Step 4, Duration: must be a duration"},
		{"no kind", map[string]string{"steps.1.days": "3"}, "steps.1.kind", "Step 2, Kind: must be a wait or a send"},
		{"same channel twice", map[string]string{"steps.2.fallback": "email"}, "steps.2.fallback", "Step 3, Fallback: must be the other channel"},
		{"stop tag is the trigger", map[string]string{"trigger.tag": "customer"}, "stop_tags", "Stop tags: holds the trigger's tag"},
	} {
		form := sequenceValues(tok)
		form.Set("name", "Typed name")
		for k, v := range tc.set {
			form.Set(k, v)
		}
		a := mark.post("/console/sequences/welcome?lang=en", form)
		if a.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d, want 422", tc.name, a.status)
		}
		if got := errorOf(a.body, tc.field); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: error for %s: %q, want %q", tc.name, tc.field, got, tc.want)
		}
		if !strings.Contains(a.body, `value="Typed name"`) || !strings.Contains(a.body, `name="steps.4.channel" id="s4-channel"`) ||
			!strings.Contains(a.body, `name="steps.0.at" id="s0-at" value="`+form.Get("steps.0.at")+`"`) {
			t.Errorf("%s: the form lost what was typed", tc.name)
		}
		if s, _ := b.d.Store.Sequence(ctx, "welcome"); s.Version != 2 {
			t.Fatalf("%s: a refused form made version %d", tc.name, s.Version)
		}
	}

	// A new sequence, then the same id again.
	if a := mark.get("/console/sequences/new"); !strings.Contains(a.body, `name="steps.2.kind"`) || strings.Contains(a.body, `name="steps.3.kind"`) {
		t.Error("the new sequence's form does not offer three empty rows")
	}
	nf := url.Values{"csrf": {tok}, "id": {"trial"}, "topic": {"newsletter"}, "trigger.tag": {"trial-started"}, "reenrol": {"on"},
		"steps.0.kind": {"send"}, "steps.0.channel": {"email"}, "steps.0.template": {"news-mail"}, "steps.1.kind": {""}, "steps.2.kind": {""}}
	a = mark.post("/console/sequences", nf)
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/console/sequences/trial?saved=1" {
		t.Fatalf("new sequence: %d to %q\n%s", a.status, a.header.Get("Location"), a.body)
	}
	if s, err := b.d.Store.Sequence(ctx, "trial"); err != nil || s.Version != 1 || s.Trigger.Tag != "trial-started" || !s.Reenrol || len(s.Steps) != 1 {
		t.Errorf("new sequence: %+v %v", s, err)
	}
	if a := mark.post("/console/sequences?lang=en", nf); a.status != http.StatusConflict || !strings.HasPrefix(errorOf(a.body, "id"), "Id: a sequence has this id already") {
		t.Errorf("same id again: %d %q", a.status, errorOf(a.body, "id"))
	}
	nf.Set("id", "Bad!")
	if a := mark.post("/console/sequences?lang=en", nf); a.status != http.StatusUnprocessableEntity || !strings.HasPrefix(errorOf(a.body, "id"), "Id: must be lower case") {
		t.Errorf("bad id: %d %q", a.status, errorOf(a.body, "id"))
	}
	nf.Set("id", "empty")
	for _, k := range []string{"steps.0.kind", "steps.0.channel", "steps.0.template"} {
		nf.Set(k, "")
	}
	if a := mark.post("/console/sequences?lang=fr", nf); a.status != http.StatusUnprocessableEntity || !strings.HasPrefix(errorOf(a.body, "steps"), "Étapes : must hold 1 to") {
		t.Errorf("no step: %d %q", a.status, errorOf(a.body, "steps"))
	}
	if _, err := b.d.Store.Sequence(ctx, "empty"); err == nil {
		t.Error("a refused new sequence was stored")
	}
	// Editing a sequence that is not there creates nothing.
	if a := mark.post("/console/sequences/ghost", sequenceValues(tok)); a.status != http.StatusNotFound {
		t.Errorf("edit of an unknown sequence: %d, want 404", a.status)
	}
	if _, err := b.d.Store.Sequence(ctx, "ghost"); err == nil {
		t.Error("an edit created a sequence")
	}

	// The saves are in the audit log, under the user's name.
	wantAudited(t, b, 20, "console:mark sequence.put welcome version 2, enrolments moved", "console:mark sequence.put trial version 1")
}

func TestSequencePauseResume(t *testing.T) {
	t.Parallel()
	b, _ := setupSequence(t, false)
	ctx := context.Background()
	mark := b.signedIn(t, "mark")
	tok := mark.csrf("/console/sequences")
	a := mark.post("/console/sequences/welcome/pause", url.Values{"csrf": {tok}, "from": {"list"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/console/sequences" {
		t.Fatalf("pause from the list: %d to %q", a.status, a.header.Get("Location"))
	}
	if s, _ := b.d.Store.Sequence(ctx, "welcome"); !s.Paused {
		t.Fatal("the sequence was not paused")
	}
	a = mark.get("/console/sequences?lang=en")
	if !strings.Contains(a.body, `data-state="paused"`) || !strings.Contains(a.body, `action="/console/sequences/welcome/resume"`) {
		t.Error("the list does not show the pause and a resume")
	}
	if a := mark.get("/console/sequences/welcome"); !strings.Contains(a.body, `id="sequence-resume"`) {
		t.Error("the sequence page does not offer a resume")
	}
	a = mark.post("/console/sequences/welcome/resume", url.Values{"csrf": {tok}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/console/sequences/welcome" {
		t.Fatalf("resume: %d to %q", a.status, a.header.Get("Location"))
	}
	if s, _ := b.d.Store.Sequence(ctx, "welcome"); s.Paused || s.Version != 1 {
		t.Errorf("after resume: paused %v, version %d", s.Paused, s.Version)
	}
	if a := mark.post("/console/sequences/welcome/explode", url.Values{"csrf": {tok}}); a.status != http.StatusNotFound {
		t.Errorf("unknown action: %d, want 404", a.status)
	}
	if a := mark.post("/console/sequences/ghost/pause", url.Values{"csrf": {tok}}); a.status != http.StatusNotFound {
		t.Errorf("unknown sequence: %d, want 404", a.status)
	}
	wantAudited(t, b, 10, "console:mark sequence.pause welcome", "console:mark sequence.resume welcome")
}

func TestSequenceContactProgress(t *testing.T) {
	t.Parallel()
	b, _ := setupSequence(t, false)
	ctx := context.Background()
	must(t, AddUser(ctx, b.d.Store, "nora", RoleReadOnly, "America/New_York", testPassword))

	// The next action and its time, in each viewer's zone: the email
	// after the wait, on day 2 at 09:00 in Paris, 03:00 in New York.
	mark := b.signedIn(t, "mark")
	a := mark.get("/console/contacts/c000?lang=en")
	row := enrolmentRow(t, a.body, "welcome")
	for _, want := range []string{`data-state="active">active<`, "step 1 of 2", "Send email welcome-mail, else SMS", "2026-12-03 09:00 CET", `id="stop-welcome"`} {
		if !strings.Contains(row, want) {
			t.Errorf("marketer's enrolment row lacks %s:\n%s", want, row)
		}
	}
	nora := b.signedIn(t, "nora")
	row = enrolmentRow(t, nora.get("/console/contacts/c000?lang=fr").body, "welcome")
	for _, want := range []string{"en cours", "étape 1 sur 2", "Envoyer l&#39;e-mail welcome-mail, sinon par SMS", "2026-12-03 03:00 EST"} {
		if !strings.Contains(row, want) {
			t.Errorf("read-only enrolment row lacks %s:\n%s", want, row)
		}
	}
	if strings.Contains(row, "/stop") {
		t.Error("a read-only user is offered to stop an enrolment")
	}

	// Paused: the row says so.
	if _, err := b.d.Sequences.SetPaused(ctx, "welcome", true); err != nil {
		t.Fatal(err)
	}
	if row := enrolmentRow(t, mark.get("/console/contacts/c000?lang=en").body, "welcome"); !strings.Contains(row, `data-paused>paused<`) {
		t.Errorf("a paused sequence's enrolment does not say so:\n%s", row)
	}
	if _, err := b.d.Sequences.SetPaused(ctx, "welcome", false); err != nil {
		t.Fatal(err)
	}

	// Stop: refused to a read-only user, done for a marketer.
	rtok := nora.csrf("/console/contacts/c000")
	if a := nora.post("/console/contacts/c000/sequences/welcome/stop", url.Values{"csrf": {rtok}}); a.status != http.StatusForbidden {
		t.Errorf("read-only stop: %d, want 403", a.status)
	}
	if r, _ := b.d.Store.Enrolment(ctx, "c000", "welcome"); r.State != dispatcher.EnrolmentActive {
		t.Fatalf("a read-only user stopped the enrolment: %s", r.State)
	}
	tok := mark.csrf("/console/contacts/c000")
	a = mark.post("/console/contacts/c000/sequences/welcome/stop", url.Values{"csrf": {tok}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/console/contacts/c000" {
		t.Fatalf("stop: %d to %q\n%s", a.status, a.header.Get("Location"), a.body)
	}
	if r, _ := b.d.Store.Enrolment(ctx, "c000", "welcome"); r.State != dispatcher.EnrolmentStopped || r.Reason != dispatcher.StopByOperator {
		t.Errorf("after stop: %s %s", r.State, r.Reason)
	}
	row = enrolmentRow(t, mark.get("/console/contacts/c000?lang=en").body, "welcome")
	for _, want := range []string{"stopped (by an operator)", "0 of 2 steps done", "ended 2026-12-01 11:00 CET"} {
		if !strings.Contains(row, want) {
			t.Errorf("stopped enrolment row lacks %s:\n%s", want, row)
		}
	}
	if strings.Contains(row, "/stop") {
		t.Error("a stopped enrolment is offered a stop")
	}
	if a := mark.post("/console/contacts/c000/sequences/welcome/stop", url.Values{"csrf": {tok}}); a.status != http.StatusNotFound {
		t.Errorf("second stop: %d, want 404", a.status)
	}
	if a := mark.post("/console/contacts/ghost/sequences/welcome/stop", url.Values{"csrf": {tok}}); a.status != http.StatusNotFound {
		t.Errorf("stop for an unknown contact: %d, want 404", a.status)
	}
	if r, _ := b.d.Store.Enrolment(ctx, "c001", "welcome"); r.State != dispatcher.EnrolmentActive {
		t.Errorf("the other contact's enrolment: %s", r.State)
	}
	if a := mark.get("/console/contacts/c001?lang=en"); !strings.Contains(a.body, `data-enrolment="welcome"`) {
		t.Error("c001's page lacks its enrolment")
	}
	entries, err := b.d.Store.Audit(ctx, 10, "")
	must(t, err)
	found := false
	for _, e := range entries {
		found = found || (e.Key == "console:mark" && e.Action == "enrolment.stop" && e.Target == "welcome" && e.Detail == "contact c000")
	}
	if !found {
		t.Errorf("no audit entry for the stop: %+v", entries)
	}
	// A contact in no sequence.
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "c009", Email: "c009@example.com"}, "Europe/Paris"))
	if a := mark.get("/console/contacts/c009?lang=en"); !strings.Contains(a.body, "Enrolled in no sequence.") {
		t.Error("a contact in no sequence: no word of it")
	}
	if strings.Contains(b.logs.String(), "@example.com") {
		t.Error("an address is in the logs")
	}
}

// enrolmentRow returns the row of the contact page's enrolment in seq.
func enrolmentRow(t *testing.T, body, seq string) string {
	t.Helper()
	i := strings.Index(body, `data-enrolment="`+seq+`"`)
	if i < 0 {
		t.Fatalf("no enrolment row for %s in\n%s", seq, body)
	}
	row := body[i:]
	return row[:strings.Index(row, "</tr>")]
}

// TestSequencesReadOnly sends every sequence form as a read-only user,
// with a valid token: each is refused and changes nothing.
func TestSequencesReadOnly(t *testing.T) {
	t.Parallel()
	b, _ := setupSequence(t, false)
	ctx := context.Background()
	rita := b.signedIn(t, "rita")
	tok := rita.csrf("/console/sequences")
	form := sequenceValues(tok)
	form.Set("id", "sneaky")
	form.Set("move_enrolments", "on")
	for _, path := range []string{"/console/sequences", "/console/sequences/welcome", "/console/sequences/welcome/pause",
		"/console/sequences/welcome/resume", "/console/contacts/c000/sequences/welcome/stop"} {
		if a := rita.post(path, form); a.status != http.StatusForbidden {
			t.Errorf("read-only POST %s: %d, want 403", path, a.status)
		}
	}
	if a := rita.get("/console/sequences/new"); a.status != http.StatusForbidden {
		t.Errorf("read-only GET new: %d, want 403", a.status)
	}
	s, err := b.d.Store.Sequence(ctx, "welcome")
	must(t, err)
	if s.Version != 1 || s.Paused {
		t.Errorf("a read-only user changed the sequence: version %d, paused %v", s.Version, s.Paused)
	}
	if _, err := b.d.Store.Sequence(ctx, "sneaky"); err == nil {
		t.Error("a read-only user created a sequence")
	}
	if r, _ := b.d.Store.Enrolment(ctx, "c000", "welcome"); r.State != dispatcher.EnrolmentActive {
		t.Errorf("a read-only user stopped an enrolment: %s", r.State)
	}
	// And without a token, a marketer's form is refused too.
	mark := b.signedIn(t, "mark")
	form.Del("csrf")
	if a := mark.post("/console/sequences/welcome/pause", form); a.status != http.StatusForbidden {
		t.Errorf("pause without a token: %d, want 403", a.status)
	}
}

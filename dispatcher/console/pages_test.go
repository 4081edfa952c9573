package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
)

// fieldError matches the error shown under a form field.
var fieldError = regexp.MustCompile(`<p class="field-error" role="alert">([^<]*)</p>`)

// errorAfter returns the error shown right after the input named name.
func errorAfter(body, name string) string {
	i := strings.Index(body, `name="`+name+`"`)
	if i < 0 {
		return ""
	}
	rest := body[i:]
	end := strings.Index(rest, "<label")
	if end < 0 {
		end = len(rest)
	}
	if m := fieldError.FindStringSubmatch(rest[:end]); m != nil {
		return m[1]
	}
	return ""
}

func TestFieldErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	c := b.signedIn(t, "mark")
	tok := c.csrf("/console/campaigns/new")
	for _, tc := range []struct {
		name, field, value, input, want string
		status                          int
	}{
		{"no topic", "topic", "", "topic", "is required", http.StatusUnprocessableEntity},
		{"unknown topic", "topic", "promotions", "topic", "names no topic", http.StatusUnprocessableEntity},
		{"bad id", "id", "Spring!", "id", "must be lower case letters", http.StatusUnprocessableEntity},
		{"no template", "templates.email", "", "templates.email", "a template is required", http.StatusUnprocessableEntity},
		{"bad rate", "rate_limit", "fast", "rate_limit", "", http.StatusUnprocessableEntity},
	} {
		form := campaignValues("spring", tok)
		form.Set(tc.field, tc.value)
		a := c.post("/console/campaigns", form)
		if a.status != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, a.status, tc.status)
		}
		if got := errorAfter(a.body, tc.input); got == "" || !strings.Contains(got, tc.want) {
			t.Errorf("%s: error under %s: %q, want %q", tc.name, tc.input, got, tc.want)
		}
		if b.campaignExists(t, "spring") || b.campaignExists(t, "Spring!") {
			t.Fatalf("%s: a campaign was created", tc.name)
		}
	}

	// Schedules: the field at fault, whether previewed or saved; nothing
	// saved.
	if a := c.post("/console/campaigns", campaignValues("spring", tok)); a.status != http.StatusSeeOther {
		t.Fatalf("create: %d\n%s", a.status, a.body)
	}
	for _, tc := range []struct {
		name  string
		form  url.Values
		input string
		want  string
	}{
		{"bad cron", url.Values{"kind": {"cron"}, "cron": {"61 * * * *"}, "tz": {"Europe/Paris"}}, "cron", "end of range"},
		{"bad zone", url.Values{"kind": {"cron"}, "cron": {"0 10 * * 1"}, "tz": {"Mars/Olympus"}}, "tz", "not an IANA time zone"},
		{"bad local time", url.Values{"kind": {"cron"}, "cron": {"0 10 * * 1"}, "tz": {"UTC"}, "local_time": {"25:00"}}, "local_time", "HH:MM"},
		{"no date", url.Values{"kind": {"once"}, "at": {"tomorrow"}}, "at", "must be a date and time"},
		{"past date", url.Values{"kind": {"once"}, "at": {"2001-01-01T10:00"}, "op": {"save"}}, "at", "is in the past"},
	} {
		for _, op := range []string{"preview", "save"} {
			if tc.form.Get("op") != "" && tc.form.Get("op") != op {
				continue
			}
			tc.form.Set("op", op)
			tc.form.Set("csrf", tok)
			a := c.post("/console/campaigns/spring/schedule", tc.form)
			if a.status != http.StatusUnprocessableEntity {
				t.Errorf("%s (%s): %d, want 422", tc.name, op, a.status)
			}
			if got := errorAfter(a.body, tc.input); !strings.Contains(got, tc.want) {
				t.Errorf("%s (%s): error under %s: %q, want %q", tc.name, op, tc.input, got, tc.want)
			}
		}
	}
	if cp, _ := b.d.Store.Campaign(context.Background(), "spring"); cp.Schedule != nil || cp.State != dispatcher.Draft {
		t.Errorf("a refused schedule changed the campaign: %+v", cp)
	}

	// A once schedule is read in the user's zone (mark: Europe/Paris).
	a := c.post("/console/campaigns/spring/schedule", url.Values{"csrf": {tok}, "kind": {"once"}, "at": {"2099-06-01T10:00"}, "op": {"save"}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("save a once schedule: %d\n%s", a.status, a.body)
	}
	cp, _ := b.d.Store.Campaign(context.Background(), "spring")
	if want := time.Date(2099, 6, 1, 8, 0, 0, 0, time.UTC); cp.Schedule == nil || !cp.Schedule.At.Equal(want) {
		t.Errorf("schedule: %+v, want at %s", cp.Schedule, want)
	}
}

func TestEditCampaign(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	c := b.signedIn(t, "mark")
	tok := c.csrf("/console/campaigns/new")
	if a := c.post("/console/campaigns", campaignValues("spring", tok)); a.status != http.StatusSeeOther {
		t.Fatalf("create: %d", a.status)
	}
	a := c.get("/console/campaigns/spring/edit")
	if a.status != http.StatusOK || !strings.Contains(a.body, `value="Spring"`) {
		t.Fatalf("edit form: %d", a.status)
	}
	form := campaignValues("ignored", tok)
	form.Set("name", "Spring sale")
	form.Set("rate_limit", "10/s")
	if a := c.post("/console/campaigns/spring/edit", form); a.status != http.StatusSeeOther {
		t.Fatalf("save: %d\n%s", a.status, a.body)
	}
	cp, err := b.d.Store.Campaign(context.Background(), "spring")
	must(t, err)
	if cp.Name != "Spring sale" || cp.RateLimit != "10/s" || cp.State != dispatcher.Draft {
		t.Errorf("edited campaign: %+v", cp)
	}
	if b.campaignExists(t, "ignored") {
		t.Error("the edit created a campaign")
	}
	// A started campaign no longer changes.
	if _, err := b.d.Pipeline.Start(context.Background(), "spring", pipeline.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	form.Set("name", "Too late")
	a = c.post("/console/campaigns/spring/edit", form)
	if a.status != http.StatusConflict || !strings.Contains(a.body, "only a draft or scheduled campaign can be edited") {
		t.Errorf("edit of a running campaign: %d", a.status)
	}
	// The console's changes are in the audit log, under the user's name.
	wantAudited(t, b, 10, "console:mark campaign.edit spring")
}

// wantAudited fails t unless each of wants is in one of the audit log's
// last n entries, written "key action target detail".
func wantAudited(t *testing.T, b *testBundle, n int64, wants ...string) {
	t.Helper()
	entries, err := b.d.Store.Audit(context.Background(), n, "")
	must(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, strings.TrimSpace(e.Key+" "+e.Action+" "+e.Target+" "+e.Detail))
	}
	for _, want := range wants {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("audit log %q lacks %q", got, want)
		}
	}
}

// TestPagesRender opens every page in both languages: each renders (a
// string missing from the catalogue fails it) in its language.
func TestPagesRender(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx := context.Background()
	started := b.startSpring(t, &dispatcher.Schedule{Cron: "0 10 * * 1", TZ: "Europe/Paris", LocalTime: "10:00"})
	admin := b.signedIn(t, "ana")
	for _, lang := range []struct{ code, word string }{{"fr", "Campagnes"}, {"en", "Campaigns"}} {
		for _, path := range []string{"/console/campaigns", "/console/campaigns/new", "/console/campaigns/spring",
			"/console/runs/" + started.Run, "/console/users", "/console/campaigns/spring/edit"} {
			a := admin.get(path + "?lang=" + lang.code)
			if a.status != http.StatusOK || !strings.Contains(a.body, `<html lang="`+lang.code+`">`) || !strings.Contains(a.body, lang.word) {
				t.Errorf("%s in %s: %d\n%s", path, lang.code, a.status, a.body)
			}
		}
		fresh := b.client(t)
		if a := fresh.get("/console/signin?lang=" + lang.code); a.status != http.StatusOK || !strings.Contains(a.body, `<html lang="`+lang.code+`">`) {
			t.Errorf("sign-in page in %s: %d", lang.code, a.status)
		}
	}
	// Without JavaScript, an active run's page reloads itself; with it, the
	// script (the console's own) follows the events.
	a := admin.get("/console/runs/" + started.Run)
	for _, want := range []string{`<noscript><meta http-equiv="refresh" content="5"></noscript>`, `<script src="/console/static/live.js" defer></script>`,
		`data-events="/console/runs/` + started.Run + `/events"`} {
		if !strings.Contains(a.body, want) {
			t.Errorf("active run page lacks %s", want)
		}
	}
	if js := admin.get("/console/static/live.js"); js.status != http.StatusOK || !strings.Contains(js.header.Get("Content-Type"), "javascript") {
		t.Errorf("live.js: %d %q", js.status, js.header.Get("Content-Type"))
	}
	if a := admin.get("/console/runs/nope"); a.status != http.StatusNotFound || !strings.Contains(a.body, `id="error"`) {
		t.Errorf("unknown run: %d", a.status)
	}
	if a := admin.get("/console/nowhere"); a.status != http.StatusNotFound || a.header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("unknown page: %d", a.status)
	}
	// The language chosen is remembered.
	if a := admin.get("/console/campaigns"); !strings.Contains(a.body, `<html lang="en">`) {
		t.Error("the last language chosen was not kept")
	}
	// The run's events, for any role: the live part, then, once the run
	// has ended, its end.
	if _, err := b.d.Pipeline.SetRunState(ctx, started.Run, pipeline.ActionCancel); err != nil {
		t.Fatal(err)
	}
	reader := b.signedIn(t, "rita")
	a = reader.get("/console/runs/" + started.Run + "/events?lang=en")
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "text/event-stream" ||
		!strings.Contains(a.body, "event: update\ndata: ") || !strings.Contains(a.body, `data-counter="planned"`) ||
		!strings.HasSuffix(a.body, "event: end\ndata: cancelled\n\n") {
		t.Errorf("events: %d %q\n%s", a.status, a.header.Get("Content-Type"), a.body)
	}
	if strings.Contains(a.body, `id="run-pause"`) {
		t.Error("a read-only user is offered to pause the run")
	}
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	b := setup(t, false, func(c *app.Config) { c.Now = clock.Now })
	c := b.signedIn(t, "mark")
	// Active every 20 minutes: the idle limit (30 minutes) never passes,
	// the absolute one (12 hours) does.
	for range 12*3 - 1 {
		clock.Add(20 * time.Minute)
		if a := c.get("/console/campaigns"); a.status != http.StatusOK {
			t.Fatalf("at %s: %d, want 200", clock.Now(), a.status)
		}
	}
	clock.Add(20 * time.Minute)
	if a := c.get("/console/campaigns"); a.status != http.StatusSeeOther {
		t.Fatalf("after 12 hours: %d, want 303 to sign in", a.status)
	}
	// Idle for longer than 30 minutes.
	c = b.signedIn(t, "mark")
	clock.Add(31 * time.Minute)
	if a := c.get("/console/campaigns"); a.status != http.StatusSeeOther {
		t.Fatalf("after 31 idle minutes: %d, want 303", a.status)
	}
}

func TestRunActions(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx := context.Background()
	b.createSpring(t, nil)
	mark := b.signedIn(t, "mark")
	tok := mark.csrf("/console/campaigns/spring")
	a := mark.post("/console/campaigns/spring/start", url.Values{"csrf": {tok}})
	if a.status != http.StatusSeeOther || !strings.HasPrefix(a.header.Get("Location"), "/console/runs/spring-") {
		t.Fatalf("start: %d to %q", a.status, a.header.Get("Location"))
	}
	runPath := a.header.Get("Location")
	run := strings.TrimPrefix(runPath, "/console/runs/")
	if a := mark.post("/console/campaigns/spring/start", url.Values{"csrf": {tok}}); a.status != http.StatusConflict {
		t.Errorf("second start: %d, want 409", a.status)
	}
	reader := b.signedIn(t, "rita")
	rtok := reader.csrf(runPath)
	if a := reader.post(runPath+"/pause", url.Values{"csrf": {rtok}}); a.status != http.StatusForbidden {
		t.Errorf("read-only run pause: %d, want 403", a.status)
	}
	for _, step := range []struct{ action, state string }{
		{"pause", dispatcher.RunPaused}, {"resume", dispatcher.RunSending}, {"cancel", dispatcher.RunCancelled},
	} {
		if a := mark.post(runPath+"/"+step.action, url.Values{"csrf": {tok}}); a.status != http.StatusSeeOther {
			t.Fatalf("%s: %d\n%s", step.action, a.status, a.body)
		}
		r, err := b.d.Store.Run(ctx, run)
		must(t, err)
		if r.State != step.state {
			t.Errorf("after %s: run %s, want %s", step.action, r.State, step.state)
		}
	}
	if a := mark.post(runPath+"/resume", url.Values{"csrf": {tok}}); a.status != http.StatusConflict {
		t.Errorf("resume of a cancelled run: %d, want 409", a.status)
	}
	if a := mark.post(runPath+"/explode", url.Values{"csrf": {tok}}); a.status != http.StatusNotFound {
		t.Errorf("unknown action: %d, want 404", a.status)
	}
}

// TestRunLeaving: the run page says when the waiting messages leave: now,
// hour by hour for two days, and later.
func TestRunLeaving(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx := context.Background()
	started := b.startSpring(t, nil)
	now := b.d.Config.Now()
	var ds []store.Decision
	for i, until := range []time.Time{{}, {}, now.Add(3 * time.Hour), now.Add(3 * time.Hour), now.Add(3*time.Hour + 10*time.Minute), now.Add(5 * 24 * time.Hour)} {
		c := fmt.Sprintf("c%d", i)
		d := store.Decision{Send: dispatcher.SendID(started.Run, c, channels.Email), Contact: c, Channel: channels.Email,
			Topic: "newsletter", Template: "news-mail", State: dispatcher.StateQueued}
		if !until.IsZero() {
			d.State, d.Until = dispatcher.StateDeferred, until
		}
		ds = append(ds, d)
	}
	must(t, b.d.Store.RecordDecisions(ctx, started.Run, ds, 15*time.Minute))
	a := b.signedIn(t, "ana").get("/console/runs/" + started.Run + "?lang=en")
	i := strings.Index(a.body, `id="leaving"`)
	if a.status != http.StatusOK || i < 0 {
		t.Fatalf("run page: %d, no leaving table\n%s", a.status, a.body)
	}
	table := a.body[i:]
	table = table[:strings.Index(table, "</table>")]
	rows := regexp.MustCompile(`<tr><td>([^<]*)</td><td class="num">(\d+)</td></tr>`).FindAllStringSubmatch(table, -1)
	var got []string
	for _, r := range rows {
		got = append(got, r[2])
	}
	// 2 now; 3 in the hour that holds now+3h and now+3h10 (or 2 and 1
	// across an hour's end); 1 in more than 48 hours.
	if len(rows) < 3 || rows[0][1] != "now" || rows[0][2] != "2" || rows[len(rows)-1][1] != "in more than 48 hours" || rows[len(rows)-1][2] != "1" {
		t.Errorf("leaving rows: %q", rows)
	}
	sum := 0
	for _, r := range rows[1 : len(rows)-1] {
		n, _ := strconv.Atoi(r[2])
		sum += n
	}
	if sum != 3 {
		t.Errorf("deferred within two days: %d, want 3 (%v)", sum, got)
	}
}

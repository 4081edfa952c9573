package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/gate"
)

// A pause set while a campaign sends holds every message of that
// recipient not yet handed over, even in a send task that started before
// it: the claim reads it, as it reads consent.
func TestRecipientPauseDuringSendingHoldsTheRest(t *testing.T) {
	t.Parallel()
	const n = 300
	b, run := startShipped(t, "50/s", n, 10)

	// The last contact of each send task goes last.
	held := map[string]string{}
	until := time.Now().Add(7 * 24 * time.Hour).UTC().Format(time.RFC3339)
	for _, c := range []string{"m0099", "m0199", "m0299"} {
		r := b.api.do("PUT", "/v1/contacts/"+c+"/preferences", `{"pause_until":"`+until+`","evidence":{"form":"crm"}}`)
		if r.status != http.StatusOK {
			t.Fatalf("pausing %s: %d %s", c, r.status, r.body)
		}
		held[c] = gate.ReasonPausedByRecipient
	}
	b.checkHeldWhileSending(t, run, "its pause", held, map[string]int64{"planned": n, "sent": n - 3, gate.ReasonPausedByRecipient: 3})
}

// The preferences route: each change is one ledger event with its source
// and evidence, the same value again records nothing, "" lifts the pause;
// a bad body is refused with the field it names and changes nothing.
func TestPutPreferences(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	b := setup(t, withClock(start))
	ctx := context.Background()
	must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "ana", Email: "ana@example.com"}, "Europe/Paris"))
	for _, tp := range []*dispatcher.Topic{
		{ID: "news", Kind: dispatcher.Marketing},
		{ID: "promos", Kind: dispatcher.Marketing, Frequencies: []string{dispatcher.FrequencyEvery, dispatcher.FrequencyMonthly}},
		{ID: "orders", Kind: dispatcher.Transactional},
	} {
		must(t, b.d.Store.PutTopic(ctx, tp))
	}

	type answer struct {
		PauseUntil string                    `json:"pause_until"`
		Frequency  map[string]string         `json:"frequency"`
		Hours      string                    `json:"hours"`
		Recorded   []dispatcher.ConsentEvent `json:"recorded"`
	}
	put := func(body string) answer {
		t.Helper()
		r := b.api.do("PUT", "/v1/contacts/ana/preferences", body)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", body, r.status, r.body)
		}
		var a answer
		must(t, json.Unmarshal(r.body, &a))
		return a
	}
	a := put(`{"pause_until":"2027-01-04T01:00:00+01:00","source":"api","evidence":{"form":"crm"}}`)
	if a.PauseUntil != "2027-01-04T00:00:00Z" || len(a.Recorded) != 1 {
		t.Fatalf("first pause: %+v", a)
	}
	if a := put(`{"pause_until":"2027-01-04T00:00:00Z"}`); a.PauseUntil != "2027-01-04T00:00:00Z" || len(a.Recorded) != 0 {
		t.Errorf("the same pause again: %+v", a)
	}
	if a := put(`{"pause_until":""}`); a.PauseUntil != "" || len(a.Recorded) != 1 {
		t.Errorf("lifting: %+v", a)
	}
	a = put(`{"frequency":{"news":"weekly","promos":"monthly"},"source":"preference-page"}`)
	if diff := cmp.Diff(map[string]string{"news": "weekly", "promos": "monthly"}, a.Frequency); diff != "" || len(a.Recorded) != 2 {
		t.Errorf("frequencies: %+v %s", a, diff)
	}
	if a := put(`{"frequency":{"news":"weekly","promos":""}}`); len(a.Recorded) != 1 || a.Frequency["promos"] != "" {
		t.Errorf("back to every: %+v", a)
	}
	if a := put(`{"hours":"mon-fri 18:00-24:00;  sat 10:00-20:00"}`); a.Hours != "mon 18:00-24:00; tue 18:00-24:00; wed 18:00-24:00; thu 18:00-24:00; fri 18:00-24:00; sat 10:00-20:00" || len(a.Recorded) != 1 {
		t.Errorf("hours: %+v", a)
	}
	ledger, err := b.d.Store.ConsentLedger(ctx, "ana")
	must(t, err)
	got := make([]string, len(ledger))
	for i, e := range ledger {
		got[i] = e.Kind + " " + e.Value + " " + e.Source + " " + e.Evidence["form"]
	}
	want := []string{"pause 2027-01-04T00:00:00Z api crm", "pause  api ",
		"frequency weekly preference-page ", "frequency monthly preference-page ", "frequency  api ",
		"hours mon 18:00-24:00; tue 18:00-24:00; wed 18:00-24:00; thu 18:00-24:00; fri 18:00-24:00; sat 10:00-20:00 api "}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ledger (-want +got):\n%s", diff)
	}
	exp, err := b.d.Privacy.ExportContact(ctx, "ana")
	must(t, err)
	if exp.Preferences["frequency/news"].Value != "weekly" || exp.Preferences["hours"].Value == "" || exp.Preferences["pause"].Source != "api" {
		t.Errorf("export's preferences: %+v", exp.Preferences)
	}
	rep, err := b.d.Store.VerifyLedger(ctx, "ana")
	must(t, err)
	if !rep.OK() {
		t.Errorf("ledger does not verify: %+v", rep)
	}

	for _, tt := range []struct{ body, field string }{
		{`{}`, "body"},
		{`{"hours":"evenings"}`, "hours"},
		{`{"hours":"mon off"}`, "hours"},
		{`{"hours":"mon 18:00-17:00"}`, "hours"},
		{`{"hours":"mon 18:00-20:00; holidays 2026-12-25"}`, "hours"},
		{`{"frequency":{"news":"daily"}}`, "frequency.news"},
		{`{"frequency":{"orders":"weekly"}}`, "frequency.orders"},
		{`{"frequency":{"nothing":"weekly"}}`, "frequency.nothing"},
		{`{"frequency":{"promos":"weekly"}}`, "frequency.promos"},
		{`{"frequency":{"news":"weekly"},"pause_until":"soon"}`, "pause_until"},
		{`{"pause_until":"next week"}`, "pause_until"},
		{`{"pause_until":"2026-11-30T00:00:00Z"}`, "pause_until"},
		{`{"pause_until":"2028-01-01T00:00:00Z"}`, "pause_until"},
		{`{"pause_until":7}`, "pause_until"},
		{`{"pause_until":"2027-01-04T00:00:00Z","source":"rumour"}`, "source"},
		{`{"pause_until":"2027-01-04T00:00:00Z","until":"x"}`, "until"},
	} {
		before := snapshotRedis(t, b)
		r := b.api.do("PUT", "/v1/contacts/ana/preferences", tt.body)
		var e struct{ Error dispatcher.Error }
		_ = json.Unmarshal(r.body, &e)
		if r.status != http.StatusUnprocessableEntity || e.Error.Code != dispatcher.CodeInvalid || e.Error.Field != tt.field {
			t.Errorf("%s: %d %s, want 422 invalid naming %s", tt.body, r.status, r.body, tt.field)
		}
		if diff := cmp.Diff(before, snapshotRedis(t, b)); diff != "" {
			t.Errorf("%s changed Redis (-before +after):\n%s", tt.body, diff)
		}
	}
	if r := b.api.do("PUT", "/v1/contacts/nobody/preferences", `{"pause_until":""}`); r.status != http.StatusNotFound {
		t.Errorf("unknown contact: %d %s", r.status, r.body)
	}
	// The consents route takes consents only.
	if r := b.api.do("POST", "/v1/contacts/ana/consents", `{"kind":"pause","value":"2027-01-04T00:00:00Z"}`); r.status != http.StatusUnprocessableEntity {
		t.Errorf("a pause through the consents route: %d %s", r.status, r.body)
	}
}

// The pace a recipient chose holds across runs of the real pipeline: a
// second campaign on the same topic the same week reaches those who chose
// every issue, and not those who chose one a week or a month.
func TestRecipientFrequencyAcrossTwoRuns(t *testing.T) {
	t.Parallel()
	const n = 6
	b := setup(t)
	ctx := context.Background()
	seedMailing(t, b, n)
	for c, f := range map[string]string{"m0000": "weekly", "m0001": "monthly", "m0002": "every"} {
		if r := b.api.do("PUT", "/v1/contacts/"+c+"/preferences", `{"frequency":{"newsletter":"`+f+`"}}`); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", c, r.status, r.body)
		}
	}
	b.startWorker(t)
	run1, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	r1 := b.waitRun(t, run1, 30*time.Second)
	if r1.Counters["sent"] != n {
		t.Fatalf("first run: %v", r1.Counters)
	}
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "mailing-2", Topic: "newsletter", Segment: "all",
		Channels: []channels.Kind{channels.Email}, Templates: map[channels.Kind]string{channels.Email: "news-mail"}}))
	run2, err := b.d.Pipeline.StartRun(ctx, "mailing-2", time.Now())
	must(t, err)
	r2 := b.waitRun(t, run2, 30*time.Second)
	if r2.Counters["sent"] != n-2 || r2.Counters[gate.ReasonRecipientFrequency] != 2 || !r2.Balanced {
		t.Errorf("second run: %v", r2.Counters)
	}
	got := map[string]int{}
	for _, m := range b.smtp.Messages() {
		got[m.To[0]]++
	}
	want := map[string]int{"m0000@example.com": 1, "m0001@example.com": 1, "m0002@example.com": 2,
		"m0003@example.com": 2, "m0004@example.com": 2, "m0005@example.com": 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("messages received (-want +got):\n%s", diff)
	}
}

// The page's pace form refuses a value out of bounds with a page that
// says so, in 422, and records nothing of the form, the good values
// included.
func TestPreferencePagePaceRefusesBadValues(t *testing.T) {
	t.Parallel()
	b := setupAna(t)
	u := b.prefURL(t, "ana")
	csrf := csrfOf(t, u)
	for _, form := range []url.Values{
		{"pause_until": {"2020-01-01"}, "freq.newsletter": {"weekly"}},
		{"pause_until": {"next week"}},
		{"freq.newsletter": {"daily"}},
		{"freq.nothing": {"weekly"}},
		{"day": {"mon", "someday"}, "from": {"18:00"}, "to": {"22:00"}},
		{"day": {"mon"}, "from": {"6pm"}, "to": {"22:00"}},
	} {
		before := snapshotRedis(t, b)
		form.Set("csrf", csrf)
		form.Set("do", "pace")
		resp, body := postForm(t, u, form)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Nothing was changed.") {
			t.Errorf("%v: %d", form, resp.StatusCode)
		}
		if diff := cmp.Diff(before, snapshotRedis(t, b), cmpopts.IgnoreMapEntries(func(k, _ string) bool { return strings.Contains(k, ":rate:") })); diff != "" {
			t.Errorf("%v changed Redis (-before +after):\n%s", form, diff)
		}
	}
}

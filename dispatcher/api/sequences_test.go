package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
	"github.com/missive-dev/missive/throttle/redistest"
)

// welcomeSequence is the README's example: a welcome email at once, the
// day-2 email at 09:00 two days later, the day-7 email at 09:00 on day 7,
// unless the contact purchased.
const welcomeSequence = `{"name": "Welcome", "topic": "newsletter", "trigger": {"signup": true},
 "steps": [
  {"send": {"channel": "email", "template": "welcome"}},
  {"wait": {"days": 2, "at": "09:00"}},
  {"send": {"channel": "email", "template": "welcome-2"}},
  {"wait": {"days": 5, "at": "09:00"}},
  {"send": {"channel": "email", "template": "welcome-7"}}
 ],
 "stop_tags": ["purchased"]}`

// vipSequence sends the welcome email to a contact tagged vip.
const vipSequence = `{"topic": "newsletter", "trigger": {"tag": "vip"},
 "steps": [{"send": {"channel": "email", "template": "welcome"}}]}`

var paris = mustLocation("Europe/Paris")

func mustLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// seqHarness is a bundle with the welcome sequence, a contact ana in
// Paris who consented to the newsletter by email and SMS, a worker and
// a clock.
type seqHarness struct {
	*testBundle
	ctx context.Context
}

func seqSetup(t *testing.T, start time.Time, opts ...option) *seqHarness {
	t.Helper()
	b := setup(t, append([]option{withClock(start), withBasics(), withTwilioWebhooks(),
		withConfig(func(c *app.Config) { c.Caps = []throttle.CapRule{} })}, opts...)...)
	h := &seqHarness{testBundle: b, ctx: context.Background()}
	s := b.d.Store
	for _, id := range []string{"welcome", "welcome-2", "welcome-7"} {
		must(t, s.PutTemplate(h.ctx, &templates.Template{ID: id, Email: &templates.Email{
			Subject: "Subject " + id, Text: "Body " + id + " {{default \"\" .Data.code}}"}}))
	}
	must(t, s.UpsertContact(h.ctx, &dispatcher.Contact{ID: "ana", Email: "ana@example.com", Phone: stopPhone, Timezone: "Europe/Paris"}, "Europe/Paris"))
	for _, k := range channels.Kinds {
		must(t, s.RecordConsent(h.ctx, "ana", dispatcher.ConsentEvent{Channel: k, Topic: "newsletter", State: dispatcher.Granted, Source: "api"}))
	}
	h.putSequence(t, "welcome", welcomeSequence)
	b.startWorker(t)
	return h
}

// putSequence creates the sequence id from its JSON body.
func (h *seqHarness) putSequence(t *testing.T, id, body string) {
	t.Helper()
	if r := h.api.do("PUT", "/v1/sequences/"+id, body); r.status != http.StatusCreated {
		t.Fatalf("PUT sequence %s: %d %s", id, r.status, r.body)
	}
}

// enrol enrols ana through the API with an idempotency key.
func (h *seqHarness) enrol(t *testing.T, key string, want int) map[string]any {
	t.Helper()
	r := h.api.do("POST", "/v1/sequences/welcome/enrol", `{"contact": "ana", "data": {"code": "W10"}}`, "Idempotency-Key", key)
	if r.status != want {
		t.Fatalf("enrol: %d %s", r.status, r.body)
	}
	return r.json(t)
}

// progress returns ana's enrolment in the welcome sequence as the API
// shows it.
func (h *seqHarness) progress(t *testing.T) map[string]any {
	t.Helper()
	r := h.api.do("GET", "/v1/contacts/ana/enrolments", "")
	if r.status != http.StatusOK {
		t.Fatalf("enrolments: %d %s", r.status, r.body)
	}
	var v struct {
		Enrolments []map[string]any `json:"enrolments"`
	}
	must(t, json.Unmarshal(r.body, &v))
	if len(v.Enrolments) != 1 {
		t.Fatalf("enrolments: %s", r.body)
	}
	return v.Enrolments[0]
}

// subjects returns the subjects of the messages received, in order.
func (h *seqHarness) subjects() []string {
	var out []string
	for _, m := range h.smtp.Messages() {
		for _, line := range strings.Split(string(m.Data), "\r\n") {
			if s, ok := strings.CutPrefix(line, "Subject: "); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// waitMessages waits until n messages arrived, then until the queues are
// idle, and wants exactly n.
func (h *seqHarness) waitMessages(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d messages", n), 10*time.Second, func() bool { return len(h.smtp.Messages()) >= n })
	h.waitIdle(t, 10*time.Second)
	if got := h.subjects(); len(got) != n {
		t.Fatalf("got %d messages, want %d: %q", len(got), n, got)
	}
}

// fireAt moves the clock to at and fires what is due, as the
// scheduler's leader does each tick.
func (h *seqHarness) fireAt(t *testing.T, at time.Time) {
	t.Helper()
	h.clock.Set(at)
	must(t, h.d.Sequences.FireDue(h.ctx, at))
}

func wantNext(t *testing.T, p map[string]any, step float64, action string, at time.Time) {
	t.Helper()
	next, _ := p["next"].(map[string]any)
	if next == nil || next["step"] != step || next["action"] != action || next["at"] != at.UTC().Format(time.RFC3339) {
		t.Fatalf("next = %v, want step %v %s at %s", p["next"], step, action, at.UTC().Format(time.RFC3339))
	}
}

// The README's sequence, across days and the change to summer time: each
// message once, at 09:00 in the recipient's zone, on calendar days; the
// enrolment is exactly-once under retries and re-enrolments.
func TestSequenceAcrossDaysAndDST(t *testing.T) {
	t.Parallel()
	// Thursday 26 March 2026, 10:00 in Paris; clocks go forward on Sunday 29.
	h := seqSetup(t, time.Date(2026, 3, 26, 10, 0, 0, 0, paris))
	got := h.enrol(t, "k1", http.StatusCreated)
	if got["created"] != true {
		t.Fatalf("enrol: %v", got)
	}
	// A retried call answers the same; another call finds the enrolment.
	if again := h.enrol(t, "k1", http.StatusCreated); fmt.Sprint(again) != fmt.Sprint(got) {
		t.Fatalf("retry answered %v, first %v", again, got)
	}
	if other := h.enrol(t, "k2", http.StatusOK); other["created"] != false {
		t.Fatalf("second enrolment: %v", other)
	}
	h.waitMessages(t, 1)
	if s := h.subjects(); s[0] != "Subject welcome" {
		t.Fatalf("first message %q", s)
	}
	if !strings.Contains(string(h.smtp.Messages()[0].Data), "Body welcome W10") {
		t.Fatalf("the enrolment's data did not reach the template:\n%s", h.smtp.Messages()[0].Data)
	}
	day2 := time.Date(2026, 3, 28, 9, 0, 0, 0, paris)
	wantNext(t, h.progress(t), 2, "send", day2)

	// Not yet: nothing fires a second before.
	h.fireAt(t, day2.Add(-time.Second))
	h.waitIdle(t, 10*time.Second)
	if n := len(h.smtp.Messages()); n != 1 {
		t.Fatalf("%d messages before day 2", n)
	}
	// Due: five pops and direct fires at once send it once.
	h.clock.Set(day2)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if err := h.d.Sequences.FireDue(h.ctx, day2); err != nil {
				t.Error(err)
			}
			if err := h.d.Sequences.Fire(h.ctx, "welcome", []string{"ana"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	h.waitMessages(t, 2)
	// Five calendar days on from Saturday 09:00 CET is Thursday 09:00
	// CEST: 119 hours, not 120.
	day7 := time.Date(2026, 4, 2, 9, 0, 0, 0, paris)
	if day7.Sub(day2) != 119*time.Hour {
		t.Fatalf("test dates: %s", day7.Sub(day2))
	}
	wantNext(t, h.progress(t), 4, "send", day7)

	// A crash after the day-7 send was decided, before the enrolment
	// moved on: the step is taken again and finds the same send.
	h.fireAt(t, day7)
	h.waitMessages(t, 3)
	st, err := h.d.Sequences.Stats(h.ctx, "welcome")
	must(t, err)
	if st.Active != 0 || st.Enrolled != 1 || st.Completed != 1 {
		t.Fatalf("stats %+v", st)
	}
	r, err := h.d.Store.Enrolment(h.ctx, "ana", "welcome")
	must(t, err)
	if r.State != dispatcher.EnrolmentCompleted || r.Step != 5 {
		t.Fatalf("enrolment %+v", r.Enrolment)
	}
	r.State, r.Step, r.Sending, r.EndedAt, r.At = dispatcher.EnrolmentActive, 4, r.LastSend, time.Time{}, day7
	if ok, err := h.d.Store.SaveEnrolment(h.ctx, r); err != nil || !ok {
		t.Fatalf("rewind: %v %v", ok, err)
	}
	must(t, h.d.Sequences.Fire(h.ctx, "welcome", []string{"ana"}))
	h.waitMessages(t, 3)
	if s := h.subjects(); fmt.Sprint(s) != "[Subject welcome Subject welcome-2 Subject welcome-7]" {
		t.Fatalf("messages %q", s)
	}
	p := h.progress(t)
	if p["state"] != dispatcher.EnrolmentCompleted || p["next"] != nil {
		t.Fatalf("progress %v", p)
	}
	// Without re-enrolment, a contact goes through once.
	if again := h.enrol(t, "k3", http.StatusOK); again["created"] != false {
		t.Fatalf("enrolled again: %v", again)
	}
}

// Quiet hours hold a step's message, and the next wait counts from when
// it leaves.
func TestSequenceQuietHours(t *testing.T) {
	t.Parallel()
	cal, err := throttle.ParseCalendar("mon-sat 08:00-20:00")
	must(t, err)
	// Sunday 1 November 2026, 10:00 in Paris: closed until Monday 08:00.
	sunday := time.Date(2026, 11, 1, 10, 0, 0, 0, paris)
	h := seqSetup(t, sunday, withConfig(func(c *app.Config) {
		c.Quiet = map[channels.Kind]throttle.Calendar{channels.Email: cal}
	}))
	h.enrol(t, "k1", http.StatusCreated)
	monday := time.Date(2026, 11, 2, 8, 0, 0, 0, paris)
	waitFor(t, "the welcome step", 10*time.Second, func() bool {
		r, err := h.d.Store.Enrolment(h.ctx, "ana", "welcome")
		must(t, err)
		return r.LastSend != ""
	})
	r, err := h.d.Store.Enrolment(h.ctx, "ana", "welcome")
	must(t, err)
	s, err := h.d.Store.Send(h.ctx, r.LastSend)
	must(t, err)
	if s.State != dispatcher.StateDeferred || s.Until.Before(monday) || s.Until.After(monday.Add(time.Hour)) {
		t.Fatalf("welcome send %s until %s, want deferred until %s (and a jitter)", s.State, s.Until, monday)
	}
	// Two days on from Monday morning, at 09:00: Wednesday.
	wantNext(t, h.progress(t), 2, "send", time.Date(2026, 11, 4, 9, 0, 0, 0, paris))
}

// Leaving the topic, STOP, a complaint, a stop tag and erasure end an
// enrolment at once while it waits: nothing more is sent.
func TestSequenceStopsWhileWaiting(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, paris)
	for _, tc := range []struct {
		name   string
		do     func(t *testing.T, h *seqHarness)
		reason string // "" for an enrolment erased
	}{
		{"withdrawal", func(t *testing.T, h *seqHarness) {
			if r := h.api.do("POST", "/v1/contacts/ana/consents", `{"channel": "email", "topic": "newsletter", "state": "withdrawn"}`); r.status != http.StatusCreated {
				t.Fatalf("withdraw: %d %s", r.status, r.body)
			}
		}, dispatcher.StopLeftTopic},
		{"sms-stop", func(t *testing.T, h *seqHarness) {
			(&twilioHarness{b: h.testBundle, srv: h.srv}).sms(t, stopPhone, "STOP")
		}, dispatcher.StopLeftTopic},
		{"complaint", func(t *testing.T, h *seqHarness) {
			r, err := h.d.Store.Enrolment(h.ctx, "ana", "welcome")
			must(t, err)
			must(t, h.d.Feedback.RecordDelivery(h.ctx, channels.Feedback{Send: r.LastSend, Kind: channels.Complaint, Source: "arf"}))
		}, dispatcher.StopComplaint},
		{"stop-tag", func(t *testing.T, h *seqHarness) {
			if r := h.api.do("PUT", "/v1/contacts/ana", `{"email": "ana@example.com", "phone": "`+stopPhone+`", "tags": ["purchased"]}`); r.status != http.StatusOK {
				t.Fatalf("tag: %d %s", r.status, r.body)
			}
		}, dispatcher.StopTag},
		{"operator", func(t *testing.T, h *seqHarness) {
			if r := h.api.do("POST", "/v1/sequences/welcome/enrolments/ana/stop", ""); r.status != http.StatusOK {
				t.Fatalf("stop: %d %s", r.status, r.body)
			}
		}, dispatcher.StopByOperator},
		{"erasure", func(t *testing.T, h *seqHarness) {
			if r := h.api.do("DELETE", "/v1/contacts/ana", ""); r.status != http.StatusOK {
				t.Fatalf("erase: %d %s", r.status, r.body)
			}
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := seqSetup(t, start)
			h.enrol(t, "k1", http.StatusCreated)
			h.waitMessages(t, 1)
			tc.do(t, h)
			// At once: no step has fired since.
			due, err := h.redis.Client.ZScore(h.ctx, h.d.Store.Key("seq", "{welcome}", "due"), "ana").Result()
			if err == nil {
				t.Fatalf("ana is still due at %v", due)
			}
			r, err := h.d.Store.Enrolment(h.ctx, "ana", "welcome")
			if tc.reason == "" {
				if err != dispatcher.ErrNotFound {
					t.Fatalf("erased contact's enrolment: %v %v", r, err)
				}
			} else if err != nil || r.State != dispatcher.EnrolmentStopped || r.Reason != tc.reason {
				t.Fatalf("enrolment %+v %v, want stopped %s", r, err, tc.reason)
			}
			h.fireAt(t, start.AddDate(0, 0, 8))
			must(t, h.d.Sequences.Fire(h.ctx, "welcome", []string{"ana"}))
			h.waitMessages(t, 1)
		})
	}
}

// A paused sequence takes no step; its due steps go at the resume.
func TestSequencePauseAndVersions(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, paris)
	h := seqSetup(t, start)
	h.enrol(t, "k1", http.StatusCreated)
	h.waitMessages(t, 1)
	if r := h.api.do("POST", "/v1/sequences/welcome/pause", ""); r.status != http.StatusOK || r.json(t)["paused"] != true {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	day2 := time.Date(2026, 6, 3, 9, 0, 0, 0, paris)
	h.fireAt(t, day2)
	must(t, h.d.Sequences.Fire(h.ctx, "welcome", []string{"ana"}))
	h.waitMessages(t, 1)
	if next := h.progress(t)["next"].(map[string]any); next["paused"] != true {
		t.Fatalf("progress: %v", next)
	}

	// A new version while paused: the running enrolment keeps version 1
	// until the edit moves it.
	v2 := strings.Replace(welcomeSequence, `"welcome-2"`, `"welcome-7"`, 1)
	r := h.api.do("PUT", "/v1/sequences/welcome", v2)
	if r.status != http.StatusOK || r.json(t)["version"] != 2.0 {
		t.Fatalf("v2: %d %s", r.status, r.body)
	}
	if p := h.progress(t); p["version"] != 1.0 {
		t.Fatalf("progress %v", p)
	}
	// Saving the same content again makes no version.
	if r := h.api.do("PUT", "/v1/sequences/welcome", v2); r.json(t)["version"] != 2.0 {
		t.Fatalf("same content: %s", r.body)
	}
	if r := h.api.do("POST", "/v1/sequences/welcome/resume", ""); r.status != http.StatusOK {
		t.Fatalf("resume: %d %s", r.status, r.body)
	}
	h.fireAt(t, day2.Add(time.Minute))
	h.waitMessages(t, 2)
	if s := h.subjects(); s[1] != "Subject welcome-2" {
		t.Fatalf("version 1's day-2 message, got %q", s)
	}

	// Moved on: the next step comes from version 3.
	v3 := strings.Replace(welcomeSequence, `"welcome-7"`, `"welcome"`, 1)
	v3 = strings.Replace(v3, `"stop_tags"`, `"move_enrolments": true, "stop_tags"`, 1)
	if r := h.api.do("PUT", "/v1/sequences/welcome", v3); r.json(t)["version"] != 3.0 {
		t.Fatalf("v3: %s", r.body)
	}
	// A later edit that does not move them leaves them moving to 3.
	v4 := strings.Replace(v3, `"move_enrolments": true, "stop_tags": ["purchased"]`, `"stop_tags": ["purchased", "churned"]`, 1)
	if r := h.api.do("PUT", "/v1/sequences/welcome", v4); r.json(t)["version"] != 4.0 {
		t.Fatalf("v4: %s", r.body)
	}
	h.fireAt(t, time.Date(2026, 6, 8, 9, 0, 0, 0, paris))
	h.waitMessages(t, 3)
	if s := h.subjects(); s[2] != "Subject welcome" {
		t.Fatalf("version 3's last message, got %q", s)
	}
	if p := h.progress(t); p["version"] != 3.0 || p["state"] != dispatcher.EnrolmentCompleted {
		t.Fatalf("progress %v", p)
	}
}

// Bad sequences are refused naming the field, and change nothing.
func TestSequenceRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics())
	for _, tc := range []struct{ body, field string }{
		{`{"topic": "newsletter", "steps": []}`, "steps"},
		{`{"topic": "nope", "steps": [{"send": {"channel": "email", "template": "news-mail"}}]}`, "topic"},
		{`{"topic": "newsletter", "steps": [{"send": {"channel": "fax", "template": "news-mail"}}]}`, "steps[0].send.channel"},
		{`{"topic": "newsletter", "steps": [{"send": {"channel": "sms", "template": "news-mail"}}]}`, "steps[0].send.template"},
		{`{"topic": "newsletter", "steps": [{"send": {"channel": "email", "template": "news-mail", "fallback": "email"}}]}`, "steps[0].send.fallback"},
		{`{"topic": "newsletter", "steps": [{"wait": {"days": 1}}]}`, "steps"},
		{`{"topic": "newsletter", "steps": [{"wait": {"at": "25:00"}}, {"send": {"channel": "email", "template": "news-mail"}}]}`, "steps[0].wait.at"},
		{`{"topic": "newsletter", "steps": [{"wait": {"duration": "soon"}}, {"send": {"channel": "email", "template": "news-mail"}}]}`, "steps[0].wait.duration"},
		{`{"topic": "newsletter", "steps": [{"wait": {}, "send": {"channel": "email", "template": "news-mail"}}]}`, "steps[0]"},
		{`{"topic": "newsletter", "trigger": {"tag": "a b"}, "steps": [{"send": {"channel": "email", "template": "news-mail"}}]}`, "trigger.tag"},
		{`{"topic": "newsletter", "trigger": {"tag": "x"}, "stop_tags": ["x"], "steps": [{"send": {"channel": "email", "template": "news-mail"}}]}`, "stop_tags"},
	} {
		r := b.api.do("PUT", "/v1/sequences/s1", tc.body)
		if r.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s", tc.body, r.status, r.body)
			continue
		}
		var e struct {
			Error struct{ Field string } `json:"error"`
		}
		must(t, json.Unmarshal(r.body, &e))
		if e.Error.Field != tc.field {
			t.Errorf("%s: field %q, want %q (%s)", tc.body, e.Error.Field, tc.field, r.body)
		}
	}
	if r := b.api.do("GET", "/v1/sequences/s1", ""); r.status != http.StatusNotFound {
		t.Fatalf("a refused sequence was stored: %d %s", r.status, r.body)
	}
	must(t, b.d.Store.UpsertContact(context.Background(), &dispatcher.Contact{ID: "c1", Email: "c1@example.com"}, "UTC"))
	if r := b.api.do("POST", "/v1/sequences/nope/enrol", `{"contact": "c1"}`, "Idempotency-Key", "k"); r.status != http.StatusNotFound {
		t.Fatalf("unknown sequence: %d %s", r.status, r.body)
	}
	if r := b.api.do("POST", "/v1/sequences/nope/enrol", `{"contact": "c1"}`); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("no idempotency key: %d %s", r.status, r.body)
	}
}

// A sign-up confirmed and a tag added by upstream enrol; the SMS step
// falls back to email for a contact without a phone.
func TestSequenceTriggersAndFallback(t *testing.T) {
	t.Parallel()
	h := seqSetup(t, time.Date(2026, 6, 1, 10, 0, 0, 0, paris))
	must(t, h.d.Store.PutTemplate(h.ctx, &templates.Template{ID: "both", Email: &templates.Email{Subject: "Subject both", Text: "x"},
		SMS: &templates.SMS{Body: "both by SMS"}}))
	h.putSequence(t, "vip", `{"topic": "newsletter", "trigger": {"tag": "vip"},
		"steps": [{"send": {"channel": "sms", "template": "both", "fallback": "email"}}]}`)
	must(t, h.d.Store.UpsertContact(h.ctx, &dispatcher.Contact{ID: "bo", Email: "bo@example.com", Timezone: "Europe/Paris"}, "UTC"))
	must(t, h.d.Store.RecordConsent(h.ctx, "bo", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Granted, Source: "api"}))
	if r := h.api.do("PUT", "/v1/contacts/bo", `{"email": "bo@example.com", "timezone": "Europe/Paris", "tags": ["vip"]}`); r.status != http.StatusOK {
		t.Fatalf("tag: %d %s", r.status, r.body)
	}
	h.waitMessages(t, 1)
	if m := h.smtp.Messages()[0]; m.To[0] != "bo@example.com" {
		t.Fatalf("sent to %v", m.To)
	}
	// The same PUT again adds no tag: no second enrolment.
	if r := h.api.do("PUT", "/v1/contacts/bo", `{"email": "bo@example.com", "timezone": "Europe/Paris", "tags": ["vip"]}`); r.status != http.StatusOK {
		t.Fatalf("tag: %d %s", r.status, r.body)
	}
	// A sign-up confirmed by its link enrols in the welcome sequence: the
	// welcome follows the confirmation.
	if w := h.subscribeForm("198.51.100.7", signupValues("new@example.com", "newsletter")); w.Code != http.StatusAccepted {
		t.Fatalf("POST /subscribe: %d %s", w.Code, w.Body)
	}
	token := h.confirmToken(t, "new@example.com")
	if w := h.do("POST", "/subscribe/confirm/"+token, "203.0.113.9", formCT, ""); w.Code != http.StatusOK {
		t.Fatalf("POST confirm: %d %s", w.Code, w.Body)
	}
	waitFor(t, "the welcome message", 10*time.Second, func() bool { return len(h.smtp.Messages()) >= 3 })
	h.waitIdle(t, 10*time.Second)
	msgs := h.smtp.Messages()
	if len(msgs) != 3 || msgs[2].To[0] != "new@example.com" || !strings.Contains(string(msgs[2].Data), "Subject: Subject welcome\r\n") {
		t.Fatalf("%d messages, the last:\n%s", len(msgs), msgs[len(msgs)-1].Data)
	}
}

// A tag added by an upsert whose process died once the contact was
// written, before the sequences heard of it, still enrols the contact:
// the tags added are journaled before the write, and the scheduler's
// leader replays what a dead process left.
func TestSequenceTagAddedBeforeACrashEnrols(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, paris)
	h := seqSetup(t, start)
	h.putSequence(t, "vip", vipSequence)
	crash := redistest.CrashAfter(h.redis.Client, redistest.Write("set", h.d.Store.ContactKey("ana")))
	if r := h.api.do("PUT", "/v1/contacts/ana", `{"email": "ana@example.com", "phone": "`+stopPhone+`", "timezone": "Europe/Paris", "tags": ["vip"]}`); r.status < 500 {
		t.Fatalf("upsert, its process dead after the write: %d %s", r.status, r.body)
	}
	crash.Revive(t)
	if c, err := h.d.Store.Contact(h.ctx, "ana"); err != nil || !slices.Contains(c.Tags, "vip") {
		t.Fatalf("ana after the dead upsert: %+v %v: the test proves nothing", c, err)
	}
	if _, err := h.d.Store.Enrolment(h.ctx, "ana", "vip"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Fatalf("enrolment before the replay: %v", err)
	}
	// The same upsert again adds no tag: only the journal can tell.
	if r := h.api.do("PUT", "/v1/contacts/ana", `{"email": "ana@example.com", "phone": "`+stopPhone+`", "timezone": "Europe/Paris", "tags": ["vip"]}`); r.status != http.StatusOK {
		t.Fatalf("upsert again: %d %s", r.status, r.body)
	}
	h.fireAt(t, start.Add(2*time.Minute))
	h.waitMessages(t, 1)
	r, err := h.d.Store.Enrolment(h.ctx, "ana", "vip")
	if err != nil || r.Trigger != dispatcher.TriggerTag {
		t.Fatalf("enrolment after the replay: %+v %v", r, err)
	}
	// Replayed once: the next ticks enrol nothing more.
	h.fireAt(t, start.Add(4*time.Minute))
	if _, stats, err := h.d.Store.SequenceStats(h.ctx, "vip"); err != nil || stats["enrolled"] != 1 {
		t.Fatalf("stats %v %v, want one enrolment", stats, err)
	}
}

// A journal entry whose telling keeps failing (here an enrolment record
// that does not read) is filed behind the others and tried again later;
// the entries told are taken out.
func TestSequenceTagJournalReplayGoesOnPastAFailure(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, paris)
	h := seqSetup(t, start)
	h.putSequence(t, "vip", vipSequence)
	st := h.d.Store
	must(t, h.redis.Client.HSet(h.ctx, st.ContactKey("bo")+":enr", "vip", "not an enrolment").Err())
	tell := st.TagsAdded
	st.TagsAdded = func(context.Context, map[string][]string) error { return errors.New("sequences unreachable") }
	must(t, st.UpsertContact(h.ctx, &dispatcher.Contact{ID: "ana", Email: "ana@example.com", Phone: stopPhone, Timezone: "Europe/Paris", Tags: []string{"vip"}}, "UTC"))
	must(t, st.UpsertContact(h.ctx, &dispatcher.Contact{ID: "bo", Email: "bo@example.com", Tags: []string{"vip"}}, "UTC"))
	st.TagsAdded = tell

	h.fireAt(t, start.Add(2*time.Minute))
	// bo's record does not read: its steps fail too, so the queues do not
	// go idle; ana's welcome is what proves the replay.
	waitFor(t, "ana's welcome", 10*time.Second, func() bool { return len(h.smtp.Messages()) >= 1 })
	es, err := st.TagJournal(h.ctx, start.Add(time.Hour), 10)
	if err != nil || len(es) != 1 || es[0].Contact != "bo" {
		t.Fatalf("journal after the replay: %d entries, %v; want bo's only", len(es), err)
	}
	if es, err := st.TagJournal(h.ctx, start.Add(2*time.Minute-time.Millisecond), 10); err != nil || len(es) != 0 {
		t.Fatalf("bo's entry not filed behind the replay: %d entries, %v", len(es), err)
	}
}

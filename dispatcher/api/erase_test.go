package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/privacy"
	"github.com/missive-dev/missive/dispatcher/signup"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

const eraseTestKey = "erase-test-secret-0123456789"

// apiCall serves one authenticated API request and decodes the answer.
func apiCall(t *testing.T, h http.Handler, method, path string, out any) int {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	r.Header.Set("Authorization", "Bearer "+eraseTestKey)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, w.Code, w.Body.String(), err)
		}
	}
	return w.Code
}

// A contact erased while one of its sends waits in the queue and another
// is deferred by quiet hours: neither goes out once workers run, the run
// balances and completes, the address stays suppressed for a new contact
// that brings it back, and nothing is left to export.
func TestEraseWithQueuedAndDeferredSends(t *testing.T) {
	t.Parallel()
	b, sunday := setupQuietSunday(t)
	ctx := context.Background()
	s := b.d.Store
	h := Handler(b.d, []APIKey{{ID: "test", Secret: eraseTestKey}})
	const email, phone = "leaving@example.com", "+33612345688"
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "leaving", Email: email, Phone: phone, Attributes: map[string]string{"first_name": "Zoé"}}, "Europe/Paris"))
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "staying", Email: "staying@example.com"}, "Europe/Paris"))
	for _, k := range []channels.Kind{channels.Email, channels.SMS} {
		must(t, s.RecordConsent(ctx, "leaving", dispatcher.ConsentEvent{Channel: k, Topic: "newsletter", State: dispatcher.Granted, Source: "api",
			Evidence: map[string]string{"form": "signup-v3", "ip_hash": "9f86d081884c7d65"}}))
	}
	grantConsent(t, b, "staying", channels.Email)
	must(t, s.PutSegment(ctx, &dispatcher.Segment{ID: "all"}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "sunday", Topic: "newsletter", Segment: "all",
		Channels: []channels.Kind{channels.Email, channels.SMS}, Templates: map[channels.Kind]string{channels.Email: "news-mail", channels.SMS: "news-sms"}}))

	// Gate only: a worker that plans and gates but serves no send queue.
	gctx, stopGate := context.WithCancel(ctx)
	gdone := make(chan error, 1)
	go func() {
		gdone <- b.d.Pipeline.ServeQueues(gctx, map[string]int{b.d.Pipeline.Queue("plan"): 1, b.d.Pipeline.Queue("batch"): 3})
	}()
	run, err := b.d.Pipeline.StartRun(ctx, "sunday", sunday)
	must(t, err)
	want := map[string]int64{"planned": 4, "queued": 2, "deferred": 1, "no_address": 1}
	var r *dispatcher.Run
	waitFor(t, "the run to be gated", 20*time.Second, func() bool {
		r, err = s.Run(ctx, run)
		must(t, err)
		return cmp.Equal(want, r.Counters)
	})
	stopGate()
	must(t, <-gdone)
	if diff := cmp.Diff(want, r.Counters); diff != "" {
		t.Fatalf("before erasure (-want +got):\n%s", diff)
	}

	// The export before erasure holds the profile, consents with their
	// history and evidence, and both sends.
	var exp privacy.ContactExport
	if code := apiCall(t, h, "GET", "/v1/contacts/leaving/export", &exp); code != http.StatusOK {
		t.Fatalf("export: %d", code)
	}
	if exp.Contact == nil || exp.Contact.Email != email || exp.Contact.Phone != phone || exp.Contact.Attributes["first_name"] != "Zoé" {
		t.Errorf("export profile: %+v", exp.Contact)
	}
	if len(exp.Consents) != 2 || exp.Consents["sms/newsletter"].State != dispatcher.Granted {
		t.Errorf("export consents: %+v", exp.Consents)
	}
	if len(exp.ConsentHistory) != 2 || exp.ConsentHistory[0].Evidence["ip_hash"] == "" {
		t.Errorf("export history: %+v", exp.ConsentHistory)
	}
	var states []string
	for _, sd := range exp.Sends {
		if sd.Run != run || sd.Topic != "newsletter" {
			t.Errorf("export send: %+v", sd)
		}
		states = append(states, string(sd.Channel)+":"+sd.State)
	}
	slices.Sort(states)
	if diff := cmp.Diff([]string{"email:queued", "sms:deferred"}, states); diff != "" {
		t.Errorf("export sends (-want +got):\n%s", diff)
	}

	// The address was opted out while its send waited; then the contact
	// asks to be erased.
	must(t, s.Suppress(ctx, channels.Email, email, dispatcher.SuppressUnsubscribe, time.Time{}))
	var rep privacy.ErasureReport
	if code := apiCall(t, h, "DELETE", "/v1/contacts/leaving", &rep); code != http.StatusOK {
		t.Fatalf("erase: %d", code)
	}
	wantErased := map[string]int{"contact": 1, "consents": 2, "addresses": 2, "sends": 2, "sends_cancelled": 2,
		"pending_signups": 0, "soft_bounces": 0}
	if diff := cmp.Diff(wantErased, rep.Erased); diff != "" {
		t.Errorf("erased (-want +got):\n%s", diff)
	}
	kept := map[string]int{}
	for _, k := range rep.Kept {
		kept[k.Kind] = k.Count
		if k.Why == "" {
			t.Errorf("kept %s without a reason", k.Kind)
		}
	}
	if diff := cmp.Diff(map[string]int{"suppressions": 1, "consent_ledger": 2}, kept); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if !rep.CapsForgotten {
		t.Error("caps not forgotten")
	}
	r, err = s.Run(ctx, run)
	must(t, err)
	if diff := cmp.Diff(map[string]int64{"planned": 4, "queued": 1, "cancelled": 2, "no_address": 1}, r.Counters); diff != "" || !r.Balanced {
		t.Errorf("after erasure, balanced %v (-want +got):\n%s", r.Balanced, diff)
	}

	// What is gone, and what is kept.
	if _, err := s.Contact(ctx, "leaving"); err == nil {
		t.Error("contact still held")
	}
	for _, k := range []channels.Kind{channels.Email, channels.SMS} {
		if _, err := s.ContactIDByAddress(ctx, k, map[channels.Kind]string{channels.Email: email, channels.SMS: phone}[k]); err == nil {
			t.Errorf("%s address still indexed", k)
		}
	}
	if cur, err := s.Consents(ctx, "leaving"); err != nil || len(cur) != 0 {
		t.Errorf("consents still held: %v %v", cur, err)
	}
	for _, k := range []channels.Kind{channels.Email, channels.SMS} {
		if _, err := s.Send(ctx, dispatcher.SendID(run, "leaving", k)); err == nil {
			t.Errorf("%s send record still held", k)
		}
	}
	if n, _ := b.redis.Client.Exists(ctx, s.ContactSendsKey("leaving")).Result(); n != 0 {
		t.Error("send index still held")
	}
	ledger, err := s.ConsentLedger(ctx, "leaving")
	must(t, err)
	if len(ledger) != 2 {
		t.Fatalf("ledger: %d events, want 2", len(ledger))
	}
	for _, e := range ledger {
		if e.State != dispatcher.Granted || e.Source != "api" || e.At.IsZero() || e.Topic != "newsletter" ||
			!cmp.Equal(e.Evidence, map[string]string{"form": "signup-v3"}) {
			t.Errorf("ledger event after erasure: %+v", e)
		}
	}

	// Erasing again, or exporting, finds nothing.
	var e struct{ Error dispatcher.Error }
	if code := apiCall(t, h, "DELETE", "/v1/contacts/leaving", &e); code != http.StatusNotFound || e.Error.Code != dispatcher.CodeNotFound {
		t.Errorf("second erase: %d %+v", code, e)
	}
	if code := apiCall(t, h, "GET", "/v1/contacts/leaving/export", &e); code != http.StatusNotFound || e.Error.Code != dispatcher.CodeNotFound {
		t.Errorf("export after erasure: %d %+v", code, e)
	}
	if code := apiCall(t, h, "DELETE", "/v1/contacts/never-was", &e); code != http.StatusNotFound {
		t.Errorf("erase of an unknown id: %d", code)
	}

	// Workers now, with the deferred task brought forward: only the other
	// contact gets mail, no SMS leaves, and the run completes balanced.
	b.startWorker(t)
	insp := asynq.NewInspectorFromRedisClient(b.redis.Client)
	if n, err := insp.RunAllScheduledTasks(b.d.Pipeline.Queue("send")); err != nil || n == 0 {
		t.Fatalf("deferred send task: %d brought forward, %v", n, err)
	}
	r = b.waitRun(t, run, 20*time.Second)
	if diff := cmp.Diff(map[string]int64{"planned": 4, "sent": 1, "cancelled": 2, "no_address": 1}, r.Counters); diff != "" || !r.Balanced {
		t.Errorf("final counters, balanced %v (-want +got):\n%s", r.Balanced, diff)
	}
	b.waitIdle(t, 10*time.Second)
	var rcpts []string
	for _, m := range b.smtp.Messages() {
		rcpts = append(rcpts, m.To...)
	}
	if diff := cmp.Diff([]string{"staying@example.com"}, rcpts); diff != "" {
		t.Errorf("mail recipients (-want +got):\n%s", diff)
	}
	if n := len(b.twilio.Messages()); n != 0 {
		t.Errorf("%d SMS sent to an erased contact", n)
	}

	// The address comes back under a new id: still suppressed.
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "back", Email: "Leaving@Example.com"}, "Europe/Paris"))
	grantConsent(t, b, "back", channels.Email)
	must(t, s.PutSegment(ctx, &dispatcher.Segment{ID: "back", Contacts: []string{"back"}}))
	must(t, b.d.Pipeline.CreateCampaign(ctx, &dispatcher.Campaign{ID: "again", Topic: "newsletter", Segment: "back",
		Channels: []channels.Kind{channels.Email}, Templates: map[channels.Kind]string{channels.Email: "news-mail"}}))
	run2, err := b.d.Pipeline.StartRun(ctx, "again", sunday)
	must(t, err)
	r = b.waitRun(t, run2, 20*time.Second)
	if diff := cmp.Diff(map[string]int64{"planned": 1, "suppressed_unsubscribe": 1}, r.Counters); diff != "" {
		t.Errorf("re-imported address (-want +got):\n%s", diff)
	}
	if len(b.smtp.Messages()) != 1 {
		t.Errorf("%d messages, want 1", len(b.smtp.Messages()))
	}
	for _, secret := range []string{email, phone, "Zoé"} {
		if strings.Contains(b.logs.String(), secret) {
			t.Errorf("logs hold personal data")
		}
	}
}

// A send that a worker has claimed cannot be stopped: erasure keeps its
// record, says so, and the run still balances when it settles.
func TestEraseKeepsSendsBeingSent(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics())
	ctx := context.Background()
	s := b.d.Store
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "busy", Email: "busy@example.com"}, "Europe/Paris"))
	grantConsent(t, b, "busy", channels.Email)
	run := "manual-1" // a run of no campaign, as API sends are: indexed
	ds := []storepkg.Decision{{Send: dispatcher.SendID(run, "busy", channels.Email), Contact: "busy",
		Channel: channels.Email, Topic: "newsletter", Template: "news-mail", State: dispatcher.StateQueued}}
	must(t, s.RecordDecisions(ctx, run, ds, time.Hour))
	must(t, s.IndexSends(ctx, ds))
	id := dispatcher.SendID(run, "busy", channels.Email)
	if res, err := s.TransitionSend(ctx, storepkg.Transition{Send: id, From: pipeline.InflightStates, To: dispatcher.StateSending, Deadline: time.Now().Add(time.Minute)}); err != nil || !res.Applied {
		t.Fatalf("claim: %+v %v", res, err)
	}
	rep, err := b.d.Privacy.EraseContact(ctx, "busy")
	must(t, err)
	if rep.Erased["sends"] != 0 || rep.Erased["sends_cancelled"] != 0 {
		t.Errorf("erased %v", rep.Erased)
	}
	if !slices.ContainsFunc(rep.Kept, func(k privacy.KeptRecords) bool { return k.Kind == "sends_in_progress" && k.Count == 1 }) {
		t.Errorf("kept %+v", rep.Kept)
	}
	must(t, b.d.Pipeline.Settle(ctx, []string{id}, dispatcher.StateSending, dispatcher.StateSent, ""))
	r, err := s.Run(ctx, run)
	must(t, err)
	if r.Counters["sent"] != 1 || !r.Balanced {
		t.Errorf("run %v balanced %v", r.Counters, r.Balanced)
	}
}

// Sign-ups awaiting confirmation go with the contact; another person's
// stay.
func TestEraseDropsPendingSignups(t *testing.T) {
	t.Parallel()
	b := setup(t, withBasics())
	ctx := context.Background()
	s := b.d.Store
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "p", Email: "p@example.com", Phone: "+33612345690"}, "Europe/Paris"))
	for _, in := range []*signup.Input{
		{Topics: []string{"newsletter"}, Channel: channels.Email, Address: "p@example.com", Locale: "fr", Wording: "w1"},
		{Topics: []string{"newsletter"}, Channel: channels.SMS, Address: "+33612345690", Locale: "fr", Wording: "w1"},
		{Topics: []string{"newsletter"}, Channel: channels.Email, Address: "other@example.com", Locale: "fr", Wording: "w1"},
	} {
		must(t, b.d.Signups.Submit(ctx, in, "iphash", "Mozilla/5.0"))
	}
	pending := func() int {
		n := 0
		must(t, s.Scan(ctx, s.PendingKey("*"), func(keys []string) error { n += len(keys); return nil }))
		return n
	}
	if n := pending(); n != 3 {
		t.Fatalf("%d pending sign-ups, want 3", n)
	}
	rep, err := b.d.Privacy.EraseContact(ctx, "p")
	must(t, err)
	if rep.Erased["pending_signups"] != 2 {
		t.Errorf("erased %v", rep.Erased)
	}
	if n := pending(); n != 1 {
		t.Errorf("%d pending sign-ups left, want 1 (another person's)", n)
	}
	if n, _ := b.redis.Client.Exists(ctx, s.Key("pendingsms", s.AddressHash(channels.SMS, "+33612345690"))).Result(); n != 0 {
		t.Error("SMS sign-up index left")
	}
}

// A record sealed under a key the keyring no longer holds is erased all
// the same, its address index entries with it.
func TestEraseUnreadableRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	s := b.d.Store
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "lost", Email: "lost@example.com"}, "Europe/Paris"))
	must(t, s.UpsertContact(ctx, &dispatcher.Contact{ID: "kept", Email: "kept@example.com"}, "Europe/Paris"))
	// Simulate a record sealed under a lost key.
	must(t, b.redis.Client.Set(ctx, s.ContactKey("lost"), "\x01not-a-sealed-record", 0).Err())
	rep, err := b.d.Privacy.EraseContact(ctx, "lost")
	must(t, err)
	if !rep.RecordUnreadable || rep.Erased["contact"] != 1 || rep.Erased["addresses"] != 1 {
		t.Errorf("report %+v", rep)
	}
	if _, err := s.ContactIDByAddress(ctx, channels.Email, "lost@example.com"); err == nil {
		t.Error("address still indexed")
	}
	if id, err := s.ContactIDByAddress(ctx, channels.Email, "kept@example.com"); err != nil || id != "kept" {
		t.Errorf("another contact's address: %q %v", id, err)
	}
	if _, err := b.d.Privacy.EraseContact(ctx, "lost"); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		t.Errorf("second erase: %v", err)
	}
}

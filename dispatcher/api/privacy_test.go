package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/privacy"
	"github.com/missive-dev/missive/dispatcher/signup"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/templates/golden"
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
	stopGate := b.startGate(3)
	run, err := b.d.Pipeline.StartRun(ctx, "sunday", sunday)
	must(t, err)
	want := map[string]int64{"planned": 4, "queued": 2, "deferred": 1, "no_address": 1}
	var r *dispatcher.Run
	waitFor(t, "the run to be gated", 20*time.Second, func() bool {
		r, err = s.Run(ctx, run)
		must(t, err)
		return cmp.Equal(want, r.Counters)
	})
	must(t, stopGate())
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
		"pending_signups": 0, "enrolments": 0, "soft_bounces": 0}
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
	// The pseudonymous ledger still proves itself.
	var proof storepkg.LedgerReport
	if code := apiCall(t, h, "GET", "/v1/contacts/leaving/ledger/verify", &proof); code != http.StatusOK || proof.Events != 2 || !proof.OK() {
		t.Errorf("ledger verify after erasure: %d %+v", code, proof)
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

var retentionStart = time.Date(2021, 3, 1, 9, 0, 0, 0, time.UTC)

// upsertAt stores a contact with the clock at at.
func upsertAt(t *testing.T, b *testBundle, at time.Time, id, email string) {
	t.Helper()
	keep := b.clock.Now()
	b.clock.Set(at)
	defer b.clock.Set(keep)
	must(t, b.d.Store.UpsertContact(context.Background(), &dispatcher.Contact{ID: id, Email: email}, "Europe/Paris"))
}

func consentAt(t *testing.T, b *testBundle, id string, state dispatcher.ConsentState, at time.Time) {
	t.Helper()
	must(t, b.d.Store.RecordConsent(context.Background(), id, dispatcher.ConsentEvent{Channel: channels.Email,
		Topic: "newsletter", State: state, Source: "api", At: at}))
}

func TestRetentionPurgeInactive(t *testing.T) {
	t.Parallel()
	b := setup(t, withClock(retentionStart))
	ctx := context.Background()
	old := retentionStart
	now := old.Add(4 * 365 * 24 * time.Hour)

	upsertAt(t, b, old, "ret-granted-7q2", "granted-7q2@example.com")
	consentAt(t, b, "ret-granted-7q2", dispatcher.Granted, old)
	upsertAt(t, b, old, "ret-silent-7q2", "silent-7q2@example.com")
	must(t, b.d.Store.Suppress(ctx, channels.Email, "silent-7q2@example.com", dispatcher.SuppressUnsubscribe, time.Time{}))
	upsertAt(t, b, now.Add(-30*24*time.Hour), "ret-recent-7q2", "recent-7q2@example.com")
	upsertAt(t, b, old, "ret-withdrawn-7q2", "withdrawn-7q2@example.com")
	consentAt(t, b, "ret-withdrawn-7q2", dispatcher.Granted, old)
	consentAt(t, b, "ret-withdrawn-7q2", dispatcher.Withdrawn, old.Add(24*time.Hour))
	// Withdrawn 2 years ago only: its clock runs from the withdrawal.
	upsertAt(t, b, old, "ret-lately-7q2", "lately-7q2@example.com")
	consentAt(t, b, "ret-lately-7q2", dispatcher.Withdrawn, now.Add(-2*365*24*time.Hour))

	b.clock.Set(now)
	logStart := len(b.logs.String())
	var calls []string
	rep, err := b.d.Privacy.PurgeInactive(ctx, func(done, total int64) { calls = append(calls, fmt.Sprint(done, "/", total)) })
	must(t, err)
	if want := (privacy.PurgeReport{Scanned: 5, Purged: 2}); rep != want {
		t.Errorf("report %+v, want %+v", rep, want)
	}
	if strings.Join(calls, " ") != "5/5" {
		t.Errorf("progress %v, want [5/5]", calls)
	}

	for _, id := range []string{"ret-silent-7q2", "ret-withdrawn-7q2"} {
		if _, err := b.d.Store.Contact(ctx, id); !errors.Is(err, dispatcher.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound (purged)", id, err)
		}
	}
	for _, id := range []string{"ret-granted-7q2", "ret-recent-7q2", "ret-lately-7q2"} {
		if _, err := b.d.Store.Contact(ctx, id); err != nil {
			t.Errorf("%s: %v, want kept", id, err)
		}
	}
	// EraseContact's effects: the address index entry is gone, the
	// suppression hash and the pseudonymous ledger stay.
	if _, err := b.d.Store.ContactIDByAddress(ctx, channels.Email, "silent-7q2@example.com"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("address index of a purged contact: %v, want ErrNotFound", err)
	}
	if _, err := b.d.Store.Suppression(ctx, channels.Email, "silent-7q2@example.com"); err != nil {
		t.Errorf("suppression of a purged contact: %v, want kept", err)
	}
	if l, _ := b.d.Store.ConsentLedger(ctx, "ret-withdrawn-7q2"); len(l) != 2 {
		t.Errorf("ledger of a purged contact holds %d events, want 2 (kept as proof)", len(l))
	}
	if n, _ := b.d.Store.CountContacts(ctx); n != 3 {
		t.Errorf("%d contacts in the index, want 3", n)
	}

	logs := b.logs.String()[logStart:]
	if strings.Contains(logs, "7q2") {
		t.Errorf("the purge logged a contact id or address:\n%s", logs)
	}

	// A second purge finds nothing more.
	rep, err = b.d.Privacy.PurgeInactive(ctx, nil)
	must(t, err)
	if want := (privacy.PurgeReport{Scanned: 3}); rep != want {
		t.Errorf("second report %+v, want %+v", rep, want)
	}
}

// The walk crosses chunk boundaries while it erases behind itself.
func TestRetentionPurgeChunks(t *testing.T) {
	t.Parallel()
	b := setup(t, withClock(retentionStart))
	ctx := context.Background()
	const n = 2*privacy.PurgeChunk + 7
	must(t, b.d.Store.PutTopic(ctx, &dispatcher.Topic{ID: "newsletter", Kind: dispatcher.Marketing}))
	var ndjson strings.Builder
	for i := range n {
		l := storepkg.ImportLine{Contact: dispatcher.Contact{ID: fmt.Sprintf("c%05d", i), Email: fmt.Sprintf("c%05d@example.com", i)}}
		if i%100 == 0 {
			l.Consents = []dispatcher.ConsentEvent{{Channel: channels.Email, Topic: "newsletter", State: dispatcher.Granted, Source: "import"}}
		}
		line, _ := json.Marshal(l)
		ndjson.Write(append(line, '\n'))
	}
	res, err := b.d.Store.ImportContacts(ctx, strings.NewReader(ndjson.String()), "Europe/Paris", nil)
	must(t, err)
	if res.Imported != n {
		t.Fatalf("imported %d of %d: %v", res.Imported, n, res.Errors)
	}
	b.clock.Add(privacy.DefaultInactiveAfter + time.Hour)
	var calls int
	rep, err := b.d.Privacy.PurgeInactive(ctx, func(done, total int64) {
		calls++
		if total != n {
			t.Errorf("total %d, want %d", total, n)
		}
	})
	must(t, err)
	granted := int64((n + 99) / 100)
	if want := (privacy.PurgeReport{Scanned: n, Purged: n - granted}); rep != want {
		t.Errorf("report %+v, want %+v", rep, want)
	}
	if calls != 3 {
		t.Errorf("%d progress calls, want 3", calls)
	}
	if left, _ := b.d.Store.CountContacts(ctx); left != granted {
		t.Errorf("%d contacts left, want %d", left, granted)
	}
}

func TestRetentionDisabled(t *testing.T) {
	t.Parallel()
	b := setup(t, withClock(retentionStart), withConfig(func(c *app.Config) { c.InactiveAfter = -1 }))
	upsertAt(t, b, retentionStart, "ret-off", "off@example.com")
	b.clock.Add(10 * privacy.DefaultInactiveAfter)
	rep, err := b.d.Privacy.PurgeInactive(context.Background(), nil)
	must(t, err)
	if rep != (privacy.PurgeReport{}) {
		t.Errorf("report %+v with the purge disabled", rep)
	}
	if _, err := b.d.Store.Contact(context.Background(), "ret-off"); err != nil {
		t.Errorf("contact: %v, want kept", err)
	}
}

// The scheduler's leader purges once a day, in its own goroutine.
func TestRetentionScheduler(t *testing.T) {
	t.Parallel()
	now := retentionStart.Add(privacy.DefaultInactiveAfter + 24*time.Hour)
	b := setup(t, withClock(now))
	ctx := context.Background()
	upsertAt(t, b, retentionStart, "ret-first-9k4", "first-9k4@example.com")

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.d.Scheduler.Run(runCtx, 10*time.Millisecond) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scheduler: %v", err)
		}
	}()
	stats := b.d.Store.Key("retention", "stats")
	waitFor(t, "the first purge", 10*time.Second, func() bool {
		v, _ := b.cfg.Redis.HGet(ctx, stats, "purged").Result()
		return v == "1"
	})
	if _, err := b.d.Store.Contact(ctx, "ret-first-9k4"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Fatalf("first contact: %v, want purged", err)
	}
	first, _ := b.cfg.Redis.HGetAll(ctx, stats).Result()
	if want := now.UTC().Format(time.RFC3339); first["last_run"] != want || first["scanned"] != "1" || first["errors"] != "0" {
		t.Errorf("stats %v, want last_run %s, scanned 1, errors 0", first, want)
	}

	// Within 24 hours, ticks do not purge again: once whole ticks ran on
	// the moved clock, none claimed a purge, and the contact is kept.
	claim := b.d.Store.Key("retention", "last")
	claimed, err := b.cfg.Redis.Get(ctx, claim).Result()
	must(t, err)
	upsertAt(t, b, retentionStart, "ret-second-9k4", "second-9k4@example.com")
	b.clock.Add(23 * time.Hour)
	b.loops.waitTicks(t, 3)
	if again, err := b.cfg.Redis.Get(ctx, claim).Result(); err != nil || again != claimed {
		t.Fatalf("purge claimed again within 24 h: %q, was %q (%v)", again, claimed, err)
	}
	if _, err := b.d.Store.Contact(ctx, "ret-second-9k4"); err != nil {
		t.Fatalf("second contact: %v, want kept until the next day's purge", err)
	}
	if again, _ := b.cfg.Redis.HGetAll(ctx, stats).Result(); again["last_run"] != first["last_run"] {
		t.Errorf("stats %v changed within 24 h", again)
	}

	// A day after the first, the next purge runs.
	b.clock.Add(2 * time.Hour)
	waitFor(t, "the second purge", 10*time.Second, func() bool {
		_, err := b.d.Store.Contact(ctx, "ret-second-9k4")
		return errors.Is(err, dispatcher.ErrNotFound)
	})
	waitFor(t, "the second stats", 10*time.Second, func() bool {
		v, _ := b.cfg.Redis.HGet(ctx, stats, "last_run").Result()
		return v == now.Add(25*time.Hour).UTC().Format(time.RFC3339)
	})
	if logs := b.logs.String(); strings.Contains(logs, "9k4") || !strings.Contains(logs, "purge of inactive contacts") {
		t.Errorf("logs name a contact or lack the purge's counts:\n%s", logs)
	}
}

// A record that does not open (a lost data key) is counted, not purged, and
// does not stop the others of its chunk from being judged.
func TestRetentionUnreadableRecord(t *testing.T) {
	t.Parallel()
	ka, kb := storetest.Key(t), storetest.Key(t)
	b := setup(t, withClock(retentionStart), withConfig(func(c *app.Config) { c.DataKeys = storetest.Ring(t, "a", map[string][]byte{"a": ka}) }))
	upsertAt(t, b, retentionStart, "ret-locked", "locked@example.com")
	cfg := b.cfg
	cfg.DataKeys = storetest.Ring(t, "b", map[string][]byte{"b": kb})
	d, err := app.New(cfg)
	must(t, err)
	b.d = d
	upsertAt(t, b, retentionStart, "ret-open", "open@example.com")
	b.clock.Add(privacy.DefaultInactiveAfter + time.Hour)
	ctx := context.Background()
	rep, err := d.Privacy.PurgeInactive(ctx, nil)
	must(t, err)
	if want := (privacy.PurgeReport{Scanned: 2, Purged: 1, Errors: 1}); rep != want {
		t.Errorf("report %+v, want %+v", rep, want)
	}
	if _, err := d.Store.Contact(ctx, "ret-open"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("readable contact: %v, want purged", err)
	}
	if n, _ := d.Store.CountContacts(ctx); n != 1 {
		t.Errorf("%d contacts left, want 1 (the unreadable one)", n)
	}
}

var registerNow = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

func TestRegister(t *testing.T) {
	t.Parallel()
	b := setup(t, withClock(registerNow), withConfig(func(c *app.Config) {
		c.SenderName = "Shop"
		c.SendTTL = 30 * 24 * time.Hour
		c.Processors = []string{"SMTP relay (smtp.shop.example)", "Twilio"}
	}))
	c := b.api
	ctx := context.Background()
	for _, tp := range []dispatcher.Topic{
		{ID: "newsletter", Name: "Newsletter", Kind: dispatcher.Marketing, Description: "News | offers, once a month"},
		{ID: "orders", Kind: dispatcher.Transactional, Description: "Order and delivery updates"},
	} {
		if err := b.d.Store.PutTopic(ctx, &tp); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := b.d.Privacy.Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(privacy.Controller{Name: "Shop", Address: privacy.Todo, DPO: privacy.Todo}, reg.Controller); diff != "" {
		t.Errorf("controller (-want +got):\n%s", diff)
	}
	wantPurposes := []privacy.Purpose{
		{Topic: "newsletter", Name: "Newsletter", Description: "News | offers, once a month", Kind: dispatcher.Marketing, LegalBasis: "consent", Article: "Art. 6(1)(a)"},
		{Topic: "orders", Name: "orders", Description: "Order and delivery updates", Kind: dispatcher.Transactional, LegalBasis: "contract", Article: "Art. 6(1)(b)"},
	}
	if diff := cmp.Diff(wantPurposes, reg.Purposes); diff != "" {
		t.Errorf("purposes (-want +got):\n%s", diff)
	}
	wantRecipients := []privacy.Recipient{{Name: "SMTP relay (smtp.shop.example)", Role: "processor"}, {Name: "Twilio", Role: "processor"}}
	if diff := cmp.Diff(wantRecipients, reg.Recipients); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
	if reg.Retention[0].Period != "30 days" {
		t.Errorf("send records kept %q, want the SendTTL, 30 days", reg.Retention[0].Period)
	}

	// JSON over the API: the field names clients rely on.
	r := c.as("dpo", "GET", "/v1/register", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/register: %d %s: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"generated_at", "controller", "purposes", "data_subjects", "data_categories", "recipients", "transfers", "retention", "security"} {
		if _, ok := v[f]; !ok {
			t.Errorf("register JSON lacks %q", f)
		}
	}
	p := v["purposes"].([]any)[1].(map[string]any)
	if diff := cmp.Diff(map[string]any{"topic": "orders", "name": "orders", "description": "Order and delivery updates",
		"kind": "transactional", "legal_basis": "contract", "article": "Art. 6(1)(b)"}, p); diff != "" {
		t.Errorf("purpose JSON (-want +got):\n%s", diff)
	}

	// Markdown over the API is the same document as Register.Markdown.
	r = c.as("dpo", "GET", "/v1/register?format=markdown", "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/markdown; charset=utf-8" {
		t.Fatalf("GET /v1/register?format=markdown: %d %s", r.status, r.header.Get("Content-Type"))
	}
	golden.Check(t, "register.md", string(r.body))
	if string(r.body) != reg.Markdown() {
		t.Error("the API's Markdown differs from Register.Markdown")
	}
	if r := c.as("dpo", "GET", "/v1/register?format=pdf", ""); r.status != http.StatusUnprocessableEntity {
		t.Errorf("format=pdf: status %d, want 422", r.status)
	}
}

func TestRegisterWithoutTopicsOrProcessors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg, err := b.d.Privacy.Register(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Purposes) != 0 || len(reg.Recipients) != 1 || reg.Recipients[0].Role != "none" {
		t.Errorf("purposes %v, recipients %v", reg.Purposes, reg.Recipients)
	}
	if reg.Retention[0].Period != "90 days" {
		t.Errorf("default send retention %q", reg.Retention[0].Period)
	}
	b2, _ := json.Marshal(reg)
	var v map[string]any
	json.Unmarshal(b2, &v)
	if v["purposes"] == nil {
		t.Error("purposes is null rather than an empty list")
	}
}

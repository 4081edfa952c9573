package privacy_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/privacy"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
	"github.com/missive-dev/missive/throttle/redistest"
)

// The contact erased, and one that stays.
const (
	leavingEmail = "leaving@example.com"
	leavingPhone = "+33612345688"
	stayingEmail = "staying@example.com"
)

var softWindow = 7 * 24 * time.Hour

// leaving is what the contact "leaving" holds before its erasure, with
// the ids of its sends.
type leaving struct {
	queued, deferred string // in flight in run r1, whose planning is over
	sent             string // settled, in run r2
	sending          string // handed to a provider right now, in run r3
	api              string // an API send, in flight, found through the contact's index
	ledger           []dispatcher.ConsentEvent
}

// putLeaving stores the contact "leaving" with everything erasure deals
// with, and "staying", who shares its runs, with its own.
func (b *testBundle) putLeaving(t *testing.T) leaving {
	t.Helper()
	ctx := context.Background()
	var l leaving
	l.ledger = []dispatcher.ConsentEvent{
		{Channel: channels.Email, Topic: "news", State: dispatcher.Granted, Source: "signup", At: start.Add(-48 * time.Hour),
			Evidence: map[string]string{"form": "footer", "wording": "w2", "ip_hash": "9f86d081", "user_agent": "Mozilla/5.0", "confirmed_via": "email"}},
		{Channel: channels.SMS, Topic: "news", State: dispatcher.Granted, Source: "api", At: start.Add(-47 * time.Hour)},
		{Channel: channels.SMS, Topic: "news", State: dispatcher.Withdrawn, Source: "sms-stop", At: start.Add(-time.Hour),
			Evidence: map[string]string{"message": "SM1"}},
	}
	b.putContact(t, dispatcher.Contact{ID: "leaving", Email: leavingEmail, Phone: leavingPhone, Attributes: map[string]string{"first_name": "Zoé"}}, l.ledger...)
	b.putContact(t, dispatcher.Contact{ID: "staying", Email: stayingEmail},
		dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: dispatcher.Granted, Source: "api", At: start})

	// The email address opted out; the number soft-bounced; a sign-up by
	// SMS awaits confirmation.
	must(t, b.st.Suppress(ctx, channels.Email, leavingEmail, dispatcher.SuppressUnsubscribe, time.Time{}))
	_, err := b.st.CountSoftBounce(ctx, channels.SMS, leavingPhone, "old-report", start, softWindow)
	must(t, err)
	must(t, b.st.PutPendingSignup(ctx, "h-leaving", &store.PendingSignup{Contact: "leaving", Channel: channels.SMS, Topics: []string{"news"}, Created: start}, leavingPhone, 48*time.Hour))

	l.queued = b.send(t, "spring", "r1", "leaving", channels.Email, dispatcher.StateQueued)
	l.deferred = b.send(t, "spring", "r1", "leaving", channels.SMS, dispatcher.StateDeferred)
	b.finishPlanning(t, "r1")
	l.sent = b.send(t, "spring", "r2", "leaving", channels.Email, dispatcher.StateSent)
	l.sending = b.send(t, "spring", "r3", "leaving", channels.SMS, dispatcher.StateSending)
	l.api = b.send(t, dispatcher.APICampaign, "api-r1", "leaving", channels.Email, dispatcher.StateQueued)
	if !b.reserve(t, "leaving", l.sent) || b.reserve(t, "leaving", "another") {
		t.Fatal("the cap of one email a day does not hold")
	}

	// What staying holds, in the same runs.
	_, err = b.st.CountSoftBounce(ctx, channels.Email, stayingEmail, "report", start, softWindow)
	must(t, err)
	b.send(t, "spring", "r2", "staying", channels.Email, dispatcher.StateSent)
	b.send(t, dispatcher.APICampaign, "api-r1", "staying", channels.Email, dispatcher.StateQueued)
	if !b.reserve(t, "staying", "s1") {
		t.Fatal("staying's cap")
	}
	return l
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ignoreWhy leaves the reasons of the kept records out of a comparison;
// checkWhy checks that each has one.
var ignoreWhy = cmpopts.IgnoreFields(privacy.KeptRecords{}, "Why")

func checkWhy(t *testing.T, rep *privacy.ErasureReport) {
	t.Helper()
	for _, k := range rep.Kept {
		if k.Why == "" {
			t.Errorf("kept %s without a reason", k.Kind)
		}
	}
}

// Erasure removes the record, consents, address index entries, sends,
// caps, soft bounces and pending sign-ups; it keeps the suppression
// hashes, a pseudonymous ledger and the send a provider is taking; it
// settles the in-flight sends and completes the run they held open; and it
// touches nothing of another contact.
func TestEraseContact(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	l := b.putLeaving(t)

	rep, err := b.p.EraseContact(ctx, "leaving")
	if err != nil {
		t.Fatal(err)
	}
	want := &privacy.ErasureReport{
		Contact: "leaving",
		Erased: map[string]int{"contact": 1, "consents": 2, "addresses": 2, "sends": 4, "sends_cancelled": 3,
			"pending_signups": 1, "soft_bounces": 1},
		CapsForgotten: true,
		Kept: []privacy.KeptRecords{
			{Kind: "suppressions", Count: 1},
			{Kind: "consent_ledger", Count: 3},
			{Kind: "sends_in_progress", Count: 1},
		},
	}
	if diff := cmp.Diff(want, rep, ignoreWhy); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	checkWhy(t, rep)

	t.Run("gone", func(t *testing.T) {
		t.Parallel()
		if _, err := b.st.Contact(ctx, "leaving"); !isNotFound(err) {
			t.Errorf("contact: %v, want not found", err)
		}
		for k, addr := range map[channels.Kind]string{channels.Email: leavingEmail, channels.SMS: leavingPhone} {
			if id, err := b.st.ContactIDByAddress(ctx, k, addr); !isNotFound(err) {
				t.Errorf("%s address still leads to %q (%v)", k, id, err)
			}
		}
		if cur, err := b.st.Consents(ctx, "leaving"); err != nil || len(cur) != 0 {
			t.Errorf("current consents %v, %v; want none", cur, err)
		}
		for _, id := range []string{l.queued, l.deferred, l.sent, l.api} {
			if _, err := b.st.Send(ctx, id); !isNotFound(err) {
				t.Errorf("send %s: %v, want not found", id, err)
			}
		}
		if times, err := b.st.SoftBounceTimes(ctx, channels.SMS, leavingPhone); err != nil || len(times) != 0 {
			t.Errorf("soft bounces %v, %v; want none", times, err)
		}
		if _, err := b.st.PendingSignup(ctx, "h-leaving"); !isNotFound(err) {
			t.Errorf("pending sign-up: %v, want not found", err)
		}
		if h, err := b.st.PendingSMSSignup(ctx, leavingPhone); err == nil && h != "" {
			t.Errorf("the number still leads to the pending sign-up %q", h)
		}
		// Of the keys that name the contact, only the ledger's stays.
		if diff := cmp.Diff([]string{b.st.ContactKey("leaving") + ":ledger"}, b.keysNaming(t, "{leaving}")); diff != "" {
			t.Errorf("keys naming the contact (-want +got):\n%s", diff)
		}
		if !b.reserve(t, "leaving", "after") {
			t.Error("the cap still counts the erased contact's sends")
		}
	})

	t.Run("kept", func(t *testing.T) {
		t.Parallel()
		sup, err := b.st.Suppression(ctx, channels.Email, leavingEmail)
		if err != nil || sup.Reason != dispatcher.SuppressUnsubscribe {
			t.Errorf("suppression %+v, %v; want the opt-out kept", sup, err)
		}
		ledger, err := b.st.ConsentLedger(ctx, "leaving")
		must(t, err)
		wantLedger := []dispatcher.ConsentEvent{
			{Channel: channels.Email, Topic: "news", State: dispatcher.Granted, Source: "signup", At: start.Add(-48 * time.Hour),
				Evidence: map[string]string{"form": "footer", "wording": "w2", "confirmed_via": "email"}},
			{Channel: channels.SMS, Topic: "news", State: dispatcher.Granted, Source: "api", At: start.Add(-47 * time.Hour)},
			{Channel: channels.SMS, Topic: "news", State: dispatcher.Withdrawn, Source: "sms-stop", At: start.Add(-time.Hour)},
		}
		if diff := cmp.Diff(wantLedger, ledger); diff != "" {
			t.Errorf("pseudonymous ledger (-want +got):\n%s", diff)
		}
		sd, err := b.st.Send(ctx, l.sending)
		if err != nil || sd.State != dispatcher.StateSending {
			t.Errorf("the send being handed over: %+v, %v; want it kept until it settles", sd, err)
		}
	})

	t.Run("runs settled", func(t *testing.T) {
		t.Parallel()
		r1, err := b.st.Run(ctx, "r1")
		must(t, err)
		if diff := cmp.Diff(map[string]int64{"planned": 2, "cancelled": 2}, r1.Counters); diff != "" || !r1.Balanced {
			t.Errorf("run r1, balanced %v (-want +got):\n%s", r1.Balanced, diff)
		}
		api, err := b.st.Run(ctx, "api-r1")
		must(t, err)
		if diff := cmp.Diff(map[string]int64{"planned": 2, "queued": 1, "cancelled": 1}, api.Counters); diff != "" {
			t.Errorf("run api-r1 (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"r1"}, b.runs.Completed()); diff != "" {
			t.Errorf("runs completed (-want +got):\n%s", diff)
		}
	})

	t.Run("the other contact untouched", func(t *testing.T) {
		t.Parallel()
		if c, err := b.st.Contact(ctx, "staying"); err != nil || c.Email != stayingEmail {
			t.Errorf("staying: %+v, %v", c, err)
		}
		if id, err := b.st.ContactIDByAddress(ctx, channels.Email, stayingEmail); err != nil || id != "staying" {
			t.Errorf("staying's address leads to %q, %v", id, err)
		}
		if cur, err := b.st.Consents(ctx, "staying"); err != nil || cur["email/news"] != dispatcher.Granted {
			t.Errorf("staying's consents %v, %v", cur, err)
		}
		if times, err := b.st.SoftBounceTimes(ctx, channels.Email, stayingEmail); err != nil || len(times) != 1 {
			t.Errorf("staying's soft bounces %v, %v", times, err)
		}
		sends, err := b.st.ContactSends(ctx, "staying")
		if err != nil || len(sends) != 2 {
			t.Errorf("staying's sends %v, %v; want 2", sends, err)
		}
		if b.reserve(t, "staying", "s2") {
			t.Error("staying's cap was forgotten")
		}
	})

	t.Run("again", func(t *testing.T) {
		t.Parallel()
		if _, err := b.p.EraseContact(ctx, "leaving"); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			t.Errorf("second erasure: %v, want not_found", err)
		}
		if _, err := b.p.ExportContact(ctx, "leaving"); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			t.Errorf("export after erasure: %v, want not_found", err)
		}
	})
}

// Erasing or exporting a contact nobody knows answers not_found.
func TestUnknownContact(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"EraseContact":  func() error { _, err := b.p.EraseContact(ctx, "nobody"); return err },
		"ExportContact": func() error { _, err := b.p.ExportContact(ctx, "nobody"); return err },
	} {
		if err := call(); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			t.Errorf("%s(unknown): %v, want not_found", name, err)
		}
	}
}

func TestEraseContactMinimal(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	b.putContact(t, dispatcher.Contact{ID: "bare", Email: "bare@example.com"})
	rep, err := b.p.EraseContact(ctx, "bare")
	must(t, err)
	want := &privacy.ErasureReport{Contact: "bare", CapsForgotten: true,
		Erased: map[string]int{"contact": 1, "consents": 0, "addresses": 1, "sends": 0, "sends_cancelled": 0, "pending_signups": 0, "soft_bounces": 0}}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if keys := b.keysNaming(t, "{bare}"); len(keys) != 0 {
		t.Errorf("keys left naming the contact: %v", keys)
	}
}

// Tags an upsert journaled for the sequences, and that no one told them
// (the telling failed, or its process died), are erased with the contact:
// the journal holds them, sealed, until the next replay otherwise.
func TestEraseForgetsJournaledTags(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	b.st.TagsAdded = func(context.Context, map[string][]string) error { return errors.New("sequences unreachable") }
	b.putContact(t, dispatcher.Contact{ID: "tagged", Email: "tagged@example.com", Tags: []string{"pregnant"}})
	b.putContact(t, dispatcher.Contact{ID: "other", Email: "other@example.com", Tags: []string{"vip"}})
	if es, err := b.st.TagJournal(ctx, time.Now().Add(time.Hour), 10); err != nil || len(es) != 2 {
		t.Fatalf("journal before the erasure: %d entries, %v; want the two contacts' entries", len(es), err)
	}
	_, err := b.p.EraseContact(ctx, "tagged")
	must(t, err)
	es, err := b.st.TagJournal(ctx, time.Now().Add(time.Hour), 10)
	if err != nil || len(es) != 1 || es[0].Contact != "other" {
		t.Errorf("journal after the erasure: %d entries, %v; want other's entry only", len(es), err)
	}
}

// The right to erasure does not wait for a lost data key: a record that
// does not open is erased all the same, its address index entries found
// without its addresses; the suppression entries stay, uncounted.
func TestEraseUnreadableContact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// spoil makes the record of "lost", written by st, unreadable.
		spoil func(t *testing.T, b *testBundle)
	}{
		{"sealed under a data key the keyring no longer holds", func(*testing.T, *testBundle) {}},
		{"written before the set of its address hashes", func(t *testing.T, b *testBundle) {
			must(t, b.r.Client.Del(context.Background(), b.st.AddressesKey("lost")).Err())
		}},
		{"tampered with", func(t *testing.T, b *testBundle) {
			ctx := context.Background()
			sealed, err := b.r.Client.Get(ctx, b.st.ContactKey("lost")).Bytes()
			must(t, err)
			sealed[len(sealed)-1] ^= 1
			must(t, b.r.Client.Set(ctx, b.st.ContactKey("lost"), sealed, 0).Err())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			ctx := context.Background()
			const email, phone = "lost@example.com", "+33612345699"
			old := storetest.New(t, b.r.Client, b.r.Prefix, b.clock.Now, "old")
			if tt.name == "tampered with" {
				old = b.st
			}
			b.putContactWith(t, old, dispatcher.Contact{ID: "lost", Email: email, Phone: phone},
				dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: dispatcher.Granted, Source: "signup", At: start,
					Evidence: map[string]string{"form": "footer", "ip_hash": "9f86d081"}})
			b.putContact(t, dispatcher.Contact{ID: "staying", Email: stayingEmail})
			must(t, b.st.Suppress(ctx, channels.Email, email, dispatcher.SuppressComplaint, time.Time{}))
			must(t, b.st.PutPendingSignup(ctx, "h-lost", &store.PendingSignup{Contact: "lost", Channel: channels.Email, Topics: []string{"news"}}, "", 48*time.Hour))
			queued := b.send(t, "spring", "r1", "lost", channels.Email, dispatcher.StateQueued)
			tt.spoil(t, b)
			if _, err := b.st.Contact(ctx, "lost"); err == nil || isNotFound(err) {
				t.Fatalf("the record opens or is gone: %v", err)
			}

			rep, err := b.p.EraseContact(ctx, "lost")
			if err != nil {
				t.Fatal(err)
			}
			want := &privacy.ErasureReport{Contact: "lost", CapsForgotten: true, RecordUnreadable: true,
				Erased: map[string]int{"contact": 1, "consents": 1, "addresses": 2, "sends": 1, "sends_cancelled": 1, "pending_signups": 1, "soft_bounces": 0},
				Kept:   []privacy.KeptRecords{{Kind: "consent_ledger", Count: 1}}}
			if diff := cmp.Diff(want, rep, ignoreWhy); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
			for k, addr := range map[channels.Kind]string{channels.Email: email, channels.SMS: phone} {
				if id, err := b.st.ContactIDByAddress(ctx, k, addr); !isNotFound(err) {
					t.Errorf("%s address still leads to %q (%v)", k, id, err)
				}
			}
			if id, err := b.st.ContactIDByAddress(ctx, channels.Email, stayingEmail); err != nil || id != "staying" {
				t.Errorf("another contact's address leads to %q, %v", id, err)
			}
			if sup, err := b.st.Suppression(ctx, channels.Email, email); err != nil || sup.Reason != dispatcher.SuppressComplaint {
				t.Errorf("suppression %+v, %v; want the complaint kept", sup, err)
			}
			if _, err := b.st.Send(ctx, queued); !isNotFound(err) {
				t.Errorf("send: %v, want not found", err)
			}
			ledger, err := b.st.ConsentLedger(ctx, "lost")
			must(t, err)
			if diff := cmp.Diff([]dispatcher.ConsentEvent{{Channel: channels.Email, Topic: "news", State: dispatcher.Granted, Source: "signup", At: start,
				Evidence: map[string]string{"form": "footer"}}}, ledger); diff != "" {
				t.Errorf("ledger (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{b.st.ContactKey("lost") + ":ledger"}, b.keysNaming(t, "{lost}")); diff != "" {
				t.Errorf("keys naming the contact (-want +got):\n%s", diff)
			}
		})
	}
}

// An erasure cut short leaves the contact's record, and calling again
// finishes it: caps forgotten, runs completed.
func TestEraseCutShortIsFinishedByCallingAgain(t *testing.T) {
	t.Parallel()
	errDown := errors.New("redis: connection reset")
	tests := []struct {
		name     string
		capsErrs []error
		runsErrs []error
	}{
		{name: "forgetting the caps failed", capsErrs: []error{errDown}},
		{name: "completing a run failed", runsErrs: []error{errDown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			ctx := context.Background()
			l := b.putLeaving(t)
			b.caps.errs, b.runs.CompleteErrs = tt.capsErrs, tt.runsErrs

			if _, err := b.p.EraseContact(ctx, "leaving"); !errors.Is(err, errDown) {
				t.Fatalf("first EraseContact: %v, want %v", err, errDown)
			}
			if _, err := b.st.Contact(ctx, "leaving"); err != nil {
				t.Fatalf("an erasure cut short removed the record, and with it the way to finish: %v", err)
			}
			rep, err := b.p.EraseContact(ctx, "leaving")
			if err != nil {
				t.Fatalf("second EraseContact: %v", err)
			}
			if !rep.CapsForgotten || rep.Erased["contact"] != 1 {
				t.Errorf("second report %+v", rep)
			}
			if _, err := b.st.Contact(ctx, "leaving"); !isNotFound(err) {
				t.Errorf("contact after the second call: %v, want not found", err)
			}
			if !b.reserve(t, "leaving", "after") {
				t.Error("the cap still counts the erased contact's sends")
			}
			for _, id := range []string{l.queued, l.deferred, l.sent, l.api} {
				if _, err := b.st.Send(ctx, id); !isNotFound(err) {
					t.Errorf("send %s: %v, want not found", id, err)
				}
			}
			if diff := cmp.Diff([]string{"r1"}, b.runs.Completed()); diff != "" {
				t.Errorf("runs completed (-want +got):\n%s", diff)
			}
		})
	}
}

// commandCounter counts the Redis commands a client runs while on.
type commandCounter struct {
	on     atomic.Bool
	mu     sync.Mutex
	counts map[string]int
}

func (c *commandCounter) count(cmd redis.Cmder) {
	if !c.on.Load() {
		return
	}
	name := cmd.Name()
	if name == "eval" {
		name = "evalsha" // a script Redis did not hold yet
	}
	if err := cmd.Err(); (err != nil && !errors.Is(err, redis.Nil)) || name == "script" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[name]++
}

// The cost of an erasure grows with what the contact has, not with the
// data of others: the same commands with 0 or 60 other contacts, and no
// walk of the keyspace.
func TestEraseCostIgnoresOtherContacts(t *testing.T) {
	t.Parallel()
	erase := func(others int) map[string]int {
		r := redistest.New(t)
		counter := &commandCounter{counts: map[string]int{}}
		rdb := redis.NewClient(r.Options)
		redistest.OnCommand(rdb, counter.count)
		t.Cleanup(func() { _ = rdb.Close() })
		b := setupOn(t, r, rdb, nil)
		b.putLeaving(t)
		b.putContact(t, dispatcher.Contact{ID: "warmup", Email: "warmup@example.com", Phone: "+33612345600"})
		b.send(t, "spring", "r1", "warmup", channels.Email, dispatcher.StateQueued)
		ctx := context.Background()
		for i := range others {
			id := fmt.Sprintf("other-%03d", i)
			email := id + "@example.com"
			b.putContact(t, dispatcher.Contact{ID: id, Email: email, Phone: fmt.Sprintf("+336123457%02d", i)},
				dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: dispatcher.Granted, Source: "api", At: start})
			must(t, b.st.Suppress(ctx, channels.Email, email, dispatcher.SuppressBounce, time.Time{}))
			_, err := b.st.CountSoftBounce(ctx, channels.Email, email, "r", start, softWindow)
			must(t, err)
			b.send(t, "spring", "r2", id, channels.Email, dispatcher.StateSent)
			b.send(t, dispatcher.APICampaign, "api-r1", id, channels.Email, dispatcher.StateQueued)
			b.reserve(t, id, "s-"+id)
		}
		// The first erasure loads the scripts into Redis.
		if _, err := b.p.EraseContact(ctx, "warmup"); err != nil {
			t.Fatal(err)
		}
		counter.on.Store(true)
		if _, err := b.p.EraseContact(ctx, "leaving"); err != nil {
			t.Fatal(err)
		}
		counter.on.Store(false)
		return counter.counts
	}
	alone, among := erase(0), erase(60)
	if diff := cmp.Diff(alone, among); diff != "" {
		t.Errorf("commands of an erasure alone and among 60 others (-alone +among):\n%s", diff)
	}
	for _, walk := range []string{"scan", "keys"} {
		if among[walk] != 0 {
			t.Errorf("the erasure ran %s %d times", walk, among[walk])
		}
	}
	if len(among) == 0 {
		t.Error("no command counted")
	}
}

// ExportContact gathers everything held on the contact.
func TestExportContact(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	events := []dispatcher.ConsentEvent{
		{Channel: channels.Email, Topic: "news", State: dispatcher.Granted, Source: "signup", At: start.Add(-48 * time.Hour),
			Evidence: map[string]string{"form": "footer", "ip_hash": "9f86d081"}},
		{Channel: channels.SMS, Topic: "news", State: dispatcher.Withdrawn, Source: "sms-stop", At: start.Add(-time.Hour)},
	}
	b.putContact(t, dispatcher.Contact{ID: "c1", Email: "c1@example.com", Phone: "+33612345611", Locale: "fr",
		Attributes: map[string]string{"first_name": "Zoé"}, Tags: []string{"vip"}}, events...)
	must(t, b.st.Suppress(ctx, channels.SMS, "+33612345611", dispatcher.SuppressStop, time.Time{}))
	_, err := b.st.CountSoftBounce(ctx, channels.Email, "c1@example.com", "r0", start.Add(-2*time.Hour), softWindow)
	must(t, err)
	queued := b.send(t, "spring", "r1", "c1", channels.Email, dispatcher.StateQueued)
	b.clock.Add(time.Minute)
	api := b.send(t, dispatcher.APICampaign, "api-r1", "c1", channels.Email, dispatcher.StateSent)
	b.clock.Add(time.Minute)

	got, err := b.p.ExportContact(ctx, "c1")
	must(t, err)
	contact, err := b.st.Contact(ctx, "c1")
	must(t, err)
	want := &privacy.ContactExport{
		ExportedAt: start.Add(2 * time.Minute),
		Contact:    contact,
		Consents: map[string]store.ConsentCurrent{
			"email/news": {State: dispatcher.Granted, At: start.Add(-48 * time.Hour), Source: "signup"},
			"sms/news":   {State: dispatcher.Withdrawn, At: start.Add(-time.Hour), Source: "sms-stop"},
		},
		ConsentHistory: events,
		Preferences:    map[string]store.ConsentCurrent{},
		Suppressions: []privacy.ExportSuppression{{Channel: channels.SMS, Address: "+33612345611",
			Suppression: dispatcher.Suppression{Reason: dispatcher.SuppressStop, At: start}}},
		Sends: []privacy.ExportSend{
			{ID: queued, Run: "r1", Channel: channels.Email, Topic: "news", State: dispatcher.StateQueued, At: start},
			{ID: api, Run: "api-r1", Channel: channels.Email, Topic: "news", State: dispatcher.StateSent, At: start.Add(time.Minute)},
		},
		Feedback:   []privacy.ExportFeedback{{Channel: channels.Email, Kind: channels.SoftBounce, At: start.Add(-2 * time.Hour)}},
		Enrolments: []dispatcher.Enrolment{},
		Retention:  (90 * 24 * time.Hour).String(),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("export (-want +got):\n%s", diff)
	}
	if contact.Attributes["first_name"] != "Zoé" || contact.Email != "c1@example.com" {
		t.Errorf("exported profile %+v", contact)
	}
}

// A record under a lost key is an error of its own, not a missing contact.
func TestExportUnreadableContact(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	old := storetest.New(t, b.r.Client, b.r.Prefix, b.clock.Now, "old")
	b.putContactWith(t, old, dispatcher.Contact{ID: "lost", Email: "lost@example.com"})
	_, err := b.p.ExportContact(context.Background(), "lost")
	if !errors.Is(err, store.ErrUnknownDataKey) || isNotFound(err) {
		t.Errorf("ExportContact(record under a lost key): %v, want ErrUnknownDataKey, not not_found", err)
	}
}

// An export of a contact who has nothing but a record lists nothing as
// empty lists, not nulls.
func TestExportContactEmptyLists(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.putContact(t, dispatcher.Contact{ID: "bare", Email: "bare@example.com"})
	exp, err := b.p.ExportContact(context.Background(), "bare")
	must(t, err)
	got := map[string]bool{
		"consents":        exp.Consents != nil,
		"consent_history": exp.ConsentHistory != nil,
		"suppressions":    exp.Suppressions != nil,
		"sends":           exp.Sends != nil,
		"feedback":        exp.Feedback != nil,
	}
	want := map[string]bool{"consents": true, "consent_history": true, "suppressions": true, "sends": true, "feedback": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("non-nil fields (-want +got):\n%s", diff)
	}
}

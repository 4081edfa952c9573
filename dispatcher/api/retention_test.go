package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/privacy"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

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
	ka, kb := testKey(t), testKey(t)
	b := setup(t, withClock(retentionStart), withConfig(func(c *app.Config) { c.DataKeys = newRing(t, "a", map[string][]byte{"a": ka}) }))
	upsertAt(t, b, retentionStart, "ret-locked", "locked@example.com")
	cfg := b.cfg
	cfg.DataKeys = newRing(t, "b", map[string][]byte{"b": kb})
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

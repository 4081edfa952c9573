package privacy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/privacy"
	"github.com/missive-dev/missive/dispatcher/store/storetest"
)

// PurgeInactive erases the contacts that hold no granted consent and did
// nothing for InactiveAfter, and counts those it cannot judge.
func TestPurgeInactive(t *testing.T) {
	t.Parallel()
	// The contacts are made at start; the purge runs past the term.
	purgeAt := start.Add(privacy.DefaultInactiveAfter + 48*time.Hour)
	recently := purgeAt.Add(-24 * time.Hour)
	event := func(st dispatcher.ConsentState, at time.Time) dispatcher.ConsentEvent {
		return dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: st, Source: "api", At: at}
	}
	type contact struct {
		id string
		// put stores the contact; the clock stands at start.
		put        func(t *testing.T, b *testBundle, id string)
		wantErased bool
	}
	contacts := []contact{
		{"prospect-never-consented", func(t *testing.T, b *testBundle, id string) {
			b.putContact(t, dispatcher.Contact{ID: id, Email: id + "@example.com"})
		}, true},
		{"withdrew-long-ago", func(t *testing.T, b *testBundle, id string) {
			b.putContact(t, dispatcher.Contact{ID: id, Email: id + "@example.com"}, event(dispatcher.Granted, start), event(dispatcher.Withdrawn, start.Add(time.Hour)))
		}, true},
		{"granted-long-ago", func(t *testing.T, b *testBundle, id string) {
			b.putContact(t, dispatcher.Contact{ID: id, Email: id + "@example.com"}, event(dispatcher.Granted, start))
		}, false},
		{"withdrew-recently", func(t *testing.T, b *testBundle, id string) {
			b.putContact(t, dispatcher.Contact{ID: id, Email: id + "@example.com"}, event(dispatcher.Granted, start), event(dispatcher.Withdrawn, recently))
		}, false},
		{"transactional-consent-recently", func(t *testing.T, b *testBundle, id string) {
			b.putContact(t, dispatcher.Contact{ID: id, Email: id + "@example.com"},
				dispatcher.ConsentEvent{Channel: channels.Email, Topic: "orders", State: dispatcher.Withdrawn, Source: "api", At: recently})
		}, false},
		{"record-unreadable", func(t *testing.T, b *testBundle, id string) {
			old := storetest.New(t, b.r.Client, b.r.Prefix, b.clock.Now, "old")
			b.putContactWith(t, old, dispatcher.Contact{ID: id, Email: id + "@example.com"})
		}, false},
	}
	b := setup(t, nil)
	ctx := context.Background()
	for _, c := range contacts {
		c.put(t, b, c.id)
	}
	// A contact updated recently, made long ago.
	b.putContact(t, dispatcher.Contact{ID: "updated-recently", Email: "u@example.com"})
	b.clock.Add(recently.Sub(start))
	b.putContact(t, dispatcher.Contact{ID: "updated-recently", Email: "u@example.com", Locale: "fr"})
	b.clock.Add(purgeAt.Sub(recently))

	var progress [][2]int64
	rep, err := b.p.PurgeInactive(ctx, func(done, total int64) { progress = append(progress, [2]int64{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(privacy.PurgeReport{Scanned: 7, Purged: 2, Errors: 1}, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][2]int64{{7, 7}}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	for _, c := range append(contacts, contact{id: "updated-recently"}) {
		_, err := b.st.Contact(ctx, c.id)
		if erased := isNotFound(err); erased != c.wantErased {
			t.Errorf("%s: erased %v (%v), want %v", c.id, erased, err, c.wantErased)
		}
	}

	// What was erased was erased whole: its address index entry too.
	if id, err := b.st.ContactIDByAddress(ctx, channels.Email, "prospect-never-consented@example.com"); !isNotFound(err) {
		t.Errorf("a purged contact's address leads to %q (%v)", id, err)
	}
}

func TestPurgeInactiveDisabled(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *privacy.Config) { c.InactiveAfter = -1 })
	ctx := context.Background()
	b.putContact(t, dispatcher.Contact{ID: "prospect", Email: "p@example.com"})
	b.clock.Add(10 * privacy.DefaultInactiveAfter)
	called := false
	rep, err := b.p.PurgeInactive(ctx, func(int64, int64) { called = true })
	if err != nil || rep != (privacy.PurgeReport{}) || called {
		t.Errorf("PurgeInactive = %+v, %v, progress called %v; want nothing done", rep, err, called)
	}
	if _, err := b.st.Contact(ctx, "prospect"); err != nil {
		t.Errorf("contact erased by a disabled purge: %v", err)
	}
	b.p.MaybePurge(ctx)()
	if n, err := b.r.Client.Exists(ctx, b.st.Key("retention", "last"), b.st.Key("retention", "stats")).Result(); err != nil || n != 0 {
		t.Errorf("a disabled purge claimed its day or wrote stats: %d keys, %v", n, err)
	}
}

// The walk goes over the contacts in chunks, reporting after each.
func TestPurgeInactiveChunks(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	n := privacy.PurgeChunk + 1
	for i := range n {
		b.putContact(t, dispatcher.Contact{ID: fmt.Sprintf("p%04d", i)})
	}
	b.clock.Add(privacy.DefaultInactiveAfter + time.Hour)
	var progress [][2]int64
	rep, err := b.p.PurgeInactive(ctx, func(done, total int64) { progress = append(progress, [2]int64{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	total := int64(n)
	if diff := cmp.Diff(privacy.PurgeReport{Scanned: total, Purged: total}, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][2]int64{{privacy.PurgeChunk, total}, {total, total}}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if left, err := b.st.CountContacts(ctx); err != nil || left != 0 {
		t.Errorf("%d contacts left, %v", left, err)
	}
}

// MaybePurge purges once a day across processes, and records the counts.
func TestMaybePurge(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	b.putContact(t, dispatcher.Contact{ID: "first"})
	b.clock.Add(privacy.DefaultInactiveAfter + time.Hour)
	b.p.MaybePurge(ctx)()
	if _, err := b.st.Contact(ctx, "first"); !isNotFound(err) {
		t.Errorf("the purge left an inactive contact: %v", err)
	}
	stats := func() map[string]string {
		m, err := b.r.Client.HGetAll(ctx, b.st.Key("retention", "stats")).Result()
		must(t, err)
		return m
	}
	first := b.clock.Now().UTC().Format(time.RFC3339)
	if diff := cmp.Diff(map[string]string{"last_run": first, "scanned": "1", "purged": "1", "errors": "0"}, stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}

	// Within the day, another process finds the purge taken.
	b.clock.Add(-privacy.DefaultInactiveAfter)
	b.putContact(t, dispatcher.Contact{ID: "second"})
	b.clock.Add(privacy.DefaultInactiveAfter)
	other := setupOn(t, b.r, b.r.Client, func(c *privacy.Config) { c.Now = b.clock.Now; c.Store = b.st })
	other.p.MaybePurge(ctx)()
	b.p.MaybePurge(ctx)()
	if _, err := b.st.Contact(ctx, "second"); err != nil {
		t.Errorf("a second purge within the day: %v", err)
	}

	// A day later it runs again.
	b.clock.Add(privacy.RetentionEvery + time.Minute)
	other.p.MaybePurge(ctx)()
	if _, err := b.st.Contact(ctx, "second"); !isNotFound(err) {
		t.Errorf("the next day's purge left an inactive contact: %v", err)
	}
	if got := stats()["last_run"]; got == first {
		t.Errorf("stats of the next day's purge not recorded: last_run %s", got)
	}
}

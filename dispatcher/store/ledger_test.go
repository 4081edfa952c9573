package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// sealedLedger builds a ledger of five events for contact "c1", written
// through each way consents are recorded: the API, a consent change, a
// confirmed sign-up and the bulk import.
func sealedLedger(t *testing.T) (*Store, context.Context) {
	t.Helper()
	s, ctx := setup(t)
	putTopics(t, s, "news", "promo", "tips")
	putContact(t, s, "c1", "ada@example.com")
	at := testNow.Add(-time.Hour)
	ev := func(topic string, st dispatcher.ConsentState, src string, evidence map[string]string) dispatcher.ConsentEvent {
		at = at.Add(time.Minute)
		return dispatcher.ConsentEvent{Channel: channels.Email, Topic: topic, State: st, Source: src, Evidence: evidence, At: at}
	}
	if err := s.RecordConsent(ctx, "c1", ev("news", dispatcher.Granted, "api", map[string]string{"ip_hash": "abc", "form": "f1"})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeConsents(ctx, "c1", false, func(*dispatcher.Contact, map[string]ConsentCurrent) []dispatcher.ConsentEvent {
		return []dispatcher.ConsentEvent{ev("promo", dispatcher.Granted, "preference-page", nil)}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GrantSignup(ctx, "c1", "h1", []dispatcher.ConsentEvent{ev("tips", dispatcher.Granted, "signup", map[string]string{"wording": "w1", "user_agent": "Firefox"})}, testNow, time.Hour); err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(ImportLine{Contact: dispatcher.Contact{ID: "c1", Email: "ada@example.com"},
		Consents: []dispatcher.ConsentEvent{ev("promo", dispatcher.Withdrawn, "import", nil)}})
	if res, err := s.ImportContacts(ctx, strings.NewReader(string(line)+"\n"), "Europe/Paris", nil); err != nil || res.Failed > 0 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	if err := s.RecordConsent(ctx, "c1", ev("news", dispatcher.Withdrawn, "one-click", nil)); err != nil {
		t.Fatal(err)
	}
	return s, ctx
}

// putTopics stores marketing topics of ids.
func putTopics(t *testing.T, s *Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := s.PutTopic(t.Context(), &dispatcher.Topic{ID: id, Kind: dispatcher.Marketing}); err != nil {
			t.Fatal(err)
		}
	}
}

func verify(t *testing.T, s *Store, ctx context.Context) LedgerReport {
	t.Helper()
	rep, err := s.VerifyLedger(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// problems lists a report's problems as "index kind".
func problems(rep LedgerReport) []string {
	out := []string{}
	for _, p := range rep.Problems {
		out = append(out, strconv.Itoa(p.Index)+" "+p.Kind)
	}
	return out
}

func TestLedgerVerifies(t *testing.T) {
	s, ctx := sealedLedger(t)
	rep := verify(t, s, ctx)
	if rep.Events != 5 || rep.Unsealed != 0 || !rep.OK() {
		t.Fatalf("report: %+v", rep)
	}
	ledger, err := s.ConsentLedger(ctx, "c1")
	if err != nil || len(ledger) != 5 || ledger[1].Topic != "promo" || ledger[3].State != dispatcher.Withdrawn {
		t.Fatalf("ledger: %+v, %v", ledger, err)
	}
}

// TestLedgerTampering edits the ledger in Redis by hand, as a Redis user
// could, and sees each edit caught where it was made.
func TestLedgerTampering(t *testing.T) {
	edit := func(f func(t *testing.T, raw []string) []string) func(*testing.T, *Store, context.Context) {
		return func(t *testing.T, s *Store, ctx context.Context) {
			key := s.ledgerKey("c1")
			raw, err := s.Redis.LRange(ctx, key, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			raw = f(t, raw)
			s.Redis.Del(ctx, key)
			for _, r := range raw {
				s.Redis.RPush(ctx, key, r)
			}
		}
	}
	change := func(i int, from, to string) func(*testing.T, *Store, context.Context) {
		return edit(func(t *testing.T, raw []string) []string {
			if !strings.Contains(raw[i], from) {
				t.Fatalf("event %d has no %q: %s", i, from, raw[i])
			}
			raw[i] = strings.Replace(raw[i], from, to, 1)
			return raw
		})
	}
	for _, tc := range []struct {
		name string
		edit func(*testing.T, *Store, context.Context)
		want []string
	}{
		{"state changed", change(3, `"state":"withdrawn"`, `"state":"granted"`), []string{"3 edited", "-1 current_mismatch"}},
		{"time changed", change(0, `"at":"2026-12-01T08:31:00Z"`, `"at":"2026-11-01T08:31:00Z"`), []string{"0 edited"}},
		{"evidence added", change(1, `"source":"preference-page"`, `"source":"preference-page","evidence":{"form":"f9"}`), []string{"1 edited"}},
		{"evidence removed", change(0, `,"ip_hash":"abc"`, ``), []string{"0 edited"}},
		{"middle event removed", edit(func(_ *testing.T, raw []string) []string { return append(raw[:1:1], raw[2:]...) }), []string{"1 broken_chain"}},
		{"first event removed", edit(func(_ *testing.T, raw []string) []string { return raw[1:] }), []string{"0 broken_chain"}},
		{"events swapped", edit(func(_ *testing.T, raw []string) []string { raw[1], raw[2] = raw[2], raw[1]; return raw }), []string{"1 broken_chain", "2 broken_chain", "3 broken_chain"}},
		{"newest event removed", edit(func(_ *testing.T, raw []string) []string { return raw[:4] }), []string{"-1 current_mismatch"}},
		{"unsealed event appended", edit(func(_ *testing.T, raw []string) []string {
			return append(raw, `{"channel":"email","topic":"news","state":"granted","source":"api","at":"2026-12-01T09:00:00Z"}`)
		}), []string{"5 unsealed", "-1 current_mismatch"}},
		{"garbage", edit(func(_ *testing.T, raw []string) []string { raw[2] = "not json"; return raw }), []string{"2 unreadable", "3 broken_chain", "-1 current_mismatch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ctx := sealedLedger(t)
			tc.edit(t, s, ctx)
			if diff := cmp.Diff(tc.want, problems(verify(t, s, ctx))); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLedgerAfterErasure: erasure removes the identifying evidence, and
// the chain still verifies; the digest erasure left is itself protected.
func TestLedgerAfterErasure(t *testing.T) {
	s, ctx := sealedLedger(t)
	if _, err := s.PseudonymizeLedger(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	raw, err := s.Redis.LRange(ctx, s.ledgerKey("c1"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range raw {
		if strings.Contains(r, "ip_hash") || strings.Contains(r, "Firefox") {
			t.Fatalf("identifying evidence left after erasure: %s", r)
		}
	}
	if !strings.Contains(raw[2], `"wording":"w1"`) {
		t.Errorf("the wording was removed: %s", raw[2])
	}
	if rep := verify(t, s, ctx); !rep.OK() {
		t.Fatalf("after erasure: %+v", rep)
	}
	s.Redis.LSet(ctx, s.ledgerKey("c1"), 0, strings.Replace(raw[0], `"erased":"`, `"erased":"x`, 1))
	if diff := cmp.Diff([]string{"0 edited"}, problems(verify(t, s, ctx))); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// TestLedgerUnsealedPrefix: events written before the ledger was sealed
// are counted, not reported, and the chain starts after them.
func TestLedgerUnsealedPrefix(t *testing.T) {
	s, ctx := setup(t)
	putContact(t, s, "c1", "ada@example.com")
	old := `{"channel":"email","topic":"news","state":"granted","source":"api","at":"2025-01-01T00:00:00Z"}`
	s.Redis.RPush(ctx, s.ledgerKey("c1"), old)
	if err := s.RecordConsent(ctx, "c1", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: dispatcher.Withdrawn, Source: "api"}); err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, s, ctx); rep.Unsealed != 1 || rep.Events != 2 || !rep.OK() {
		t.Fatalf("report: %+v", rep)
	}
}

// TestVerifyLedgers walks every ledger, an erased contact's too.
func TestVerifyLedgers(t *testing.T) {
	s, ctx := sealedLedger(t)
	putContact(t, s, "c2", "bob@example.com")
	if err := s.RecordConsent(ctx, "c2", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: dispatcher.Granted}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PseudonymizeLedger(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	if err := s.VerifyLedgers(ctx, func(r LedgerReport) error { got[r.Contact] = r.OK(); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]bool{"c1": true, "c2": true}, got); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
}

// TestLedgerConcurrentWriters: consents recorded at once through the API
// path and the bulk import, for one contact, still form one chain.
func TestLedgerConcurrentWriters(t *testing.T) {
	s, ctx := setup(t)
	putTopics(t, s, "news", "promo")
	putContact(t, s, "c1", "ada@example.com")
	line, _ := json.Marshal(ImportLine{Contact: dispatcher.Contact{ID: "c1", Email: "ada@example.com"},
		Consents: []dispatcher.ConsentEvent{{Channel: channels.Email, Topic: "promo", State: dispatcher.Granted, Source: "import"}}})
	const n = 4 // a contact changing its mind at once on several devices, while an import runs
	errs := make(chan error, 2*n)
	for i := range n {
		go func() {
			st := dispatcher.Granted
			if i%2 == 1 {
				st = dispatcher.Withdrawn
			}
			errs <- s.RecordConsent(ctx, "c1", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: st, Source: "api"})
		}()
		go func() {
			res, err := s.ImportContacts(ctx, strings.NewReader(string(line)+"\n"), "Europe/Paris", nil)
			if err == nil && res.Failed > 0 {
				err = fmt.Errorf("import: %+v", res.Errors)
			}
			errs <- err
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	rep := verify(t, s, ctx)
	if rep.Events != 2*n || !rep.OK() {
		t.Fatalf("report: %+v", rep)
	}
}

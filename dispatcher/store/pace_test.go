package store

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/dispatcher"
)

// The pace's events are sealed like consents: an edited value, or a
// current preference the ledger does not account for, is caught; erasure
// removes the current preferences.
func TestLedgerPaceEvents(t *testing.T) {
	s, ctx := sealedLedger(t)
	events := []dispatcher.ConsentEvent{
		{Kind: dispatcher.PreferencePause, Value: "2027-01-04T00:00:00Z", Source: "api", At: testNow},
		{Kind: dispatcher.PreferenceFrequency, Topic: "news", Value: dispatcher.FrequencyWeekly, Source: "preference-page", At: testNow},
		{Kind: dispatcher.PreferenceHours, Value: "mon 18:00-22:00", Source: "preference-page", At: testNow},
	}
	if _, err := s.ChangeConsents(ctx, "c1", false, func(*dispatcher.Contact, map[string]ConsentCurrent) []dispatcher.ConsentEvent { return events }); err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, s, ctx); !rep.OK() || rep.Events != 8 {
		t.Fatalf("report: %+v", rep)
	}
	// The consents stay what they were; the preferences are apart.
	cur, err := s.ConsentStates(ctx, "c1")
	if err != nil || len(cur) != 3 {
		t.Errorf("consents: %v, %v", cur, err)
	}
	prefs, err := s.Preferences(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for f, p := range prefs {
		got[f] = p.Value
	}
	if diff := cmp.Diff(map[string]string{"pause": "2027-01-04T00:00:00Z", "frequency/news": "weekly", "hours": "mon 18:00-22:00"}, got); diff != "" {
		t.Errorf("preferences (-want +got):\n%s", diff)
	}

	// A longer pause written by hand, in the ledger or in the current
	// preferences.
	raw, err := s.Redis.LIndex(ctx, s.ledgerKey("c1"), 5).Result()
	if err != nil {
		t.Fatal(err)
	}
	s.Redis.LSet(ctx, s.ledgerKey("c1"), 5, []byte(replaceOnce(t, raw, "2027-01-04", "2027-06-04")))
	if diff := cmp.Diff([]string{"5 edited", "-1 current_mismatch"}, problems(verify(t, s, ctx))); diff != "" {
		t.Errorf("edited pause (-want +got):\n%s", diff)
	}
	s.Redis.LSet(ctx, s.ledgerKey("c1"), 5, raw)
	cp := s.Redis.HGet(ctx, s.prefsKey("c1"), "frequency/news").Val()
	s.Redis.HSet(ctx, s.prefsKey("c1"), "frequency/news", replaceOnce(t, cp, "weekly", "monthly"))
	if diff := cmp.Diff([]string{"-1 current_mismatch"}, problems(verify(t, s, ctx))); diff != "" {
		t.Errorf("edited current pace (-want +got):\n%s", diff)
	}

	if _, err := s.DeleteContact(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if n := s.Redis.Exists(ctx, s.prefsKey("c1")).Val(); n != 0 {
		t.Error("the preferences survived the contact's deletion")
	}
}

func replaceOnce(t *testing.T, s, from, to string) string {
	t.Helper()
	for i := 0; i+len(from) <= len(s); i++ {
		if s[i:i+len(from)] == from {
			return s[:i] + to + s[i+len(from):]
		}
	}
	t.Fatalf("no %q in %s", from, s)
	return s
}

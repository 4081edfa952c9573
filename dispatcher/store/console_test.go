package store

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

func TestConsoleUsers(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	u := &ConsoleUser{Name: "ana", Role: "admin", PasswordHash: "h1"}
	if err := s.AddConsoleUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := s.AddConsoleUser(ctx, &ConsoleUser{Name: "ana", Role: "marketer", PasswordHash: "h2"}); !dispatcher.IsCode(err, dispatcher.CodeConflict) {
		t.Fatalf("second add of ana: %v, want conflict", err)
	}
	got, err := s.ConsoleUser(ctx, "ana")
	if err != nil {
		t.Fatal(err)
	}
	want := &ConsoleUser{Name: "ana", Role: "admin", PasswordHash: "h1", CreatedAt: testNow, UpdatedAt: testNow}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
	must(t, s.AddConsoleUser(ctx, &ConsoleUser{Name: "bob", Role: "read-only", PasswordHash: "h3"}))
	list, err := s.ConsoleUsers(ctx)
	must(t, err)
	if len(list) != 2 || list[0].Name != "ana" || list[1].Name != "bob" {
		t.Errorf("users: %+v, want ana and bob", list)
	}

	// A new password signs the account's sessions out.
	must(t, s.CreateConsoleSession(ctx, "s1", ConsoleSession{User: "ana", Created: testNow, Seen: testNow}, time.Hour))
	must(t, s.CreateConsoleSession(ctx, "s2", ConsoleSession{User: "bob", Created: testNow, Seen: testNow}, time.Hour))
	u.PasswordHash = "h4"
	must(t, s.UpdateConsoleUser(ctx, u, true))
	if _, err := s.ConsoleSession(ctx, "s1"); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		t.Errorf("ana's session after a new password: %v, want not_found", err)
	}
	if _, err := s.ConsoleSession(ctx, "s2"); err != nil {
		t.Errorf("bob's session: %v", err)
	}
	if err := s.UpdateConsoleUser(ctx, &ConsoleUser{Name: "nobody"}, false); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		t.Errorf("update of an unknown user: %v, want not_found", err)
	}

	// Removing an account signs it out.
	must(t, s.RemoveConsoleUser(ctx, "bob"))
	if _, err := s.ConsoleSession(ctx, "s2"); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		t.Errorf("bob's session after removal: %v, want not_found", err)
	}
	if err := s.RemoveConsoleUser(ctx, "bob"); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		t.Errorf("second removal: %v, want not_found", err)
	}
}

func TestConsoleSessions(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	sess := ConsoleSession{User: "ana", Created: testNow, Seen: testNow}
	if err := s.CreateConsoleSession(ctx, "h1", sess, time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err := s.ConsoleSession(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&sess, got); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	ttlAbout(t, s, s.consoleSessionKey("h1"), time.Hour)
	later := testNow.Add(10 * time.Minute)
	if err := s.TouchConsoleSession(ctx, "h1", later, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	got, err = s.ConsoleSession(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Seen.Equal(later) || !got.Created.Equal(testNow) {
		t.Errorf("touched session: %+v", got)
	}
	ttlAbout(t, s, s.consoleSessionKey("h1"), 2*time.Hour)
	if err := s.DeleteConsoleSession(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConsoleSession(ctx, "h1"); !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		t.Errorf("deleted session: %v, want not_found", err)
	}
	if n := s.Redis.SCard(ctx, s.consoleUserSessionsKey("ana")).Val(); n != 0 {
		t.Errorf("ana's session index holds %d, want 0", n)
	}
	// The key holds the hash given, never anything else.
	if n := s.Redis.Exists(ctx, s.consoleSessionKey("h1")).Val(); n != 0 {
		t.Errorf("session key still exists")
	}
}

func TestConsoleLockout(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	const limit, window = 5, 15 * time.Minute
	for i := range limit - 1 {
		if err := s.RecordConsoleFailure(ctx, window, "user:ana", "addr:192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		wait, err := s.ConsoleLockout(ctx, limit, "user:ana", "addr:192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if wait != 0 {
			t.Fatalf("locked after %d failures", i+1)
		}
	}
	if err := s.RecordConsoleFailure(ctx, window, "user:ana", "addr:192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"user:ana", "addr:192.0.2.1"} {
		wait, err := s.ConsoleLockout(ctx, limit, sub)
		if err != nil {
			t.Fatal(err)
		}
		if wait <= window-time.Minute || wait > window {
			t.Errorf("%s locked for %s, want about %s", sub, wait, window)
		}
	}
	// Another account from another address is not locked.
	if wait, err := s.ConsoleLockout(ctx, limit, "user:bob", "addr:192.0.2.2"); err != nil || wait != 0 {
		t.Errorf("bob: %s, %v; want not locked", wait, err)
	}
	// Clearing the account leaves the address locked.
	if err := s.ClearConsoleFailures(ctx, "user:ana"); err != nil {
		t.Fatal(err)
	}
	if wait, _ := s.ConsoleLockout(ctx, limit, "user:ana"); wait != 0 {
		t.Errorf("ana still locked after clearing")
	}
	if wait, _ := s.ConsoleLockout(ctx, limit, "addr:192.0.2.1"); wait == 0 {
		t.Errorf("the address was cleared with the account")
	}
	// The subject is kept as a keyed hash.
	keys := s.Redis.Keys(ctx, s.Key("console", "fail", "*")).Val()
	for _, k := range keys {
		if len(k) != len(s.Key("console", "fail", ""))+40 || strings.Contains(k, "192.0.2.1") || strings.Contains(k, sha256Hex("addr:192.0.2.1")[:16]) {
			t.Errorf("failure key %q is not a keyed hash", k)
		}
	}
}

func TestRunMinutes(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	send := func(c string) string { return dispatcher.SendID("r1", c, channels.Email) }
	var ds []Decision
	for _, c := range []string{"c1", "c2", "c3", "c4"} {
		ds = append(ds, Decision{Send: send(c), Contact: c, Channel: channels.Email, Topic: "news", Template: "mail", State: dispatcher.StateQueued})
	}
	// Two deferred: one to 3 hours from now, one to next week.
	ds = append(ds, Decision{Send: send("c5"), Contact: "c5", Channel: channels.Email, Topic: "news", Template: "mail", State: dispatcher.StateDeferred, Until: testNow.Add(3 * time.Hour)},
		Decision{Send: send("c6"), Contact: "c6", Channel: channels.Email, Topic: "news", Template: "mail", State: dispatcher.StateDeferred, Until: testNow.Add(7 * 24 * time.Hour)})
	if err := s.RecordDecisions(ctx, "r1", ds, 15*time.Minute); err != nil {
		t.Fatal(err)
	}
	// By deadline (when a send may leave, plus the 15-minute wait), hour
	// by hour over 4 hours.
	byDeadline, err := s.InflightByDeadline(ctx, "r1", testNow.Add(15*time.Minute), time.Hour, 4)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{4, 0, 0, 1, 0, 1}, byDeadline); diff != "" {
		t.Errorf("in flight by deadline (-want +got):\n%s", diff)
	}
	move := func(c, from, to, reason string) {
		t.Helper()
		if _, err := s.TransitionSend(ctx, Transition{Send: send(c), From: from, To: to, Reason: reason}); err != nil {
			t.Fatal(err)
		}
	}
	// Sending is not settled; sent, failed and a re-check's suppression are.
	move("c1", dispatcher.StateQueued, dispatcher.StateSending, "")
	move("c1", dispatcher.StateSending, dispatcher.StateSent, "")
	move("c2", dispatcher.StateQueued, dispatcher.StateSent, "")
	move("c3", dispatcher.StateQueued, dispatcher.StateFailed, "")
	move("c4", dispatcher.StateQueued, dispatcher.StateSuppressed, "no_consent")
	got, err := s.RunMinutes(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := []RunMinute{{At: testNow.Truncate(time.Minute), Outcomes: map[string]int64{"sent": 2, "failed": 1, "no_consent": 1}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("minutes (-want +got):\n%s", diff)
	}
	r, err := s.Run(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Balanced || r.Counters["sent"] != 2 {
		t.Errorf("run counters: %v", r.Counters)
	}
	if left, _ := s.InflightByDeadline(ctx, "r1", testNow, time.Hour, 1); left[0]+left[1]+left[2] != 2 {
		t.Errorf("in flight: %v, want the two deferred sends only", left)
	}
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

func TestTopicsByID(t *testing.T) {
	t.Parallel()
	news := &dispatcher.Topic{ID: "news", Name: "News", Kind: dispatcher.Marketing}
	orders := &dispatcher.Topic{ID: "orders", Name: "Orders", Kind: dispatcher.Transactional}
	tests := []struct {
		name string
		ids  []string
		want []*dispatcher.Topic
	}{
		{"known, in order", []string{"orders", "news"}, []*dispatcher.Topic{orders, news}},
		{"unknown and undecodable are nil", []string{"nope", "bad", "news"}, []*dispatcher.Topic{nil, nil, news}},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			for _, tp := range []*dispatcher.Topic{news, orders} {
				if err := s.PutTopic(ctx, tp); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Redis.HSet(ctx, s.Key("topics"), "bad", "{").Err(); err != nil {
				t.Fatal(err)
			}
			got, err := s.TopicsByID(ctx, tt.ids)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("TopicsByID(%q) (-want +got):\n%s", tt.ids, diff)
			}
		})
	}
}

func TestEnsureTopic(t *testing.T) {
	t.Parallel()
	confirm := dispatcher.Topic{ID: "confirm", Name: "Confirmation", Kind: dispatcher.Transactional}
	renamed := dispatcher.Topic{ID: "confirm", Name: "Please confirm", Kind: dispatcher.Transactional}
	tests := []struct {
		name    string
		stored  *dispatcher.Topic // before the call
		give    dispatcher.Topic
		want    *dispatcher.Topic
		wantErr bool
	}{
		{name: "absent: created", give: confirm, want: &confirm},
		{name: "present: the stored one wins", stored: &renamed, give: confirm, want: &renamed},
		{name: "invalid", give: dispatcher.Topic{ID: "x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			if tt.stored != nil {
				if err := s.PutTopic(ctx, tt.stored); err != nil {
					t.Fatal(err)
				}
			}
			give := tt.give
			got, err := s.EnsureTopic(ctx, &give)
			if (err != nil) != tt.wantErr {
				t.Fatalf("EnsureTopic: error %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("EnsureTopic (-want +got):\n%s", diff)
			}
			if tt.want != nil {
				stored, err := s.Topic(ctx, tt.give.ID)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, stored); diff != "" {
					t.Errorf("stored topic (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestClaimAddress(t *testing.T) {
	t.Parallel()
	const addr = "jo@example.com"
	tests := []struct {
		name       string
		before     func(t *testing.T, s *Store)
		wantOwner  string
		wantExists bool
	}{
		{name: "free: claimed", before: func(*testing.T, *Store) {}, wantOwner: "s-new"},
		{name: "held by a contact", before: func(t *testing.T, s *Store) { putContact(t, s, "c-1", addr) },
			wantOwner: "c-1", wantExists: true},
		{name: "left by a creation that died", before: func(t *testing.T, s *Store) {
			if err := s.Redis.Set(context.Background(), s.Key("addr", s.AddressHash(channels.Email, addr)), "s-dead", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}, wantOwner: "s-dead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			tt.before(t, s)
			owner, exists, err := s.ClaimAddress(ctx, channels.Email, addr, "s-new")
			if err != nil {
				t.Fatal(err)
			}
			if owner != tt.wantOwner || exists != tt.wantExists {
				t.Errorf("ClaimAddress = %q, %v; want %q, %v", owner, exists, tt.wantOwner, tt.wantExists)
			}
			// The index names the owner: a second claim finds it.
			if id, err := s.ContactIDByAddress(ctx, channels.Email, addr); err != nil || id != tt.wantOwner {
				t.Errorf("address index names %q (%v), want %q", id, err, tt.wantOwner)
			}
		})
	}
}

func TestPendingSignup(t *testing.T) {
	t.Parallel()
	const ttl = 48 * time.Hour
	ps := &PendingSignup{Nonce: "n1", Contact: "c-1", Channel: channels.Email, Topics: []string{"news"}, Wording: "v3",
		Form: "footer", Locale: "fr", Created: testNow, IPHash: "ip", UserAgent: "ua"}
	sms := *ps
	sms.Channel = channels.SMS
	tests := []struct {
		name  string
		ps    *PendingSignup
		phone string
	}{
		{"email", ps, ""},
		{"sms", &sms, "+33612345678"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			if err := s.PutPendingSignup(ctx, "h1", tt.ps, tt.phone, ttl); err != nil {
				t.Fatal(err)
			}
			got, err := s.PendingSignup(ctx, "h1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.ps, got); diff != "" {
				t.Errorf("PendingSignup (-want +got):\n%s", diff)
			}
			ttlAbout(t, s, s.PendingKey("h1"), ttl)
			ttlAbout(t, s, s.pendingIndexKey("c-1"), ttl)
			if ok, err := s.Redis.SIsMember(ctx, s.pendingIndexKey("c-1"), "h1").Result(); err != nil || !ok {
				t.Errorf("h1 not in the contact's index of pending sign-ups (%v)", err)
			}
			h, err := s.PendingSMSSignup(ctx, "+33612345678")
			switch {
			case tt.phone == "" && !errors.Is(err, dispatcher.ErrNotFound):
				t.Errorf("PendingSMSSignup of an email sign-up = %q, %v; want ErrNotFound", h, err)
			case tt.phone != "" && (err != nil || h != "h1"):
				t.Errorf("PendingSMSSignup = %q, %v; want h1", h, err)
			case tt.phone != "":
				ttlAbout(t, s, s.pendingSMSKey("+33612345678"), ttl)
			}
		})
	}
}

// A pending record is the JSON written before the store owned it: records
// stored today still read.
func TestPendingSignupReadsStoredRecords(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	raw := `{"nonce":"n1","contact":"c-1","channel":"sms","topics":["news","deals"],"wording":"sms-v1","locale":"en",` +
		`"created":"2026-11-30T08:00:00Z","ip_hash":"ip","user_agent":"ua"}`
	if err := s.Redis.Set(ctx, s.PendingKey("h1"), raw, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.PendingSignup(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	want := &PendingSignup{Nonce: "n1", Contact: "c-1", Channel: channels.SMS, Topics: []string{"news", "deals"}, Wording: "sms-v1",
		Locale: "en", Created: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC), IPHash: "ip", UserAgent: "ua"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PendingSignup (-want +got):\n%s", diff)
	}
	again, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != raw {
		t.Errorf("encoded again:\n%s\nwant\n%s", again, raw)
	}
	if _, err := s.PendingSignup(ctx, "nope"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("PendingSignup of an unknown sign-up: %v, want ErrNotFound", err)
	}
	if err := s.Redis.Set(ctx, s.PendingKey("bad"), "{", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PendingSignup(ctx, "bad"); err == nil || errors.Is(err, dispatcher.ErrNotFound) {
		t.Errorf("PendingSignup of an undecodable record: %v, want a decode error", err)
	}
}

func grantEvents(topics ...string) []dispatcher.ConsentEvent {
	out := make([]dispatcher.ConsentEvent, len(topics))
	for i, tp := range topics {
		out[i] = dispatcher.ConsentEvent{Channel: channels.Email, Topic: tp, State: dispatcher.Granted, Source: "signup",
			Evidence: map[string]string{"wording": "v3"}, At: testNow}
	}
	return out
}

func TestGrantSignup(t *testing.T) {
	t.Parallel()
	const ttl = 48 * time.Hour
	tests := []struct {
		name       string
		before     func(t *testing.T, s *Store)
		want       SignupGrant
		wantLedger int
		wantStates map[string]dispatcher.ConsentState
	}{
		{name: "granted", before: func(t *testing.T, s *Store) { putContact(t, s, "c-1", "a@example.com") },
			want: SignupGranted, wantLedger: 2,
			wantStates: map[string]dispatcher.ConsentState{"email/news": dispatcher.Granted, "email/deals": dispatcher.Granted}},
		{name: "granted before", before: func(t *testing.T, s *Store) {
			putContact(t, s, "c-1", "a@example.com")
			if err := s.Redis.HSet(context.Background(), s.signupsKey("c-1"), "h1", "2026-11-30T08:00:00Z").Err(); err != nil {
				t.Fatal(err)
			}
		}, want: SignupAlreadyGranted, wantStates: map[string]dispatcher.ConsentState{}},
		{name: "contact erased", before: func(*testing.T, *Store) {}, want: SignupNoContact,
			wantStates: map[string]dispatcher.ConsentState{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			tt.before(t, s)
			got, err := s.GrantSignup(ctx, "c-1", "h1", grantEvents("news", "deals"), testNow, ttl)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("GrantSignup = %v, want %v", got, tt.want)
			}
			ledger, err := s.ConsentLedger(ctx, "c-1")
			if err != nil {
				t.Fatal(err)
			}
			if len(ledger) != tt.wantLedger {
				t.Errorf("ledger holds %d events, want %d", len(ledger), tt.wantLedger)
			}
			states, err := s.Consents(ctx, "c-1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantStates, states); diff != "" {
				t.Errorf("consents (-want +got):\n%s", diff)
			}
			if tt.want == SignupGranted {
				if at, _ := s.Redis.HGet(ctx, s.signupsKey("c-1"), "h1").Result(); at != testNow.Format(time.RFC3339) {
					t.Errorf("signups marker %q, want the confirmation time", at)
				}
				ttlAbout(t, s, s.signupsKey("c-1"), ttl)
			}
		})
	}
}

// Confirmations of one sign-up at once grant once.
func TestGrantSignupConcurrent(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	putContact(t, s, "c-1", "a@example.com")
	const n = 8
	var wg sync.WaitGroup
	grants := make([]SignupGrant, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			grants[i], errs[i] = s.GrantSignup(ctx, "c-1", "h1", grantEvents("news"), testNow, time.Hour)
		})
	}
	wg.Wait()
	count := map[SignupGrant]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		count[grants[i]]++
	}
	if diff := cmp.Diff(map[SignupGrant]int{SignupGranted: 1, SignupAlreadyGranted: n - 1}, count); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if ledger, err := s.ConsentLedger(ctx, "c-1"); err != nil || len(ledger) != 1 {
		t.Errorf("ledger holds %d events (%v), want 1", len(ledger), err)
	}
}

func TestEndPendingSignup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		confirmed bool
	}{
		{"confirmed", true},
		{"not confirmed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			if err := s.PutPendingSignup(ctx, "h1", &PendingSignup{Contact: "c-1", Channel: channels.Email}, "", time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := s.EndPendingSignup(ctx, "h1", tt.confirmed, 48*time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, err := s.PendingSignup(ctx, "h1"); !errors.Is(err, dispatcher.ErrNotFound) {
				t.Errorf("pending sign-up after EndPendingSignup: %v, want ErrNotFound", err)
			}
			done, err := s.SignupConfirmed(ctx, "h1")
			if err != nil {
				t.Fatal(err)
			}
			if done != tt.confirmed {
				t.Errorf("SignupConfirmed = %v, want %v", done, tt.confirmed)
			}
			if tt.confirmed {
				ttlAbout(t, s, s.signupDoneKey("h1"), 48*time.Hour)
			}
		})
	}
}

func TestForgetPendingSMSSignup(t *testing.T) {
	t.Parallel()
	const phone = "+33612345678"
	tests := []struct {
		name   string
		stored string // h the number's entry names, "" for none
		want   string // after ForgetPendingSMSSignup(h1), "" for gone
	}{
		{"names h1: dropped", "h1", ""},
		{"names a newer sign-up: kept", "h2", "h2"},
		{"none", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			if tt.stored != "" {
				ps := &PendingSignup{Contact: "c-1", Channel: channels.SMS}
				if err := s.PutPendingSignup(ctx, tt.stored, ps, phone, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.ForgetPendingSMSSignup(ctx, phone, "h1"); err != nil {
				t.Fatal(err)
			}
			h, err := s.PendingSMSSignup(ctx, phone)
			if errors.Is(err, dispatcher.ErrNotFound) {
				err = nil
			}
			if err != nil || h != tt.want {
				t.Errorf("PendingSMSSignup = %q, %v; want %q", h, err, tt.want)
			}
		})
	}
}

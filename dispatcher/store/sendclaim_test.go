package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/throttle/redistest"
)

// A claim sees, at its instant, the run's state, the contact's erasure
// and the address's suppression and consent.
func TestClaimSend(t *testing.T) {
	t.Parallel()
	news := &dispatcher.Topic{ID: "news", Kind: dispatcher.Marketing}
	tests := []struct {
		name  string
		setup func(ctx context.Context, s *Store) error
		want  SendClaimed
		state string // of the send after the claim
	}{
		{"free to go", nil, SendClaimed{Claimed: true, Checked: Checked{Consent: dispatcher.Granted}}, dispatcher.StateSending},
		{"run paused", func(ctx context.Context, s *Store) error {
			return s.SetRunState(ctx, "r1", dispatcher.RunPaused)
		}, SendClaimed{Held: dispatcher.RunPaused, Checked: Checked{Consent: dispatcher.Granted}}, dispatcher.StateQueued},
		{"run cancelled", func(ctx context.Context, s *Store) error {
			return s.SetRunState(ctx, "r1", dispatcher.RunCancelled)
		}, SendClaimed{Held: dispatcher.RunCancelled, Checked: Checked{Consent: dispatcher.Granted}}, dispatcher.StateQueued},
		{"consent withdrawn", func(ctx context.Context, s *Store) error {
			return s.RecordConsent(ctx, "c1", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: dispatcher.Withdrawn, Source: "api"})
		}, SendClaimed{Claimed: true, Checked: Checked{Consent: dispatcher.Withdrawn}}, dispatcher.StateSending},
		{"address suppressed", func(ctx context.Context, s *Store) error {
			return s.Suppress(ctx, channels.Email, "ana@example.com", dispatcher.SuppressComplaint, time.Time{})
		}, SendClaimed{Claimed: true, Checked: Checked{Suppressed: true, SuppressReason: dispatcher.SuppressComplaint, Consent: dispatcher.Granted}}, dispatcher.StateSending},
		{"contact erased", func(ctx context.Context, s *Store) error {
			return s.Redis.Del(ctx, s.ContactKey("c1")).Err()
		}, SendClaimed{Claimed: true, Erased: true, Checked: Checked{Consent: dispatcher.Granted}}, dispatcher.StateSending},
		{"claimed before", func(ctx context.Context, s *Store) error {
			_, err := s.TransitionSend(ctx, Transition{Send: dispatcher.SendID("r1", "c1", channels.Email), From: dispatcher.StateQueued, To: dispatcher.StateSending})
			return err
		}, SendClaimed{Checked: Checked{Consent: dispatcher.Granted}}, dispatcher.StateSending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, ctx := setup(t)
			putContact(t, s, "c1", "ana@example.com")
			must(t, s.RecordConsent(ctx, "c1", dispatcher.ConsentEvent{Channel: channels.Email, Topic: "news", State: dispatcher.Granted, Source: "api"}))
			_, err := s.CreateRun(ctx, &dispatcher.Run{ID: "r1", Campaign: "spring", State: dispatcher.RunSending, FireAt: testNow})
			must(t, err)
			send := dispatcher.SendID("r1", "c1", channels.Email)
			must(t, s.RecordDecisions(ctx, "r1", []Decision{{Send: send, Contact: "c1", Channel: channels.Email, Topic: "news",
				State: dispatcher.StateQueued}}, time.Hour))
			if tt.setup != nil {
				must(t, tt.setup(ctx, s))
			}
			got, err := s.ClaimSends(ctx, []SendClaim{{Send: send, Lease: testNow.Add(time.Minute), Topic: news,
				Check: CheckRequest{Contact: "c1", Channel: channels.Email, Address: "ana@example.com"}}})
			must(t, err)
			if diff := cmp.Diff([]SendClaimed{tt.want}, got); diff != "" {
				t.Errorf("ClaimSends (-want +got):\n%s", diff)
			}
			sd, err := s.Send(ctx, send)
			must(t, err)
			if sd.State != tt.state {
				t.Errorf("send %s after the claim, want %s", sd.State, tt.state)
			}
		})
	}
}

// One call claims the sends of several runs, each on its own: a send
// settled meanwhile, a send whose contact was erased and a paused run's
// send beside two that go.
func TestClaimSendsInOneCall(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	orders := &dispatcher.Topic{ID: "orders", Kind: dispatcher.Transactional}
	var claims []SendClaim
	for _, run := range []string{"r1", "r2"} {
		_, err := s.CreateRun(ctx, &dispatcher.Run{ID: run, Campaign: "spring", State: dispatcher.RunSending, FireAt: testNow})
		must(t, err)
		for _, c := range []string{"c1", "c2", "c3"} {
			if run == "r1" {
				putContact(t, s, c, c+"@example.com")
			}
			send := dispatcher.SendID(run, c, channels.Email)
			must(t, s.RecordDecisions(ctx, run, []Decision{{Send: send, Contact: c, Channel: channels.Email, Topic: "orders",
				State: dispatcher.StateQueued}}, time.Hour))
			claims = append(claims, SendClaim{Send: send, Lease: testNow.Add(time.Minute), Topic: orders,
				Check: CheckRequest{Contact: c, Channel: channels.Email, Address: c + "@example.com"}})
		}
	}
	_, err := s.TransitionSends(ctx, []Transition{{Send: claims[1].Send, From: dispatcher.StateQueued, To: dispatcher.StateCancelled}})
	must(t, err)
	must(t, s.Redis.Del(ctx, s.ContactKey("c3")).Err())
	must(t, s.SetRunState(ctx, "r2", dispatcher.RunPaused))
	got, err := s.ClaimSends(ctx, claims)
	must(t, err)
	want := []SendClaimed{{Claimed: true}, {}, {Claimed: true, Erased: true}, {Held: dispatcher.RunPaused}, {Held: dispatcher.RunPaused}, {Held: dispatcher.RunPaused, Erased: true}}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(SendClaimed{}, "Checked")); diff != "" {
		t.Errorf("ClaimSends (-want +got):\n%s", diff)
	}
	for i, state := range []string{dispatcher.StateSending, dispatcher.StateCancelled, dispatcher.StateSending, dispatcher.StateQueued, dispatcher.StateQueued, dispatcher.StateQueued} {
		sd, err := s.Send(ctx, claims[i].Send)
		must(t, err)
		if sd.State != state {
			t.Errorf("send %d is %s, want %s", i, sd.State, state)
		}
	}
}

// A claim no replica acknowledges in time is undone: the send is queued
// again and nothing may leave on it.
func TestClaimSendWaitsForAReplica(t *testing.T) {
	t.Parallel()
	if redistest.Kind() == "in-process" {
		t.Skip("the in-process Redis has neither replicas nor WAIT; a redis-server runs this test")
	}
	s, ctx := setup(t)
	d, err := CheckDurability(ctx, s.Redis)
	must(t, err)
	if d.Replicas > 0 {
		t.Skip("the test Redis has replicas")
	}
	s.ClaimReplicas, s.ClaimWait = 1, 20*time.Millisecond
	putContact(t, s, "c1", "ana@example.com")
	_, err = s.CreateRun(ctx, &dispatcher.Run{ID: "r1", Campaign: "spring", State: dispatcher.RunSending, FireAt: testNow})
	must(t, err)
	send := dispatcher.SendID("r1", "c1", channels.Email)
	must(t, s.RecordDecisions(ctx, "r1", []Decision{{Send: send, Contact: "c1", Channel: channels.Email, Topic: "orders",
		State: dispatcher.StateQueued}}, time.Hour))
	orders := &dispatcher.Topic{ID: "orders", Kind: dispatcher.Transactional}
	_, err = s.ClaimSends(ctx, []SendClaim{{Send: send, Lease: testNow.Add(time.Minute), Topic: orders,
		Check: CheckRequest{Contact: "c1", Channel: channels.Email, Address: "ana@example.com"}}})
	if !errors.Is(err, ErrClaimNotDurable) {
		t.Fatalf("ClaimSends without a replica: %v, want ErrClaimNotDurable", err)
	}
	sd, err := s.Send(ctx, send)
	must(t, err)
	if sd.State != dispatcher.StateQueued {
		t.Errorf("send %s after an unacknowledged claim, want queued", sd.State)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

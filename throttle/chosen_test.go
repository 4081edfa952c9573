package throttle_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/throttle"
)

// A cap the contact chose counts with the configured ones, in the same
// script: over it a send is CapRecipient, over a configured one
// CapOperator; a release frees the slot the contact's cap counted, and
// erasure finds its key.
func TestCapsChosenByTheContact(t *testing.T) {
	t.Parallel()
	b := setupCaps(t, "email:marketing:2/7d")
	ctx := context.Background()
	weekly := []throttle.CapRule{{Channel: "email", Topic: "news", Limit: 1, Window: 7 * 24 * time.Hour}}
	chosen := func(contact, id string) throttle.CapRequest {
		r := mail(contact, id, "news", true)
		r.Rules = weekly
		return r
	}
	reqs := []throttle.CapRequest{
		chosen("c1", "e1"),
		chosen("c1", "e2"),                   // a second news mail this week: the contact's cap
		mail("c1", "p1", "promotions", true), // another topic: the contact's cap does not count it
		mail("c1", "p2", "promotions", true), // the configured cap: 2 marketing mails a week
		chosen("c2", "e3"),
		mail("c2", "e4", "news", true), // c2 chose nothing for this request
	}
	got, err := b.caps.ReserveEach(ctx, t0, reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := []throttle.CapVerdict{throttle.CapReserved, throttle.CapRecipient, throttle.CapReserved, throttle.CapOperator, throttle.CapReserved, throttle.CapReserved}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReserveEach (-want +got):\n%s", diff)
	}
	// A week later the contact's cap lets the next one go.
	if got, err := b.caps.ReserveEach(ctx, t0.Add(7*24*time.Hour+time.Second), []throttle.CapRequest{chosen("c1", "e5")}); err != nil || got[0] != throttle.CapReserved {
		t.Errorf("a week later: %v, %v", got, err)
	}
	// A release frees the slot: the next one goes at once.
	if err := b.caps.Release(ctx, "c2", "email", "news", "e3"); err != nil {
		t.Fatal(err)
	}
	if got, err := b.caps.ReserveEach(ctx, t0, []throttle.CapRequest{chosen("c2", "e6")}); err != nil || got[0] != throttle.CapReserved {
		t.Errorf("after a release: %v, %v", got, err)
	}
	if err := b.caps.Forget(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if n := b.rdb.Client.Exists(ctx, b.rdb.Prefix+":cap:{c1}:email:topic=news").Val(); n != 0 {
		t.Error("the contact's own cap key survived Forget")
	}
}

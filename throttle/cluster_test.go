package throttle_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/throttle"
	"github.com/missive-dev/missive/throttle/redistest"
)

// TestCapsOnCluster reserves, releases and forgets caps on a Redis
// Cluster, where each contact's keys share its hash tag and a batch takes
// one script call per request.
func TestCapsOnCluster(t *testing.T) {
	c := redistest.NewCluster(t)
	ctx := context.Background()
	caps := throttle.NewCaps(c.Client, c.Prefix, []throttle.CapRule{
		{Channel: "email", MarketingOnly: true, Limit: 2, Window: 7 * 24 * time.Hour},
		{Channel: "email", Topic: "news", Limit: 1, Window: 24 * time.Hour},
	})
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var reqs []throttle.CapRequest
	for i := range 10 {
		for _, send := range []string{"a", "b"} {
			reqs = append(reqs, throttle.CapRequest{Contact: fmt.Sprintf("c%d", i), Channel: "email", Topic: "news",
				SendID: send + fmt.Sprint(i), Marketing: true})
		}
	}
	got, err := caps.ReserveMany(ctx, now, reqs)
	if err != nil {
		t.Fatal(err)
	}
	var want []bool
	for range 10 {
		want = append(want, true, false) // the topic's rule allows one a day
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reserved (-want +got):\n%s", diff)
	}
	if err := caps.Release(ctx, "c3", "email", "news", "a3"); err != nil {
		t.Fatal(err)
	}
	if ok, err := caps.Reserve(ctx, now, reqs[7]); err != nil || !ok {
		t.Errorf("c3's second send after the release: %v %v, want reserved", ok, err)
	}
	if err := caps.Forget(ctx, "c4"); err != nil {
		t.Fatal(err)
	}
	if ok, err := caps.Reserve(ctx, now, reqs[9]); err != nil || !ok {
		t.Errorf("c4's second send after Forget: %v %v, want reserved", ok, err)
	}

	l := throttle.NewLimiter(c.Client, c.Prefix)
	if n, _, err := l.Take(ctx, "smtp", 10, 10, 15); err != nil || n != 10 {
		t.Errorf("Take 15 of a burst of 10: %d %v", n, err)
	}
	if err := l.Reset(ctx, "smtp"); err != nil {
		t.Fatal(err)
	}
}

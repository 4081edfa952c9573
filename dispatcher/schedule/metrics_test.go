package schedule

import (
	"context"
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher/metrics"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle/redistest"
)

// gauge reads a metric without labels, -1 when absent.
func gauge(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			if g := f.GetMetric()[0].GetGauge(); g != nil {
				return g.GetValue()
			}
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return -1
}

// The leadership gauge follows the lease, and a lead lost is counted.
func TestLeadershipMetrics(t *testing.T) {
	r := redistest.New(t)
	st := store.NewStore(r.Client, r.Prefix, []byte("test-secret-test-secret-test-secret!"), time.Now, time.Hour)
	m := metrics.New()
	s, err := New(Config{Store: st, Runs: &fired{}, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, 10*time.Millisecond) }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting until %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the scheduler leads", func() bool { return gauge(t, m, "missive_scheduler_leader") == 1 })
	// Another process takes the lease: the next renewal fails.
	if err := r.Client.Set(ctx, st.Key("scheduler", "lease"), "other:999", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor("the lead is lost", func() bool {
		return gauge(t, m, "missive_scheduler_leader") == 0 && gauge(t, m, "missive_scheduler_lease_losses_total") == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

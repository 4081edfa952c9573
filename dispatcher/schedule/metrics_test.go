package schedule

import (
	"context"
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher/metrics"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/testkit"
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
	stop := start(t, s)
	testkit.WaitFor(t, "the scheduler leads", 10*time.Second, func() bool { return gauge(t, m, "missive_scheduler_leader") == 1 })
	// Another process takes the lease: the next renewal fails.
	if err := r.Client.Set(context.Background(), st.Key("scheduler", "lease"), "other:999", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the lead is lost", 10*time.Second, func() bool {
		return gauge(t, m, "missive_scheduler_leader") == 0 && gauge(t, m, "missive_scheduler_lease_losses_total") == 1
	})
	stop()
}

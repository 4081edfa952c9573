package store_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/missive-dev/missive/dispatcher/metrics"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle/redistest"
)

// A client dialled with metrics counts its failed commands, alone or in a
// pipeline, and not a missing key, which is no error of Redis.
func TestDialCountsRedisErrors(t *testing.T) {
	r := redistest.New(t)
	m := metrics.New()
	ctx := context.Background()
	rdb, err := store.Dial(ctx, r.URL, store.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	key := r.Prefix + ":word"
	if err := rdb.Get(ctx, r.Prefix+":missing").Err(); err == nil {
		t.Fatal("GET of a missing key: no redis.Nil")
	}
	if err := rdb.Set(ctx, key, "word", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Incr(ctx, key).Err(); err == nil {
		t.Fatal("INCR of a word succeeded")
	}
	p := rdb.Pipeline()
	p.Incr(ctx, key)
	p.Get(ctx, key)
	_, _ = p.Exec(ctx)
	rec := metricsText(t, m)
	if !strings.Contains(rec, `missive_redis_errors_total{kind="server"} 2`) {
		t.Errorf("want 2 server errors counted:\n%s", rec)
	}
	if strings.Contains(rec, `kind="network"`) || strings.Contains(rec, `kind="timeout"`) {
		t.Errorf("errors of the wrong kind counted:\n%s", rec)
	}
}

// metricsText is what m's handler serves.
func metricsText(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

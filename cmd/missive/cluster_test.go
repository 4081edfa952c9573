package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/missive-dev/missive/throttle/redistest"
)

// The demo runs end to end on a Redis Cluster named by a
// redis-cluster:// MISSIVE_REDIS_URL.
func TestDemoOnRedisCluster(t *testing.T) {
	c := redistest.NewCluster(t)
	if !strings.HasPrefix(c.URL, "redis-cluster://") || !strings.Contains(c.URL, "?addr=") {
		t.Fatalf("cluster URL %q is not the redis-cluster:// form", c.URL)
	}
	dir := t.TempDir()
	env := map[string]string{"MISSIVE_REDIS_URL": c.URL, "MISSIVE_PREFIX": c.Prefix, "MISSIVE_OUTBOX_DIR": dir}
	var out, errs bytes.Buffer
	code := Main(context.Background(), []string{"demo", "--contacts", "300"}, func(k string) string { return env[k] }, &out, &errs)
	if code != 0 {
		t.Fatalf("demo exited %d: %s %s", code, out.String(), errs.String())
	}
	for _, want := range []string{"Seeded 300 contacts", "balanced: true", "sent", "no_consent"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

package main

import (
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
	runDemo(t, c.URL, c.Prefix)
}

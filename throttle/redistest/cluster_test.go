package redistest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestClusterSpreadsKeysAndFlushesThemAll(t *testing.T) {
	a := NewCluster(t)
	ctx := context.Background()
	const n = 100
	for i := range n {
		if err := a.Client.Set(ctx, fmt.Sprintf("%s:k%d", a.Prefix, i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (total, masters int) {
		var mu sync.Mutex // ForEachMaster visits the masters at once
		err := a.Client.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			keys, err := node.Keys(ctx, a.Prefix+":*").Result()
			mu.Lock()
			defer mu.Unlock()
			if len(keys) > 0 {
				masters++
			}
			total += len(keys)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return total, masters
	}
	if total, masters := count(); total != n || masters != clusterMasters {
		t.Fatalf("%d keys on %d masters, want %d on %d", total, masters, n, clusterMasters)
	}
	a.flush(ctx)
	if total, _ := count(); total != 0 {
		t.Fatalf("flush left %d keys", total)
	}
	if b := NewCluster(t); b.Prefix == a.Prefix {
		t.Fatalf("two tests share prefix %q", a.Prefix)
	}
}

package redistest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestPrefixIsolation(t *testing.T) {
	a, b := New(t), New(t)
	if a.Prefix == b.Prefix {
		t.Fatalf("two tests share prefix %q", a.Prefix)
	}
	ctx := context.Background()
	if err := a.Client.Set(ctx, a.Prefix+":k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	a.flush(ctx)
	if n, _ := a.Client.Exists(ctx, a.Prefix+":k").Result(); n != 0 {
		t.Fatalf("flush left %d keys", n)
	}
	t.Logf("running against %s Redis", Kind())
}

func TestStartServerStopsOnClose(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("no redis-server on PATH")
	}
	srv, err := StartServer("")
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping the started server: %v", err)
	}
	srv.Close()
	srv.Close()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("the server still answers after Close")
	}
	if _, err := os.Stat(srv.dir); !os.IsNotExist(err) {
		t.Errorf("its folder is still there: %v", err)
	}
}

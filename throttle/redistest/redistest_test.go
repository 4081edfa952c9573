package redistest

import (
	"context"
	"testing"
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

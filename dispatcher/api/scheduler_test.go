package api

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
)

// Two scheduler processes on one Redis: a campaign due once fires one run,
// and a cron campaign fires once per match.
func TestTwoSchedulersFireOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seedMailing(t, b, 5)
	ctx := context.Background()
	past := time.Now().Add(-time.Second).Truncate(time.Second)
	if _, err := b.d.Pipeline.ScheduleCampaign(ctx, "mailing", dispatcher.Schedule{At: past}); err != nil {
		t.Fatal(err)
	}
	// A second dispatcher on the same Redis, with its own connections,
	// stands for another process.
	opts := *b.redis.Options
	rdb2 := redis.NewClient(&opts)
	t.Cleanup(func() { rdb2.Close() })
	loops2 := countLoops(rdb2, b.cfg.Prefix)
	cfg2 := b.cfg
	cfg2.Redis = rdb2
	d2, err := app.New(cfg2)
	must(t, err)
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, d := range []*app.Dispatcher{b.d, d2} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Scheduler.Run(sctx, 20*time.Millisecond) }()
	}
	b.startWorker(t)
	var runs []string
	waitFor(t, "a run", 20*time.Second, func() bool {
		runs, err = b.d.Store.Runs(ctx, "mailing")
		must(t, err)
		return len(runs) > 0
	})
	// Time for a second firing, if there were one: both schedulers, the
	// leader and the one waiting to take over, tick again.
	b.loops.waitTicks(t, 3)
	loops2.waitTicks(t, 3)
	cancel()
	wg.Wait()
	runs, _ = b.d.Store.Runs(ctx, "mailing")
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
	b.waitRun(t, runs[0], 20*time.Second)
	assertEachOnce(t, b, 5)
	c, _ := b.d.Store.Campaign(ctx, "mailing")
	if c.State != dispatcher.Completed {
		t.Errorf("one-shot campaign is %s after its run, want completed", c.State)
	}
}

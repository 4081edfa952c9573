package core

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher"
)

// Two scheduler processes on one Redis: a campaign due once fires one run,
// and a cron campaign fires once per match.
func TestTwoSchedulersFireOnce(t *testing.T) {
	b := setup(t)
	seedMailing(t, b, 5)
	ctx := context.Background()
	past := time.Now().Add(-time.Second).Truncate(time.Second)
	if _, err := b.d.Pipeline.ScheduleCampaign(ctx, "mailing", dispatcher.Schedule{At: past}); err != nil {
		t.Fatal(err)
	}
	// A second dispatcher on the same Redis stands for another process.
	d2, err := New(b.cfg)
	must(t, err)
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, d := range []*Dispatcher{b.d, d2} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.RunScheduler(sctx, 20*time.Millisecond) }()
	}
	b.startWorker(t)
	deadline := time.Now().Add(20 * time.Second)
	var runs []string
	for time.Now().Before(deadline) {
		runs, err = b.d.Store.Runs(ctx, "mailing")
		must(t, err)
		if len(runs) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // time for a second firing, if there were one
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

func TestSchedulerLeaderHandOver(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	lease := b.d.Store.Key("scheduler", "lease")
	h1 := b.d.lead(ctx, lease, "one", "")
	if h1 == "" {
		t.Fatal("first scheduler did not lead")
	}
	if h := b.d.lead(ctx, lease, "two", ""); h != "" {
		t.Fatal("second scheduler leads while the first holds the lease")
	}
	// The first one vanishes: its lease expires, the second takes over with
	// a larger fencing token, and the first cannot renew.
	b.redis.Client.Del(ctx, lease)
	h2 := b.d.lead(ctx, lease, "two", "")
	if h2 == "" || fencingToken(h2) <= fencingToken(h1) {
		t.Fatalf("second scheduler did not take over with a larger token: %q after %q", h2, h1)
	}
	if h := b.d.lead(ctx, lease, "one", h1); h != "" {
		t.Fatal("old leader renewed a lease it lost")
	}
}

func TestScheduleValidation(t *testing.T) {
	tests := []struct {
		s     dispatcher.Schedule
		field string
	}{
		{dispatcher.Schedule{}, "schedule"},
		{dispatcher.Schedule{At: time.Now(), Cron: "* * * * *"}, "schedule"},
		{dispatcher.Schedule{Cron: "not a cron"}, "schedule.cron"},
		{dispatcher.Schedule{Cron: "0 10 * * 1", TZ: "Mars/Olympus"}, "schedule.tz"},
		{dispatcher.Schedule{At: time.Now(), LocalTime: "25:00"}, "schedule.local_time"},
	}
	for _, tt := range tests {
		err := tt.s.Validate()
		e, ok := err.(*dispatcher.Error)
		if !ok || e.Field != tt.field {
			t.Errorf("validate(%+v) = %v, want an error on %s", tt.s, err, tt.field)
		}
	}
	if err := (&dispatcher.Schedule{Cron: "0 10 * * 1-5", TZ: "Europe/Paris", LocalTime: "10:00"}).Validate(); err != nil {
		t.Errorf("valid schedule refused: %v", err)
	}
}

// A cron schedule in a time zone fires at its local time.
func TestCronScheduleFires(t *testing.T) {
	paris := mustLoc(t, "Europe/Paris")
	now := time.Date(2026, 11, 24, 10, 0, 30, 0, paris)
	b := setup(t, func(c *Config) { c.Now = func() time.Time { return now } })
	seedMailing(t, b, 1)
	ctx := context.Background()
	c, _ := b.d.Store.Campaign(ctx, "mailing")
	c.CreatedAt = time.Date(2026, 11, 23, 0, 0, 0, 0, paris)
	must(t, b.d.Store.PutCampaign(ctx, c))
	if _, err := b.d.Pipeline.ScheduleCampaign(ctx, "mailing", dispatcher.Schedule{Cron: "0 10 * * *", TZ: "Europe/Paris"}); err != nil {
		t.Fatal(err)
	}
	lease := b.d.Store.Key("scheduler", "lease")
	h := b.d.lead(ctx, lease, "s", "")
	must(t, b.d.fireDue(ctx, h))
	must(t, b.d.fireDue(ctx, h)) // a second tick fires nothing more
	runs, _ := b.d.Store.Runs(ctx, "mailing")
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1 (the 10:00 of the 24th only: missed firings are not replayed)", len(runs))
	}
	r, _ := b.d.Store.Run(ctx, runs[0])
	if want := time.Date(2026, 11, 24, 10, 0, 0, 0, paris); !r.FireAt.Equal(want) {
		t.Errorf("fired for %s, want %s", r.FireAt, want)
	}
}

func fencingToken(holder string) int {
	_, tok, _ := strings.Cut(holder, ":")
	n, _ := strconv.Atoi(tok)
	return n
}

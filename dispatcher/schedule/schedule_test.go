package schedule

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/testkit"
	"github.com/missive-dev/missive/throttle/redistest"
)

// fired records the runs a scheduler starts.
type fired struct {
	mu   sync.Mutex
	runs []time.Time
}

func (f *fired) StartRun(_ context.Context, _ string, at time.Time) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = append(f.runs, at)
	return "r", nil
}

func setup(t *testing.T, now func() time.Time) (*Scheduler, *store.Store, *fired) {
	t.Helper()
	r := redistest.New(t)
	st := store.NewStore(r.Client, r.Prefix, []byte("test-secret-test-secret-test-secret!"), now, time.Hour)
	f := &fired{}
	s, err := New(Config{Store: st, Runs: f, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s, st, f
}

// start runs s with a tick of 10ms until the test calls stop, which fails
// t if Run returned an error.
func start(t *testing.T, s *Scheduler) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, 10*time.Millisecond) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestLeaderHandOver(t *testing.T) {
	s, st, _ := setup(t, time.Now)
	ctx := context.Background()
	h1 := s.lead(ctx, "one", "")
	if h1 == "" {
		t.Fatal("first scheduler did not lead")
	}
	if h := s.lead(ctx, "two", ""); h != "" {
		t.Fatal("second scheduler leads while the first holds the lease")
	}
	// The first one vanishes: its lease expires, the second takes over with
	// a larger fencing token, and the first cannot renew.
	if err := st.Redis.Del(ctx, st.Key("scheduler", "lease")).Err(); err != nil {
		t.Fatal(err)
	}
	h2 := s.lead(ctx, "two", "")
	if h2 == "" || fencingToken(h2) <= fencingToken(h1) {
		t.Fatalf("second scheduler did not take over with a larger token: %q after %q", h2, h1)
	}
	if h := s.lead(ctx, "one", h1); h != "" {
		t.Fatal("old leader renewed a lease it lost")
	}
	// A stale leader fires nothing.
	if ok, err := s.lease.Held(ctx, h1); err != nil || ok {
		t.Fatalf("stale holder still held the lease: %v %v", ok, err)
	}
}

// A cron schedule in a time zone fires at its local time, once, and
// missed firings are not replayed.
func TestCronScheduleFires(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 10, 0, 30, 0, paris)
	s, st, f := setup(t, func() time.Time { return now })
	ctx := context.Background()
	c := &dispatcher.Campaign{ID: "mailing", Topic: "news", Segment: "all", Channels: []channels.Kind{channels.Email},
		State: dispatcher.Scheduled, Schedule: &dispatcher.Schedule{Cron: "0 10 * * *", TZ: "Europe/Paris"},
		CreatedAt: time.Date(2026, 11, 23, 0, 0, 0, 0, paris)}
	if err := st.PutCampaign(ctx, c); err != nil {
		t.Fatal(err)
	}
	// PutCampaign stamps CreatedAt only when it is zero.
	h := s.lead(ctx, "s", "")
	if err := s.fireDue(ctx, h); err != nil {
		t.Fatal(err)
	}
	if len(f.runs) != 1 {
		t.Fatalf("%d runs, want 1 (the 10:00 of the 24th only: missed firings are not replayed)", len(f.runs))
	}
	if want := time.Date(2026, 11, 24, 10, 0, 0, 0, paris); !f.runs[0].Equal(want) {
		t.Errorf("fired for %s, want %s", f.runs[0], want)
	}
}

func TestDue(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	one := &dispatcher.Campaign{State: dispatcher.Scheduled, Schedule: &dispatcher.Schedule{At: at}}
	if got := due(one, at.Add(-time.Second)); len(got) != 0 {
		t.Errorf("due before its time: %v", got)
	}
	if got := due(one, at); len(got) != 1 || !got[0].Equal(at) {
		t.Errorf("due at its time: %v", got)
	}
	one.LastFire = at
	if got := due(one, at.Add(time.Hour)); len(got) != 0 {
		t.Errorf("a one-shot campaign fired twice: %v", got)
	}
	paused := &dispatcher.Campaign{State: dispatcher.Paused, Schedule: &dispatcher.Schedule{At: at}}
	if got := due(paused, at); len(got) != 0 {
		t.Errorf("a paused campaign fired: %v", got)
	}
}

func fencingToken(holder string) int {
	_, tok, _ := strings.Cut(holder, ":")
	n, _ := strconv.Atoi(tok)
	return n
}

// sequencesAt records the times a scheduler fires sequences at.
type sequencesAt chan time.Time

func (s sequencesAt) FireDue(_ context.Context, now time.Time) error {
	select {
	case s <- now:
	default:
	}
	return nil
}

// The leader queues the sequences' due steps on each tick, at its clock's
// time; a scheduler that does not lead does not.
func TestLeaderFiresSequences(t *testing.T) {
	r := redistest.New(t)
	clock := time.Date(2026, 3, 28, 8, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	st := store.NewStore(r.Client, r.Prefix, []byte("test-secret-test-secret-test-secret!"), now, time.Hour)
	seqs := make(sequencesAt, 1)
	s, err := New(Config{Store: st, Runs: &fired{}, Sequences: seqs, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, s)
	select {
	case at := <-seqs:
		if !at.Equal(clock) {
			t.Errorf("fired sequences at %s, want the clock's %s", at, clock)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the leader did not fire the sequences")
	}
	stop()

	// Another scheduler holds the lease: this one does not fire.
	if _, err := st.Lease("scheduler").Acquire(context.Background(), "other", time.Minute); err != nil {
		t.Fatal(err)
	}
	var tries atomic.Int64
	lease := st.Key("scheduler", "lease")
	redistest.OnCommand(r.Client, func(cmd redis.Cmder) {
		if args := cmd.Args(); cmd.Name() == "set" && len(args) > 1 && args[1] == lease {
			tries.Add(1)
		}
	})
	follower := make(sequencesAt, 1)
	s2, err := New(Config{Store: st, Runs: &fired{}, Sequences: follower, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	stop2 := start(t, s2)
	// A few of its ticks, seen as its tries to take the lease.
	testkit.WaitFor(t, "3 ticks of the follower", 10*time.Second, func() bool { return tries.Load() >= 3 })
	stop2()
	if len(follower) != 0 {
		t.Fatal("a follower fired the sequences")
	}
}

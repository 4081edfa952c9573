// Package schedule fires campaign runs when they are due: once at a time,
// or by cron in a zone; and it queues the sequences' steps that are due. Any number of scheduler processes may run: one
// holds a lease in Redis (the leader) and fires; the others wait to take
// over. Each lease carries a fencing token that grows with each new
// leader, and a firing happens only while the token is current, so a
// paused old leader cannot fire after a new one took over. Run ids derive
// from campaign and fire time besides, so even two firings create one run.
// The leader also runs the daily jobs (the retention purge).
//
//	s := schedule.New(schedule.Config{Store: st, Runs: pipe, Daily: priv.MaybePurge})
//	err := s.Run(ctx, time.Second)
package schedule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/metrics"
	"github.com/missive-dev/missive/dispatcher/store"
)

// Lease is how long a leader's lease lasts without renewal.
const Lease = 10 * time.Second

// Sequences queues the due steps of sequences (sequence.Engine).
type Sequences interface {
	FireDue(ctx context.Context, now time.Time) error
}

// Runs starts runs (pipeline.Pipeline).
type Runs interface {
	StartRun(ctx context.Context, campaignID string, fireAt time.Time) (string, error)
}

// Config configures a Scheduler.
type Config struct {
	// Store holds the campaigns and the lease. Required.
	Store *store.Store
	// Runs starts the runs that are due. Required.
	Runs Runs
	// Sequences, when set, has its due steps queued by the leader on
	// each tick. Default: none.
	Sequences Sequences
	// Daily, when set, is called by the leader on each tick; it decides
	// itself whether its day's work is due (privacy.Privacy.MaybePurge),
	// and returns a wait for what it started, called when Run stops.
	Daily func(ctx context.Context) (wait func())
	// Metrics shows whether this scheduler leads and counts the leads it
	// lost. Default: none.
	Metrics *metrics.Metrics
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
}

// Scheduler fires due runs while it leads.
type Scheduler struct {
	cfg   Config
	lease store.Lease
	log   *slog.Logger
}

// New validates cfg and returns a Scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Store == nil || cfg.Runs == nil {
		return nil, errors.New("schedule: Config.Store and Runs are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Scheduler{cfg: cfg, lease: cfg.Store.Lease("scheduler"), log: cfg.Logger}, nil
}

// Run fires due runs every tick until ctx ends.
func (s *Scheduler) Run(ctx context.Context, tick time.Duration) error {
	if tick <= 0 {
		tick = time.Second
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	var holder string // "" while not leader
	t := time.NewTicker(tick)
	defer t.Stop()
	var waits []func()
	defer func() {
		for _, w := range waits {
			w()
		}
	}()
	defer func() {
		if holder != "" {
			// Step down at once, so another scheduler takes over quickly.
			_ = s.lease.Release(context.WithoutCancel(ctx), holder)
		}
		s.cfg.Metrics.Leading(false)
	}()
	for {
		holder = s.lead(ctx, id, holder)
		s.cfg.Metrics.Leading(holder != "")
		if holder != "" {
			if err := s.fireDue(ctx, holder); err != nil && ctx.Err() == nil {
				s.log.Error("scheduler", "error", err)
			}
			if s.cfg.Sequences != nil {
				if err := s.cfg.Sequences.FireDue(ctx, s.cfg.Now()); err != nil && ctx.Err() == nil {
					s.log.Error("scheduler: sequences", "error", err)
				}
			}
			if s.cfg.Daily != nil {
				if w := s.cfg.Daily(ctx); w != nil {
					waits = append(waits[:0], w)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// lead renews or acquires the lease; it returns the holder value (id and
// fencing token) while leading, else "".
func (s *Scheduler) lead(ctx context.Context, id, holder string) string {
	if holder != "" {
		if ok, err := s.lease.Renew(ctx, holder, Lease); err == nil && ok {
			return holder
		}
		s.log.Warn("scheduler lost the lead")
		s.cfg.Metrics.LeaseLost()
	}
	h, err := s.lease.Acquire(ctx, id, Lease)
	if err != nil || h == "" {
		return ""
	}
	s.log.Info("scheduler leads", "holder", h)
	return h
}

// fireDue starts the runs that are due.
func (s *Scheduler) fireDue(ctx context.Context, holder string) error {
	cs, err := s.cfg.Store.Campaigns(ctx)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	for _, c := range cs {
		for _, at := range due(&c, now) {
			// Fence: fire only while our lease is current.
			if ok, err := s.lease.Held(ctx, holder); err != nil || !ok {
				return err
			}
			if _, err := s.cfg.Runs.StartRun(ctx, c.ID, at); err != nil {
				s.log.Error("scheduler: start run", "campaign", c.ID, "error", err)
			}
		}
	}
	return nil
}

// due returns the fire times of c that are due at now: its one time, or
// the newest cron firing since the last. A scheduler that was down for a
// day sends the newest run, not a burst of old ones.
func due(c *dispatcher.Campaign, now time.Time) []time.Time {
	if c.Schedule == nil || (c.State != dispatcher.Scheduled && c.State != dispatcher.Running) {
		return nil
	}
	if !c.Schedule.At.IsZero() {
		if c.LastFire.IsZero() && !c.Schedule.At.After(now) {
			return []time.Time{c.Schedule.At}
		}
		return nil
	}
	sched, err := c.Schedule.CronSchedule()
	if err != nil {
		return nil
	}
	// From the last firing, or from when the schedule was set: never for
	// a time before it.
	from := c.CreatedAt
	for _, t := range []time.Time{c.ScheduledAt, c.LastFire} {
		if t.After(from) {
			from = t
		}
	}
	var last time.Time
	for next := sched.Next(from); !next.After(now) && !next.IsZero(); next = sched.Next(next) {
		last = next
	}
	if last.IsZero() {
		return nil
	}
	return []time.Time{last}
}

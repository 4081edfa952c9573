package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/privacy"
	"github.com/redis/go-redis/v9"
)

// The scheduler fires campaign runs. Any number of scheduler processes may
// run: one holds a lease in Redis (the leader) and fires; the others wait
// to take over. Each lease carries a fencing token that grows with each new
// leader, and a firing is written only while the token is current, so a
// paused old leader cannot fire after a new one took over. Run ids derive
// from campaign and fire time besides, so even two firings create one run.

// renewScript extends the lease if we still hold it. KEYS: lease.
// ARGV: holder, ttl ms.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// SchedulerLease is how long a leader's lease lasts without renewal.
const SchedulerLease = 10 * time.Second

// RunScheduler fires due runs every tick until ctx ends.
func (d *Dispatcher) RunScheduler(ctx context.Context, tick time.Duration) error {
	if tick <= 0 {
		tick = time.Second
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	var holder string // "" while not leader
	t := time.NewTicker(tick)
	defer t.Stop()
	lease := d.Store.Key("scheduler", "lease")
	var retention privacy.RetentionJob
	defer retention.Wait()
	defer func() {
		if holder != "" {
			// Step down at once, so another scheduler takes over quickly.
			ctx := context.WithoutCancel(ctx)
			if v, _ := d.cfg.Redis.Get(ctx, lease).Result(); v == holder {
				d.cfg.Redis.Del(ctx, lease)
			}
		}
	}()
	for {
		holder = d.lead(ctx, lease, id, holder)
		if holder != "" {
			if err := d.fireDue(ctx, holder); err != nil && ctx.Err() == nil {
				d.log.Error("scheduler", "error", err)
			}
			d.Privacy.MaybePurge(ctx, &retention)
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
func (d *Dispatcher) lead(ctx context.Context, lease, id, holder string) string {
	if holder != "" {
		if n, err := renewScript.Run(ctx, d.cfg.Redis, []string{lease}, holder, SchedulerLease.Milliseconds()).Int(); err == nil && n == 1 {
			return holder
		}
		d.log.Warn("scheduler lost the lead")
	}
	token, err := d.cfg.Redis.Incr(ctx, d.Store.Key("scheduler", "epoch")).Result()
	if err != nil {
		return ""
	}
	h := id + ":" + strconv.FormatInt(token, 10)
	ok, err := d.cfg.Redis.SetNX(ctx, lease, h, SchedulerLease).Result()
	if err != nil || !ok {
		return ""
	}
	d.log.Info("scheduler leads", "token", token)
	return h
}

// fireDue starts the runs that are due.
func (d *Dispatcher) fireDue(ctx context.Context, holder string) error {
	cs, err := d.Store.Campaigns(ctx)
	if err != nil {
		return err
	}
	now := d.cfg.Now()
	for _, c := range cs {
		if c.Schedule == nil || (c.State != dispatcher.Scheduled && c.State != dispatcher.Running) {
			continue
		}
		var due []time.Time
		switch {
		case !c.Schedule.At.IsZero():
			if c.LastFire.IsZero() && !c.Schedule.At.After(now) {
				due = append(due, c.Schedule.At)
			}
		default:
			sched, err := c.Schedule.CronSchedule()
			if err != nil {
				continue
			}
			// Catch up at most one missed firing: a scheduler that was down
			// for a day sends the newest run, not a burst of old ones.
			from := c.LastFire
			if from.IsZero() {
				from = c.CreatedAt
			}
			var last time.Time
			for next := sched.Next(from); !next.After(now) && !next.IsZero(); next = sched.Next(next) {
				last = next
			}
			if !last.IsZero() {
				due = append(due, last)
			}
		}
		for _, at := range due {
			// Fence: fire only while our lease is current.
			if v, err := d.cfg.Redis.Get(ctx, d.Store.Key("scheduler", "lease")).Result(); err != nil || v != holder {
				return err
			}
			if _, err := d.Pipeline.StartRun(ctx, c.ID, at); err != nil {
				d.log.Error("scheduler: start run", "campaign", c.ID, "error", err)
			}
		}
	}
	return nil
}

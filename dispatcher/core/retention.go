package core

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/redis/go-redis/v9"
)

// Retention of inactive contacts. The CNIL keeps prospects' data at most
// 3 years from their collection or their last contact: PurgeInactive
// erases (EraseContact) every contact that holds no granted consent on any
// channel or topic and whose last activity is older than
// Config.InactiveAfter. Last activity is the newest of the contact's
// UpdatedAt (an upsert or an import) and its newest consent event. A
// contact with a granted consent is kept however old: it asked for the
// messages, and withdrawing starts its clock.
//
// The scheduler's leader runs the purge once a day:
//
//	P:retention:last    time of the last purge started (ms), claimed atomically
//	P:retention:stats   hash of the last purge: last_run, scanned, purged, errors
//
// Everything else tied to a contact already expires on its own: send
// records, the provider feedback keys and the data of deferred sends live
// Config.SendTTL (90 days by default), the per-contact index of API sends
// expires with its newest send, and pending sign-ups live 48 hours.
// Erasure keeps the suppression hashes and the pseudonymous consent ledger,
// as EraseContact explains.

// DefaultInactiveAfter is Config.InactiveAfter's default: 3 years.
const DefaultInactiveAfter = 3 * 365 * 24 * time.Hour

// RetentionEvery is how often the scheduler's leader purges inactive
// contacts.
const RetentionEvery = 24 * time.Hour

// purgeChunk is how many contacts one round of reads covers.
const purgeChunk = 500

// PurgeReport counts what a purge did; it never names a contact.
type PurgeReport struct {
	// Scanned is the number of contacts looked at.
	Scanned int64 `json:"scanned"`
	// Purged is the number of contacts erased.
	Purged int64 `json:"purged"`
	// Errors is the number of contacts that could not be judged (a record
	// that does not open) or erased; they are tried again next time.
	Errors int64 `json:"errors"`
}

// PurgeInactive erases the contacts that hold no granted consent and had
// no activity for Config.InactiveAfter (see the retention comment above),
// walking the contact index in chunks. progress, if not nil, is called
// after each chunk with the contacts scanned so far and the index's size
// at the start. A contact that cannot be judged or erased counts in
// Errors and does not stop the walk; an error comes back only when Redis
// fails the walk itself or ctx ends, with the report so far. With a
// negative InactiveAfter it does nothing.
func (d *Dispatcher) PurgeInactive(ctx context.Context, progress func(done, total int64)) (PurgeReport, error) {
	var rep PurgeReport
	if d.cfg.InactiveAfter < 0 {
		return rep, nil
	}
	s := d.Store
	cutoff := d.cfg.Now().Add(-d.cfg.InactiveAfter)
	total, err := s.CountContacts(ctx)
	if err != nil {
		return rep, fmt.Errorf("purge inactive: %w", err)
	}
	start := "-"
	for {
		ids, err := s.Redis.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.Key("contacts"), Start: start, Stop: "+",
			ByLex: true, Count: purgeChunk}).Result()
		if err != nil {
			return rep, fmt.Errorf("purge inactive: contact list: %w", err)
		}
		if len(ids) == 0 {
			return rep, nil
		}
		// Erasure removes ids from the index; the lex cursor is not moved by it.
		start = "(" + ids[len(ids)-1]
		stale, unreadable, err := s.InactiveContacts(ctx, ids, cutoff)
		if err != nil {
			return rep, fmt.Errorf("purge inactive: %w", err)
		}
		rep.Scanned += int64(len(ids))
		rep.Errors += int64(unreadable)
		for _, id := range stale {
			if _, err := d.EraseContact(ctx, id); err != nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				if !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
					rep.Errors++
				}
				continue
			}
			rep.Purged++
		}
		if progress != nil {
			progress(rep.Scanned, total)
		}
		if len(ids) < purgeChunk {
			return rep, nil
		}
	}
}

// retentionJob runs the scheduler's daily purge in its own goroutine, one
// at a time, so that the leader keeps firing campaigns meanwhile.
type retentionJob struct {
	running atomic.Bool
	wg      sync.WaitGroup
}

// wait returns when the purge under way, if any, has ended.
func (j *retentionJob) wait() { j.wg.Wait() }

// maybePurge starts a purge of inactive contacts if none runs here and
// the last one, by anyone, started more than RetentionEvery ago. It
// records the counts in P:retention:stats.
func (d *Dispatcher) maybePurge(ctx context.Context, j *retentionJob) {
	if d.cfg.InactiveAfter < 0 || !j.running.CompareAndSwap(false, true) {
		return
	}
	now := d.cfg.Now()
	ok, err := storepkg.ClaimRetentionScript.Run(ctx, d.cfg.Redis, []string{d.Store.Key("retention", "last")},
		now.UnixMilli(), RetentionEvery.Milliseconds()).Bool()
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			d.log.Error("retention: claim", "error", err)
		}
		j.running.Store(false)
		return
	}
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		defer j.running.Store(false)
		rep, err := d.PurgeInactive(ctx, nil)
		wctx := context.WithoutCancel(ctx)
		if werr := d.cfg.Redis.HSet(wctx, d.Store.Key("retention", "stats"),
			"last_run", now.UTC().Format(time.RFC3339),
			"scanned", strconv.FormatInt(rep.Scanned, 10),
			"purged", strconv.FormatInt(rep.Purged, 10),
			"errors", strconv.FormatInt(rep.Errors, 10)).Err(); werr != nil {
			d.log.Error("retention: stats", "error", werr)
		}
		switch {
		case err != nil && ctx.Err() != nil:
			// Shutdown: the next purge, a day later, goes over the rest.
			d.log.Info("retention: purge of inactive contacts interrupted", "scanned", rep.Scanned, "purged", rep.Purged, "errors", rep.Errors)
			return
		case err != nil:
			d.log.Error("retention: purge of inactive contacts", "scanned", rep.Scanned, "purged", rep.Purged, "errors", rep.Errors, "error", err)
			return
		}
		d.log.Info("retention: purge of inactive contacts", "scanned", rep.Scanned, "purged", rep.Purged, "errors", rep.Errors)
	}()
}

package privacy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/missive-dev/missive/dispatcher"
)

// DefaultInactiveAfter is Config.InactiveAfter's default: 3 years.
const DefaultInactiveAfter = 3 * 365 * 24 * time.Hour

// RetentionEvery is how often the scheduler's leader purges inactive
// contacts.
const RetentionEvery = 24 * time.Hour

// PurgeChunk is how many contacts one round of reads covers.
const PurgeChunk = 500

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
func (d *Privacy) PurgeInactive(ctx context.Context, progress func(done, total int64)) (PurgeReport, error) {
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
	after := ""
	for {
		ids, err := s.ContactIDs(ctx, after, PurgeChunk)
		if err != nil {
			return rep, fmt.Errorf("purge inactive: contact list: %w", err)
		}
		if len(ids) == 0 {
			return rep, nil
		}
		after = ids[len(ids)-1]
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
		if len(ids) < PurgeChunk {
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

// MaybePurge starts a purge of inactive contacts if none runs here and
// the last one, by anyone, started more than RetentionEvery ago, and
// returns a wait for it (the scheduler's Config.Daily). It records the
// counts in P:retention:stats.
func (d *Privacy) MaybePurge(ctx context.Context) (wait func()) {
	j := &d.retention
	wait = j.wg.Wait
	if d.cfg.InactiveAfter < 0 || !j.running.CompareAndSwap(false, true) {
		return wait
	}
	now := d.cfg.Now()
	ok, err := d.Store.ClaimRetention(ctx, now, RetentionEvery)
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			d.log.Error("retention: claim", "error", err)
		}
		j.running.Store(false)
		return wait
	}
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		defer j.running.Store(false)
		rep, err := d.PurgeInactive(ctx, nil)
		wctx := context.WithoutCancel(ctx)
		if werr := d.Store.SetRetentionStats(wctx, now, rep.Scanned, rep.Purged, rep.Errors); werr != nil {
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
	return wait
}

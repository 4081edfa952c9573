package store

import (
	"context"
	"errors"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/dispatcher"
)

// The planning of a run and the progress of its batches, kept in the
// run's hash (P:run:{r}) and sets beside it.

// PlanCursor is how far the planning of a run went.
type PlanCursor struct {
	// After is where the next batch starts: the last contact id of the
	// previous one, or, for a static segment, the offset in its list. ""
	// is the start.
	After string
	// Batches is how many batches were enqueued.
	Batches int
	// Finished tells that the last batch was enqueued.
	Finished bool
}

// PlanCursor returns how far the planning of run went; the zero
// PlanCursor for a run not planned yet.
func (s *Store) PlanCursor(ctx context.Context, run string) (PlanCursor, error) {
	m, err := s.Redis.HMGet(ctx, s.RunKey(run), "cursor", "batches", "plan_finished").Result()
	if err != nil {
		return PlanCursor{}, err
	}
	var c PlanCursor
	c.After, _ = m[0].(string)
	if v, ok := m[1].(string); ok {
		c.Batches, _ = strconv.Atoi(v)
	}
	c.Finished = m[2] == "1"
	return c, nil
}

// SavePlanCursor records that the planning of run enqueued batches
// batches, the last one ending at after, so that a retried plan goes on
// from there.
func (s *Store) SavePlanCursor(ctx context.Context, run, after string, batches int) error {
	return s.Redis.HSet(ctx, s.RunKey(run), "cursor", after, "batches", batches).Err()
}

// FinishPlan records that the planning of run is over, with batches
// batches in all: once they are done and nothing is in flight, the run
// is done (FinishBatch).
func (s *Store) FinishPlan(ctx context.Context, run string, batches int) error {
	return s.Redis.HSet(ctx, s.RunKey(run), "batches", batches, "plan_finished", 1).Err()
}

// SeeBatch records that batch n of run was taken up, and reports whether
// it was the first time: a batch seen before (a retry, or a rerun after a
// shutdown) may have decided some of its sends already.
func (s *Store) SeeBatch(ctx context.Context, run string, n int) (first bool, err error) {
	added, err := s.Redis.SAdd(ctx, s.batchesSeenKey(run), n).Result()
	return added == 1, err
}

// FinishBatch marks batch n of run done, once ("" only checks), and
// reports whether the run has nothing left to do: its planning is
// finished, every batch is done and no send is in flight. It then also
// marks the run's planning done (the field planned_done), which lets the
// last send to settle tell that the run is done.
func (s *Store) FinishBatch(ctx context.Context, run, n string) (runDone bool, err error) {
	done, err := finishBatchScript.Run(ctx, s.Redis,
		[]string{s.RunKey(run), s.batchesDoneKey(run), s.inflightKey(run)}, n).Int()
	return done == 1, err
}

// DropInflight removes sends (by id) from run's in-flight set: the
// reconciler drops those that are gone or settled.
func (s *Store) DropInflight(ctx context.Context, run string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	return s.Redis.ZRem(ctx, s.inflightKey(run), members...).Err()
}

// PutRunSnapshot writes what run was started with (JSON), replacing any
// snapshot: the run's creator writes it once, right after creating the
// run.
func (s *Store) PutRunSnapshot(ctx context.Context, run string, snap []byte) error {
	return s.Redis.Set(ctx, s.snapshotKey(run), snap, 0).Err()
}

// AddRunSnapshot writes what run was started with (JSON) unless a snapshot
// exists, and reports whether it wrote it: it repairs a run whose creator
// died between creating it and writing its snapshot, and never changes a
// snapshot written before.
func (s *Store) AddRunSnapshot(ctx context.Context, run string, snap []byte) (bool, error) {
	return s.Redis.SetNX(ctx, s.snapshotKey(run), snap, 0).Result()
}

// RunSnapshot returns what run was started with (JSON). Returns ErrNotFound
// if it has no snapshot.
func (s *Store) RunSnapshot(ctx context.Context, run string) ([]byte, error) {
	b, err := s.Redis.Get(ctx, s.snapshotKey(run)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, dispatcher.ErrNotFound
	}
	return b, err
}

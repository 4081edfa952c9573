package store

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/dispatcher"
)

// UpdateCampaign applies f to the stored campaign and saves it when f
// reports a change, in one optimistic transaction, so that concurrent
// updates (a start, a run completing, a pause) never overwrite each
// other; f may therefore run more than once. It returns the campaign as
// saved, f's error, or an error with code not_found.
func (s *Store) UpdateCampaign(ctx context.Context, id string, f func(*dispatcher.Campaign) (bool, error)) (*dispatcher.Campaign, error) {
	key := s.Key("campaigns")
	var out *dispatcher.Campaign
	err := s.watch(ctx, "update campaign", func(tx *redis.Tx) error {
		b, err := tx.HGet(ctx, key, id).Bytes()
		if errors.Is(err, redis.Nil) {
			return dispatcher.NotFound("campaign")
		}
		if err != nil {
			return err
		}
		var c dispatcher.Campaign
		if err := json.Unmarshal(b, &c); err != nil {
			return err
		}
		out = &c
		changed, err := f(&c)
		if err != nil || !changed {
			return err
		}
		c.UpdatedAt = s.now().UTC()
		nb, err := json.Marshal(&c)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, id, nb)
			return nil
		})
		return err
	}, key)
	return out, err
}

// ActiveRunsOf lists the runs of campaign that are not finished, newest
// first, among its newest 100.
func (s *Store) ActiveRunsOf(ctx context.Context, campaign string) ([]string, error) {
	ids, err := s.Runs(ctx, campaign)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGet(ctx, s.RunKey(id), "state")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var out []string
	for i, c := range cmds {
		if st := c.Val(); st != "" && st != dispatcher.RunCompleted && st != dispatcher.RunCancelled {
			out = append(out, ids[i])
		}
	}
	return out, nil
}

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
	states, err := s.runStates(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, st := range states {
		if st != "" && !finished(st) {
			out = append(out, ids[i])
		}
	}
	return out, nil
}

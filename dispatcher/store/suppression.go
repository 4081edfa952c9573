package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// SuppressStop suppresses an address for good with reason stop, unless it
// is already suppressed for good: a permanent bounce or complaint must not
// become a stop that START could lift, and a second STOP keeps the date of
// the first. A temporary entry (soft bounces) is replaced.
func (s *Store) SuppressStop(ctx context.Context, k channels.Kind, addr string) error {
	key := s.Key("sup", s.AddressHash(k, addr))
	entry, _ := json.Marshal(dispatcher.Suppression{Reason: dispatcher.SuppressStop, At: s.now().UTC()})
	txn := func(tx *redis.Tx) error {
		b, err := tx.Get(ctx, key).Bytes()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		var cur dispatcher.Suppression
		if err == nil && json.Unmarshal(b, &cur) == nil && cur.Until.IsZero() {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, entry, 0)
			return nil
		})
		return err
	}
	for range 5 {
		err := s.Redis.Watch(ctx, txn, key)
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil {
				return fmt.Errorf("suppress: %w", err)
			}
			return nil
		}
	}
	return errors.New("suppress: entry kept changing")
}

// UnsuppressStop lifts the suppression of an address when, and only when,
// it comes from an SMS STOP: a bounce or a complaint stays. The check and
// the delete are one transaction, so a bounce recorded meanwhile is kept.
func (s *Store) UnsuppressStop(ctx context.Context, k channels.Kind, addr string) error {
	key := s.Key("sup", s.AddressHash(k, addr))
	txn := func(tx *redis.Tx) error {
		b, err := tx.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return err
		}
		var sup dispatcher.Suppression
		if json.Unmarshal(b, &sup) != nil || sup.Reason != dispatcher.SuppressStop {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, key)
			return nil
		})
		return err
	}
	for range 5 {
		err := s.Redis.Watch(ctx, txn, key)
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil {
				return fmt.Errorf("lift stop suppression: %w", err)
			}
			return nil
		}
	}
	return errors.New("lift stop suppression: entry kept changing")
}

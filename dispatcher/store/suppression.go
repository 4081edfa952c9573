package store

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// SuppressStop suppresses an address for good with reason stop, unless it
// is already suppressed for good: a permanent bounce or complaint must not
// become a stop that START could lift, and a second STOP keeps the date of
// the first. A temporary entry (soft bounces) is replaced.
func (s *Store) SuppressStop(ctx context.Context, k channels.Kind, addr string) error {
	stop := &dispatcher.Suppression{Reason: dispatcher.SuppressStop, At: s.now().UTC()}
	return s.changeSuppression(ctx, "suppress", k, addr, func(cur *dispatcher.Suppression) (*dispatcher.Suppression, bool) {
		if cur != nil && cur.Until.IsZero() {
			return nil, false
		}
		return stop, true
	})
}

// UnsuppressStop lifts the suppression of an address when, and only when,
// it comes from an SMS STOP: a bounce or a complaint stays. The check and
// the delete are one transaction, so a bounce recorded meanwhile is kept.
func (s *Store) UnsuppressStop(ctx context.Context, k channels.Kind, addr string) error {
	return s.changeSuppression(ctx, "lift stop suppression", k, addr, func(cur *dispatcher.Suppression) (*dispatcher.Suppression, bool) {
		return nil, cur != nil && cur.Reason == dispatcher.SuppressStop
	})
}

// changeSuppression changes the suppression entry of an address as next
// decides from the current one (nil: none, or one that does not decode),
// in one WATCH transaction: when write is true the entry becomes e, or
// goes when e is nil; when false nothing is written.
func (s *Store) changeSuppression(ctx context.Context, op string, k channels.Kind, addr string, next func(cur *dispatcher.Suppression) (e *dispatcher.Suppression, write bool)) error {
	key := s.Key("sup", s.AddressHash(k, addr))
	txn := func(tx *redis.Tx) error {
		b, err := tx.Get(ctx, key).Bytes()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		var cur *dispatcher.Suppression
		if err == nil {
			var e dispatcher.Suppression
			if json.Unmarshal(b, &e) == nil {
				cur = &e
			}
		}
		n, write := next(cur)
		if !write {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if n == nil {
				p.Del(ctx, key)
				return nil
			}
			entry, _ := json.Marshal(n)
			p.Set(ctx, key, entry, 0)
			return nil
		})
		return err
	}
	return s.watch(ctx, op, txn, key)
}

package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// watchAttempts is how many times a WATCH transaction is tried before
// giving up: a key kept changing under it.
const watchAttempts = 5

// errKeptChanging is returned when a WATCH transaction lost every attempt.
var errKeptChanging = errors.New("the records kept changing; try again")

// watch runs txn under WATCH keys and retries it while another client
// changed them in between. It is the one optimistic-transaction loop of
// the store; op names the operation in errors.
func (s *Store) watch(ctx context.Context, op string, txn func(*redis.Tx) error, keys ...string) error {
	for range watchAttempts {
		err := s.Redis.Watch(ctx, txn, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("%s: %w", op, errKeptChanging)
}

package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// watchAttempts is how many times a WATCH transaction is tried before
// giving up: a key kept changing under it.
const watchAttempts = 8

// errKeptChanging is returned when a WATCH transaction lost every attempt.
var errKeptChanging = errors.New("the records kept changing; try again")

// watch runs txn under WATCH keys and retries it while another client
// changed them in between. It is the one optimistic-transaction loop of
// the store; op names the operation in errors. Between attempts it waits
// a random moment, longer each time, so that writers racing for the same
// keys (a contact's consents changed from two devices while an import
// runs) fall out of step instead of losing together again.
func (s *Store) watch(ctx context.Context, op string, txn func(*redis.Tx) error, keys ...string) error {
	for attempt := range watchAttempts {
		err := s.Redis.Watch(ctx, txn, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(rand.N(time.Duration(attempt+1) * time.Millisecond)):
		}
	}
	return fmt.Errorf("%s: %w", op, errKeptChanging)
}

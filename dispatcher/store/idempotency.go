package store

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReserveIdempotency reserves the idempotency key with the pending record
// rec for ttl. When another request holds the key it returns false and
// that request's record, or a nil record when the key expired or was
// released meanwhile (reserve again).
func (s *Store) ReserveIdempotency(ctx context.Context, key string, rec []byte, ttl time.Duration) (bool, []byte, error) {
	k := s.idemKey(key)
	ok, err := s.Redis.SetNX(ctx, k, rec, ttl).Result()
	if err != nil || ok {
		return ok, nil, err
	}
	b, err := s.Redis.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil, nil
	}
	return false, b, err
}

// SetIdempotency replaces the record of the idempotency key, for ttl.
func (s *Store) SetIdempotency(ctx context.Context, key string, rec []byte, ttl time.Duration) error {
	return s.Redis.Set(ctx, s.idemKey(key), rec, ttl).Err()
}

// ReleaseIdempotency drops the idempotency key, so that a retry runs again.
func (s *Store) ReleaseIdempotency(ctx context.Context, key string) error {
	return s.Redis.Del(ctx, s.idemKey(key)).Err()
}

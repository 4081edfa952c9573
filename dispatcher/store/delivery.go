package store

import (
	"context"
	"errors"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// SendForProvider returns the send id a provider message id belongs to, or
// ErrNotFound.
func (s *Store) SendForProvider(ctx context.Context, provider string) (string, error) {
	id, err := s.Redis.Get(ctx, s.ProviderKey(provider)).Result()
	if errors.Is(err, redis.Nil) {
		return "", dispatcher.ErrNotFound
	}
	return id, err
}

// SetProviderID records that the provider's message id names send, for
// ttl: delivery reports name the provider's id.
func (s *Store) SetProviderID(ctx context.Context, provider, send string, ttl time.Duration) error {
	return s.Redis.Set(ctx, s.ProviderKey(provider), send, ttl).Err()
}

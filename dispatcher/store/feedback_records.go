package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// FeedbackClaim is the claim of one kind of feedback on one send: a
// delivery report, a bounce... is applied once per send and kind.
func (s *Store) FeedbackClaim(send string, kind channels.FeedbackKind) Claim {
	return Claim{key: s.Key("fb", send, string(kind))}
}

// CountSoftBounce records a soft bounce of an address at at, named member
// (the send id, or the report's own id), forgets those older than window,
// and returns how many the window holds.
func (s *Store) CountSoftBounce(ctx context.Context, k channels.Kind, addr, member string, at time.Time, window time.Duration) (int64, error) {
	key := s.Key("soft", s.AddressHash(k, addr))
	now := at.UnixMilli()
	var n *redis.IntCmd
	_, err := s.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(now-window.Milliseconds(), 10))
		p.ZAdd(ctx, key, redis.Z{Score: float64(now), Member: member})
		n = p.ZCard(ctx, key)
		p.PExpire(ctx, key, window)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n.Val(), nil
}

// RunFields returns the raw fields of a run's record: its campaign, its
// state, its counters (n:<outcome>, d:<decision>, f:<feedback>) and
// paused_reason.
func (s *Store) RunFields(ctx context.Context, run string) (map[string]string, error) {
	return s.Redis.HGetAll(ctx, s.RunKey(run)).Result()
}

// PauseRunOnce records why a run paused itself; it reports false when a
// reason was already recorded.
func (s *Store) PauseRunOnce(ctx context.Context, run, reason string) (bool, error) {
	return s.Redis.HSetNX(ctx, s.RunKey(run), "paused_reason", reason).Result()
}

// SetVERPSend records that a short VERP token id names send, for ttl: a
// send id too long for an address's local part goes by its hash.
func (s *Store) SetVERPSend(ctx context.Context, id, send string, ttl time.Duration) error {
	return s.Redis.Set(ctx, s.Key("verp", id), send, ttl).Err()
}

// VERPSend returns the send a short VERP token id names, or ErrNotFound.
func (s *Store) VERPSend(ctx context.Context, id string) (string, error) {
	send, err := s.Redis.Get(ctx, s.Key("verp", id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", dispatcher.ErrNotFound
	}
	return send, err
}

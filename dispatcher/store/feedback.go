package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// Feedback counters: what recipients did, per run and per topic.
const (
	FeedbackUnsubscribes  = "unsubscribes"  // consents withdrawn (one-click, preference page, STOP)
	FeedbackConfirmations = "confirmations" // double opt-in confirmations
)

// CountFeedback adds one to a feedback counter of the topic, and of the run
// when the event comes from one of its messages (run may be ""), and
// counts evs in the analytics, in the same round trip. An unsubscribe is
// counted in the analytics of the run and the topic too.
func (s *Store) CountFeedback(ctx context.Context, run, topic, name string, evs ...Event) error {
	if name == FeedbackUnsubscribes {
		evs = append(evs, Event{Run: run, Topic: topic, Metric: MetricUnsubscribed})
	}
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		if run != "" {
			p.HIncrBy(ctx, s.RunKey(run), "f:"+name, 1)
		}
		if topic != "" {
			p.HIncrBy(ctx, s.Key("topicstats", topic), name, 1)
		}
		s.countEvents(ctx, p, evs)
		return nil
	})
	return err
}

// TopicFeedback returns a topic's feedback counters.
func (s *Store) TopicFeedback(ctx context.Context, topic string) (map[string]int64, error) {
	m, err := s.Redis.HGetAll(ctx, s.Key("topicstats", topic)).Result()
	if err != nil {
		return nil, err
	}
	return counters(m, ""), nil
}

// RunFeedback picks the f:<name> counters out of a run hash.
func RunFeedback(m map[string]string) map[string]int64 {
	return counters(m, "f:")
}

// counters picks the fields of the hash m named prefix<name>, as counters
// by name.
func counters(m map[string]string, prefix string) map[string]int64 {
	out := map[string]int64{}
	for f, v := range m {
		if name, ok := strings.CutPrefix(f, prefix); ok {
			out[name], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return out
}

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

// SendForProvider returns the send id a provider message id belongs to, or
// ErrNotFound.
func (s *Store) SendForProvider(ctx context.Context, provider string) (string, error) {
	id, err := s.Redis.Get(ctx, s.providerKey(provider)).Result()
	if errors.Is(err, redis.Nil) {
		return "", dispatcher.ErrNotFound
	}
	return id, err
}

// SetProviderIDs records that each provider's message id names its send,
// for the store's send TTL: delivery reports name the provider's id.
func (s *Store) SetProviderIDs(ctx context.Context, ids map[string]string) error {
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		s.setProviderIDs(ctx, p, ids)
		return nil
	})
	if err != nil {
		return fmt.Errorf("record provider ids: %w", err)
	}
	return nil
}

func (s *Store) setProviderIDs(ctx context.Context, p redis.Pipeliner, ids map[string]string) {
	for provider, send := range ids {
		p.Set(ctx, s.providerKey(provider), send, s.sendTTL)
	}
}

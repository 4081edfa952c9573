package store

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Feedback counters: what recipients did, per run and per topic.
const (
	FeedbackUnsubscribes  = "unsubscribes"  // consents withdrawn (one-click, preference page, STOP)
	FeedbackConfirmations = "confirmations" // double opt-in confirmations
)

// countFeedback adds one to a feedback counter of the topic, and of the run
// when the event comes from one of its messages (run may be "").
func (s *Store) CountFeedback(ctx context.Context, run, topic, name string) error {
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		if run != "" {
			p.HIncrBy(ctx, s.RunKey(run), "f:"+name, 1)
		}
		if topic != "" {
			p.HIncrBy(ctx, s.Key("topicstats", topic), name, 1)
		}
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
	out := map[string]int64{}
	for k, v := range m {
		out[k], _ = strconv.ParseInt(v, 10, 64)
	}
	return out, nil
}

// runFeedback picks the f:<name> counters out of a run hash.
func RunFeedback(m map[string]string) map[string]int64 {
	out := map[string]int64{}
	for f, v := range m {
		if name, ok := strings.CutPrefix(f, "f:"); ok {
			out[name], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return out
}

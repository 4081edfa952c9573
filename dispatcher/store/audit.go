package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// auditMaxLen bounds the audit stream; XADD trims it approximately, which
// is cheap.
const auditMaxLen = 1_000_000

// AuditEntry is one change made through the API: who (the API key id),
// when, what (the action) and on which record (the target id). It never
// holds a personal value: no address, no phone number, no body. A
// suppression's target is the keyed hash of its address.
type AuditEntry struct {
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	Key    string    `json:"key"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	// Detail says more when the target alone does not: the topic, channel
	// and state of a consent, the counts of an import.
	Detail string `json:"detail,omitempty"`
}

// AppendAudit records e in the audit stream, trimmed to about a million
// entries. e.ID is set from the stream.
func (s *Store) AppendAudit(ctx context.Context, e *AuditEntry) error {
	vals := []any{"at", e.At.UTC().Format(time.RFC3339Nano), "key", e.Key, "action", e.Action}
	if e.Target != "" {
		vals = append(vals, "target", e.Target)
	}
	if e.Detail != "" {
		vals = append(vals, "detail", e.Detail)
	}
	id, err := s.Redis.XAdd(ctx, &redis.XAddArgs{Stream: s.auditKey(), MaxLen: auditMaxLen, Approx: true, Values: vals}).Result()
	if err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	e.ID = id
	return nil
}

// Audit returns up to limit audit entries, newest first, older than the
// entry with id before when before is set.
func (s *Store) Audit(ctx context.Context, limit int64, before string) ([]AuditEntry, error) {
	start := "+"
	if before != "" {
		start = "(" + before
	}
	msgs, err := s.Redis.XRevRangeN(ctx, s.auditKey(), start, "-", limit).Result()
	if err != nil {
		return nil, fmt.Errorf("audit: read: %w", err)
	}
	out := make([]AuditEntry, 0, len(msgs))
	for _, m := range msgs {
		e := AuditEntry{ID: m.ID}
		str := func(k string) string { v, _ := m.Values[k].(string); return v }
		e.At, _ = time.Parse(time.RFC3339Nano, str("at"))
		e.Key, e.Action, e.Target, e.Detail = str("key"), str("action"), str("target"), str("detail")
		out = append(out, e)
	}
	return out, nil
}

package core

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
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

func (s *Store) auditKey() string { return s.k("audit") }

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
	id, err := s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.auditKey(), MaxLen: auditMaxLen, Approx: true, Values: vals}).Result()
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
	msgs, err := s.rdb.XRevRangeN(ctx, s.auditKey(), start, "-", limit).Result()
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

// auditBody keeps the body of a call whose audit target is in the body
// (suppressions carry their address there, never in the URL). It holds
// what the handler read, which decodeJSON bounds.
type auditBody struct{ buf bytes.Buffer }

// captureBody tees the request body for the actions whose target must be
// derived from it; nil for the others.
func captureBody(r *http.Request, action string) *auditBody {
	if !strings.HasPrefix(action, "suppression.") || r.Body == nil {
		return nil
	}
	b := &auditBody{}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(r.Body, &b.buf), r.Body}
	return b
}

// record appends the audit entry of a call that succeeded. A failure is
// logged, not returned: the change is made and the client must not retry
// it because the log could not be written.
func (a *api) record(r *http.Request, action string, v any, body *auditBody) {
	e := &AuditEntry{At: a.d.cfg.Now().UTC(), Key: KeyID(r.Context()), Action: action, Target: r.PathValue("id")}
	switch v := v.(type) {
	case dispatcher.Campaign:
		e.Target = v.ID
	case *dispatcher.Campaign:
		e.Target = v.ID
	case dispatcher.ConsentEvent:
		e.Detail = fmt.Sprintf("%s %s %s", v.Topic, v.Channel, v.State)
	case *ImportResult:
		e.Detail = fmt.Sprintf("imported %d, failed %d", v.Imported, v.Failed)
	}
	if body != nil {
		var in addressRequest
		if json.Unmarshal(body.buf.Bytes(), &in) == nil && in.Channel.Valid() && in.Address != "" {
			e.Target = a.d.Store.AddressHash(in.Channel, in.Address)
			e.Detail = string(in.Channel)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := a.d.Store.AppendAudit(ctx, e); err != nil {
		a.d.log.Error("api: audit entry lost", "action", action, "key", e.Key, "error", err)
	}
}

var streamID = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// getAudit answers GET /v1/audit?limit=100[&before=<id>]: the newest
// entries first; before pages back from an entry id.
func (a *api) getAudit(w http.ResponseWriter, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	limit := int64(100)
	if s := q.Get("limit"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 || n > 1000 {
			return 0, nil, dispatcher.Invalid("limit", "must be a whole number from 1 to 1000")
		}
		limit = n
	}
	before := q.Get("before")
	if before != "" && !streamID.MatchString(before) {
		return 0, nil, dispatcher.Invalid("before", "must be the id of an audit entry")
	}
	es, err := a.d.Store.Audit(r.Context(), limit, before)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string][]AuditEntry{"entries": es}, nil
}

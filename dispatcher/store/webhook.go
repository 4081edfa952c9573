package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// Outbound webhooks' keys. An endpoint's keys share its hash tag, so its
// scripts stay on one slot:
//
//	P:webhooks                     hash endpoint id -> endpoint (JSON sealed under the data keyring,
//	                               its signing secret with it)
//	P:wh:{e}:ev:<event>            an event to deliver to endpoint e (JSON sealed: contact, body),
//	                               WebhookEventTTL
//	P:wh:{e}:q:<contact>           list of the event ids waiting for e, oldest first, for one contact
//	                               (delivered in that order), WebhookEventTTL from the last event
//	P:wh:{e}:lock:<contact>        who drains that list now (a lease)
//	P:wh:{e}:log                   list of e's last delivery attempts (JSON, newest first, capped)
//	P:wh:outbox                    list of "e event nonce" entries to hand to the queue, newest first
//	                               (a worker enqueues the oldest, then takes them out)

// WebhookEventTTL is how long an event waits for its endpoint, and can be
// replayed, before it expires.
const WebhookEventTTL = 7 * 24 * time.Hour

// WebhookLogSize is how many delivery attempts an endpoint's log keeps.
const WebhookLogSize = 100

// WebhookEndpoint is a registered outbound webhook endpoint. Secret is the
// signing secret ("whsec_..."): stored sealed, shown once at creation.
type WebhookEndpoint struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	Events         []string  `json:"events"`
	IncludeAddress bool      `json:"include_address"`
	Created        time.Time `json:"created"`
	Secret         string    `json:"secret,omitempty"`
}

// WebhookEvent is an event queued for one endpoint: the body is the JSON
// payload as it is signed and sent.
type WebhookEvent struct {
	Endpoint string
	ID       string
	Contact  string
	Body     []byte
}

// WebhookDelivery is one delivery attempt in an endpoint's log: never a
// body, an address or a URL.
type WebhookDelivery struct {
	Event     string    `json:"event_id"`
	At        time.Time `json:"at"`
	Status    int       `json:"status,omitempty"`
	LatencyMS int64     `json:"latency_ms"`
	// Error is the class of a failed attempt: "status" (an answer other
	// than 2xx), "timeout", "connection", "dropped" (retries exhausted);
	// empty when delivered.
	Error string `json:"error,omitempty"`
}

func (s *Store) webhooksKey() string { return s.Key("webhooks") }

func (s *Store) webhookKey(ep string, parts ...string) string {
	k := s.p + ":wh:{" + ep + "}"
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

func (s *Store) webhookOutboxKey() string { return s.Key("wh", "outbox") }

func webhookAAD(ep string) []byte { return []byte("webhook:" + ep) }

func webhookEventAAD(ep, event string) []byte {
	return []byte("webhook-event:" + ep + ":" + event)
}

// PutWebhook stores ep, sealed, creating or replacing it.
func (s *Store) PutWebhook(ctx context.Context, ep *WebhookEndpoint) error {
	b, err := json.Marshal(ep)
	if err != nil {
		return err
	}
	return s.Redis.HSet(ctx, s.webhooksKey(), ep.ID, s.Keys.Seal(b, webhookAAD(ep.ID))).Err()
}

func (s *Store) openWebhook(id string, sealed []byte) (*WebhookEndpoint, error) {
	b, _, err := s.Keys.Open(sealed, webhookAAD(id))
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", id, err)
	}
	var ep WebhookEndpoint
	if err := json.Unmarshal(b, &ep); err != nil {
		return nil, fmt.Errorf("webhook %s: %w", id, err)
	}
	return &ep, nil
}

// Webhook returns the endpoint with that id, secret included, or
// ErrNotFound.
func (s *Store) Webhook(ctx context.Context, id string) (*WebhookEndpoint, error) {
	b, err := s.Redis.HGet(ctx, s.webhooksKey(), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, dispatcher.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return s.openWebhook(id, b)
}

// Webhooks returns every endpoint, secrets included, in no set order.
func (s *Store) Webhooks(ctx context.Context) ([]*WebhookEndpoint, error) {
	m, err := s.Redis.HGetAll(ctx, s.webhooksKey()).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*WebhookEndpoint, 0, len(m))
	for id, v := range m {
		ep, err := s.openWebhook(id, []byte(v))
		if err != nil {
			return nil, err
		}
		out = append(out, ep)
	}
	return out, nil
}

// DeleteWebhook removes an endpoint and its log; its queued events expire
// with their TTL and are not delivered. Returns ErrNotFound if there is
// no such endpoint.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	n, err := s.Redis.HDel(ctx, s.webhooksKey(), id).Result()
	if err != nil {
		return err
	}
	if n == 0 {
		return dispatcher.ErrNotFound
	}
	return s.Redis.Del(ctx, s.webhookKey(id, "log")).Err()
}

// QueueWebhookEvents stores each event sealed, appends it to its
// endpoint's queue for its contact and to the outbox the worker hands to
// the queue: one round trip for all of them.
func (s *Store) QueueWebhookEvents(ctx context.Context, evs []WebhookEvent) error {
	if len(evs) == 0 {
		return nil
	}
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range evs {
			rec, err := json.Marshal(webhookEventRecord{Contact: e.Contact, Body: e.Body})
			if err != nil {
				return err
			}
			p.Set(ctx, s.webhookKey(e.Endpoint, "ev", e.ID), s.Keys.Seal(rec, webhookEventAAD(e.Endpoint, e.ID)), WebhookEventTTL)
			q := s.webhookKey(e.Endpoint, "q", e.Contact)
			p.RPush(ctx, q, e.ID)
			p.Expire(ctx, q, WebhookEventTTL)
			p.LPush(ctx, s.webhookOutboxKey(), outboxEntry(e.Endpoint, e.ID))
		}
		return nil
	})
	return err
}

type webhookEventRecord struct {
	Contact string `json:"contact"`
	Body    []byte `json:"body"`
}

// WebhookEvent returns a queued event's contact and body, or ErrNotFound
// once it expired.
func (s *Store) WebhookEvent(ctx context.Context, ep, event string) (contact string, body []byte, err error) {
	b, err := s.Redis.Get(ctx, s.webhookKey(ep, "ev", event)).Bytes()
	if errors.Is(err, redis.Nil) {
		return "", nil, dispatcher.ErrNotFound
	}
	if err != nil {
		return "", nil, err
	}
	js, _, err := s.Keys.Open(b, webhookEventAAD(ep, event))
	if err != nil {
		return "", nil, fmt.Errorf("webhook event %s: %w", event, err)
	}
	var rec webhookEventRecord
	if err := json.Unmarshal(js, &rec); err != nil {
		return "", nil, fmt.Errorf("webhook event %s: %w", event, err)
	}
	return rec.Contact, rec.Body, nil
}

// RequeueWebhookEvent appends a stored event to its contact's queue again
// (a replay) and to the outbox. Returns ErrNotFound if the event expired.
func (s *Store) RequeueWebhookEvent(ctx context.Context, ep, event string) error {
	contact, _, err := s.WebhookEvent(ctx, ep, event)
	if err != nil {
		return err
	}
	q := s.webhookKey(ep, "q", contact)
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, q, event)
		p.Expire(ctx, q, WebhookEventTTL)
		p.LPush(ctx, s.webhookOutboxKey(), outboxEntry(ep, event))
		return nil
	})
	return err
}

// WebhookOutboxEntry is an event waiting in the outbox to be handed to
// the queue.
type WebhookOutboxEntry struct {
	Endpoint, Event string
	// Nonce tells this hand-over of the event from another (a replay);
	// "" in an entry written before entries had one.
	Nonce string
	raw   string
}

// outboxEntry is the outbox's entry for a hand-over of an event.
func outboxEntry(ep, event string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return ep + " " + event + " " + hex.EncodeToString(b[:])
}

// PeekWebhookOutbox returns up to n entries of the outbox, oldest first,
// and leaves them there until AckWebhookOutbox takes them out: a worker
// that dies between the two leaves them to the next. An entry that does
// not read has an empty Endpoint.
func (s *Store) PeekWebhookOutbox(ctx context.Context, n int) ([]WebhookOutboxEntry, error) {
	vs, err := s.Redis.LRange(ctx, s.webhookOutboxKey(), int64(-n), -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]WebhookOutboxEntry, 0, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		e := WebhookOutboxEntry{raw: vs[i]}
		f := strings.Fields(vs[i])
		if len(f) == 2 || len(f) == 3 {
			e.Endpoint, e.Event = f[0], f[1]
			if len(f) == 3 {
				e.Nonce = f[2]
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// AckWebhookOutbox takes entries, read by PeekWebhookOutbox and handed to
// the queue, out of the outbox.
func (s *Store) AckWebhookOutbox(ctx context.Context, entries []WebhookOutboxEntry) error {
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			// From the tail, where the oldest entries are.
			p.LRem(ctx, s.webhookOutboxKey(), -1, e.raw)
		}
		return nil
	})
	return err
}

// LockWebhookQueue takes the lease on an endpoint's queue for a contact
// for ttl; it returns false if someone else holds it.
func (s *Store) LockWebhookQueue(ctx context.Context, ep, contact, holder string, ttl time.Duration) (bool, error) {
	return s.Redis.SetNX(ctx, s.webhookKey(ep, "lock", contact), holder, ttl).Result()
}

var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`)

// UnlockWebhookQueue gives the lease back if holder still has it.
func (s *Store) UnlockWebhookQueue(ctx context.Context, ep, contact, holder string) error {
	return unlockScript.Run(ctx, s.Redis, []string{s.webhookKey(ep, "lock", contact)}, holder).Err()
}

// WebhookQueueHead returns the oldest event waiting for ep for a contact,
// or "" when none does.
func (s *Store) WebhookQueueHead(ctx context.Context, ep, contact string) (string, error) {
	v, err := s.Redis.LIndex(ctx, s.webhookKey(ep, "q", contact), 0).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// WebhookQueueDone removes the oldest occurrence of event from the queue
// of ep for a contact.
func (s *Store) WebhookQueueDone(ctx context.Context, ep, contact, event string) error {
	return s.Redis.LRem(ctx, s.webhookKey(ep, "q", contact), 1, event).Err()
}

// LogWebhookDelivery records an attempt in the endpoint's log, which keeps
// the last WebhookLogSize.
func (s *Store) LogWebhookDelivery(ctx context.Context, ep string, d WebhookDelivery) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	k := s.webhookKey(ep, "log")
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, k, b)
		p.LTrim(ctx, k, 0, WebhookLogSize-1)
		return nil
	})
	return err
}

// WebhookDeliveries returns the endpoint's logged attempts, newest first.
func (s *Store) WebhookDeliveries(ctx context.Context, ep string) ([]WebhookDelivery, error) {
	vs, err := s.Redis.LRange(ctx, s.webhookKey(ep, "log"), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]WebhookDelivery, 0, len(vs))
	for _, v := range vs {
		var d WebhookDelivery
		if err := json.Unmarshal([]byte(v), &d); err != nil {
			return nil, fmt.Errorf("webhook log: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

// ForgetWebhookEvents deletes the contact's events waiting for endpoints
// that receive addresses (include_address), so that an erasure leaves no
// address in them; the events of the other endpoints hold ids only and
// are delivered. It returns how many events it deleted.
func (s *Store) ForgetWebhookEvents(ctx context.Context, contact string) (int, error) {
	eps, err := s.Webhooks(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ep := range eps {
		if !ep.IncludeAddress {
			continue
		}
		q := s.webhookKey(ep.ID, "q", contact)
		ids, err := s.Redis.LRange(ctx, q, 0, -1).Result()
		if err != nil {
			return n, err
		}
		keys := []string{q}
		for _, id := range ids {
			keys = append(keys, s.webhookKey(ep.ID, "ev", id))
		}
		// One slot: the endpoint's hash tag.
		if err := s.Redis.Del(ctx, keys...).Err(); err != nil {
			return n, err
		}
		n += len(ids)
	}
	return n, nil
}

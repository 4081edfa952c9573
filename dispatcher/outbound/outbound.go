package outbound

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
)

// Config configures Webhooks. Zero values take the defaults in each
// field's comment.
type Config struct {
	// Store holds endpoints, events, queues and logs. Required.
	Store *store.Store
	// HTTPClient makes the calls; its Transport is used, its redirects
	// never followed. Default http.DefaultClient's transport.
	HTTPClient *http.Client
	// Timeout bounds one call to an endpoint, answer included. Default
	// 10 s.
	Timeout time.Duration
	// CacheFor is how long Emit trusts the list of endpoints it read, so
	// that emitting costs one Redis round trip, not two. An endpoint
	// registered or deleted through another process is seen after that.
	// Default 5 s.
	CacheFor time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives operational logs, never personal data. Default
	// slog.Default().
	Logger *slog.Logger
}

// Webhooks registers outbound webhook endpoints, queues the events they
// subscribe to and delivers them, signed. It is safe for concurrent use.
type Webhooks struct {
	cfg    Config
	st     *store.Store
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	cached   []*store.WebhookEndpoint
	cachedAt time.Time
}

var _ dispatcher.Events = (*Webhooks)(nil)

// New validates cfg and returns Webhooks.
func New(cfg Config) (*Webhooks, error) {
	if cfg.Store == nil {
		return nil, errors.New("outbound: Config.Store is required")
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, 10*time.Second)
	cfg.CacheFor = cmp.Or(cfg.CacheFor, 5*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var rt http.RoundTripper
	if cfg.HTTPClient != nil {
		rt = cfg.HTTPClient.Transport
	}
	client := &http.Client{
		Transport: rt,
		Timeout:   cfg.Timeout,
		// A redirect would send the signed event to a host nobody
		// registered.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Webhooks{cfg: cfg, st: cfg.Store, client: client, log: cfg.Logger}, nil
}

// Registration is the body of POST /v1/webhooks.
type Registration struct {
	URL            string   `json:"url"`
	Events         []string `json:"events"`
	IncludeAddress bool     `json:"include_address"`
}

// Endpoint is a registered endpoint as the API shows it: its secret only
// in the answer to the registration (endpointView clears it).
type Endpoint = store.WebhookEndpoint

func endpointView(ep *store.WebhookEndpoint) Endpoint {
	v := *ep
	v.Secret = ""
	return v
}

const maxURL = 2048

// CheckURL validates an endpoint's URL: https, or http to localhost or
// 127.0.0.1 for development; no user or password in it.
func CheckURL(raw string) error {
	if raw == "" {
		return dispatcher.Invalid("url", "is required")
	}
	if len(raw) > maxURL {
		return dispatcher.Invalid("url", "must be at most %d characters", maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return dispatcher.Invalid("url", "is not an absolute URL")
	}
	if u.User != nil {
		return dispatcher.Invalid("url", "must not carry a user or password")
	}
	if u.Fragment != "" {
		return dispatcher.Invalid("url", "must not have a fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if h := u.Hostname(); h == "localhost" || h == "127.0.0.1" {
			return nil
		}
		return dispatcher.Invalid("url", "must use https (http only to localhost or 127.0.0.1, for development)")
	default:
		return dispatcher.Invalid("url", "must use https")
	}
}

// checkEvents validates a list of event types.
func checkEvents(evs []string) error {
	if len(evs) == 0 {
		return dispatcher.Invalid("events", "must name at least one event type")
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if !slices.Contains(dispatcher.EventTypes, e) {
			return dispatcher.Invalid("events", "unknown event type %q (want one of consent.changed, unsubscribed, suppressed, bounced, complained, delivered, failed, signup.confirmed)", dispatcher.Truncate(e, 40))
		}
		if seen[e] {
			return dispatcher.Invalid("events", "names %q twice", e)
		}
		seen[e] = true
	}
	return nil
}

func randomID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b) // never fails (crypto/rand)
	return prefix + hex.EncodeToString(b)
}

// Register validates r and stores a new endpoint with a fresh signing
// secret, returned this once. Returns a *dispatcher.Error naming the field
// for bad input; nothing is stored then.
func (w *Webhooks) Register(ctx context.Context, r Registration) (Endpoint, error) {
	if err := CheckURL(r.URL); err != nil {
		return Endpoint{}, err
	}
	if err := checkEvents(r.Events); err != nil {
		return Endpoint{}, err
	}
	ep := &store.WebhookEndpoint{
		ID: randomID("wh_"), URL: r.URL, Events: r.Events, IncludeAddress: r.IncludeAddress,
		Created: w.cfg.Now().UTC().Truncate(time.Second), Secret: NewSecret(),
	}
	if err := w.st.PutWebhook(ctx, ep); err != nil {
		return Endpoint{}, err
	}
	w.forget()
	return *ep, nil // the secret, this once
}

// List returns every endpoint, by creation time, without secrets.
func (w *Webhooks) List(ctx context.Context) ([]Endpoint, error) {
	eps, err := w.st.Webhooks(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(eps, func(a, b *store.WebhookEndpoint) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	out := make([]Endpoint, len(eps))
	for i, ep := range eps {
		out[i] = endpointView(ep)
	}
	return out, nil
}

// Delete removes an endpoint: its waiting events are not delivered.
// Returns an error wrapping dispatcher.ErrNotFound if there is none.
func (w *Webhooks) Delete(ctx context.Context, id string) error {
	if err := w.st.DeleteWebhook(ctx, id); err != nil {
		return err
	}
	w.forget()
	return nil
}

// Deliveries returns the endpoint's last delivery attempts, newest first.
// Returns dispatcher.ErrNotFound if there is no such endpoint.
func (w *Webhooks) Deliveries(ctx context.Context, id string) ([]store.WebhookDelivery, error) {
	if _, err := w.st.Webhook(ctx, id); err != nil {
		return nil, err
	}
	return w.st.WebhookDeliveries(ctx, id)
}

// Replay queues a stored event for its endpoint again, after the ones
// waiting for the same contact. Returns a not-found error if the endpoint
// does not exist or the event expired.
func (w *Webhooks) Replay(ctx context.Context, id, event string) error {
	if _, err := w.st.Webhook(ctx, id); err != nil {
		return err
	}
	if err := w.st.RequeueWebhookEvent(ctx, id, event); err != nil {
		if errors.Is(err, dispatcher.ErrNotFound) {
			return dispatcher.NotFound("event")
		}
		return err
	}
	return nil
}

func (w *Webhooks) forget() {
	w.mu.Lock()
	w.cached = nil
	w.mu.Unlock()
}

func (w *Webhooks) endpoints(ctx context.Context) ([]*store.WebhookEndpoint, error) {
	now := w.cfg.Now()
	w.mu.Lock()
	if w.cached != nil && now.Sub(w.cachedAt) < w.cfg.CacheFor {
		eps := w.cached
		w.mu.Unlock()
		return eps, nil
	}
	w.mu.Unlock()
	eps, err := w.st.Webhooks(ctx)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.cached, w.cachedAt = eps, now
	w.mu.Unlock()
	return eps, nil
}

// payload is the JSON body of an event, in the Standard Webhooks shape.
type payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      data      `json:"data"`
}

type data struct {
	Contact string `json:"contact"`
	Topic   string `json:"topic,omitempty"`
	Channel string `json:"channel,omitempty"`
	Run     string `json:"run,omitempty"`
	Send    string `json:"send,omitempty"`
	Reason  string `json:"reason,omitempty"`
	State   string `json:"state,omitempty"`
	Address string `json:"address,omitempty"`
}

// Emit queues e for every endpoint subscribed to its type: one Redis round
// trip (and a read of the endpoints every CacheFor, and of the contact when
// an endpoint wants the address the caller did not give). It never fails
// the caller: an event it cannot queue is logged, without personal data,
// and lost.
func (w *Webhooks) Emit(ctx context.Context, e dispatcher.Event) {
	if err := w.emit(ctx, e); err != nil {
		w.log.Warn("webhook event not queued", "type", e.Type, "contact", e.Contact, "error", err)
	}
}

func (w *Webhooks) emit(ctx context.Context, e dispatcher.Event) error {
	if e.Contact == "" {
		return nil
	}
	eps, err := w.endpoints(ctx)
	if err != nil {
		return err
	}
	var to []*store.WebhookEndpoint
	wantAddress := false
	for _, ep := range eps {
		if slices.Contains(ep.Events, e.Type) {
			to = append(to, ep)
			wantAddress = wantAddress || ep.IncludeAddress
		}
	}
	if len(to) == 0 {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = w.cfg.Now()
	}
	if wantAddress && e.Address == "" {
		e.Address = w.address(ctx, e)
	}
	p := payload{Type: e.Type, Timestamp: e.Time.UTC(), Data: data{
		Contact: e.Contact, Topic: e.Topic, Channel: e.Channel, Run: e.Run, Send: e.Send, Reason: e.Reason, State: e.State,
	}}
	plain, err := json.Marshal(p)
	if err != nil {
		return err
	}
	p.Data.Address = e.Address
	withAddress, err := json.Marshal(p)
	if err != nil {
		return err
	}
	evs := make([]store.WebhookEvent, len(to))
	for i, ep := range to {
		body := plain
		if ep.IncludeAddress {
			body = withAddress
		}
		evs[i] = store.WebhookEvent{Endpoint: ep.ID, ID: randomID("msg_"), Contact: e.Contact, Body: body}
	}
	return w.st.QueueWebhookEvents(ctx, evs)
}

// address reads the contact's address on the event's channel; "" when it
// has none or is gone.
func (w *Webhooks) address(ctx context.Context, e dispatcher.Event) string {
	c, err := w.st.Contact(ctx, e.Contact)
	if err != nil {
		return ""
	}
	if channels.Kind(e.Channel) == channels.SMS {
		return c.Phone
	}
	return c.Email
}

// ErrBusy is returned by Deliver when another worker delivers the events
// of the same contact to the same endpoint: try again shortly.
var ErrBusy = errors.New("outbound: the contact's events are being delivered by another worker")

// DeliveryError is a failed call to an endpoint.
type DeliveryError struct {
	// Class is "status" (an answer other than 2xx), "timeout" or
	// "connection".
	Class  string
	Status int
}

func (e *DeliveryError) Error() string {
	if e.Class == "status" {
		return "webhook endpoint answered " + strconv.Itoa(e.Status)
	}
	return "webhook endpoint: " + e.Class
}

// maxDrain bounds the events one Deliver call sends; the others' own
// tasks deliver the rest.
const maxDrain = 100

// Deliver delivers the event of endpoint ep, and first every event queued
// before it for the same contact, one after the other. On a failed call it
// returns a *DeliveryError and the queue stays as it is, so the retry
// starts from the same event; when lastTry is set and the failing event is
// this task's own, it is dropped (logged as "dropped") and the ones after
// it go on. It returns ErrBusy if another worker drains that queue, and
// nil if the endpoint or the event no longer exists.
func (w *Webhooks) Deliver(ctx context.Context, ep, event string, lastTry bool) error {
	endpoint, err := w.st.Webhook(ctx, ep)
	if errors.Is(err, dispatcher.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	contact, _, err := w.st.WebhookEvent(ctx, ep, event)
	if errors.Is(err, dispatcher.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	holder := randomID("")
	ok, err := w.st.LockWebhookQueue(ctx, ep, contact, holder, 2*w.cfg.Timeout+30*time.Second)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBusy
	}
	defer func() {
		// A fresh context: the lease must go even when ctx ended.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := w.st.UnlockWebhookQueue(uctx, ep, contact, holder); err != nil {
			w.log.Warn("webhook queue lease not released", "endpoint", ep, "error", err)
		}
	}()
	for range maxDrain {
		head, err := w.st.WebhookQueueHead(ctx, ep, contact)
		if err != nil || head == "" {
			return err
		}
		_, body, err := w.st.WebhookEvent(ctx, ep, head)
		if errors.Is(err, dispatcher.ErrNotFound) {
			// Expired: nothing left to deliver.
			if err := w.st.WebhookQueueDone(ctx, ep, contact, head); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		derr := w.call(ctx, endpoint, head, body)
		if derr == nil {
			if err := w.st.WebhookQueueDone(ctx, ep, contact, head); err != nil {
				return err
			}
			continue
		}
		if !lastTry || head != event {
			return derr
		}
		w.log.Warn("webhook event dropped after its last try", "endpoint", ep, "event", head, "error", derr)
		if err := w.st.LogWebhookDelivery(ctx, ep, store.WebhookDelivery{Event: head, At: w.cfg.Now().UTC(), Error: "dropped"}); err != nil {
			return err
		}
		if err := w.st.WebhookQueueDone(ctx, ep, contact, head); err != nil {
			return err
		}
	}
	return nil
}

// call posts one event, signed, and logs the attempt.
func (w *Webhooks) call(ctx context.Context, ep *store.WebhookEndpoint, id string, body []byte) *DeliveryError {
	start := w.cfg.Now()
	sig, err := Sign(ep.Secret, id, start, body)
	if err != nil {
		return &DeliveryError{Class: "connection"}
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return &DeliveryError{Class: "connection"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Missive-Webhooks/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(start.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	var derr *DeliveryError
	status := 0
	resp, err := w.client.Do(req)
	switch {
	case err != nil:
		derr = &DeliveryError{Class: errorClass(err)}
	default:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		status = resp.StatusCode
		if status < 200 || status > 299 {
			derr = &DeliveryError{Class: "status", Status: status}
		}
	}
	d := store.WebhookDelivery{Event: id, At: start.UTC(), Status: status, LatencyMS: w.cfg.Now().Sub(start).Milliseconds()}
	if derr != nil {
		d.Error = derr.Class
	}
	if err := w.st.LogWebhookDelivery(ctx, ep.ID, d); err != nil {
		w.log.Warn("webhook delivery not logged", "endpoint", ep.ID, "error", err)
	}
	return derr
}

// errorClass names a transport error without its text, which may hold the
// URL.
func errorClass(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	return "connection"
}

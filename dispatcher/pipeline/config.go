package pipeline

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/gate"
	"github.com/missive-dev/missive/dispatcher/metrics"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
)

// Tuning sets how the pipeline cuts and paces its work. Zero values take
// the defaults in each field's comment.
type Tuning struct {
	// BatchSize is the number of contacts one batch task gates. Default
	// 1,000: what a batch costs besides its contacts (its task, the reads
	// of its ids, its script calls and round trips) is then shared by twice
	// as many contacts as with 500, for about 1 µs less CPU a recipient in
	// the process and in Redis; a worker holds its batches' contacts while
	// it gates them, so memory grows with it (about 75 MB of RSS with 32
	// batches at once).
	BatchSize int
	// SendChunk is the number of sends one send task carries. Default 100:
	// the queue costs a round trip per task, so more sends per task go
	// faster, and 100 still spreads a batch over several workers.
	SendChunk int
	// SendQueues spreads send tasks over that many queues (useful on Redis
	// Cluster, where one queue lives on one shard). Default 1.
	SendQueues int
	// Concurrency is the number of tasks a worker runs at once. Default 32.
	Concurrency int
	// MaxRetry is how many times a send task is retried after temporary
	// failures. Default 10.
	MaxRetry int
	// InflightDeadline is how long a queued send may wait before the
	// reconciler enqueues it again. Default 15 minutes.
	InflightDeadline time.Duration
	// SendLease is how long a send may stay "sending" before the
	// reconciler declares its outcome unknown. A send is claimed right
	// before its bytes go out, so the lease needs only outlast one provider
	// call (bounded by the channels' timeouts). Default 2 minutes.
	SendLease time.Duration
	// ReconcileEvery is the reconciler's period. Default 15 seconds.
	ReconcileEvery time.Duration
}

func (t *Tuning) setDefaults() {
	t.BatchSize = cmp.Or(t.BatchSize, 1000)
	t.SendChunk = cmp.Or(t.SendChunk, 100)
	t.SendQueues = cmp.Or(t.SendQueues, 1)
	t.Concurrency = cmp.Or(t.Concurrency, 32)
	t.MaxRetry = cmp.Or(t.MaxRetry, 10)
	t.InflightDeadline = cmp.Or(t.InflightDeadline, 15*time.Minute)
	t.SendLease = cmp.Or(t.SendLease, 2*time.Minute)
	t.ReconcileEvery = cmp.Or(t.ReconcileEvery, 15*time.Second)
}

// Feedback is what the send path needs of the feedback side: a permanent
// refusal at send time applied as a bounce received later would be, and
// the VERP envelope sender of an email.
type Feedback interface {
	// Refused applies a provider's permanent refusal of s to c's address.
	Refused(ctx context.Context, s *dispatcher.Send, c *dispatcher.Contact, err error) error
	// ReturnPath is the envelope sender of the email of send, or "" for
	// the channel's own.
	ReturnPath(ctx context.Context, send string) (string, error)
}

// RefData gives the template data of a send that answers something
// (dispatcher.Send.Ref, a sign-up confirmation): attributes and locale.
// It returns an error wrapping ErrNothingToSend when what the send
// answered is gone; the send is then cancelled.
type RefData func(ctx context.Context, ref string) (attr map[string]string, locale string, err error)

// Config configures a Pipeline. Zero values take the defaults in each
// field's comment.
type Config struct {
	// Store holds the records; its Redis client carries the queues too.
	// Required.
	Store *store.Store
	// Gate decides for each contact. Required.
	Gate *gate.Gate
	// Caps are the frequency caps, released when a send does not go.
	// Required.
	Caps *throttle.Caps
	// Limiter paces sends by ProviderRates and campaign rates. Required.
	Limiter *throttle.Limiter
	// Signer signs the tokens of unsubscribe and preference links.
	// Required.
	Signer *templates.Signer
	// Feedback applies refusals and gives VERP return paths. Required.
	Feedback Feedback
	// RefData renders sends that answer something. Default: such sends
	// fail to render.
	RefData RefData

	// Prefix starts every queue name. Default "missive".
	Prefix string
	// PublicURL is the base of links in messages. Required.
	PublicURL string
	// Channels delivers messages, per kind.
	Channels map[channels.Kind]channels.Channel
	// EmailFrom is the From of emails whose template does not set one.
	EmailFrom string
	// ListUnsubscribeMailto, when set, is added to List-Unsubscribe.
	ListUnsubscribeMailto string
	// ProviderRates limit the pace per channel, shared by all workers.
	// Default: none.
	ProviderRates map[channels.Kind]throttle.Rate
	// Tuning cuts and paces the work.
	Tuning
	// Events receives the sends that failed for good (failed). Default:
	// none.
	Events dispatcher.Events
	// Metrics records decisions, sends, provider calls, rate waits and the
	// queues. Default: none.
	Metrics *metrics.Metrics
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives operational logs, never personal data. Default
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	switch {
	case c.Store == nil, c.Gate == nil, c.Caps == nil, c.Limiter == nil, c.Signer == nil, c.Feedback == nil:
		return errors.New("pipeline: Config.Store, Gate, Caps, Limiter, Signer and Feedback are required")
	}
	c.Prefix = cmp.Or(c.Prefix, "missive")
	if strings.ContainsAny(c.Prefix, "{} ") {
		return errors.New("pipeline: Config.Prefix must not contain braces or spaces")
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	c.Tuning.setDefaults()
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Events == nil {
		c.Events = dispatcher.NoEvents
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Pipeline plans runs, gates batches of contacts and delivers sends
// through asynq workers, with one send path for campaign, API and
// confirmation sends. It also owns campaigns' and runs' states. It is
// safe for concurrent use.
type Pipeline struct {
	cfg     Config
	Store   *store.Store
	gate    *gate.Gate
	limiter *throttle.Limiter
	caps    *throttle.Caps
	signer  *templates.Signer
	client  *asynq.Client
	log     *slog.Logger
	fb      Feedback
	refData RefData
	m       *metrics.Metrics
	// inspect reads the queues for the metrics.
	inspect *asynq.Inspector

	snap snapshots
	// webhooks delivers outbound webhook events (SetWebhooks).
	webhooks    Webhooks
	webhookBusy func(error) bool
	// sequences takes the due steps of enrolments (SetSequences).
	sequences Sequences

	// handing are the chunks being handed to a channel and settled, which
	// a worker's shutdown waits for.
	handing handovers
}

// New validates cfg and returns a Pipeline.
func New(cfg Config) (*Pipeline, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	refData := cfg.RefData
	if refData == nil {
		refData = func(context.Context, string) (map[string]string, string, error) {
			return nil, "", errors.New("no renderer for sends that answer something")
		}
	}
	p := &Pipeline{
		cfg:     cfg,
		Store:   cfg.Store,
		gate:    cfg.Gate,
		limiter: cfg.Limiter,
		caps:    cfg.Caps,
		signer:  cfg.Signer,
		client:  asynq.NewClientFromRedisClient(cfg.Store.Redis),
		log:     cfg.Logger,
		fb:      cfg.Feedback,
		refData: refData,
		snap:    snapshots{m: map[string]*runState{}},
		m:       cfg.Metrics,
		inspect: asynq.NewInspectorFromRedisClient(cfg.Store.Redis),
	}
	cfg.Metrics.WatchQueues(p.QueueStats, 0)
	return p, nil
}

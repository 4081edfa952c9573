package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/bounce"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
	"github.com/missive-dev/missive/dispatcher/feedback"
	gatepkg "github.com/missive-dev/missive/dispatcher/gate"
	"github.com/missive-dev/missive/dispatcher/metrics"
	"github.com/missive-dev/missive/dispatcher/outbound"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/privacy"
	"github.com/missive-dev/missive/dispatcher/schedule"
	"github.com/missive-dev/missive/dispatcher/sequence"
	"github.com/missive-dev/missive/dispatcher/signup"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/dispatcher/webhook"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
)

// Config configures a Dispatcher. Zero values take the defaults named in
// each field's comment.
type Config struct {
	// Redis holds everything: records, queues, limits. Required.
	Redis storepkg.Client
	// Prefix starts every key and queue name. Default "missive".
	Prefix string
	// Secret keys the address hashes and signs tokens; 32 bytes at least.
	// Required.
	Secret []byte
	// PublicURL is the base of links in messages. Default
	// "http://localhost:8080".
	PublicURL string
	// DefaultTimezone is used for contacts whose zone is unknown and cannot
	// be derived from their phone. Default "Europe/Paris".
	DefaultTimezone string

	// Channels delivers messages, per kind. A kind without a channel cannot
	// be used by campaigns.
	Channels map[channels.Kind]channels.Channel
	// EmailFrom is the From of emails whose template does not set one.
	EmailFrom string
	// ListUnsubscribeMailto, when set, is added to List-Unsubscribe.
	ListUnsubscribeMailto string
	// SenderName is how pages and SMS replies name the sender. Default
	// "Missive".
	SenderName string
	// Processors name who delivers messages on the controller's behalf, for
	// the record of processing: "SMTP relay (smtp.example.com)", "Twilio",
	// "outbox (development)". Default: none.
	Processors []string

	// TokenKeys sign the tokens of unsubscribe and preference links, by key
	// id (letters and digits); ActiveTokenKey names the one that signs.
	// Older keys keep verifying until they are removed, so keys rotate
	// without breaking links already sent. Default: one key, "k1", derived
	// from Secret.
	TokenKeys      map[string][]byte
	ActiveTokenKey string

	// DataKeys encrypts personal data at rest (contacts' addresses,
	// attributes and tags) with AES-256-GCM. Default: a keyring of one key,
	// "d0", derived from Secret: fine for the demo, but the data then
	// depends on Secret and the key cannot rotate on its own; production
	// sets MISSIVE_DATA_KEYS.
	DataKeys *storepkg.Keyring

	// TwilioAuthToken validates the signature of Twilio's webhooks
	// (X-Twilio-Signature) with ValidTwilioSignature. Empty: the Twilio
	// webhooks answer 404.
	TwilioAuthToken string
	// ValidTwilioSignature checks a webhook signature (sms.ValidSignature);
	// required with TwilioAuthToken.
	ValidTwilioSignature func(authToken, url string, params map[string]string, signature string) bool

	// Caps are the frequency caps. Default: 2 marketing emails in 7 days
	// and 1 marketing SMS a day.
	Caps []throttle.CapRule
	// Quiet are the quiet-hours calendars per channel. Default: SMS open
	// Monday-Saturday 08:00-20:00 except French public holidays; email
	// always open.
	Quiet map[channels.Kind]throttle.Calendar
	// Jitter spreads deferred sends over the first moments of an open
	// window. Default 2 minutes.
	Jitter time.Duration
	// ProviderRates limit the pace per channel, shared by all workers.
	// Default: SMS 30/s, email unpaced.
	ProviderRates map[channels.Kind]throttle.Rate

	// Tuning cuts and paces the pipeline's work; each field's comment says
	// its default, but for SendQueues: ClusterSendQueues on Redis Cluster.
	pipeline.Tuning
	// SendTTL is how long send records are kept. Default 90 days.
	SendTTL time.Duration
	// InactiveAfter is how long a contact without any granted consent is
	// kept after its last activity (PurgeInactive). Default 3 years, the
	// CNIL's term for prospects; negative disables the purge.
	InactiveAfter time.Duration
	// Feedback is what bounces, complaints and delivery reports do.
	Feedback feedback.Policy
	// FeedbackClaimLease is how long a provider's event or report being
	// applied holds its claim: a process that dies midway leaves it to the
	// provider's retry once the lease ends. Default 2 minutes.
	FeedbackClaimLease time.Duration
	// BounceDomain, when set, makes the envelope sender of each email a VERP
	// address, bounces+<send id>.<mac>@BounceDomain, so that a bounce names
	// its send. Empty: the channel's return path.
	BounceDomain string
	// ESP configures the email providers' webhooks
	// (/webhooks/email/{provider}); a provider without settings answers 404.
	ESP webhook.ESPConfig
	// HTTPClient makes Missive's own outbound requests (SNS certificates
	// and subscription confirmations). Default: a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// WebhookTimeout bounds one call to an outbound webhook endpoint.
	// Default 10 s.
	WebhookTimeout time.Duration

	// Metrics records what the pipeline, feedback and the scheduler do
	// (the Redis client's errors are counted where it is dialled:
	// store.WithMetrics). Default: none.
	Metrics *metrics.Metrics

	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives operational logs, never personal data. Default
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Redis == nil {
		return errors.New("dispatcher: Config.Redis is required")
	}
	if len(c.Secret) < 32 {
		return errors.New("dispatcher: Config.Secret must be at least 32 bytes")
	}
	if c.TwilioAuthToken != "" && c.ValidTwilioSignature == nil {
		return errors.New("dispatcher: Config.ValidTwilioSignature is required with TwilioAuthToken")
	}
	c.Prefix = cmp.Or(c.Prefix, "missive")
	if strings.ContainsAny(c.Prefix, "{} ") {
		return errors.New("dispatcher: Config.Prefix must not contain braces or spaces")
	}
	c.PublicURL = strings.TrimRight(cmp.Or(c.PublicURL, "http://localhost:8080"), "/")
	c.SenderName = cmp.Or(c.SenderName, "Missive")
	if len(c.TokenKeys) == 0 {
		c.TokenKeys = map[string][]byte{"k1": storepkg.DeriveKey(c.Secret, "unsubscribe-token")}
		c.ActiveTokenKey = "k1"
	}
	if c.DataKeys == nil {
		k, err := storepkg.NewKeyring(map[string][]byte{"d0": storepkg.DeriveKey(c.Secret, "data-key")}, "d0")
		if err != nil {
			return err
		}
		c.DataKeys = k
	}
	c.DefaultTimezone = cmp.Or(c.DefaultTimezone, "Europe/Paris")
	if _, err := time.LoadLocation(c.DefaultTimezone); err != nil {
		return fmt.Errorf("dispatcher: Config.DefaultTimezone: %w", err)
	}
	if c.Caps == nil {
		c.Caps = []throttle.CapRule{
			{Channel: string(channels.Email), MarketingOnly: true, Limit: 2, Window: 7 * 24 * time.Hour},
			{Channel: string(channels.SMS), MarketingOnly: true, Limit: 1, Window: 24 * time.Hour},
		}
	}
	if c.Quiet == nil {
		y := time.Now().Year()
		c.Quiet = map[channels.Kind]throttle.Calendar{channels.SMS: throttle.DefaultSMSCalendar(y, y+1, y+2)}
	}
	if c.Jitter == 0 {
		c.Jitter = 2 * time.Minute
	}
	if c.ProviderRates == nil {
		c.ProviderRates = map[channels.Kind]throttle.Rate{
			channels.SMS: {Count: 30, Per: time.Second},
		}
	}
	if c.SendQueues == 0 && storepkg.IsCluster(c.Redis) {
		// asynq keeps each queue on one slot: 16 send queues spread the
		// sends over the shards (the pipeline's default of 1 suits one
		// Redis).
		c.SendQueues = ClusterSendQueues
	}
	c.SendTTL = cmp.Or(c.SendTTL, 90*24*time.Hour)
	c.InactiveAfter = cmp.Or(c.InactiveAfter, privacy.DefaultInactiveAfter)
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// ClusterSendQueues is how many send queues a Dispatcher on Redis Cluster
// has unless Config.SendQueues says otherwise: enough to put some on every
// shard of a cluster of a few masters.
const ClusterSendQueues = 16

// Dispatcher is Missive assembled: every part, built from one Config and
// connected through the small interfaces each part declares. It is safe
// for concurrent use.
type Dispatcher struct {
	Config   Config
	Store    *storepkg.Store
	Gate     *gatepkg.Gate
	Limiter  *throttle.Limiter
	Caps     *throttle.Caps
	Signer   *templates.Signer
	Logger   *slog.Logger
	Consent  *consent.Manager
	Pipeline *pipeline.Pipeline
	Feedback *feedback.Handler
	Privacy  *privacy.Privacy
	// Scheduler fires due runs while it leads.
	Scheduler *schedule.Scheduler
	// Signups runs double opt-in.
	Signups *signup.Signups
	Hooks   *webhook.Hooks
	// Webhooks registers outbound webhook endpoints and delivers the
	// events they subscribe to.
	Webhooks *outbound.Webhooks
	// Sequences enrols contacts in sequences and takes their steps.
	Sequences *sequence.Engine
	// Events receives the events of every operation: the outbound
	// webhooks and the sequences (which enrol and stop on them).
	Events dispatcher.Events
}

// New validates cfg and returns a Dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	for k, cal := range cfg.Quiet {
		if err := cal.Validate(); err != nil {
			return nil, fmt.Errorf("dispatcher: quiet hours for %s: %w", k, err)
		}
	}
	signer, err := templates.NewSigner(cfg.TokenKeys, cfg.ActiveTokenKey)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: token signer: %w", err)
	}
	store := storepkg.NewStore(cfg.Redis, cfg.Prefix, storepkg.DeriveKey(cfg.Secret, "address-hash"), cfg.Now, cfg.SendTTL)
	store.Keys = cfg.DataKeys
	caps := throttle.NewCaps(cfg.Redis, cfg.Prefix, cfg.Caps)
	d := &Dispatcher{
		Config:  cfg,
		Store:   store,
		Caps:    caps,
		Gate:    gatepkg.New(gatepkg.Config{Loader: store, Caps: caps, Quiet: cfg.Quiet, Jitter: cfg.Jitter}),
		Limiter: throttle.NewLimiter(cfg.Redis, cfg.Prefix),
		Signer:  signer,
		Logger:  cfg.Logger,
		Consent: consent.New(store, cfg.Now),
	}
	d.Webhooks, err = outbound.New(outbound.Config{Store: store, HTTPClient: cfg.HTTPClient, Timeout: cfg.WebhookTimeout, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	// The sequences are built once the pipeline is: until then, events
	// go to the webhooks alone.
	d.Events = dispatcher.EmitFunc(func(ctx context.Context, e dispatcher.Event) {
		d.Webhooks.Emit(ctx, e)
		if d.Sequences != nil {
			d.Sequences.Emit(ctx, e)
		}
	})
	d.Consent.SetEvents(d.Events)
	store.ConsentsImported = func(ctx context.Context, contact string, evs []dispatcher.ConsentEvent) {
		for _, e := range dispatcher.ConsentChanges(contact, evs) {
			d.Events.Emit(ctx, e)
		}
	}
	d.Feedback, err = feedback.New(feedback.Config{Store: store, Consent: d.Consent, Policy: cfg.Feedback, Secret: cfg.Secret,
		BounceDomain: cfg.BounceDomain, SendTTL: cfg.SendTTL, ClaimLease: cfg.FeedbackClaimLease, Metrics: cfg.Metrics, Events: d.Events, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	// The pipeline renders confirmations from the pending sign-ups, and
	// the sign-ups send through the pipeline: the closure reaches Signups
	// once it is built below.
	confirmationData := func(ctx context.Context, ref string) (map[string]string, string, error) {
		return d.Signups.ConfirmationData(ctx, ref)
	}
	d.Pipeline, err = pipeline.New(pipeline.Config{
		Store: store, Gate: d.Gate, Caps: caps, Limiter: d.Limiter, Signer: signer, Feedback: d.Feedback, RefData: confirmationData,
		Prefix: cfg.Prefix, PublicURL: cfg.PublicURL, Channels: cfg.Channels, EmailFrom: cfg.EmailFrom,
		ListUnsubscribeMailto: cfg.ListUnsubscribeMailto, ProviderRates: cfg.ProviderRates,
		Tuning: cfg.Tuning, Events: d.Events, Metrics: cfg.Metrics, Now: cfg.Now, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	d.Feedback.SetRuns(d.Pipeline)
	d.Pipeline.SetWebhooks(d.Webhooks, func(err error) bool { return errors.Is(err, outbound.ErrBusy) })
	d.Privacy, err = privacy.New(privacy.Config{Store: store, Runs: d.Pipeline, Caps: caps, SenderName: cfg.SenderName,
		Processors: cfg.Processors, SendTTL: cfg.SendTTL, InactiveAfter: cfg.InactiveAfter, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	d.Signups, err = signup.New(signup.Config{Store: store, Pipeline: d.Pipeline, Limiter: d.Limiter, Secret: cfg.Secret,
		PublicURL: cfg.PublicURL, SenderName: cfg.SenderName, DefaultTimezone: cfg.DefaultTimezone, Events: d.Events, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	d.Hooks = webhook.New(webhook.Config{Store: store, Feedback: d.Feedback, Consent: d.Consent, Signups: d.Signups,
		ESP: cfg.ESP, TwilioAuthToken: cfg.TwilioAuthToken, ValidTwilioSignature: cfg.ValidTwilioSignature,
		PublicURL: cfg.PublicURL, SenderName: cfg.SenderName, HTTPClient: cfg.HTTPClient, ClaimLease: cfg.FeedbackClaimLease,
		Now: cfg.Now, Logger: cfg.Logger})
	d.Sequences, err = sequence.New(sequence.Config{Store: store, Pipeline: d.Pipeline, DefaultTimezone: cfg.DefaultTimezone, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	d.Pipeline.SetSequences(d.Sequences)
	store.TagsAdded = func(ctx context.Context, added map[string][]string) error {
		err := d.Sequences.TagsAdded(ctx, added)
		if err != nil && ctx.Err() == nil {
			cfg.Logger.Warn("sequences: tags not applied yet; the scheduler applies them from the journal", "error", err)
		}
		return err
	}
	d.Scheduler, err = schedule.New(schedule.Config{Store: store, Runs: d.Pipeline, Sequences: d.Sequences, Daily: d.Privacy.MaybePurge, Metrics: cfg.Metrics, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Close releases what the Dispatcher holds: nothing today, since the Redis
// client belongs to the caller; callers defer it all the same.
func (d *Dispatcher) Close() error { return nil }

// Ready reports whether Redis answers.
func (d *Dispatcher) Ready(ctx context.Context) error {
	return d.Config.Redis.Ping(ctx).Err()
}

// readyTimeout bounds a readiness check.
const readyTimeout = 2 * time.Second

// MountHealth adds the health checks to mux, for the API's listener and
// the operations listener alike: GET /healthz (the process answers) and
// GET /readyz (503 while Redis does not answer, Ready).
func (d *Dispatcher) MountHealth(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := d.Ready(ctx); err != nil {
			d.Logger.Warn("not ready", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
}

// SecureClaims inspects the Redis the Dispatcher was given and makes send
// claims as durable as it allows: with replicas, each claim waits for one
// (Store.ClaimReplicas); without, a claim is as durable as the server's
// append-only file. It logs at start what a crash of Redis can cost: a
// warning when it can send messages again, naming the settings to change.
// Redis Cluster is not inspected: each shard needs appendfsync always.
func (d *Dispatcher) SecureClaims(ctx context.Context) storepkg.Durability {
	if storepkg.IsCluster(d.Config.Redis) {
		d.Logger.Warn("Redis Cluster: cannot verify that send claims survive a crash; run every shard with appendonly yes and appendfsync always, or a crash can send messages again")
		return storepkg.Durability{Unverified: true}
	}
	dur, err := storepkg.CheckDurability(ctx, d.Config.Redis)
	if err != nil {
		d.Logger.Warn("cannot inspect Redis: a crash of Redis may send messages again unless it runs with appendfsync always or a replica", "error", err)
		return storepkg.Durability{Unverified: true}
	}
	d.Store.ClaimReplicas = dur.ClaimReplicas()
	switch {
	case dur.ClaimReplicas() > 0:
		d.Logger.Info("send claims wait for a Redis replica before each message leaves (WAIT): a failover cannot send one twice",
			"replicas", dur.Replicas)
	case dur.ClaimsDurable():
		d.Logger.Info("send claims are durable on reply (appendfsync always)")
	default:
		d.Logger.Warn(dur.Warning())
	}
	return dur
}

// HandleBounceReport applies a report the bounce listener parsed from a
// mail to the VERP address token: feedback's HandleBounce, with source
// "arf" for a complaint report and "dsn" for the others, and its errors.
func (d *Dispatcher) HandleBounceReport(ctx context.Context, token string, r *bounce.Report) error {
	rcpts := make([]feedback.BounceRecipient, len(r.Recipients))
	for i, x := range r.Recipients {
		rcpts[i] = feedback.BounceRecipient{Class: x.Class, Status: x.Status}
	}
	source := "dsn"
	if r.Kind == bounce.KindARF {
		source = "arf"
	}
	return d.Feedback.HandleBounce(ctx, token, source, rcpts)
}

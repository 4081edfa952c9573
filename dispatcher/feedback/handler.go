package feedback

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
	"github.com/missive-dev/missive/dispatcher/metrics"
	"github.com/missive-dev/missive/dispatcher/store"
)

// Runs is what feedback needs of the runs' machinery (pipeline.Pipeline):
// finishing a run whose last send settled, and pausing a campaign whose
// run passed the policy's rates.
type Runs interface {
	CompleteRun(ctx context.Context, run string) error
	SetCampaignState(ctx context.Context, id string, action string) (*dispatcher.Campaign, error)
}

// Config configures a Handler. Zero values take the defaults in each
// field's comment.
type Config struct {
	// Store holds sends, suppressions and counters. Required.
	Store *store.Store
	// Consent withdraws consents on complaints. Required.
	Consent *consent.Manager
	// Runs completes runs and pauses campaigns. Required; it may be set
	// after New with SetRuns (the pipeline needs the Handler too).
	Runs Runs
	// Policy is what feedback does to the suppression list and to runs.
	Policy Policy
	// Secret keys the VERP MACs; 32 bytes at least. Required.
	Secret []byte
	// BounceDomain, when set, makes the envelope sender of each email a
	// VERP address, bounces+<send id>.<mac>@BounceDomain. Empty: the
	// channel's return path.
	BounceDomain string
	// SendTTL is how long claims and VERP records of a send are kept.
	// Default 90 days.
	SendTTL time.Duration
	// ClaimLease is how long a piece of feedback being applied holds its
	// claim: a handler that dies midway leaves the report to a retry of
	// the provider's once it ends. Default 2 minutes.
	ClaimLease time.Duration
	// Metrics counts the feedback applied. Default: none.
	Metrics *metrics.Metrics
	// Events receives the facts feedback establishes: delivered, bounced,
	// complained, failed, suppressed. Default: none.
	Events dispatcher.Events
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives operational logs, never personal data. Default
	// slog.Default().
	Logger *slog.Logger
}

// Handler applies provider feedback: to the send's state, the suppression
// list, the consent ledger and the run's counters. It is safe for
// concurrent use.
type Handler struct {
	Store        *store.Store
	consent      *consent.Manager
	runs         Runs
	policy       Policy
	secret       []byte
	bounceDomain string
	sendTTL      time.Duration
	claimLease   time.Duration
	now          func() time.Time
	log          *slog.Logger
	m            *metrics.Metrics
	events       dispatcher.Events
}

// New validates cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil || cfg.Consent == nil || len(cfg.Secret) < 32 {
		return nil, errors.New("feedback: Config.Store, Consent and a Secret of 32 bytes are required")
	}
	cfg.Policy.SetDefaults()
	h := &Handler{Store: cfg.Store, consent: cfg.Consent, runs: cfg.Runs, policy: cfg.Policy, secret: cfg.Secret,
		bounceDomain: cfg.BounceDomain, sendTTL: cfg.SendTTL, claimLease: cmp.Or(cfg.ClaimLease, 2*time.Minute), now: cfg.Now, log: cfg.Logger, m: cfg.Metrics,
		events: cmp.Or[dispatcher.Events](cfg.Events, dispatcher.NoEvents)}
	if h.sendTTL == 0 {
		h.sendTTL = 90 * 24 * time.Hour
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	return h, nil
}

// SetRuns gives the Handler the runs' machinery, for a pipeline built
// after it.
func (d *Handler) SetRuns(r Runs) { d.runs = r }

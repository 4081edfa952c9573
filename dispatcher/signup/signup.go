package signup

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle"
)

// Sender decides and queues one send (pipeline.Pipeline): the
// confirmation goes the one send path.
type Sender interface {
	DecideOne(ctx context.Context, o pipeline.OneSend) (*dispatcher.Send, error)
}

// Config configures Signups. Zero values take the defaults in each
// field's comment.
type Config struct {
	// Store holds contacts, topics and pending sign-ups. Required.
	Store *store.Store
	// Pipeline sends the confirmations. Required.
	Pipeline Sender
	// Limiter limits confirmations per address. Required.
	Limiter *throttle.Limiter
	// Secret keys the confirmation tokens; 32 bytes at least. Required.
	Secret []byte
	// PublicURL is the base of confirmation links. Default
	// "http://localhost:8080".
	PublicURL string
	// SenderName is how confirmations name the sender. Default "Missive".
	SenderName string
	// DefaultTimezone is the zone of contacts created by a sign-up.
	// Default "Europe/Paris".
	DefaultTimezone string
	// Events receives signup.confirmed and the consents a confirmation
	// grants. Default: none.
	Events dispatcher.Events
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives operational logs, never personal data. Default
	// slog.Default().
	Logger *slog.Logger
}

// Signups runs double opt-in: a sign-up leaves a pending record and sends
// a confirmation; the confirmation grants the consents, once. It is safe
// for concurrent use.
type Signups struct {
	cfg      Config
	Store    *store.Store
	Pipeline Sender
	limiter  *throttle.Limiter
	log      *slog.Logger
}

// New validates cfg and returns Signups.
func New(cfg Config) (*Signups, error) {
	if cfg.Store == nil || cfg.Pipeline == nil || cfg.Limiter == nil || len(cfg.Secret) < 32 {
		return nil, errors.New("signup: Config.Store, Pipeline, Limiter and a Secret of 32 bytes are required")
	}
	cfg.PublicURL = strings.TrimRight(cmp.Or(cfg.PublicURL, "http://localhost:8080"), "/")
	cfg.SenderName = cmp.Or(cfg.SenderName, "Missive")
	if cfg.Events == nil {
		cfg.Events = dispatcher.NoEvents
	}
	cfg.DefaultTimezone = cmp.Or(cfg.DefaultTimezone, "Europe/Paris")
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Signups{cfg: cfg, Store: cfg.Store, Pipeline: cfg.Pipeline, limiter: cfg.Limiter, log: cfg.Logger}, nil
}

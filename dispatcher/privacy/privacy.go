package privacy

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/missive-dev/missive/dispatcher/store"
)

// Runs is what erasure needs of the runs' machinery (pipeline.Pipeline):
// finishing a run whose last in-flight send the erasure cancelled.
type Runs interface {
	CompleteRun(ctx context.Context, run string) error
}

// Forgetter deletes a contact's frequency-cap records (throttle.Caps).
type Forgetter interface {
	Forget(ctx context.Context, contact string) error
}

// Config configures Privacy. Zero values take the defaults in each
// field's comment.
type Config struct {
	// Store holds the records. Required.
	Store *store.Store
	// Runs completes runs. Required.
	Runs Runs
	// Caps forgets cap records. Required.
	Caps Forgetter
	// SenderName names the controller in the record of processing.
	// Default "Missive".
	SenderName string
	// Processors name who delivers messages on the controller's behalf,
	// for the record of processing. Default: none.
	Processors []string
	// SendTTL is how long send records are kept. Default 90 days.
	SendTTL time.Duration
	// InactiveAfter is how long a contact without any granted consent is
	// kept after its last activity (PurgeInactive). Default 3 years, the
	// CNIL's term for prospects; negative disables the purge.
	InactiveAfter time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives operational logs, never personal data. Default
	// slog.Default().
	Logger *slog.Logger
}

// Privacy erases and exports contacts, purges inactive ones and writes
// the record of processing. It is safe for concurrent use.
type Privacy struct {
	cfg   Config
	Store *store.Store
	caps  Forgetter
	runs  Runs
	log   *slog.Logger
	// retention runs the daily purge at most once at a time here.
	retention retentionJob
}

// New validates cfg and returns Privacy.
func New(cfg Config) (*Privacy, error) {
	if cfg.Store == nil || cfg.Runs == nil || cfg.Caps == nil {
		return nil, errors.New("privacy: Config.Store, Runs and Caps are required")
	}
	cfg.SenderName = cmp.Or(cfg.SenderName, "Missive")
	cfg.SendTTL = cmp.Or(cfg.SendTTL, 90*24*time.Hour)
	cfg.InactiveAfter = cmp.Or(cfg.InactiveAfter, DefaultInactiveAfter)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Privacy{cfg: cfg, Store: cfg.Store, caps: cfg.Caps, runs: cfg.Runs, log: cfg.Logger}, nil
}

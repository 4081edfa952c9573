// Package webhook is the HTTP glue of the providers' callbacks: the email
// providers' event webhooks (SES through SNS, SendGrid, Mailgun,
// Postmark) and Twilio's status callbacks and inbound messages. It reads
// and authenticates requests with the protocol packages
// (channels/email/esp, channels/sms/twilioproto), claims each event once,
// and hands the feedback to package feedback, the keywords to package
// consent and the YES replies to package signup. It answers what each
// provider expects: 200 once handled, 4xx with nothing changed, 503 when
// a retry should do the work.
//
//	h := webhook.New(webhook.Config{Store: st, Feedback: fb, Consent: cm, Signups: su, PublicURL: url})
//	h.Mount(mux)
package webhook

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher/consent"
	"github.com/missive-dev/missive/dispatcher/store"
)

// Limits of a webhook's body.
const (
	maxJSONBody = 1 << 20
	maxFormBody = 64 << 10
)

// ESPConfig holds the email providers' webhook settings.
type ESPConfig struct {
	// SESTopicARNs are the SNS topics whose notifications are accepted.
	// Empty: /webhooks/email/ses answers 404.
	SESTopicARNs []string
	// SendGridPublicKey verifies SendGrid's signed event webhook: the
	// base64 DER (or PEM) ECDSA public key from SendGrid's settings.
	// Empty: /webhooks/email/sendgrid answers 404.
	SendGridPublicKey string
	// MailgunSigningKey verifies Mailgun's webhook signatures (HMAC).
	// Empty: /webhooks/email/mailgun answers 404.
	MailgunSigningKey string
	// PostmarkUser and PostmarkPassword are the basic-auth credentials set
	// on Postmark's webhook URL. Empty: /webhooks/email/postmark answers 404.
	PostmarkUser, PostmarkPassword string
}

// Recorder applies a piece of feedback (feedback.Handler); it returns
// feedback.ErrUnknownSend for feedback about nothing Missive holds.
type Recorder interface {
	RecordDelivery(ctx context.Context, f channels.Feedback) error
}

// Confirmer confirms the pending SMS sign-up of a number that replied YES
// (signup.Signups).
type Confirmer interface {
	ConfirmSMSOptIn(ctx context.Context, phone, messageSID string) (bool, error)
}

// Config configures Hooks. Zero values take the defaults in each field's
// comment.
type Config struct {
	// Store holds the claims of events and messages. Required.
	Store *store.Store
	// Feedback records delivery feedback. Required.
	Feedback Recorder
	// Consent applies STOP and START. Required.
	Consent *consent.Manager
	// Signups confirms SMS sign-ups. Required.
	Signups Confirmer
	// ESP configures the email providers' webhooks; a provider without
	// settings is not mounted and answers 404.
	ESP ESPConfig
	// TwilioAuthToken validates Twilio's signatures with
	// ValidTwilioSignature. Empty: the Twilio webhooks answer 404.
	TwilioAuthToken string
	// ValidTwilioSignature checks a webhook signature
	// (twilioproto.ValidSignature); required with TwilioAuthToken.
	ValidTwilioSignature func(authToken, url string, params map[string]string, signature string) bool
	// PublicURL is the URL Twilio calls, whose signature it computes.
	PublicURL string
	// SenderName is how SMS replies name the sender. Default "Missive".
	SenderName string
	// HTTPClient fetches SNS certificates and confirms SNS subscriptions.
	// Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// ClaimLease is how long an email provider's event (or Mailgun token)
	// being handled holds its claim: a process that dies midway leaves
	// the event to the provider's retry once the lease ends. Default 2
	// minutes.
	ClaimLease time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives operational logs, never personal data. Default
	// slog.Default().
	Logger *slog.Logger
}

// Hooks serves the providers' webhooks.
type Hooks struct {
	cfg      Config
	Store    *store.Store
	Feedback Recorder
	consent  *consent.Manager
	Signups  Confirmer
	log      *slog.Logger
}

// New returns Hooks for cfg.
func New(cfg Config) *Hooks {
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	cfg.SenderName = cmp.Or(cfg.SenderName, "Missive")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.ClaimLease = cmp.Or(cfg.ClaimLease, 2*time.Minute)
	return &Hooks{cfg: cfg, Store: cfg.Store, Feedback: cfg.Feedback, consent: cfg.Consent, Signups: cfg.Signups, log: cfg.Logger}
}

// Mount adds the configured webhooks to mux.
func (d *Hooks) Mount(mux *http.ServeMux) {
	d.mountESP(mux)
	d.mountTwilio(mux)
	d.mountTwilioStatus(mux)
}

package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/esp"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/feedback"
	"github.com/missive-dev/missive/dispatcher/store"
)

// espEventTTL is how long a provider's event id is remembered, so that a
// retried webhook does not count a soft bounce twice.
const espEventTTL = 24 * time.Hour

// espHooks serves the email providers' webhooks of one API handler: HTTP
// and records over package esp, which knows the providers' protocols.
type espHooks struct {
	d        *Hooks
	sns      *esp.SNS
	sendgrid *esp.SendGrid
	mailgun  *esp.Mailgun
	postmark *esp.Postmark
}

// mountESP adds the email providers' webhooks to the public routes. A
// provider without settings is not mounted and answers 404; so is
// SendGrid when its public key cannot be parsed (logged at start).
//
// Every webhook answers 200 with the count of events recorded and ignored
// once it has handled them (so that the provider stops retrying), 4xx for
// a bad signature or body with nothing changed, and 503 when Redis fails
// (or, for SES, when AWS cannot be reached), so that the provider retries.
func (d *Hooks) mountESP(mux *http.ServeMux) {
	cfg := d.cfg.ESP
	h := &espHooks{d: d}
	// The readers' constructors fail only when a setting is missing: the
	// provider is then not configured. SendGrid's key may also not parse.
	var err error
	if h.sns, err = esp.NewSNS(cfg.SESTopicARNs, esp.NewCertCache(d.cfg.HTTPClient)); err == nil {
		mux.HandleFunc("POST /webhooks/email/ses", h.handleSES)
	}
	if cfg.SendGridPublicKey != "" {
		if h.sendgrid, err = esp.NewSendGrid(cfg.SendGridPublicKey); err != nil {
			d.log.Error("sendgrid webhook not mounted: public key", "error", err)
		} else {
			mux.HandleFunc("POST /webhooks/email/sendgrid", h.handleSendGrid)
		}
	}
	if h.mailgun, err = esp.NewMailgun(cfg.MailgunSigningKey); err == nil {
		mux.HandleFunc("POST /webhooks/email/mailgun", h.handleMailgun)
	}
	if h.postmark, err = esp.NewPostmark(cfg.PostmarkUser, cfg.PostmarkPassword); err == nil {
		mux.HandleFunc("POST /webhooks/email/postmark", h.handlePostmark)
	}
}

// espOutcome is the answer to a handled webhook.
type espOutcome struct {
	Recorded int `json:"recorded"`
	Ignored  int `json:"ignored"`
}

// handleSES handles Amazon SES notifications delivered by SNS. A
// SubscriptionConfirmation is confirmed by visiting its SubscribeURL.
func (h *espHooks) handleSES(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r, esp.SourceSES)
	if !ok {
		return
	}
	ctx := r.Context()
	m, err := h.sns.Parse(ctx, body, h.d.cfg.Now())
	if errors.Is(err, esp.ErrUnreachable) {
		h.d.log.Warn("ses webhook: signing certificate unavailable", "error", errors.Unwrap(err))
		retryLater(w, "could not fetch the signing certificate; retry later")
		return
	}
	if err != nil {
		h.refuse(w, esp.SourceSES, err)
		return
	}
	switch m.Type {
	case esp.SNSSubscriptionConfirmation:
		var e *esp.Error
		if err := h.sns.Confirm(ctx, m); errors.As(err, &e) && e.Status == http.StatusBadGateway {
			// Neither the URL nor the error is logged: they hold the
			// subscription token.
			h.d.log.Warn("ses webhook: subscription not confirmed", "topic_arn", m.TopicARN)
			dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeUpstream, Message: "could not confirm the subscription; retry later"})
			return
		} else if err != nil {
			h.refuse(w, esp.SourceSES, err)
			return
		}
		h.d.log.Info("ses webhook: subscription confirmed", "topic_arn", m.TopicARN)
		dispatcher.WriteJSON(w, http.StatusOK, map[string]bool{"confirmed": true})
	case esp.SNSUnsubscribeConfirmation:
		// Nothing to do: an unsubscription we did not ask for is the
		// operator's to notice in AWS.
		h.d.log.Warn("ses webhook: topic unsubscribed", "topic_arn", m.TopicARN)
		dispatcher.WriteJSON(w, http.StatusOK, espOutcome{})
	default:
		h.finish(w, r, esp.SourceSES, m.Events, store.Claim{}, 0)
	}
}

// handleSendGrid handles SendGrid's signed event webhook.
func (h *espHooks) handleSendGrid(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r, esp.SourceSendGrid)
	if !ok {
		return
	}
	ev, err := h.sendgrid.Parse(r.Header, body, h.d.cfg.Now())
	if err != nil {
		h.refuse(w, esp.SourceSendGrid, err)
		return
	}
	h.finish(w, r, esp.SourceSendGrid, ev, store.Claim{}, 0)
}

// handleMailgun handles Mailgun's webhooks, each token taken once before
// anything is recorded.
func (h *espHooks) handleMailgun(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r, esp.SourceMailgun)
	if !ok {
		return
	}
	ev, token, err := h.mailgun.Parse(body, h.d.cfg.Now())
	if err != nil {
		h.refuse(w, esp.SourceMailgun, err)
		return
	}
	// The token is held for a lease while the request is handled, then
	// kept as used: a process that dies in between (where no release
	// runs) leaves the request to Mailgun's retry, with the same token.
	claim := h.d.Store.MailgunTokenClaim(token)
	switch state, err := h.d.Store.AwaitClaim(r.Context(), claim, h.d.cfg.ClaimLease, feedback.ClaimWait); {
	case err != nil:
		h.d.log.Error("mailgun webhook: token not recorded", "error", err)
		retryLater(w, "could not record the event; retry later")
		return
	case state == store.ClaimDone:
		h.refuse(w, esp.SourceMailgun, esp.MailgunTokenReused())
		return
	case state == store.ClaimBusy:
		retryLater(w, "the event is being recorded; retry later")
		return
	}
	// Should recording fail, the token is released: the retry carries it.
	h.finish(w, r, esp.SourceMailgun, ev, claim, esp.MailgunTokenTTL)
}

// handlePostmark handles Postmark's webhooks, whose credentials are checked
// before the body is read.
func (h *espHooks) handlePostmark(w http.ResponseWriter, r *http.Request) {
	if err := h.postmark.Authorize(r.Header); err != nil {
		h.refuse(w, esp.SourcePostmark, err)
		return
	}
	body, ok := h.readBody(w, r, esp.SourcePostmark)
	if !ok {
		return
	}
	ev, err := h.postmark.Parse(r.Header, body)
	if err != nil {
		h.refuse(w, esp.SourcePostmark, err)
		return
	}
	h.finish(w, r, esp.SourcePostmark, ev, store.Claim{}, 0)
}

// finish records the events of an authenticated webhook and answers. When
// they cannot be recorded it releases token, the claim of the request
// itself (the provider's retry carries the same), and answers 503; when
// they are, it keeps token as used for tokenTTL.
func (h *espHooks) finish(w http.ResponseWriter, r *http.Request, provider string, ev esp.Events, token store.Claim, tokenTTL time.Duration) {
	ctx := r.Context()
	out, err := h.apply(ctx, provider, ev.Feedback)
	if err == nil {
		err = h.d.Store.MarkDone(ctx, token, tokenTTL)
	}
	if err != nil {
		h.release(ctx, provider, token)
		h.d.log.Error("esp webhook: events not recorded", "provider", provider, "recorded", out.Recorded, "error", err)
		retryLater(w, "could not record the events; retry later")
		return
	}
	out.Ignored += ev.Ignored
	h.d.log.Info("esp webhook", "provider", provider, "recorded", out.Recorded, "ignored", out.Ignored)
	dispatcher.WriteJSON(w, http.StatusOK, out)
}

// apply records the feedback of one request from provider: an entry is
// kept when it names a send of ours, or an address when it is not a
// delivery, and once per provider event id; ErrUnknownSend counts as
// ignored. It returns an error only when Redis fails; entries recorded
// before stay recorded and are skipped by the provider's retry.
func (h *espHooks) apply(ctx context.Context, provider string, fbs []channels.Feedback) (espOutcome, error) {
	var out espOutcome
	s := h.d.Store
	for _, f := range fbs {
		if f.Send != "" {
			if _, err := s.Send(ctx, f.Send); dispatcher.IsCode(err, dispatcher.CodeNotFound) {
				f.Send = "" // a Message-ID that looks like ours but is not
			} else if err != nil {
				return out, fmt.Errorf("%s webhook: read send: %w", provider, err)
			}
		}
		if f.Kind == "" || (f.Send == "" && (f.Address == "" || f.Kind == channels.Delivered)) {
			out.Ignored++ // nothing it could change
			continue
		}
		// A lease while the event is recorded, then a mark: a process
		// that dies in between leaves the event to the provider's retry.
		claim := s.ESPEventClaim(f)
		switch state, err := s.AwaitClaim(ctx, claim, h.d.cfg.ClaimLease, feedback.ClaimWait); {
		case err != nil:
			return out, fmt.Errorf("%s webhook: claim event: %w", provider, err)
		case state == store.ClaimDone:
			out.Ignored++ // a retry of an event already recorded
			continue
		case state == store.ClaimBusy:
			return out, fmt.Errorf("%s webhook: %w", provider, feedback.ErrBusy)
		}
		switch err := h.d.Feedback.RecordDelivery(ctx, f); {
		case err == nil:
			if err := s.MarkDone(ctx, claim, espEventTTL); err != nil {
				return out, fmt.Errorf("%s webhook: %w", provider, err)
			}
			out.Recorded++
		case errors.Is(err, feedback.ErrUnknownSend):
			h.release(ctx, provider, claim)
			out.Ignored++
		default:
			h.release(ctx, provider, claim)
			return out, fmt.Errorf("%s webhook: %w", provider, err)
		}
	}
	return out, nil
}

// release drops a claim after a failure, so that the provider's retry
// takes it again; should that fail too, the claim stays until it expires.
func (h *espHooks) release(ctx context.Context, provider string, c store.Claim) {
	if err := h.d.Store.Release(ctx, c); err != nil {
		h.d.log.Warn("esp webhook: claim not released", "provider", provider, "error", err)
	}
}

// refuse answers a request package esp refused (an *esp.Error) with its
// status, nothing changed, and logs why, never with the request's values.
func (h *espHooks) refuse(w http.ResponseWriter, provider string, err error) {
	var e *esp.Error
	if !errors.As(err, &e) {
		// esp refuses with *esp.Error only; refuse anything else too.
		e = &esp.Error{Status: http.StatusBadRequest, Field: "body", Message: "could not be read", Err: err}
	}
	args := []any{"provider", provider, "status", e.Status, "field", e.Field}
	if e.Err != nil {
		args = append(args, "error", e.Err)
	}
	h.d.log.Warn("esp webhook refused", args...)
	code := dispatcher.CodeInvalid
	switch e.Status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="missive"`)
		code = dispatcher.CodeUnauthorized
	case http.StatusForbidden:
		code = dispatcher.CodeForbidden
	case http.StatusRequestEntityTooLarge:
		code = dispatcher.CodeTooLarge
	}
	dispatcher.WriteError(w, &dispatcher.Error{Code: code, Field: e.Field, Message: e.Message, Status: e.Status})
}

// readBody reads a webhook body of at most maxJSONBody bytes; on failure
// it has answered.
func (h *espHooks) readBody(w http.ResponseWriter, r *http.Request, provider string) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		e := &esp.Error{Status: http.StatusBadRequest, Field: "body", Message: "could not be read"}
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			e.Status, e.Message = http.StatusRequestEntityTooLarge, fmt.Sprintf("is larger than %d bytes", mb.Limit)
		}
		h.refuse(w, provider, e)
		return nil, false
	}
	return b, true
}

// retryLater answers 503 with Retry-After, so that the provider retries.
func retryLater(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "60")
	dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeUnavailable, Message: msg})
}

package webhook

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms/twilioproto"
	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// mountTwilio adds Twilio's webhooks to the public routes. Without an auth
// token no signature can be checked, so the routes are not mounted at all
// and answer 404.
func (d *Hooks) mountTwilio(mux *http.ServeMux) {
	if d.cfg.TwilioAuthToken == "" {
		return
	}
	mux.HandleFunc("POST /webhooks/twilio/inbound", d.twilioInbound)
}

// Retention of the record of a processed MessageSid: past any retry of
// Twilio's. A claim in progress lives much shorter, so that a crash in the
// middle lets a retry do the work.
const (
	twilioSIDDone    = 7 * 24 * time.Hour
	twilioSIDPending = 2 * time.Minute
)

// twilioInbound handles an SMS sent to our number: STOP and its synonyms
// suppress the number and withdraw its SMS marketing consents, START lifts
// that, HELP says who we are; anything else is ignored. The reply is TwiML
// that Twilio sends back as an SMS.
//
// Answers: 403 when the signature does not match (nothing changes), 400
// for a signed request without a usable MessageSid or From, 413 over the
// body limit, 415 for another content type, 503 when Redis fails or the
// same message is being handled at this moment (a retry will do).
func (d *Hooks) twilioInbound(w http.ResponseWriter, r *http.Request) {
	in, ok := readTwilio(d, w, r, twilioproto.ParseInbound)
	if !ok {
		return
	}
	from, err := dispatcher.NormalizePhone(string(in.From))
	if err != nil {
		refuseTwilioField(w, &twilioproto.FieldError{Field: "From", Message: "is not a phone number in E.164 form"})
		return
	}
	if in.Keyword == twilioproto.KeywordNone {
		// Nothing to do, nothing to remember: a retry is just as harmless.
		twilioproto.WriteTwiML(w, "")
		return
	}
	switch err := d.handleKeyword(r.Context(), in.Keyword, from, in.MessageSID); {
	case errors.Is(err, errSIDPending):
		w.Header().Set("Retry-After", "60")
		dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeUnavailable, Message: "this message is being handled; retry later"})
		return
	case err != nil:
		d.log.Error("twilio inbound: keyword not recorded", "keyword", in.Keyword.String(), "message_sid", in.MessageSID, "error", err)
		dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeUnavailable, Message: "could not record the message; retry later"})
		return
	}
	twilioproto.WriteTwiML(w, d.keywordReply(in.Keyword))
}

// readTwilio reads a Twilio webhook's request with readTwilioForm and its
// form with parse. When it returns false it has answered, with
// refuseTwilioField for a signed form parse refuses.
func readTwilio[T any](d *Hooks, w http.ResponseWriter, r *http.Request, parse func(url.Values) (T, error)) (T, bool) {
	var zero T
	if !d.readTwilioForm(w, r) {
		return zero, false
	}
	v, err := parse(r.PostForm)
	if err != nil {
		var fe *twilioproto.FieldError
		if !errors.As(err, &fe) {
			// twilioproto refuses with *FieldError only; refuse anything else too.
			fe = &twilioproto.FieldError{Field: "body", Message: "could not be read"}
		}
		refuseTwilioField(w, fe)
		return zero, false
	}
	return v, true
}

// refuseTwilioField answers 400 for a signed form with an unusable field,
// naming the field, never quoting it: Twilio's retry would bring the same
// form.
func refuseTwilioField(w http.ResponseWriter, fe *twilioproto.FieldError) {
	dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeInvalid, Field: fe.Field, Message: fe.Message, Status: http.StatusBadRequest})
}

// readTwilioForm parses the form of a Twilio webhook into r.PostForm and
// checks its signature. When it returns false it has answered: 415 for
// another content type, 413 over maxFormBody, 400 for a body that is not
// a form, 403 when the signature does not match.
func (d *Hooks) readTwilioForm(w http.ResponseWriter, r *http.Request) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeMediaType, Field: "Content-Type",
			Message: "must be application/x-www-form-urlencoded"})
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeTooLarge, Field: "body", Message: fmt.Sprintf("is larger than %d bytes", mb.Limit)})
			return false
		}
		dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeInvalid, Field: "body", Message: "is not a valid form", Status: http.StatusBadRequest})
		return false
	}
	if !d.twilioSigned(r) {
		dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeForbidden, Field: "X-Twilio-Signature", Message: "does not match the request"})
		return false
	}
	return true
}

// twilioSigned reports whether X-Twilio-Signature signs the URL Twilio
// called (our public URL, never the Host header, which the caller chooses)
// and the POST parameters. A parameter given twice cannot be checked with
// one value per name, and Twilio never sends one twice: it fails.
func (d *Hooks) twilioSigned(r *http.Request) bool {
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" {
		return false
	}
	params := make(map[string]string, len(r.PostForm))
	for k, vs := range r.PostForm {
		if len(vs) != 1 {
			return false
		}
		params[k] = vs[0]
	}
	u := d.cfg.PublicURL + r.URL.EscapedPath()
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return d.cfg.ValidTwilioSignature(d.cfg.TwilioAuthToken, u, params, sig)
}

// errSIDPending means another request is handling the same MessageSid.
var errSIDPending = errors.New("twilio inbound: message being handled")

// handleKeyword applies a STOP, START or HELP from the number from, once
// per MessageSid: the SID is claimed as pending before anything changes
// and marked done after; a duplicate of a done message changes nothing. If a
// step fails the claim is dropped, so Twilio's retry does the whole work
// again; every step is idempotent (suppressing twice is one entry, and
// only consents in the expected state change).
//
// The writes cannot be one MULTI: the suppression entry and the contact's
// keys live in different Redis Cluster slots. The suppression is written
// first, so an opt-out protects the number even if the rest fails.
func (d *Hooks) handleKeyword(ctx context.Context, kw twilioproto.Keyword, from, sid string) (err error) {
	if kw == twilioproto.KeywordHelp {
		return nil
	}
	s := d.Store
	claim := s.InboundSMSClaim(sid)
	switch state, err := s.ClaimPending(ctx, claim, twilioSIDPending); {
	case err != nil:
		return fmt.Errorf("claim message: %w", err)
	case state == storepkg.ClaimDone:
		return nil
	case state == storepkg.ClaimBusy:
		return errSIDPending
	}
	defer func() {
		if err == nil {
			return
		}
		if rerr := s.Release(ctx, claim); rerr != nil {
			d.log.Warn("twilio inbound: claim not released", "message_sid", sid, "error", rerr)
		}
	}()

	contact, err := s.ContactIDByAddress(ctx, channels.SMS, from)
	if errors.Is(err, dispatcher.ErrNotFound) {
		contact = ""
	} else if err != nil {
		return fmt.Errorf("find contact: %w", err)
	}
	evidence := map[string]string{"message_sid": sid}
	var changed []string
	switch kw {
	case twilioproto.KeywordStop:
		if changed, err = d.consent.StopSMS(ctx, contact, from, evidence); err != nil {
			return err
		}
	case twilioproto.KeywordStart:
		if _, err = d.consent.StartSMS(ctx, contact, from, evidence); err != nil {
			return err
		}
		// YES (or START) also confirms a pending sign-up of this number.
		if _, err := d.Signups.ConfirmSMSOptIn(ctx, from, sid); err != nil {
			return fmt.Errorf("confirm sign-up: %w", err)
		}
	}
	for _, topic := range changed {
		if err := s.CountFeedback(ctx, "", topic, storepkg.FeedbackUnsubscribes); err != nil {
			return fmt.Errorf("count unsubscribe: %w", err)
		}
	}
	if err := s.MarkDone(ctx, claim, twilioSIDDone); err != nil {
		return fmt.Errorf("mark message done: %w", err)
	}
	d.log.Info("twilio inbound: keyword recorded", "keyword", kw.String(), "message_sid", sid,
		"known_contact", contact != "", "topics", len(changed))
	return nil
}

// keywordReply is the SMS answering a keyword: French, then English,
// GSM-7 only (no ê, no typographic quotes) so that it stays one segment
// with a short sender name.
func (d *Hooks) keywordReply(kw twilioproto.Keyword) string {
	n := d.cfg.SenderName
	switch kw {
	case twilioproto.KeywordStop:
		return "Vous ne recevrez plus de SMS de " + n + ". Répondez START pour revenir. / " +
			"You will get no more texts from " + n + ". Reply START to come back."
	case twilioproto.KeywordStart:
		return "Les SMS de " + n + " sont réactivés. Répondez STOP pour vous désabonner. / " +
			"Texts from " + n + " are back on. Reply STOP to opt out."
	case twilioproto.KeywordHelp:
		return "SMS de " + n + ". Répondez STOP pour ne plus en recevoir, START pour revenir. / " +
			"Texts from " + n + ". Reply STOP to opt out, START to opt back in."
	}
	return ""
}

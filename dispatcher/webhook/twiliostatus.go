package webhook

import (
	"errors"
	"net/http"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms/twilioproto"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/feedback"
)

// twilioStatusPath is where Twilio posts the status of the messages
// Missive sent; the SMS channel's StatusCallback is PublicURL plus this.
const twilioStatusPath = "/webhooks/twilio/status"

// mountTwilioStatus adds Twilio's status callbacks to the public routes.
// Without an auth token no signature can be checked, so the route is not
// mounted and answers 404.
func (d *Hooks) mountTwilioStatus(mux *http.ServeMux) {
	if d.cfg.TwilioAuthToken == "" {
		return
	}
	mux.HandleFunc("POST "+twilioStatusPath, d.twilioStatus)
}

// twilioStatus handles a status callback of a message Missive sent: a
// delivery, a failure or a bounce is recorded on the send it belongs to
// (through RecordDelivery, which moves states forward only, applies the
// suppression policy and counts each send and kind once), so that
// retried, duplicated and out-of-order callbacks change nothing. What a
// status and its ErrorCode tell is twilioproto.ParseStatus's to say. A SID
// Missive does not know (not ours, or its record expired) is acknowledged
// and ignored.
//
// Answers: 200 with empty TwiML once handled, 403 when the signature does
// not match (nothing changes), 400 for a signed request without a usable
// MessageSid, MessageStatus or ErrorCode, 413 over the body limit, 415 for
// another content type, 503 when Redis fails (Twilio may retry).
func (d *Hooks) twilioStatus(w http.ResponseWriter, r *http.Request) {
	cb, ok := readTwilio(d, w, r, twilioproto.ParseStatus)
	if !ok {
		return
	}
	fb := cb.Feedback
	if fb.Kind == "" {
		twilioproto.WriteTwiML(w, "") // nothing to record
		return
	}
	sid, status := cb.MessageSID, cb.MessageStatus

	ctx := r.Context()

	send, err := d.Store.SendForProvider(ctx, sid)
	if errors.Is(err, dispatcher.ErrNotFound) {
		d.log.Debug("twilio status: unknown message", "message_sid", sid, "status", status)
		twilioproto.WriteTwiML(w, "")
		return
	}
	if err != nil {
		d.twilioStatusFailed(w, sid, status, err)
		return
	}
	// The number Twilio tried is the one to suppress, even if the contact
	// has changed theirs since; without a usable To, RecordDelivery takes
	// the contact's.
	to, err := dispatcher.NormalizePhone(string(fb.Address))
	if err != nil {
		to = ""
	}
	fb.Send, fb.Address = send, channels.Address(to)
	switch err := d.Feedback.RecordDelivery(ctx, fb); {
	case errors.Is(err, feedback.ErrUnknownSend):
		// The send was erased or expired: nothing left to update.
		d.log.Debug("twilio status: send gone", "message_sid", sid, "send", send, "status", status)
	case err != nil:
		d.twilioStatusFailed(w, sid, status, err)
		return
	default:
		d.log.Info("twilio status: recorded", "message_sid", sid, "send", send, "status", status,
			"kind", string(fb.Kind), "error_code", fb.Code)
	}
	twilioproto.WriteTwiML(w, "")
}

// twilioStatusFailed answers a status callback that could not be
// recorded: 503, so that Twilio's retry, if any, tries again.
func (d *Hooks) twilioStatusFailed(w http.ResponseWriter, sid, status string, err error) {
	d.log.Error("twilio status: not recorded", "message_sid", sid, "status", status, "error", err)
	w.Header().Set("Retry-After", "60")
	dispatcher.WriteError(w, &dispatcher.Error{Code: dispatcher.CodeUnavailable, Message: "could not record the status; retry later"})
}

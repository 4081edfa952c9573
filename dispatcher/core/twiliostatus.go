package core

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// twilioStatusPath is where Twilio posts the status of the messages
// Missive sent; the SMS channel's StatusCallback is PublicURL plus this.
const twilioStatusPath = "/webhooks/twilio/status"

// mountTwilioStatus adds Twilio's status callbacks to the public routes.
// Without an auth token no signature can be checked, so the route is not
// mounted and answers 404.
func (a *api) mountTwilioStatus() {
	if a.d.cfg.TwilioAuthToken == "" {
		return
	}
	a.mux.HandleFunc("POST "+twilioStatusPath, a.twilioStatus)
}

// Twilio error codes a status callback may carry that decide what
// happens to the number. They are channels/sms's (see its Classify); the
// dispatcher does not import that package, which brings twilio-go.
const (
	twilioInvalidTo      = "21211" // 'To' is not a valid phone number
	twilioOptedOut       = "21610" // the recipient replied STOP to this sender
	twilioNotMobile      = "21614" // 'To' is not a mobile number
	twilioUnreachable    = "30003" // handset off or out of coverage: temporary
	twilioUnknownHandset = "30005" // number unknown to the carrier
	twilioLandline       = "30006" // landline or unreachable carrier
)

var (
	// messageStatusPattern is a MessageStatus as Twilio writes them
	// (queued, sent, delivered, partially_delivered...).
	messageStatusPattern = regexp.MustCompile(`^[a-z_]{1,32}$`)
	// errorCodePattern is a Twilio error code.
	errorCodePattern = regexp.MustCompile(`^[0-9]{1,6}$`)
)

// twilioStatusEvent is the feedback a MessageStatus and ErrorCode carry,
// or false when they carry none: queued, accepted, scheduled, sending and
// sent say what Missive already holds (the send is "sent" once Twilio took
// it), and statuses Missive does not know are left for a later version
// rather than guessed at.
//
// A failure is the recipient's fault only for the codes that say the
// number cannot take SMS (suppressed for good), or that its owner opted
// out (suppressed as a STOP); 30003 is a soft bounce, which suppresses for
// a time after several (RecordDelivery's policy). Any other failure, and a
// failure without a code, is Missive's, the sender's or the carrier's
// (30007 filtered...): the send failed and the number is left alone.
func twilioStatusEvent(status, code string) (channels.FeedbackKind, bool) {
	switch status {
	case "delivered", "read":
		return channels.Delivered, true
	case "undelivered", "failed":
		switch code {
		case twilioUnknownHandset, twilioLandline, twilioInvalidTo, twilioNotMobile:
			return channels.HardBounce, true
		case twilioOptedOut:
			return channels.OptedOut, true
		case twilioUnreachable:
			return channels.SoftBounce, true
		}
		return channels.Undelivered, true
	}
	return "", false
}

// twilioStatus handles a status callback of a message Missive sent: a
// delivery, a failure or a bounce is recorded on the send it belongs to
// (through RecordDelivery, which moves states forward only, applies the
// suppression policy and counts each send and kind once), so that
// retried, duplicated and out-of-order callbacks change nothing. A SID
// Missive does not know (not ours, or its record expired) is acknowledged
// and ignored.
//
// Answers: 200 with empty TwiML once handled, 403 when the signature does
// not match (nothing changes), 400 for a signed request without a usable
// MessageSid, MessageStatus or ErrorCode, 413 over the body limit, 415 for
// another content type, 503 when Redis fails (Twilio may retry).
func (a *api) twilioStatus(w http.ResponseWriter, r *http.Request) {
	if !a.readTwilioForm(w, r) {
		return
	}
	f := r.PostForm
	sid := f.Get("MessageSid")
	if !messageSIDPattern.MatchString(sid) {
		writeJSON(w, http.StatusBadRequest, map[string]*dispatcher.Error{"error": {Code: dispatcher.CodeInvalid, Field: "MessageSid", Message: "is not a message SID"}})
		return
	}
	status := f.Get("MessageStatus")
	if !messageStatusPattern.MatchString(status) {
		writeJSON(w, http.StatusBadRequest, map[string]*dispatcher.Error{"error": {Code: dispatcher.CodeInvalid, Field: "MessageStatus", Message: "is not a message status"}})
		return
	}
	code := f.Get("ErrorCode")
	if code != "" {
		n, err := strconv.Atoi(code)
		if !errorCodePattern.MatchString(code) || err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]*dispatcher.Error{"error": {Code: dispatcher.CodeInvalid, Field: "ErrorCode", Message: "is not a Twilio error code"}})
			return
		}
		code = strconv.Itoa(n) // "030003" is 30003
		if n == 0 {
			code = ""
		}
	}
	kind, ok := twilioStatusEvent(status, code)
	if !ok {
		writeTwiML(w, "")
		return
	}
	if kind == channels.Delivered {
		code = "" // a delivery has no error, whatever came with it
	}

	ctx := r.Context()
	d := a.d
	send, err := d.Store.SendForProvider(ctx, sid)
	if errors.Is(err, dispatcher.ErrNotFound) {
		d.log.Debug("twilio status: unknown message", "message_sid", sid, "status", status)
		writeTwiML(w, "")
		return
	}
	if err != nil {
		a.twilioStatusFailed(w, sid, status, err)
		return
	}
	// The number Twilio tried is the one to suppress, even if the contact
	// has changed theirs since; without a usable To, RecordDelivery takes
	// the contact's.
	to, err := dispatcher.NormalizePhone(f.Get("To"))
	if err != nil {
		to = ""
	}
	ev := channels.Feedback{Send: send, Channel: channels.SMS, Address: channels.Address(to), Kind: kind, Code: code, Source: "twilio"}
	switch err := d.RecordDelivery(ctx, ev); {
	case errors.Is(err, ErrUnknownSend):
		// The send was erased or expired: nothing left to update.
		d.log.Debug("twilio status: send gone", "message_sid", sid, "send", send, "status", status)
	case err != nil:
		a.twilioStatusFailed(w, sid, status, err)
		return
	default:
		d.log.Info("twilio status: recorded", "message_sid", sid, "send", send, "status", status,
			"kind", string(kind), "error_code", code)
	}
	writeTwiML(w, "")
}

// twilioStatusFailed answers a status callback that could not be
// recorded: 503, so that Twilio's retry, if any, tries again.
func (a *api) twilioStatusFailed(w http.ResponseWriter, sid, status string, err error) {
	a.d.log.Error("twilio status: not recorded", "message_sid", sid, "status", status, "error", err)
	w.Header().Set("Retry-After", "60")
	writeJSON(w, http.StatusServiceUnavailable, map[string]*dispatcher.Error{"error": {Code: dispatcher.CodeInternal, Message: "could not record the status; retry later"}})
}

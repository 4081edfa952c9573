package twilioproto

import (
	"net/url"
	"regexp"
	"strconv"

	"github.com/missive-dev/missive/channels"
)

// FieldError is a webhook whose form lacks a field Missive needs, holds it
// in a shape Twilio never sends, or gives it more than once. Answer it with
// 400: Twilio's retry would bring the same form. Its text names the field
// and never quotes its value, which may be a phone number.
type FieldError struct {
	// Field is the form field: MessageSid, MessageStatus, ErrorCode, From.
	Field string
	// Message says what is wrong with it ("is not a message SID").
	Message string
}

func (e *FieldError) Error() string { return "twilio: " + e.Field + " " + e.Message }

var (
	// messageSIDPattern is an SMS or MMS SID as Twilio sends it.
	messageSIDPattern = regexp.MustCompile(`^(SM|MM)[0-9a-f]{32}$`)
	// messageStatusPattern is a MessageStatus as Twilio writes them
	// (queued, sent, delivered, partially_delivered...).
	messageStatusPattern = regexp.MustCompile(`^[a-z_]{1,32}$`)
	// errorCodePattern is a Twilio error code.
	errorCodePattern = regexp.MustCompile(`^[0-9]{1,6}$`)
)

// ValidMessageSID reports whether s is an SMS or MMS SID as Twilio sends
// it: "SM" or "MM" and 32 lower-case hex digits.
func ValidMessageSID(s string) bool { return messageSIDPattern.MatchString(s) }

// StatusCallback is a status callback Twilio posted about a message Missive
// sent (the StatusCallback URL given with the message).
type StatusCallback struct {
	// MessageSID is the message's SID, the ProviderID the send recorded:
	// the caller finds the send with it.
	MessageSID string
	// MessageStatus is the status as Twilio wrote it (queued, sent,
	// delivered, undelivered, failed...), for logs.
	MessageStatus string
	// Feedback is what the callback tells, with Channel SMS and Source
	// "twilio"; Send is empty (the caller fills it from MessageSID) and
	// Address is the To field as Twilio sent it, unchecked (normalize it
	// before use; empty when absent). Its Kind is empty when there is
	// nothing to record.
	Feedback channels.Feedback
}

// ParseStatus reads the form of a status callback. Call it once the
// request's signature is checked.
//
// The feedback is Delivered for delivered and read (with no Code, whatever
// ErrorCode came along). For undelivered and failed it is the ErrorCode's
// Feedback in the table (HardBounce for 21211, 21614, 30005, 30006;
// OptedOut for 21610; SoftBounce for 30003), else Undelivered: a failure
// with any other code, or none, is Missive's, the sender's or the
// carrier's, and the number is left alone. Every other status (queued,
// accepted, scheduled, sending, sent, which say what Missive already
// holds, and statuses Missive does not know, which a later version may
// read) gives an empty Kind: nothing to record.
//
// ErrorCode is normalised: "030003" is "30003", and "0" is no code.
//
// It returns a *FieldError when MessageSid is not a message SID,
// MessageStatus is not a status, ErrorCode is present but not a code, or
// one of them (or To) is given more than once; the fields are checked in
// that order.
func ParseStatus(form url.Values) (StatusCallback, error) {
	sid, err := messageSID(form)
	if err != nil {
		return StatusCallback{}, err
	}
	status, err := validField(form, "MessageStatus", messageStatusPattern.MatchString, "is not a message status")
	if err != nil {
		return StatusCallback{}, err
	}
	s, err := field(form, "ErrorCode")
	if err != nil {
		return StatusCallback{}, err
	}
	code := 0
	if s != "" {
		n, err := strconv.Atoi(s)
		if !errorCodePattern.MatchString(s) || err != nil {
			return StatusCallback{}, &FieldError{Field: "ErrorCode", Message: "is not a Twilio error code"}
		}
		code = n
	}
	to, err := field(form, "To")
	if err != nil {
		return StatusCallback{}, err
	}
	cb := StatusCallback{MessageSID: sid, MessageStatus: status}
	kind := statusFeedback(status, code)
	if kind == "" {
		return cb, nil
	}
	cb.Feedback = channels.Feedback{
		Channel: channels.SMS,
		Address: channels.Address(to),
		Kind:    kind,
		Source:  "twilio",
	}
	if code != 0 && kind != channels.Delivered {
		// A delivery has no error, whatever came with it.
		cb.Feedback.Code = strconv.Itoa(code)
	}
	return cb, nil
}

// statusFeedback is the feedback a MessageStatus and an ErrorCode (0: none)
// carry, or "" when they carry none.
func statusFeedback(status string, code int) channels.FeedbackKind {
	switch status {
	case "delivered", "read":
		return channels.Delivered
	case "undelivered", "failed":
		if fb := codes[code].Feedback; fb != "" {
			return fb
		}
		return channels.Undelivered
	}
	return ""
}

// field returns the value of the form field name, "" when absent. It
// returns a *FieldError when the field is given more than once: Twilio
// never does, and a signature check fails for such a form, so this only
// guards a caller that parses before checking.
func field(form url.Values, name string) (string, error) {
	switch vs := form[name]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", &FieldError{Field: name, Message: "is given more than once"}
}

// validField is field, with a *FieldError saying message when the value
// is not valid.
func validField(form url.Values, name string, valid func(string) bool, message string) (string, error) {
	v, err := field(form, name)
	if err == nil && !valid(v) {
		return "", &FieldError{Field: name, Message: message}
	}
	return v, err
}

// messageSID is the form's MessageSid, which both webhooks start with.
func messageSID(form url.Values) (string, error) {
	return validField(form, "MessageSid", ValidMessageSID, "is not a message SID")
}

package twilioproto

import "github.com/missive-dev/missive/channels"

// Twilio error codes Missive acts upon
// (https://www.twilio.com/docs/api/errors).
const (
	CodeAuthenticate     = 20003 // wrong account SID or auth token
	CodeTooManyRequests  = 20429 // REST concurrency limit: never processed
	CodeInvalidTo        = 21211 // 'To' is not a valid phone number
	CodeRegionNotEnabled = 21408 // geo permissions: region not enabled
	CodeOptedOut         = 21610 // recipient replied STOP
	CodeCannotRoute      = 21612 // 'To'/'From' pair cannot be routed
	CodeNotMobile        = 21614 // 'To' is not a mobile number
	CodeUnreachable      = 30003 // handset unreachable (off, out of coverage)
	CodeUnknownHandset   = 30005 // number unknown to the carrier
	CodeLandline         = 30006 // landline or unreachable carrier
	CodeFiltered         = 30007 // carrier filtered the content
)

// Meaning is what a Twilio error code says, wherever it comes from: the
// answer to a send or the ErrorCode of a status callback.
type Meaning struct {
	// Text is Missive's description of the code. Twilio's own message can
	// quote the number; this one never does.
	Text string
	// Kind is how a send refused with the code may be handled: Temporary
	// (the message was not processed or the handset was away: try again),
	// Sender (the account or sender is refused: nothing can go until an
	// operator acts) or Permanent.
	Kind channels.ErrorKind
	// Feedback is what a message that failed with the code tells:
	// HardBounce (the number cannot take SMS), OptedOut (its owner replied
	// STOP), SoftBounce (the handset was away), Undelivered (the carrier
	// filtered it). Empty: the code says nothing of the recipient, and a
	// message that failed with it is Undelivered.
	Feedback channels.FeedbackKind
}

// Recipient reports whether the code is about the recipient's number itself
// (invalid, not a mobile, unknown, landline, opted out), so that the number
// may be suppressed. Codes about the account, the sender or the request
// (wrong credentials 20003, region not enabled 21408, unroutable pair 21612,
// filtered content 30007) report false: suppressing the recipient for them
// would punish people for Missive's configuration. A soft bounce (30003)
// reports false too: it suppresses only after several, for a time, which is
// the dispatcher's policy.
func (m Meaning) Recipient() bool {
	return m.Feedback == channels.HardBounce || m.Feedback == channels.OptedOut
}

// codes is the one table of Twilio error codes. The send path
// (channels/sms), the status callback and the dispatcher's reading of a
// permanent refusal all read it.
var codes = map[int]Meaning{
	CodeAuthenticate:     {Text: "authentication failed", Kind: channels.Sender},
	CodeTooManyRequests:  {Text: "too many concurrent requests", Kind: channels.Temporary},
	21212:                {Text: "invalid From number", Kind: channels.Sender},
	CodeInvalidTo:        {Text: "invalid To number", Kind: channels.Permanent, Feedback: channels.HardBounce},
	CodeRegionNotEnabled: {Text: "sending to this region is not enabled", Kind: channels.Sender},
	21602:                {Text: "body required", Kind: channels.Permanent},
	21603:                {Text: "From or MessagingServiceSid required", Kind: channels.Sender},
	21604:                {Text: "To required", Kind: channels.Permanent},
	21606:                {Text: "From is not a sender of this account", Kind: channels.Sender},
	CodeOptedOut:         {Text: "recipient opted out (STOP)", Kind: channels.Permanent, Feedback: channels.OptedOut},
	CodeCannotRoute:      {Text: "To and From cannot be routed", Kind: channels.Permanent},
	CodeNotMobile:        {Text: "To is not a mobile number", Kind: channels.Permanent, Feedback: channels.HardBounce},
	21617:                {Text: "body exceeds 1600 characters", Kind: channels.Permanent},
	30001:                {Text: "sender queue overflow", Kind: channels.Temporary},
	CodeUnreachable:      {Text: "handset unreachable", Kind: channels.Temporary, Feedback: channels.SoftBounce},
	30004:                {Text: "message blocked", Kind: channels.Permanent},
	CodeUnknownHandset:   {Text: "unknown handset", Kind: channels.Permanent, Feedback: channels.HardBounce},
	CodeLandline:         {Text: "landline or unreachable carrier", Kind: channels.Permanent, Feedback: channels.HardBounce},
	CodeFiltered:         {Text: "filtered by the carrier", Kind: channels.Permanent, Feedback: channels.Undelivered},
}

// Lookup returns what code means, and false for a code Missive does not
// know (its Meaning is then the zero value: no text, no kind, no feedback).
func Lookup(code int) (Meaning, bool) {
	m, ok := codes[code]
	return m, ok
}

// Refusal classifies a send Twilio refused, from the HTTP status of the
// API's answer and the Twilio error code; either may be 0 (a proxy's error
// page has no code, a status callback's ErrorCode has no status).
//
// 429 and 20429 (the request was never processed), 5xx, and codes Twilio
// documents as transient (30001 queue overflow, 30003 unreachable handset)
// are Temporary. Failures of the account or sender (20003 authentication,
// 21212/21603/21606 sender, 21408 region not enabled, or HTTP 401) are
// Sender: they say nothing of the recipient. Any other 4xx, or any other
// code without a status, is Permanent. Nothing at all is Temporary.
//
// fb is set on a Permanent refusal only: what it tells of the recipient
// (HardBounce, OptedOut), as channels.Error.Feedback carries it. It is
// empty when the refusal says nothing of the recipient (policy, content,
// route).
func Refusal(httpStatus, code int) (kind channels.ErrorKind, fb channels.FeedbackKind) {
	m := codes[code]
	switch {
	case httpStatus == 429 || m.Kind == channels.Temporary:
		return channels.Temporary, ""
	case m.Kind == channels.Sender || httpStatus == 401:
		return channels.Sender, ""
	case httpStatus >= 500:
		return channels.Temporary, ""
	case httpStatus >= 400, httpStatus == 0 && code != 0:
		if m.Recipient() {
			fb = m.Feedback
		}
		return channels.Permanent, fb
	}
	return channels.Temporary, ""
}

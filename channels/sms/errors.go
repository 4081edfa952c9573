package sms

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
)

// APIError is a failure reported by Twilio, stripped of Twilio's free-text
// message (which can quote the recipient's number). A Sender wraps it in a
// *channels.Error; get it back with errors.As.
type APIError struct {
	// Status is the HTTP status of the answer; 0 when the code came from
	// elsewhere (a status callback's ErrorCode).
	Status int
	// Code is the Twilio error code (https://www.twilio.com/docs/api/errors),
	// 0 when Twilio gave none (a proxy's 502 page, for instance).
	Code int
	// MoreInfo is Twilio's link to the error's documentation.
	MoreInfo string
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("twilio: ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	}
	if e.Code != 0 {
		if e.Status != 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "error %d", e.Code)
		if d, ok := codes[e.Code]; ok {
			fmt.Fprintf(&b, " (%s)", d.text)
		}
	}
	return b.String()
}

// Recipient reports whether the error is about the recipient's number itself
// (invalid, not a mobile, unknown, landline, opted out), so that the number
// may be suppressed. Errors about the account, the sender or the request
// (wrong credentials 20003, region not enabled 21408, unroutable pair 21612,
// filtered content 30007) report false: suppressing the recipient for them
// would punish people for Missive's configuration.
func (e *APIError) Recipient() bool { return codes[e.Code].recipient }

// OptedOut reports whether Twilio refused because the recipient replied STOP
// to this sender (21610). Twilio keeps refusing until they reply START.
func (e *APIError) OptedOut() bool { return e.Code == CodeOptedOut }

// Twilio error codes Missive acts upon.
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

type codeInfo struct {
	text      string
	recipient bool
	temporary bool
	sender    bool // the account or sender is refused, not the message
}

var codes = map[int]codeInfo{
	CodeAuthenticate:     {text: "authentication failed", sender: true},
	CodeTooManyRequests:  {text: "too many concurrent requests", temporary: true},
	21212:                {text: "invalid From number", sender: true},
	CodeInvalidTo:        {text: "invalid To number", recipient: true},
	CodeRegionNotEnabled: {text: "sending to this region is not enabled", sender: true},
	21602:                {text: "body required"},
	21603:                {text: "From or MessagingServiceSid required", sender: true},
	21604:                {text: "To required"},
	21606:                {text: "From is not a sender of this account", sender: true},
	CodeOptedOut:         {text: "recipient opted out (STOP)", recipient: true},
	CodeCannotRoute:      {text: "To and From cannot be routed"},
	CodeNotMobile:        {text: "To is not a mobile number", recipient: true},
	21617:                {text: "body exceeds 1600 characters"},
	30001:                {text: "sender queue overflow", temporary: true},
	CodeUnreachable:      {text: "handset unreachable", temporary: true},
	30004:                {text: "message blocked"},
	CodeUnknownHandset:   {text: "unknown handset", recipient: true},
	CodeLandline:         {text: "landline or unreachable carrier", recipient: true},
	CodeFiltered:         {text: "filtered by the carrier"},
}

// Classify tells how a Twilio failure may be handled, from the HTTP status of
// the API's answer and the Twilio error code (either may be 0: a status
// callback only carries a code).
//
// 429 and 20429 (the request was never processed), 5xx, and codes Twilio
// documents as transient (30001 queue overflow, 30003 unreachable handset)
// are Temporary. Failures of the account or sender (20003 authentication,
// 21212/21603/21606 sender, 21408 region not enabled) are Sender: they say
// nothing of the recipient. Any other 4xx, or any other code without a
// status, is Permanent. Nothing at all is Temporary.
func Classify(httpStatus, code int) channels.ErrorKind {
	switch {
	case httpStatus == 429 || codes[code].temporary:
		return channels.Temporary
	case codes[code].sender || httpStatus == 401:
		return channels.Sender
	case httpStatus >= 500:
		return channels.Temporary
	case httpStatus >= 400:
		return channels.Permanent
	case httpStatus == 0 && code != 0:
		return channels.Permanent
	}
	return channels.Temporary
}

// classified wraps e in a *channels.Error with the code as a string.
func classified(e *APIError, retryIn time.Duration) *channels.Error {
	ce := &channels.Error{Kind: Classify(e.Status, e.Code), Err: e}
	if e.Code != 0 {
		ce.Code = strconv.Itoa(e.Code)
	}
	if ce.Kind == channels.Temporary {
		ce.RetryIn = retryIn
	}
	return ce
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

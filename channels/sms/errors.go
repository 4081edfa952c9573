package sms

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms/twilioproto"
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

// StatusCode is the HTTP status of Twilio's answer, 0 when the code came
// from elsewhere: what the metrics sort provider errors by.
func (e *APIError) StatusCode() int { return e.Status }

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
		if m, ok := twilioproto.Lookup(e.Code); ok {
			fmt.Fprintf(&b, " (%s)", m.Text)
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
func (e *APIError) Recipient() bool {
	m, _ := twilioproto.Lookup(e.Code)
	return m.Recipient()
}

// OptedOut reports whether Twilio refused because the recipient replied STOP
// to this sender (21610). Twilio keeps refusing until they reply START.
func (e *APIError) OptedOut() bool { return e.Code == CodeOptedOut }

// Twilio error codes Missive acts upon. The table of what they mean is
// twilioproto's.
const (
	CodeAuthenticate     = twilioproto.CodeAuthenticate     // wrong account SID or auth token
	CodeTooManyRequests  = twilioproto.CodeTooManyRequests  // REST concurrency limit: never processed
	CodeInvalidTo        = twilioproto.CodeInvalidTo        // 'To' is not a valid phone number
	CodeRegionNotEnabled = twilioproto.CodeRegionNotEnabled // geo permissions: region not enabled
	CodeOptedOut         = twilioproto.CodeOptedOut         // recipient replied STOP
	CodeCannotRoute      = twilioproto.CodeCannotRoute      // 'To'/'From' pair cannot be routed
	CodeNotMobile        = twilioproto.CodeNotMobile        // 'To' is not a mobile number
	CodeUnreachable      = twilioproto.CodeUnreachable      // handset unreachable (off, out of coverage)
	CodeUnknownHandset   = twilioproto.CodeUnknownHandset   // number unknown to the carrier
	CodeLandline         = twilioproto.CodeLandline         // landline or unreachable carrier
	CodeFiltered         = twilioproto.CodeFiltered         // carrier filtered the content
)

// Classify tells how a Twilio failure may be handled, from the HTTP status of
// the API's answer and the Twilio error code (either may be 0: a status
// callback only carries a code). It is twilioproto.Refusal without the
// feedback:
//
// 429 and 20429 (the request was never processed), 5xx, and codes Twilio
// documents as transient (30001 queue overflow, 30003 unreachable handset)
// are Temporary. Failures of the account or sender (20003 authentication,
// 21212/21603/21606 sender, 21408 region not enabled) are Sender: they say
// nothing of the recipient. Any other 4xx, or any other code without a
// status, is Permanent. Nothing at all is Temporary.
func Classify(httpStatus, code int) channels.ErrorKind {
	kind, _ := twilioproto.Refusal(httpStatus, code)
	return kind
}

// classified wraps e in a *channels.Error with the code as a string, and on
// a permanent refusal what it tells of the recipient (Feedback), so that
// the caller needs no table of Twilio's codes.
func classified(e *APIError, retryIn time.Duration) *channels.Error {
	kind, fb := twilioproto.Refusal(e.Status, e.Code)
	ce := &channels.Error{Kind: kind, Feedback: fb, Err: e}
	if e.Code != 0 {
		ce.Code = strconv.Itoa(e.Code)
	}
	if ce.Kind == channels.Temporary {
		ce.RetryIn = retryIn
		if retryIn == 0 && e.Status == http.StatusTooManyRequests {
			ce.RetryIn = tooManyRequestsWait
		}
	}
	return ce
}

// tooManyRequestsWait is how long a 429 without Retry-After asks to wait.
// Twilio answers 429 (20429) when the account has too many requests in
// flight at once, and asks for short, growing waits; the caller grows them.
const tooManyRequestsWait = 250 * time.Millisecond

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

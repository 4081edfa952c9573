package esp

import (
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
)

// Sources, as the providers are named in routes and in Feedback.Source.
const (
	SourceSES      = "ses"
	SourceSendGrid = "sendgrid"
	SourceMailgun  = "mailgun"
	SourcePostmark = "postmark"
)

// Freshness windows and limits.
const (
	// snsMaxAge: SNS signs the publication time; an older message is
	// taken for a replay.
	snsMaxAge      = time.Hour
	sendgridMaxAge = 10 * time.Minute
	mailgunMaxAge  = 5 * time.Minute
	// maxAhead is how far in the future a signed timestamp may be (clock
	// skew); further is refused like a stale one.
	maxAhead = 5 * time.Minute
	// maxID bounds the ids, tokens and Message-IDs taken from a body.
	maxID = 512
)

// MailgunTokenTTL is how long the caller remembers a Mailgun token. It
// outlives the five minutes a signature stays fresh (and the five of clock
// skew): a token seen once is refused for as long as its signature could
// still pass.
const MailgunTokenTTL = 15 * time.Minute

// Error is a refused webhook request. Status is the HTTP status to answer,
// Field the request part at fault (a header, a JSON field, "body"), and
// Message says what is wrong with it, after Field ("is stale or in the
// future"). Neither ever holds a value from the request.
//
//   - 400: the body is not what the provider sends; nothing to retry.
//   - 401: Postmark credentials missing or wrong (answer with
//     WWW-Authenticate: Basic realm="missive").
//   - 403: forged, stale, replayed or off the rules (topic, certificate
//     URL, SubscribeURL).
//   - 502: AWS did not take a subscription confirmation; SNS sends it again.
//   - 503: the SNS certificate host is out of reach; answer Retry-After so
//     that SNS retries. errors.Is(err, ErrUnreachable) holds.
type Error struct {
	Status  int
	Field   string
	Message string
	// Err is the cause, for logs, when there is one; it holds no address,
	// token or body either.
	Err error
}

func (e *Error) Error() string {
	return "esp: " + e.Field + " " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func refuse(status int, field, msg string) *Error {
	return &Error{Status: status, Field: field, Message: msg}
}

// Events are what one webhook request reported.
type Events struct {
	// Feedback holds one entry per event that may change something, with
	// Channel email, Source the provider, Address normalised ("" when the
	// provider's value is not one valid address: markup, control
	// characters and oversized values are dropped), Code an enhanced status
	// or a three-digit SMTP code or "", Send the send id when the event
	// carries a Message-ID of ours, and EventID the provider's event id for
	// once-only handling ("" when it gives none). At is left zero.
	//
	// An entry may name neither a send nor an address, or be a Delivered
	// without a send: the caller ignores those, as it ignores an entry
	// whose send it does not know.
	Feedback []channels.Feedback
	// Ignored counts the events that change nothing (opens, deferrals...)
	// or could not be read.
	Ignored int
}

// event is a provider's event before it is checked.
type event struct {
	send, addr string
	kind       channels.FeedbackKind
	code, id   string
}

// add checks ev and appends it as Feedback from source.
func (e *Events) add(source string, ev event) {
	e.Feedback = append(e.Feedback, channels.Feedback{
		Send:    ev.send,
		Channel: channels.Email,
		Address: channels.Address(validAddress(ev.addr)),
		Kind:    ev.kind,
		Code:    statusCode(ev.code),
		Source:  source,
		EventID: ev.id,
	})
}

// fresh reports whether a signed time is within maxAge of now and not
// further ahead than the clock skew allows.
func fresh(t, now time.Time, maxAge time.Duration) bool {
	return !t.Before(now.Add(-maxAge)) && !t.After(now.Add(maxAhead))
}

// unixTime parses a signed Unix time in seconds.
func unixTime(s string) (time.Time, bool) {
	if len(s) == 0 || len(s) > 12 {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// validAddress returns addr normalised when it is one valid email
// address, else "": markup, control characters and oversized values are
// never an address and are dropped, not stored. The normal form is the
// dispatcher's (NormalizeEmail): a bare address as net/mail reads it, its
// domain lower-cased, the domain holding a dot inside.
func validAddress(addr string) string {
	if addr == "" || len(addr) > 254 || strings.ContainsFunc(addr, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return ""
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != strings.TrimSpace(addr) || len(a.Address) > 254 {
		return ""
	}
	at := strings.LastIndexByte(a.Address, '@')
	domain := strings.ToLower(a.Address[at+1:])
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return ""
	}
	return a.Address[:at+1] + domain
}

// enhancedStatus finds an RFC 3463 enhanced status code ("5.1.1").
var enhancedStatus = regexp.MustCompile(`\b[245]\.[0-9]{1,3}\.[0-9]{1,3}\b`)

// statusCode keeps an enhanced status code found in s ("5.1.1", or inside
// "smtp; 550 5.1.1 user unknown"), else a bare three-digit SMTP code,
// else nothing: the code is stored, so free text never is.
func statusCode(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 1000 {
		s = s[:1000]
	}
	if c := enhancedStatus.FindString(s); c != "" {
		return c
	}
	if len(s) == 3 && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' {
		return s
	}
	return ""
}

// boundedID returns an event id from a body, or "" when it is too long to
// be one.
func boundedID(parts ...string) string {
	id := strings.Join(parts, "\x00")
	if strings.Trim(id, "\x00") == "" || len(id) > maxID {
		return ""
	}
	return id
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

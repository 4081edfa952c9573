// Package channels holds the types every delivery channel shares: the
// Message to deliver, the Result a provider gives back, the Channel interface
// and the error kinds that tell a temporary failure from a permanent one.
//
// Concrete channels live below it: channels/email (SMTP through go-mail),
// channels/sms (Twilio through twilio-go) and channels/outbox (files, for
// development). They import this package and their SDK only.
package channels

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Kind names a channel.
type Kind string

const (
	Email Kind = "email"
	SMS   Kind = "sms"
)

// Kinds lists the channels in their default order of preference.
var Kinds = []Kind{Email, SMS}

// Valid reports whether k is a known channel.
func (k Kind) Valid() bool { return k == Email || k == SMS }

// Message is one rendered message to one recipient. It is built at send time
// and never stored or queued: it holds personal data.
type Message struct {
	// ID is the deterministic send id. Channels use it for the Message-ID
	// header and as an idempotency hint towards the provider.
	ID      string
	Channel Kind

	// To is an email address or an E.164 phone number.
	To Address
	// From is the sender: an email address (optionally "Name <addr>") or a
	// phone number / Messaging Service SID. Empty means the channel default.
	From string
	// ReturnPath is the SMTP envelope sender (MAIL FROM). Empty means From.
	ReturnPath string

	// Email parts.
	Subject string
	HTML    string
	Text    string
	// Headers are extra email headers such as List-Unsubscribe.
	Headers map[string]string

	// Body is the SMS text.
	Body string

	// Claim, when set, takes the message for sending: the channel calls it
	// once, right before the message's bytes go out (a connection is held,
	// the request is built), and returns its error unchanged without
	// sending when it fails. A claim taken late leaves nothing claimed
	// behind a worker that dies waiting for a connection.
	Claim func(ctx context.Context) error
}

// TakeClaim calls m.Claim when it is set: the step every channel takes
// right before the message leaves.
func (m *Message) TakeClaim(ctx context.Context) error {
	if m.Claim == nil {
		return nil
	}
	return m.Claim(ctx)
}

// Result is what a provider answered for an accepted message.
type Result struct {
	// ProviderID is the provider's id for the message (Twilio SID, SMTP
	// queue id when the server gives one, file name for the outbox).
	ProviderID string
}

// Channel delivers messages. Send returns a *Error when the message was not
// accepted; any other error is treated as temporary.
type Channel interface {
	// Send delivers m, calling m.TakeClaim right before it leaves.
	Send(ctx context.Context, m Message) (Result, error)
}

// SendFunc adapts a function to the Channel interface.
type SendFunc func(ctx context.Context, m Message) (Result, error)

// Send takes m's claim, then calls f(ctx, m).
func (f SendFunc) Send(ctx context.Context, m Message) (Result, error) {
	if err := m.TakeClaim(ctx); err != nil {
		return Result{}, err
	}
	m.Claim = nil
	return f(ctx, m)
}

// Batch is messages for one channel that may leave together: over one
// connection, their commands pipelined where the protocol allows.
type Batch struct {
	Messages []Message
	// Claim, when set, takes messages for sending, named by their index
	// in Messages: the channel calls it right before their bytes go out
	// (a connection is held) and sends only those whose error is nil; an
	// error comes back unchanged as that message's Outcome. The Claim of
	// each Message is ignored.
	Claim func(ctx context.Context, idx []int) []error
}

// Outcome is what became of one message of a Batch: Err is nil when the
// provider accepted it, else as Channel.Send's.
type Outcome struct {
	Result Result
	Err    error
}

// BatchChannel is a Channel that sends a Batch at once.
type BatchChannel interface {
	Channel
	// SendBatch sends b's messages and returns one Outcome each, in
	// order. It calls b.Claim once, for every message, once it holds what
	// they leave through.
	SendBatch(ctx context.Context, b Batch) []Outcome
}

// SendBatch sends b through ch: at once when ch is a BatchChannel, else
// one message after the other, each claimed right before it leaves.
func SendBatch(ctx context.Context, ch Channel, b Batch) []Outcome {
	if bc, ok := ch.(BatchChannel); ok {
		return bc.SendBatch(ctx, b)
	}
	out := make([]Outcome, len(b.Messages))
	for i, m := range b.Messages {
		m.Claim = nil
		if b.Claim != nil {
			m.Claim = func(ctx context.Context) error { return b.Claim(ctx, []int{i})[0] }
		}
		out[i].Result, out[i].Err = ch.Send(ctx, m)
	}
	return out
}

// Address is an email address or a phone number. Its String and LogValue
// hide it, so that it cannot leak into logs or errors by accident.
type Address string

// String returns a redacted form. Use string(a) for the value itself.
func (a Address) String() string { return "[redacted]" }

// LogValue implements slog.LogValuer.
func (a Address) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// ErrorKind tells how a failed send may be handled.
type ErrorKind int

const (
	// Temporary: the message was not accepted; retrying later may succeed
	// (SMTP 4xx, connection refused, Twilio 429 or 5xx).
	Temporary ErrorKind = iota + 1
	// Permanent: the message will never be accepted (SMTP 5xx, invalid
	// number, recipient opted out at the provider). Do not retry.
	Permanent
	// Ambiguous: the provider may or may not have accepted the message (a
	// timeout after the SMTP DATA terminator). Retrying could send twice.
	Ambiguous
	// Sender: the provider refuses the sender, not this message or
	// recipient (wrong credentials, a From it does not allow, a suspended
	// account). No message can go until an operator acts: retry later, and
	// never blame the recipient.
	Sender
)

func (k ErrorKind) String() string {
	switch k {
	case Temporary:
		return "temporary"
	case Permanent:
		return "permanent"
	case Ambiguous:
		return "ambiguous"
	case Sender:
		return "sender"
	}
	return "unknown"
}

// Error is a failed send, classified by the channel that knows the protocol.
// Its message never contains the recipient's address or the message body.
type Error struct {
	Kind ErrorKind
	// Code is the provider's code: an SMTP enhanced status ("5.1.1"), an SMTP
	// reply code ("550") or a Twilio error code ("21211").
	Code string
	// RetryIn, when set on a temporary error, is the delay the provider asked
	// for (Retry-After).
	RetryIn time.Duration
	// Feedback, on a permanent refusal, says what the refusal tells of the
	// recipient (HardBounce for an address that does not exist, OptedOut
	// for a number that replied STOP...), as a bounce received later
	// would. Empty: the refusal says nothing of the recipient (policy,
	// content, our sender).
	Feedback FeedbackKind
	Err      error
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s failure (%s): %v", e.Kind, e.Code, e.Err)
	}
	return fmt.Sprintf("%s failure: %v", e.Kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// NewError returns a classified error.
func NewError(kind ErrorKind, code string, err error) *Error {
	return &Error{Kind: kind, Code: code, Err: err}
}

// KindOf returns the kind of err: the Kind of a wrapped *Error, Temporary for
// any other non-nil error, 0 for nil.
func KindOf(err error) ErrorKind {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Temporary
}

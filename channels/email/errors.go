package email

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	"github.com/wneessen/go-mail"

	"github.com/missive-dev/missive/channels"
)

// SMTPError is a failed SMTP exchange. Its text names the step and the
// reply code only: go-mail's errors and relays' replies quote the
// recipient's address, so neither is kept.
type SMTPError struct {
	// Op is the step that failed: "connect", "AUTH", "MAIL FROM", "RCPT TO",
	// "DATA", "message data", "end of data".
	Op string
	// Reply is the SMTP reply code, 0 when the relay did not answer.
	Reply int
	// Enhanced is the RFC 3463 status ("5.1.1") when the relay gave one.
	Enhanced string
	// cause is a non-SMTP cause safe to show (a context error).
	cause error
}

func (e *SMTPError) Error() string {
	var b strings.Builder
	b.WriteString("email: ")
	b.WriteString(e.Op)
	switch {
	case e.Reply != 0:
		b.WriteString(": relay replied ")
		b.WriteString(strconv.Itoa(e.Reply))
		if e.Enhanced != "" {
			b.WriteString(" ")
			b.WriteString(e.Enhanced)
		}
	case e.cause != nil:
		b.WriteString(": ")
		b.WriteString(e.cause.Error())
	default:
		b.WriteString(": no reply (connection lost or timed out)")
	}
	return b.String()
}

func (e *SMTPError) Unwrap() error { return e.cause }

// StatusCode is the relay's reply code, 0 when it did not answer: what
// the metrics sort provider errors by.
func (e *SMTPError) StatusCode() int { return e.Reply }

// classify turns a failed step of a mail transaction into a
// channels.Error. reply is the relay's 4xx or 5xx code, 0 when it gave
// none (the connection failed, or the reply was neither the one wanted
// nor a refusal); enhanced is its RFC 3463 status, "" when it gave none.
func classify(ctx context.Context, step mail.SendErrReason, reply int, enhanced string) *channels.Error {
	e := &SMTPError{Op: opName(step), Reply: reply, Enhanced: enhanced, cause: ctx.Err()}
	switch {
	case e.Reply >= 500 && step == mail.ErrSMTPMailFrom:
		// The relay refuses our envelope sender: every message would fail.
		return channels.NewError(channels.Sender, e.code(), e)
	case e.Reply >= 500:
		ce := channels.NewError(channels.Permanent, e.code(), e)
		ce.Feedback = refusalFeedback(ce.Code)
		return ce
	case e.Reply >= 400:
		return channels.NewError(channels.Temporary, e.code(), e)
	case step == mail.ErrSMTPDataClose:
		// The terminating "." went out and no reply came back: the relay
		// may have queued the message.
		return channels.NewError(channels.Ambiguous, "", e)
	case step == mail.ErrGetSender, step == mail.ErrGetRcpts, step == mail.ErrNoUnencoded:
		return channels.NewError(channels.Permanent, "", e)
	default:
		return channels.NewError(channels.Temporary, "", e)
	}
}

// errNotSent is the cause of a message a batch stopped before.
var errNotSent = errors.New("not sent: the connection ended before its data")

// notSent is the error of a claimed message whose data never left: the
// batch stopped before it (a cancelled ctx, a failed connection). It may
// go again.
func notSent(ctx context.Context) *channels.Error {
	cause := errNotSent
	if err := ctx.Err(); err != nil {
		cause = fmt.Errorf("not sent: %w", err)
	}
	return channels.NewError(channels.Temporary, "", &SMTPError{Op: "send", cause: cause})
}

// enhancedStatus finds an RFC 3463 status in a reply, as go-mail does:
// anywhere in its text, when the relay announced ENHANCEDSTATUSCODES.
var enhancedStatus = regexp.MustCompile(`\b([245])\.\d{1,3}\.\d{1,3}\b`)

// refusal reads a reply that was not the one wanted as go-mail does: its
// code when it is 4xx or 5xx, else 0, and the enhanced status in its text
// when the relay announced them (enhanced).
func refusal(te *textproto.Error, enhanced bool) (code int, status string) {
	if te.Code >= 400 && te.Code < 600 {
		code = te.Code
	}
	if enhanced && te.Code >= 200 && te.Code < 600 && te.Code/100 != 3 {
		status = enhancedStatus.FindString(te.Error())
	}
	return code, status
}

// refusalFeedback says what a permanent refusal tells of the recipient,
// as a bounce received later would: a mailbox that does not exist (5.1.x,
// 550, 551, 553) is a hard bounce, a full one (5.2.2, 552) a soft bounce.
// 5.1.7 and 5.1.8 are about our sender, and other refusals (policy,
// content) say nothing of the recipient.
func refusalFeedback(code string) channels.FeedbackKind {
	switch {
	case code == "5.1.7" || code == "5.1.8":
	case strings.HasPrefix(code, "5.1.") || code == "550" || code == "551" || code == "553":
		return channels.HardBounce
	case code == "5.2.2" || code == "552":
		return channels.SoftBounce
	}
	return ""
}

// classifyDial turns a failed connection (dial, greeting, EHLO, STARTTLS,
// AUTH) into a channels.Error. Nothing about the message has been sent, so
// the cause is kept: it names the host and the failing step.
func classifyDial(ctx context.Context, err error) *channels.Error {
	op := "connect"
	if strings.HasPrefix(err.Error(), "SMTP AUTH failed") {
		op = "AUTH"
	}
	e := &SMTPError{Op: op, cause: err}
	if ctx.Err() != nil {
		e.cause = ctx.Err()
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		e.Reply = te.Code
		e.Enhanced = enhancedCode(te.Msg)
		e.cause = nil
	}
	switch {
	case e.Reply >= 500:
		// Refused before any message: our credentials or TLS settings.
		return channels.NewError(channels.Sender, e.code(), e)
	case e.Reply >= 400:
		return channels.NewError(channels.Temporary, e.code(), e)
	default:
		return channels.NewError(channels.Temporary, "", e)
	}
}

// code is the Code of the channels.Error: the enhanced status when given,
// else the reply code.
func (e *SMTPError) code() string {
	if e.Enhanced != "" {
		return e.Enhanced
	}
	return strconv.Itoa(e.Reply)
}

// enhancedCode returns the RFC 3463 status at the start of a reply text.
func enhancedCode(msg string) string {
	f, _, _ := strings.Cut(msg, " ")
	parts := strings.Split(f, ".")
	if len(parts) != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return ""
	}
	for _, p := range parts[1:] {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 999 || len(p) > 3 {
			return ""
		}
	}
	return f
}

func opName(r mail.SendErrReason) string {
	switch r {
	case mail.ErrGetSender:
		return "sender"
	case mail.ErrGetRcpts:
		return "recipients"
	case mail.ErrSMTPMailFrom:
		return "MAIL FROM"
	case mail.ErrSMTPRcptTo:
		return "RCPT TO"
	case mail.ErrSMTPData:
		return "DATA"
	case mail.ErrWriteContent:
		return "message data"
	case mail.ErrSMTPDataClose:
		return "end of data"
	case mail.ErrSMTPReset:
		return "RSET"
	case mail.ErrConnCheck:
		return "connection check"
	case mail.ErrNoUnencoded:
		return "8BITMIME"
	}
	return "send"
}

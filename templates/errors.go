package templates

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors. They come back wrapped, usually inside a *FieldError;
// test them with errors.Is.
var (
	// ErrSourceTooLarge: a template part is longer than MaxSourceSize.
	ErrSourceTooLarge = errors.New("template source too large")
	// ErrOutputTooLarge: a rendered part (or a value computed while
	// rendering it) would be longer than MaxOutputSize.
	ErrOutputTooLarge = errors.New("rendered output too large")
	// ErrNotAllowed: the template uses a construct or a function outside the
	// restricted language. The error is a *NotAllowedError.
	ErrNotAllowed = errors.New("not allowed in templates")
	// ErrRequired: a required part is empty.
	ErrRequired = errors.New("required")
	// ErrLineBreak: a header value (subject, From, List-* headers) contains
	// a CR or LF, which would let it inject headers.
	ErrLineBreak = errors.New("header value contains a line break")
	// ErrNoPart: the template has no part for the requested channel.
	ErrNoPart = errors.New("template has no part for this channel")
	// ErrUnsubscribeURL: a marketing email needs an absolute http(s)
	// unsubscribe URL.
	ErrUnsubscribeURL = errors.New("marketing email needs an absolute http(s) unsubscribe URL")
)

// FieldError is an error in one part of a template, named the way the API
// names it ("email.subject", "email.html", "email.text", "email.from",
// "sms.body") or an option ("options.unsubscribe_url"). Line is 1-based, 0
// when unknown. Its message reads
//
//	email.html: line 3: missing variable "first_nme"
type FieldError struct {
	Field string
	Line  int
	Err   error
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return e.Field + ": line " + strconv.Itoa(e.Line) + ": " + e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// MissingVariableError is a reference to an attribute (a map key) that the
// data does not hold, such as {{.Attr.first_nme}}. Use
// {{default "ami" .Attr.first_name}} or {{index .Attr "first_name"}} for
// optional attributes.
type MissingVariableError struct {
	Name string
}

func (e *MissingVariableError) Error() string {
	return fmt.Sprintf("missing variable %q", e.Name)
}

// NotAllowedError names a construct or function outside the restricted
// language. errors.Is(err, ErrNotAllowed) holds for it.
type NotAllowedError struct {
	// What is the construct ("range", "template", "define") or
	// `function "call"`.
	What string
	// Why says what to do instead, or is empty.
	Why string
}

func (e *NotAllowedError) Error() string {
	if e.Why != "" {
		return e.What + " is not allowed (" + e.Why + ")"
	}
	return e.What + " is not allowed"
}

// Is reports whether target is ErrNotAllowed.
func (e *NotAllowedError) Is(target error) bool { return target == ErrNotAllowed }

// templateError carries a cleaned-up message from text/template or
// html/template and keeps the original error reachable through Unwrap, so
// that errors.Is still finds, say, ErrOutputTooLarge raised by a function.
type templateError struct {
	msg string
	err error
}

func (e *templateError) Error() string { return e.msg }
func (e *templateError) Unwrap() error { return e.err }

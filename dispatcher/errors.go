package dispatcher

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes are stable: API clients match on them.
const (
	CodeInvalid      = "invalid"              // a field is missing or malformed (422)
	CodeNotFound     = "not_found"            // no such resource (404)
	CodeConflict     = "conflict"             // the resource is in a state that forbids the change (409)
	CodeUnauthorized = "unauthorized"         // missing or wrong API key (401)
	CodeForbidden    = "forbidden"            // valid key, missing scope (403)
	CodeTooLarge     = "too_large"            // body over the limit (413)
	CodeIdempotency  = "idempotency_mismatch" // same Idempotency-Key, other body (422)
	CodeMethod       = "method_not_allowed"   // the route exists, not with this method (405)
	CodeMediaType    = "unsupported_media"    // the body's Content-Type is not one the route reads (415)
	CodeRateLimited  = "rate_limited"         // too many requests from this client; Retry-After says when (429)
	CodeUpstream     = "upstream"             // a provider Missive had to ask did not answer as it should (502)
	CodeUnavailable  = "unavailable"          // cannot be done now, nothing changed; retry later (503)
	CodeInternal     = "internal"             // our fault (500)
)

// Error is an error meant for the caller of the API: a stable code, the
// field at fault when there is one, and a message that never contains
// personal data.
type Error struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	// Status, when set, is the HTTP status of the answer instead of the
	// one its code maps to: a provider's protocol may expect another (a
	// Twilio webhook answers 400 to a form it cannot use).
	Status int `json:"-"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// ErrNotFound is returned by stores when a record does not exist.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "not found"}

// Invalid is an error with code invalid naming field, for bad input.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound is an error with code not_found: what names no resource.
func NotFound(what string) *Error {
	return &Error{Code: CodeNotFound, Message: what + " not found"}
}

// Conflict is an error with code conflict: a state forbids the change.
func Conflict(format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// codeStatus is the HTTP status of each stable code; any other is 500.
var codeStatus = map[string]int{
	CodeInvalid:      http.StatusUnprocessableEntity,
	CodeIdempotency:  http.StatusUnprocessableEntity,
	CodeNotFound:     http.StatusNotFound,
	CodeConflict:     http.StatusConflict,
	CodeUnauthorized: http.StatusUnauthorized,
	CodeForbidden:    http.StatusForbidden,
	CodeTooLarge:     http.StatusRequestEntityTooLarge,
	CodeMethod:       http.StatusMethodNotAllowed,
	CodeMediaType:    http.StatusUnsupportedMediaType,
	CodeRateLimited:  http.StatusTooManyRequests,
	CodeUpstream:     http.StatusBadGateway,
	CodeUnavailable:  http.StatusServiceUnavailable,
	CodeInternal:     http.StatusInternalServerError,
}

// HTTPStatus maps an error to its HTTP status; the one place that does.
func HTTPStatus(err error) (int, *Error) {
	var e *Error
	if !errors.As(err, &e) {
		return http.StatusInternalServerError, &Error{Code: CodeInternal, Message: "internal error"}
	}
	if e.Status != 0 {
		return e.Status, e
	}
	if status, ok := codeStatus[e.Code]; ok {
		return status, e
	}
	return http.StatusInternalServerError, e
}

// IsCode reports whether err is or wraps an *Error with that code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

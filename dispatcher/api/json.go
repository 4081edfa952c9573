package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
)

// decodeJSON decodes a JSON body of at most maxJSONBody bytes into v,
// refusing unknown fields and trailing data. Errors name the field at
// fault ("body" when none can be told) and never echo a value.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return jsonError(err)
		}
		return dispatcher.Invalid("body", "must hold one JSON object and nothing after it")
	}
	return nil
}

// jsonError turns a decoding error into an API error.
func jsonError(err error) error {
	var (
		mb  *http.MaxBytesError
		te  *json.UnmarshalTypeError
		se  *json.SyntaxError
		tpe *time.ParseError
	)
	switch {
	case errors.As(err, &mb):
		return &dispatcher.Error{Code: dispatcher.CodeTooLarge, Field: "body", Message: fmt.Sprintf("is larger than %d bytes", mb.Limit)}
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return dispatcher.Invalid(field, "must be %s", jsonKind(te.Type))
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return dispatcher.Invalid("body", "is not valid JSON")
	case errors.Is(err, io.EOF):
		return dispatcher.Invalid("body", "is empty: a JSON object is required")
	case errors.As(err, &tpe):
		return dispatcher.Invalid("body", "holds a time that is not in RFC 3339 form (2026-03-01T10:00:00Z)")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if f, err := strconvUnquote(name); err == nil {
			return dispatcher.Invalid(dispatcher.Truncate(f, 64), "is not a known field")
		}
		return dispatcher.Invalid("body", "holds an unknown field")
	}
	return dispatcher.Invalid("body", "is not valid JSON for this request")
}

func strconvUnquote(s string) (string, error) {
	var out string
	err := json.Unmarshal([]byte(s), &out)
	return out, err
}

// jsonKind names the JSON type a Go type is decoded from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	if t == reflect.TypeFor[time.Time]() {
		return "a time in RFC 3339 form"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "of another type"
}

// pathID returns the {id} of the route, checked like a record id.
func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !dispatcher.ValidID(id) {
		return "", dispatcher.Invalid("id", "must be 1-128 characters of letters, digits and . _ : @ + -")
	}
	return id, nil
}

// sameID checks that an id given in a body matches the path.
func sameID(body, path string) error {
	if body != "" && body != path {
		return dispatcher.Invalid("id", "must match the id in the path (or be left out)")
	}
	return nil
}

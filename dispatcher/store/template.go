package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/templates"
)

// PutTemplate compiles t and stores it as a new version; runs already
// started keep the version they began with. Returns an error with code
// invalid naming the part at fault (email.html, sms.body...).
func (s *Store) PutTemplate(ctx context.Context, t *templates.Template) error {
	if !dispatcher.NamePattern.MatchString(t.ID) {
		return dispatcher.Invalid("id", "must be lower case letters, digits, _ . - (64 at most)")
	}
	if _, err := templates.Compile(*t); err != nil {
		return TemplateError(err)
	}
	v, err := s.Redis.HIncrBy(ctx, s.Key("tplv", t.ID), "latest", 1).Result()
	if err != nil {
		return err
	}
	t.Version = int(v)
	if err := s.putJSON(ctx, "tplv:"+t.ID, strconv.Itoa(t.Version), t); err != nil {
		return err
	}
	return s.putJSON(ctx, "templates", t.ID, t)
}

// TemplateError turns a template error into an API error naming the part.
func TemplateError(err error) error {
	var fe *templates.FieldError
	if errors.As(err, &fe) {
		return dispatcher.Invalid(fe.Field, "%v", fe.Err)
	}
	return dispatcher.Invalid("template", "%v", err)
}

// PreviewError turns an error of rendering a template for a preview into
// an API error naming the part and, for a missing variable, the variable.
func PreviewError(err error) error {
	var fe *templates.FieldError
	if !errors.As(err, &fe) {
		return dispatcher.Invalid("template", "cannot be rendered")
	}
	msg := fe.Err.Error()
	var mv *templates.MissingVariableError
	if errors.As(err, &mv) {
		msg = fmt.Sprintf("missing variable %q", mv.Name)
	}
	if fe.Line > 0 {
		msg = fmt.Sprintf("line %d: %s", fe.Line, msg)
	}
	return &dispatcher.Error{Code: dispatcher.CodeInvalid, Field: fe.Field, Message: msg}
}

// Template returns the latest version of a template, or an error with code
// not_found.
func (s *Store) Template(ctx context.Context, id string) (*templates.Template, error) {
	var t templates.Template
	return &t, s.getJSON(ctx, "templates", id, "template", &t)
}

// Templates lists the latest version of every template.
func (s *Store) Templates(ctx context.Context) ([]templates.Template, error) {
	return listJSON[templates.Template](ctx, s, "templates")
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
)

// putRecord serves PUT of a record named by the path's id: the body may
// repeat the id but not name another.
func putRecord[T any](id func(*T) *string, put func(context.Context, *T) error) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var v T
		if err := decodeJSON(w, r, &v); err != nil {
			return 0, nil, err
		}
		if err := sameID(*id(&v), r.PathValue("id")); err != nil {
			return 0, nil, err
		}
		*id(&v) = r.PathValue("id")
		if err := put(r.Context(), &v); err != nil {
			return 0, nil, err
		}
		return http.StatusOK, v, nil
	}
}

// getRecord serves GET of a record named by the path's id.
func getRecord[T any](get func(context.Context, string) (*T, error)) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		v, err := get(r.Context(), r.PathValue("id"))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, v, nil
	}
}

// listRecords serves GET of a whole list, as {"<name>": [...]}.
func listRecords[T any](name string, list func(context.Context) ([]T, error)) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		vs, err := list(r.Context())
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string][]T{name: vs}, nil
	}
}

func (a *handler) topicStats(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ctx := r.Context()
	if _, err := a.d.Store.Topic(ctx, r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	f, err := a.d.Store.TopicFeedback(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"topic": r.PathValue("id"), "feedback": f}, nil
}

type previewRequest struct {
	Channel channels.Kind     `json:"channel"`
	Contact string            `json:"contact,omitempty"`
	Data    map[string]string `json:"data,omitempty"`
	// SendData is a sample of what a send is triggered with (.Data).
	SendData json.RawMessage `json:"send_data,omitempty"`
}

type previewResponse struct {
	Template string                 `json:"template"`
	Version  int                    `json:"version"`
	Channel  channels.Kind          `json:"channel"`
	From     string                 `json:"from,omitempty"`
	Subject  string                 `json:"subject,omitempty"`
	HTML     string                 `json:"html,omitempty"`
	Text     string                 `json:"text,omitempty"`
	Headers  map[string]string      `json:"headers,omitempty"`
	SMS      string                 `json:"sms,omitempty"`
	Segments *templates.SegmentInfo `json:"segments,omitempty"`
}

func (a *handler) previewTemplate(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in previewRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	if !in.Channel.Valid() {
		return 0, nil, dispatcher.Invalid("channel", "must be email or sms")
	}
	if in.Contact != "" && in.Data != nil {
		return 0, nil, dispatcher.Invalid("contact", "set contact or data, not both")
	}
	ctx := r.Context()
	// A real contact's data (and whether the id names one) is the contacts
	// scope's: without it, preview with sample data.
	if in.Contact != "" {
		if err := needScope(ctx, ScopeContacts, "a preview with a contact's data (give sample data instead)"); err != nil {
			return 0, nil, err
		}
	}
	t, err := a.d.Store.Template(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	comp, err := templates.Compile(*t)
	if err != nil {
		return 0, nil, storepkg.TemplateError(err)
	}
	if !comp.Has(in.Channel) {
		return 0, nil, dispatcher.Invalid("channel", "the template has no %s part", in.Channel)
	}
	data := templates.Data{Attr: in.Data, Now: a.d.Config.Now()}
	if data.Data, err = dispatcher.ParseSendData(in.SendData); err != nil {
		var e *dispatcher.Error
		if errors.As(err, &e) {
			e.Field = "send_data"
		}
		return 0, nil, err
	}
	if in.Contact != "" {
		c, err := a.d.Store.Contact(ctx, in.Contact)
		if errors.Is(err, dispatcher.ErrNotFound) {
			return 0, nil, dispatcher.Invalid("contact", "names no contact")
		}
		if err != nil {
			return 0, nil, err
		}
		data.Contact = templates.ContactData{ID: c.ID, Email: c.Email, Phone: c.Phone, Locale: c.Locale, Timezone: c.Timezone}
		data.Attr, data.Locale = c.Attributes, c.Locale
	}
	if data.Attr == nil {
		data.Attr = map[string]string{}
	}
	out, err := comp.Preview(in.Channel, data)
	if err != nil {
		return 0, nil, storepkg.PreviewError(err)
	}
	resp := previewResponse{Template: t.ID, Version: t.Version, Channel: in.Channel}
	if in.Channel == channels.SMS {
		resp.SMS, resp.Segments = out.SMS, &out.Segments
	} else {
		resp.From, resp.Subject, resp.HTML, resp.Text, resp.Headers = out.From, out.Subject, out.HTML, out.Text, out.Headers
	}
	return http.StatusOK, resp, nil
}

// countSegment counts a segment. A count that narrows by contact data (a
// static list, attribute predicates) tells that data one question at a
// time (prefix after prefix), so it needs the contacts scope; a count by
// tags over the whole base does not.
func (a *handler) countSegment(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ctx := r.Context()
	sg, err := a.d.Store.Segment(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if len(sg.Contacts) > 0 || len(sg.Where) > 0 {
		if err := needScope(ctx, ScopeContacts, "counting a segment by attributes or a list of contacts"); err != nil {
			return 0, nil, err
		}
	}
	n, err := a.d.Store.CountSegment(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"segment": r.PathValue("id"), "count": n}, nil
}

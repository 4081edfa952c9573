package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// putContact upserts the contact named by the path's id with the fields
// of the body: the times are Missive's.
func (a *handler) putContact(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in dispatcher.ContactFields
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	c := in.Contact(r.PathValue("id"))
	if err := a.d.Store.UpsertContact(r.Context(), &c, a.d.Config.DefaultTimezone); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, &c, nil
}

// contactRoute serves a route about the contact named by the path's id
// with what do returns for it. An id that cannot be one and a contact that
// is not there are both "contact not found".
func contactRoute[T any](do func(context.Context, string) (T, error)) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		id, err := pathID(r)
		if err != nil {
			return 0, nil, dispatcher.NotFound("contact")
		}
		v, err := do(r.Context(), id)
		if errors.Is(err, dispatcher.ErrNotFound) {
			return 0, nil, dispatcher.NotFound("contact")
		}
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, v, nil
	}
}

// importContacts serves POST /v1/contacts/import: NDJSON lines, each
// held to what the contact upsert and the consent routes accept (no
// unknown field, no consent to an unknown topic) and imported whole or
// refused whole; the answer counts the lines and lists the first refused
// ones by number and field (store.ImportContacts).
func (a *handler) importContacts(w http.ResponseWriter, r *http.Request) (int, any, error) {
	// A large import outlasts the server's read and write timeouts, which
	// protect the routes anyone may call; this one needs a key.
	rc := http.NewResponseController(w)
	until := time.Now().Add(a.cfg.ImportTimeout)
	_ = rc.SetReadDeadline(until)
	_ = rc.SetWriteDeadline(until)
	body := http.MaxBytesReader(w, r.Body, maxImportBody)
	res, err := a.d.Store.ImportContacts(r.Context(), body, a.d.Config.DefaultTimezone, nil)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return 0, nil, &dispatcher.Error{Code: dispatcher.CodeTooLarge, Field: "body", Message: fmt.Sprintf("is larger than %d bytes (%d contacts were imported before the limit)", mb.Limit, res.Imported)}
		}
		return 0, nil, err
	}
	return http.StatusOK, res, nil
}

func (a *handler) postConsent(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, dispatcher.NotFound("contact")
	}
	var e dispatcher.ConsentEvent
	if err := decodeJSON(w, r, &e); err != nil {
		return 0, nil, err
	}
	// Preferences have their route, which checks what they hold.
	if e.Kind != "" {
		return 0, nil, dispatcher.Invalid("kind", "is set through PUT /v1/contacts/{id}/preferences")
	}
	if e.Value != "" {
		return 0, nil, dispatcher.Invalid("value", "is set through PUT /v1/contacts/{id}/preferences")
	}
	if err := e.Validate(); err != nil {
		return 0, nil, err
	}
	if _, err := a.d.Store.Topic(r.Context(), e.Topic); err != nil {
		if dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			return 0, nil, dispatcher.Invalid("topic", "names no topic")
		}
		return 0, nil, err
	}
	if w := e.Evidence["wording"]; dispatcher.IsWordingID(w) {
		if err := a.checkWordings(r.Context(), "evidence.wording", w); err != nil {
			return 0, nil, err
		}
	}
	if e.At.IsZero() {
		e.At = a.d.Config.Now().UTC()
	}
	if err := a.d.Store.RecordConsent(r.Context(), id, e); err != nil {
		return 0, nil, err
	}
	for _, ev := range dispatcher.ConsentChanges(id, []dispatcher.ConsentEvent{e}) {
		a.d.Events.Emit(r.Context(), ev)
	}
	return http.StatusCreated, e, nil
}

type consentsResponse struct {
	Current map[string]storepkg.ConsentCurrent `json:"current"`
	// Preferences is the pace the contact chose, by "pause", "hours" and
	// "frequency/topic".
	Preferences map[string]storepkg.ConsentCurrent `json:"preferences"`
	Ledger      []dispatcher.ConsentEvent          `json:"ledger"`
}

// consents is the answer of GET /v1/contacts/{id}/consents.
func (a *handler) consents(ctx context.Context, id string) (*consentsResponse, error) {
	if ok, err := a.d.Store.ContactExists(ctx, id); err != nil {
		return nil, err
	} else if !ok {
		return nil, dispatcher.NotFound("contact")
	}
	cur, err := a.d.Store.ConsentStates(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &consentsResponse{Current: cur}
	if out.Preferences, err = a.d.Store.Preferences(ctx, id); err != nil {
		return nil, err
	}
	if out.Ledger, err = a.d.Store.ConsentLedger(ctx, id); err != nil {
		return nil, err
	}
	return out, nil
}

// postWording stores the exact text of a consent wording once, under the
// id derived from it: 201 when new, 200 when it was stored before.
func (a *handler) postWording(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var wd dispatcher.Wording
	if err := decodeJSON(w, r, &wd); err != nil {
		return 0, nil, err
	}
	wd.ID, wd.CreatedAt = "", time.Time{}
	created, err := a.d.Store.PutWording(r.Context(), &wd)
	if err != nil {
		return 0, nil, err
	}
	if !created {
		stored, err := a.d.Store.Wording(r.Context(), wd.ID)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, stored, nil
	}
	return http.StatusCreated, wd, nil
}

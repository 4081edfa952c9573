package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/missive-dev/missive/dispatcher"
)

// The pace a recipient chose, set by upstream (a CRM's own preference
// form, a support agent's note): each change is a ledger event with its
// source and evidence, as the preference page records its own.

// preferencesInput is the body of PUT /v1/contacts/{id}/preferences: what
// it leaves out stays as it is.
type preferencesInput struct {
	// PauseUntil pauses marketing messages until that time (RFC 3339);
	// "" lifts the pause.
	PauseUntil *string           `json:"pause_until"`
	Source     string            `json:"source"`
	Evidence   map[string]string `json:"evidence"`
}

// preferencesResponse is the contact's pace after the change, and the
// events it recorded (none when nothing changed).
type preferencesResponse struct {
	PauseUntil string                    `json:"pause_until,omitempty"`
	Recorded   []dispatcher.ConsentEvent `json:"recorded"`
}

// putPreferences records the preferences of the body. A bad value
// changes nothing, the others included.
func (a *handler) putPreferences(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, dispatcher.NotFound("contact")
	}
	var in preferencesInput
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	if in.PauseUntil == nil {
		return 0, nil, dispatcher.Invalid("pause_until", "is required: the end of the pause, or \"\" to lift it")
	}
	var until time.Time
	if *in.PauseUntil != "" {
		if until, err = dispatcher.ParsePause(*in.PauseUntil); err != nil {
			return 0, nil, err
		}
	}
	if w := in.Evidence["wording"]; dispatcher.IsWordingID(w) {
		if err := a.checkWordings(r.Context(), "evidence.wording", w); err != nil {
			return 0, nil, err
		}
	}
	out := preferencesResponse{Recorded: []dispatcher.ConsentEvent{}}
	e, err := a.d.Consent.SetPause(r.Context(), id, until, in.Source, in.Evidence)
	if errors.Is(err, dispatcher.ErrNotFound) {
		return 0, nil, dispatcher.NotFound("contact")
	}
	if err != nil {
		return 0, nil, err
	}
	if e != nil {
		out.Recorded = append(out.Recorded, *e)
	}
	if out.PauseUntil, err = a.pauseUntil(r.Context(), id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

// pauseUntil is the end of the contact's pause, "" when none is set or
// the one set is over.
func (a *handler) pauseUntil(ctx context.Context, id string) (string, error) {
	p, err := a.d.Store.Preferences(ctx, id)
	if err != nil {
		return "", err
	}
	v := p[dispatcher.PreferencePause].Value
	if t, err := dispatcher.ParsePause(v); err != nil || !t.After(a.d.Config.Now()) {
		return "", nil
	}
	return v, nil
}

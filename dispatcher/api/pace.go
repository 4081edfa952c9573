package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
)

// The pace a recipient chose, set by upstream (a CRM's own preference
// form, a support agent's note): each change is a ledger event with its
// source and evidence, as the preference page records its own.

// preferencesInput is the body of PUT /v1/contacts/{id}/preferences: what
// it leaves out stays as it is.
type preferencesInput struct {
	// PauseUntil pauses marketing messages until that time (RFC 3339);
	// "" lifts the pause.
	PauseUntil *string `json:"pause_until"`
	// Frequency: topic -> pace (dispatcher.Frequencies).
	Frequency map[string]string `json:"frequency"`
	// Hours: the days and hours preferred (dispatcher.ParseHours); ""
	// for any time.
	Hours    *string           `json:"hours"`
	Source   string            `json:"source"`
	Evidence map[string]string `json:"evidence"`
}

// preferencesResponse is the contact's pace after the change, and the
// events it recorded (none when nothing changed).
type preferencesResponse struct {
	PauseUntil string                    `json:"pause_until,omitempty"`
	Frequency  map[string]string         `json:"frequency"`
	Hours      string                    `json:"hours,omitempty"`
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
	if in.PauseUntil == nil && in.Frequency == nil && in.Hours == nil {
		return 0, nil, dispatcher.Invalid("body", "must set pause_until, frequency or hours")
	}
	var pace consent.Pace
	if in.PauseUntil != nil {
		var until time.Time
		if *in.PauseUntil != "" {
			if until, err = dispatcher.ParsePause(*in.PauseUntil); err != nil {
				return 0, nil, err
			}
		}
		pace.Pause = &until
	}
	if len(in.Frequency) > 64 {
		return 0, nil, dispatcher.Invalid("frequency", "at most 64 topics")
	}
	pace.Frequency, pace.Hours = in.Frequency, in.Hours
	if w := in.Evidence["wording"]; dispatcher.IsWordingID(w) {
		if err := a.checkWordings(r.Context(), "evidence.wording", w); err != nil {
			return 0, nil, err
		}
	}
	events, err := a.d.Consent.SetPace(r.Context(), id, pace, in.Source, in.Evidence)
	if errors.Is(err, dispatcher.ErrNotFound) {
		return 0, nil, dispatcher.NotFound("contact")
	}
	if err != nil {
		return 0, nil, err
	}
	out, err := a.paceOf(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	out.Recorded = append(out.Recorded, events...)
	return http.StatusOK, out, nil
}

// paceOf is the pace the contact chose: the end of its pause ("" when
// none is set or the one set is over) and its paces by topic.
func (a *handler) paceOf(ctx context.Context, id string) (*preferencesResponse, error) {
	p, err := a.d.Store.Preferences(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &preferencesResponse{Frequency: map[string]string{}, Recorded: []dispatcher.ConsentEvent{}}
	if v := p[dispatcher.PreferencePause].Value; v != "" {
		if t, err := dispatcher.ParsePause(v); err == nil && t.After(a.d.Config.Now()) {
			out.PauseUntil = v
		}
	}
	out.Hours = p[dispatcher.PreferenceHours].Value
	for f, c := range p {
		if topic, ok := strings.CutPrefix(f, dispatcher.PreferenceFrequency+"/"); ok && c.Value != "" {
			out.Frequency[topic] = c.Value
		}
	}
	return out, nil
}

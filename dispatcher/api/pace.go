package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
	"github.com/missive-dev/missive/dispatcher/page"
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

// paceView is what the preference page shows of the contact's pace, in
// its zone loc.
func (a *handler) paceView(ctx context.Context, id string, topics []dispatcher.Topic, loc *time.Location) (page.Pace, error) {
	prefs, err := a.d.Store.Preferences(ctx, id)
	if err != nil {
		return page.Pace{}, err
	}
	now := a.d.Config.Now()
	// A pause ends at the start of a day: tomorrow is the first it can.
	v := page.Pace{First: now.In(loc).AddDate(0, 0, 1).Format(time.DateOnly)}
	if t, err := dispatcher.ParsePause(prefs[dispatcher.PreferencePause].Value); err == nil && t.After(now) {
		v.PauseUntil = t.In(loc).Format(time.DateOnly)
	}
	names := map[string]string{}
	for _, tp := range topics {
		names[tp.ID] = tp.Name
		if tp.Kind == dispatcher.Marketing {
			v.Topics = append(v.Topics, page.PaceTopic{ID: tp.ID, Name: tp.Name, Offered: tp.Offered(),
				Chosen: prefs[dispatcher.PreferenceFrequency+"/"+tp.ID].Value})
		}
	}
	if h := prefs[dispatcher.PreferenceHours].Value; h != "" {
		if cal, err := dispatcher.ParseHours(h); err == nil {
			for i, day := range page.Weekdays {
				if ws := cal.Windows[(i+1)%7]; len(ws) > 0 {
					v.Days = append(v.Days, day)
					if v.From == "" {
						v.From, v.To = clock(ws[0].Start), clock(ws[0].End%1440)
					}
				}
			}
		}
	}
	for _, f := range slices.Sorted(maps.Keys(prefs)) {
		p := prefs[f]
		if p.Value == "" {
			continue
		}
		kind, topic, _ := strings.Cut(f, "/")
		h := page.PaceHeld{Kind: kind, Topic: cmp.Or(names[topic], topic), Value: p.Value, Source: p.Source, At: p.At}
		if kind == dispatcher.PreferencePause {
			if t, err := dispatcher.ParsePause(p.Value); err == nil {
				h.Value = t.In(loc).Format("2006-01-02 15:04")
			}
		}
		v.Held = append(v.Held, h)
	}
	return v, nil
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// paceForm reads the preference page's pace form: a pause until a local
// date (the start of that day in the contact's zone; empty resumes), a
// pace per topic the form names, and days with one span (none ticked: any
// time; "to" at or before "from" ends at midnight).
func (a *handler) paceForm(ctx context.Context, id string, form url.Values) (consent.Pace, error) {
	c, err := a.d.Store.Contact(ctx, id)
	if err != nil {
		return consent.Pace{}, err
	}
	loc, err := dispatcher.LoadLocation(c.Timezone)
	if err != nil {
		loc = time.UTC
	}
	var p consent.Pace
	until := time.Time{}
	if d := form.Get("pause_until"); d != "" {
		day, err := time.ParseInLocation(time.DateOnly, d, loc)
		if err != nil {
			return p, dispatcher.Invalid("pause_until", "must be a date")
		}
		until = day
	}
	p.Pause = &until
	p.Frequency = map[string]string{}
	for k, vs := range form {
		if topic, ok := strings.CutPrefix(k, "freq."); ok && len(vs) == 1 {
			p.Frequency[topic] = vs[0]
			if vs[0] == dispatcher.FrequencyEvery {
				p.Frequency[topic] = ""
			}
		}
	}
	if len(p.Frequency) > 64 {
		return p, dispatcher.Invalid("frequency", "at most 64 topics")
	}
	hours := ""
	if days := form["day"]; len(days) > 0 {
		if len(days) > 7 {
			return p, dispatcher.Invalid("hours", "at most 7 days")
		}
		for _, d := range days {
			if !slices.Contains(page.Weekdays, d) {
				return p, dispatcher.Invalid("hours", "unknown day")
			}
		}
		from, to := cmp.Or(form.Get("from"), "00:00"), cmp.Or(form.Get("to"), "00:00")
		if to <= from {
			to = "24:00"
		}
		hours = strings.Join(days, ",") + " " + from + "-" + to
	}
	p.Hours = &hours
	return p, nil
}

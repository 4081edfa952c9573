package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/sequence"
)

// sequenceInput is a sequence as a client writes it: the id comes from
// the path, and version, times and pause state are Missive's.
type sequenceInput struct {
	Name     string                     `json:"name,omitempty"`
	Topic    string                     `json:"topic"`
	Trigger  dispatcher.SequenceTrigger `json:"trigger"`
	Steps    []dispatcher.SequenceStep  `json:"steps"`
	StopTags []string                   `json:"stop_tags,omitempty"`
	Reenrol  bool                       `json:"reenrol,omitempty"`
	// MoveEnrolments moves the running enrolments of earlier versions to
	// the new one, at their next step.
	MoveEnrolments bool `json:"move_enrolments,omitempty"`
}

// sequenceView is a sequence as the API shows it: with its counts.
type sequenceView struct {
	*dispatcher.Sequence
	Stats *sequence.Stats `json:"stats"`
}

func (a *handler) sequenceView(ctx context.Context, s *dispatcher.Sequence) (sequenceView, error) {
	st, err := a.d.Sequences.Stats(ctx, s.ID)
	return sequenceView{Sequence: s, Stats: st}, err
}

// sequenceAnswer answers 200 with the sequence s and its counts, or err.
func (a *handler) sequenceAnswer(ctx context.Context, s *dispatcher.Sequence, err error) (int, any, error) {
	if err != nil {
		return 0, nil, err
	}
	v, err := a.sequenceView(ctx, s)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, v, nil
}

// putSequence creates a sequence or makes its next version: 201 for the
// first, 200 after.
func (a *handler) putSequence(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in sequenceInput
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	seq := &dispatcher.Sequence{ID: r.PathValue("id"), Name: in.Name, Topic: in.Topic, Trigger: in.Trigger,
		Steps: in.Steps, StopTags: in.StopTags, Reenrol: in.Reenrol}
	// Version 1 is not enough to tell a creation: a new name, or
	// move_enrolments, stores version 1 again.
	_, err := a.d.Store.Sequence(r.Context(), seq.ID)
	existed := err == nil
	if err != nil && !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		return 0, nil, err
	}
	out, made, err := a.d.Sequences.Put(r.Context(), seq, in.MoveEnrolments)
	status, v, err := a.sequenceAnswer(r.Context(), out, err)
	if err == nil && made && !existed {
		status = http.StatusCreated
	}
	return status, v, err
}

func (a *handler) getSequence(w http.ResponseWriter, r *http.Request) (int, any, error) {
	s, err := a.d.Store.Sequence(r.Context(), r.PathValue("id"))
	return a.sequenceAnswer(r.Context(), s, err)
}

func (a *handler) listSequences(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ss, err := a.d.Store.Sequences(r.Context())
	if err != nil {
		return 0, nil, err
	}
	out := make([]sequenceView, 0, len(ss))
	for i := range ss {
		v, err := a.sequenceView(r.Context(), &ss[i])
		if err != nil {
			return 0, nil, err
		}
		out = append(out, v)
	}
	return http.StatusOK, map[string][]sequenceView{"sequences": out}, nil
}

// sequencePause serves pause (paused true) and resume.
func (a *handler) sequencePause(paused bool) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		s, err := a.d.Sequences.SetPaused(r.Context(), r.PathValue("id"), paused)
		return a.sequenceAnswer(r.Context(), s, err)
	}
}

// enrolRequest is the body of an enrolment through the API.
type enrolRequest struct {
	Contact string `json:"contact"`
	// Data is what the sequence's templates reach as .Data.
	Data json.RawMessage `json:"data,omitempty"`
}

// enrolAnswer tells the enrolment and whether this call made it.
type enrolAnswer struct {
	Enrolment *dispatcher.Enrolment `json:"enrolment"`
	Created   bool                  `json:"created"`
}

// enrol serves POST /v1/sequences/{id}/enrol: 201 with the enrolment made,
// 200 with the one there when the contact is in the sequence already or
// went through it. The Idempotency-Key makes a retry answer the same.
func (a *handler) enrol(w http.ResponseWriter, r *http.Request) (int, any, error) {
	key, err := requiredIdemKey(r)
	if err != nil {
		return 0, nil, err
	}
	var in enrolRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return 0, nil, err
	}
	if !dispatcher.ValidID(in.Contact) {
		return 0, nil, dispatcher.Invalid("contact", "must be a contact id")
	}
	data, err := a.sendData(&in.Data)
	if err != nil {
		return 0, nil, err
	}
	id := r.PathValue("id")
	fp, _ := json.Marshal(struct {
		Sequence string
		enrolRequest
	}{id, in})
	return a.idempotent(r.Context(), key, "enrol", fp, func(ctx context.Context) (int, any, error) {
		e, created, err := a.d.Sequences.Enrol(ctx, id, in.Contact, dispatcher.TriggerAPI, data)
		if dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			if _, serr := a.d.Store.Sequence(ctx, id); serr != nil {
				return 0, nil, serr
			}
			return 0, nil, dispatcher.Invalid("contact", "names no contact")
		}
		if err != nil {
			return 0, nil, err
		}
		e.Data = nil
		if created {
			return http.StatusCreated, enrolAnswer{Enrolment: e, Created: true}, nil
		}
		return http.StatusOK, enrolAnswer{Enrolment: e}, nil
	})
}

// stopEnrolment serves POST /v1/sequences/{id}/enrolments/{contact}/stop.
func (a *handler) stopEnrolment(w http.ResponseWriter, r *http.Request) (int, any, error) {
	e, err := a.d.Sequences.Stop(r.Context(), r.PathValue("id"), r.PathValue("contact"))
	if err != nil {
		return 0, nil, err
	}
	e.Data = nil
	return http.StatusOK, e, nil
}

// enrolments returns a contact's enrolments with their next actions.
func (a *handler) enrolments(ctx context.Context, id string) (map[string][]sequence.Progress, error) {
	if ok, err := a.d.Store.ContactExists(ctx, id); err != nil {
		return nil, err
	} else if !ok {
		return nil, dispatcher.ErrNotFound
	}
	ps, err := a.d.Sequences.Progress(ctx, id)
	return map[string][]sequence.Progress{"enrolments": ps}, err
}

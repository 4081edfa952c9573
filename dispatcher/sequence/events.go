package sequence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
)

// Emit enrols and stops on the events of the operations that cause them
// (dispatcher.Events): a sign-up confirmed enrols in the sequences of its
// topic that it triggers, a consent to a topic withdrawn ends the
// enrolments in its sequences, a complaint ends them all. It never fails
// the caller: what it cannot do now, the next step's checks do.
func (g *Engine) Emit(ctx context.Context, e dispatcher.Event) {
	var err error
	switch e.Type {
	case dispatcher.EventSignupConfirmed:
		err = g.enrolWhere(ctx, e.Contact, dispatcher.TriggerSignup, func(s *dispatcher.Sequence) bool {
			return s.Trigger.Signup && s.Topic == e.Topic
		})
	case dispatcher.EventConsentChanged:
		if e.State == string(dispatcher.Withdrawn) {
			// A complaint withdraws consent before it is told: the
			// enrolment ends for the complaint.
			reason := dispatcher.StopLeftTopic
			if e.Reason == "complaint" {
				reason = dispatcher.StopComplaint
			}
			_, err = g.stopWhere(ctx, e.Contact, reason, func(s *dispatcher.Sequence) bool { return s.Topic == e.Topic })
		}
	case dispatcher.EventComplained:
		_, err = g.stopWhere(ctx, e.Contact, dispatcher.StopComplaint, func(*dispatcher.Sequence) bool { return true })
	}
	if err != nil && ctx.Err() == nil {
		g.log.Warn("sequences: event not applied", "event", e.Type, "error", err)
	}
}

// TagsAdded enrols each contact in the sequences that its added tags
// trigger and ends its enrolments in those they stop. Upstream systems add
// tags through the contact routes and imports: an import chunk costs one
// read of the sequences, and nothing more when no sequence names its tags.
func (g *Engine) TagsAdded(ctx context.Context, added map[string][]string) error {
	if len(added) == 0 {
		return nil
	}
	seqs, err := g.store.Sequences(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for contact, tags := range added {
		stops := map[string]bool{}
		var triggered []string
		for _, s := range seqs {
			if slices.ContainsFunc(s.StopTags, func(t string) bool { return slices.Contains(tags, t) }) {
				stops[s.ID] = true
			}
			if s.Trigger.Tag != "" && slices.Contains(tags, s.Trigger.Tag) {
				triggered = append(triggered, s.ID)
			}
		}
		if len(stops) > 0 {
			if _, err := g.stopWhere(ctx, contact, dispatcher.StopTag, func(s *dispatcher.Sequence) bool { return stops[s.ID] }); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		for _, id := range triggered {
			if _, _, err := g.Enrol(ctx, id, contact, dispatcher.TriggerTag, nil); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// tagReplayAfter is how old a tag journal entry is when the sequences are
// told it again: its writer had that long to tell them and take it out.
const tagReplayAfter = time.Minute

// replayTags tells the sequences the tags added that the journal holds
// since before now-tagReplayAfter: their writer died, or failed to tell
// them. Only the tags the contact still has count; an erased contact's
// entry is dropped. Telling twice enrols once. A contact whose telling
// fails again has its entries filed at now, behind the others, to be
// tried again.
func (g *Engine) replayTags(ctx context.Context, now time.Time) error {
	for {
		entries, err := g.store.TagJournal(ctx, now.Add(-tagReplayAfter), g.cfg.Batch)
		if err != nil || len(entries) == 0 {
			return err
		}
		ids := make([]string, len(entries))
		for i, e := range entries {
			ids[i] = e.Contact
		}
		cs, err := g.store.Contacts(ctx, ids)
		if err != nil {
			return err
		}
		added := map[string][]string{}
		for i, e := range entries {
			if e.Contact == "" {
				g.log.Warn("tag journal entry does not open; dropped")
				continue
			}
			if cs[i] == nil {
				continue
			}
			for _, t := range e.Tags {
				if slices.Contains(cs[i].Tags, t) && !slices.Contains(added[e.Contact], t) {
					added[e.Contact] = append(added[e.Contact], t)
				}
			}
		}
		failed := map[string]bool{}
		for c, tags := range added {
			if err := g.TagsAdded(ctx, map[string][]string{c: tags}); err != nil {
				g.log.Warn("tags of the journal not applied; tried again later", "contact", c, "error", err)
				failed[c] = true
			}
		}
		var done, again []store.TagJournalEntry
		for _, e := range entries {
			if failed[e.Contact] {
				again = append(again, e)
			} else {
				done = append(done, e)
			}
		}
		if err := g.store.DeferTagJournal(ctx, again, now); err != nil {
			return err
		}
		if err := g.store.AckTagJournal(ctx, done); err != nil {
			return err
		}
		g.log.Info("tags replayed from the journal", "entries", len(entries), "contacts", len(added), "failed", len(failed))
		if len(entries) < g.cfg.Batch {
			return nil
		}
	}
}

// enrolWhere enrols the contact by trigger in the sequences that match.
func (g *Engine) enrolWhere(ctx context.Context, contact, trigger string, match func(*dispatcher.Sequence) bool) error {
	seqs, err := g.store.Sequences(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for i := range seqs {
		if match(&seqs[i]) {
			if _, _, err := g.Enrol(ctx, seqs[i].ID, contact, trigger, nil); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Stop ends the contact's active enrolment in the sequence id, by an
// operator. Returns an error with code not_found when the contact has no
// active enrolment there.
func (g *Engine) Stop(ctx context.Context, id, contact string) (*dispatcher.Enrolment, error) {
	stopped, err := g.stopWhere(ctx, contact, dispatcher.StopByOperator, func(s *dispatcher.Sequence) bool { return s.ID == id })
	if err != nil {
		return nil, err
	}
	if len(stopped) == 0 {
		return nil, dispatcher.NotFound("active enrolment")
	}
	return stopped[0], nil
}

// stopWhere ends the contact's active enrolments in the sequences that
// match, for reason, and returns them.
func (g *Engine) stopWhere(ctx context.Context, contact, reason string, match func(*dispatcher.Sequence) bool) ([]*dispatcher.Enrolment, error) {
	rs, err := g.store.Enrolments(ctx, contact)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	var out []*dispatcher.Enrolment
	for _, r := range rs {
		if r.State != dispatcher.EnrolmentActive {
			continue
		}
		seq, err := g.store.Sequence(ctx, r.Sequence)
		if dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		if !match(seq) {
			continue
		}
		if e, err := g.stop(ctx, r, reason); err != nil {
			return out, err
		} else if e != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// stop ends r for reason, reading it again while another writer changes
// it; it returns nil when it had ended meanwhile.
func (g *Engine) stop(ctx context.Context, r *store.EnrolmentRecord, reason string) (*dispatcher.Enrolment, error) {
	for range 8 {
		if r.State != dispatcher.EnrolmentActive {
			return nil, nil
		}
		end(&r.Enrolment, dispatcher.EnrolmentStopped, reason, g.cfg.Now())
		ok, err := g.store.SaveEnrolment(ctx, r)
		if err != nil {
			return nil, err
		}
		if ok {
			g.log.Info("enrolment stopped", "sequence", r.Sequence, "reason", reason)
			return &r.Enrolment, nil
		}
		if r, err = g.store.Enrolment(ctx, r.Contact, r.Sequence); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("stop enrolment: %w", errStale)
}

// Progress is an enrolment with its next action, as the API and the
// console show it.
type Progress struct {
	dispatcher.Enrolment
	// Steps is how many steps the enrolment's version has.
	Steps int `json:"steps"`
	// Next is what the enrolment does next and when; none once it ended.
	Next *Next `json:"next,omitempty"`
}

// Next is an enrolment's next action: a send (its channel and template)
// or the end of a wait, at At.
type Next struct {
	Step     int       `json:"step"`
	Action   string    `json:"action"` // send, wait or end
	Channel  string    `json:"channel,omitempty"`
	Fallback string    `json:"fallback,omitempty"`
	Template string    `json:"template,omitempty"`
	At       time.Time `json:"at"`
	// Paused says the sequence is paused: the action waits for the
	// resume.
	Paused bool `json:"paused,omitempty"`
}

// Progress returns the contact's enrolments, one per sequence, with their
// next actions. Data given at enrolment is not part of it.
func (g *Engine) Progress(ctx context.Context, contact string) ([]Progress, error) {
	rs, err := g.store.Enrolments(ctx, contact)
	if err != nil {
		return nil, err
	}
	out := make([]Progress, 0, len(rs))
	for _, r := range rs {
		p := Progress{Enrolment: r.Enrolment}
		p.Data = nil
		def, err := g.store.SequenceVersion(ctx, r.Sequence, r.Version)
		if err != nil && !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			return nil, err
		}
		if def != nil && err == nil {
			p.Steps = len(def.Steps)
			if r.State == dispatcher.EnrolmentActive {
				p.Next = next(def, &r.Enrolment)
				if cur, err := g.store.Sequence(ctx, r.Sequence); err == nil {
					p.Next.Paused = cur.Paused
				}
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// next describes the enrolment's next action: the step it stands at, or,
// while it waits, the step after the wait, at the wait's end.
func next(def *dispatcher.Sequence, e *dispatcher.Enrolment) *Next {
	n := &Next{Step: e.Step, Action: "end", At: e.At}
	if e.Step < len(def.Steps) && def.Steps[e.Step].Wait != nil {
		n.Step++
	}
	if n.Step >= len(def.Steps) {
		return n
	}
	st := def.Steps[n.Step]
	if st.Send == nil {
		n.Action = "wait"
		return n
	}
	n.Action, n.Channel, n.Fallback, n.Template = "send", string(st.Send.Channel), string(st.Send.Fallback), st.Send.Template
	return n
}

// Stats are a sequence's counts: active enrolments and the counters of
// those that entered and ended.
type Stats struct {
	Active    int64            `json:"active"`
	Enrolled  int64            `json:"enrolled"`
	Completed int64            `json:"completed"`
	Stopped   map[string]int64 `json:"stopped"`
}

// Stats returns the counts of the sequence id.
func (g *Engine) Stats(ctx context.Context, id string) (*Stats, error) {
	active, m, err := g.store.SequenceStats(ctx, id)
	if err != nil {
		return nil, err
	}
	st := &Stats{Active: active, Enrolled: m["enrolled"], Completed: m["completed"], Stopped: map[string]int64{}}
	for k, v := range m {
		if reason, ok := strings.CutPrefix(k, "stopped:"); ok {
			st.Stopped[reason] = v
		}
	}
	return st, nil
}

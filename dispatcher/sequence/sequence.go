// Package sequence runs sequences: welcome and follow-up messages that a
// contact gets one after the other, timed from when they entered.
//
// A contact enters (enrols in) a sequence by its trigger: a sign-up to the
// sequence's topic confirmed, a tag added by an upstream system, or a call
// of the API. Its enrolment records the step to start next and when; the
// enrolments waiting are filed in one sorted set per sequence by that time
// (P:seq:{id}:due), so that 100,000 waiting cost a record each and no
// timer. The scheduler's leader pops what is due every tick (FireDue), in
// batches of up to 500 per task; a worker takes each enrolment's due steps
// (Fire): a wait computes when it ends in the recipient's zone, a send goes
// through the pipeline's one send path (the gate, a send record, the
// queue, the claim before the provider call).
//
// Exactly once. The send of a step has an id derived from the sequence,
// the contact, the enrolment's number and the step, and the enrolment
// records that id before the gate decides it, so that a retried task, a
// crash or a second worker finds the same send; the send path then sends
// it once. A re-enrolment has its own number: it never meets the sends of
// the one before.
//
// Stops. Leaving the topic (a consent to it withdrawn, STOP included), a
// complaint and a stop tag end an enrolment at once (Emit, TagsAdded); an
// erasure deletes it. The worker checks them again before each step, and
// the gate checks consent and suppression before each send.
//
// Versions. Editing a sequence makes a new version; an enrolment keeps
// the version it started with, unless the edit moved the enrolments on,
// which they do at their next step, keeping their place (step index).
//
//	e, err := sequence.New(sequence.Config{Store: st, Pipeline: pipe})
//	enr, created, err := e.Enrol(ctx, "welcome", "c-1042", dispatcher.TriggerAPI, nil)
package sequence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
)

// Pipeline decides sends and queues steps (pipeline.Pipeline).
type Pipeline interface {
	DecideOne(ctx context.Context, o pipeline.OneSend) (*dispatcher.Send, error)
	EnqueueSequence(ctx context.Context, sequence string, contacts []string) error
}

// Config configures an Engine.
type Config struct {
	// Store holds sequences and enrolments. Required.
	Store *store.Store
	// Pipeline decides the sends and queues the steps. Required.
	Pipeline Pipeline
	// Batch is how many enrolments a task takes at most. Default 500.
	Batch int
	// Lease is how long a popped enrolment waits before it is popped
	// again when its task was lost. Default 5 minutes.
	Lease time.Duration
	// DefaultTimezone is the zone of contacts without one. Default UTC.
	DefaultTimezone string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives operational logs, ids only. Default slog.Default().
	Logger *slog.Logger
}

// Engine enrols contacts in sequences and takes their steps. It is safe
// for concurrent use.
type Engine struct {
	cfg   Config
	store *store.Store
	log   *slog.Logger
}

// New validates cfg and returns an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Pipeline == nil {
		return nil, errors.New("sequence: Config.Store and Pipeline are required")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Engine{cfg: cfg, store: cfg.Store, log: cfg.Logger}, nil
}

// Put stores seq as its next version, checked against the catalogue: its
// topic exists, and each send's template has a part for its channels.
// move moves the running enrolments of earlier versions to this one. It
// returns the sequence stored and whether it made a version (an unchanged
// sequence makes none).
func (g *Engine) Put(ctx context.Context, seq *dispatcher.Sequence, move bool) (*dispatcher.Sequence, bool, error) {
	if err := seq.Validate(); err != nil {
		return nil, false, err
	}
	if _, err := g.store.Topic(ctx, seq.Topic); dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		return nil, false, dispatcher.Invalid("topic", "names no topic")
	} else if err != nil {
		return nil, false, err
	}
	for i, st := range seq.Steps {
		if st.Send == nil {
			continue
		}
		field := fmt.Sprintf("steps[%d].send.template", i)
		tpl, err := g.store.Template(ctx, st.Send.Template)
		if dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			return nil, false, dispatcher.Invalid(field, "names no template")
		}
		if err != nil {
			return nil, false, err
		}
		for _, k := range st.Send.Channels() {
			if !hasPart(tpl, k) {
				return nil, false, dispatcher.Invalid(field, "has no %s part", k)
			}
		}
	}
	out, made, err := g.store.PutSequence(ctx, seq, move, g.cfg.Now())
	if err == nil && made {
		g.log.Info("sequence saved", "sequence", out.ID, "version", out.Version, "moved", move)
	}
	return out, made, err
}

func hasPart(t *templates.Template, k channels.Kind) bool {
	return (k == channels.Email && t.Email != nil) || (k == channels.SMS && t.SMS != nil)
}

// SetPaused pauses or resumes a sequence: while it is paused no step is
// taken, and enrolments whose step came due wait for the resume. Returns
// an error with code not_found if there is no such sequence.
func (g *Engine) SetPaused(ctx context.Context, id string, paused bool) (*dispatcher.Sequence, error) {
	seq, err := g.store.SetSequencePaused(ctx, id, paused, g.cfg.Now())
	if err == nil {
		g.log.Info("sequence paused", "sequence", id, "paused", paused)
	}
	return seq, err
}

// Enrol enrols the contact in the sequence id by trigger, with data for
// the templates (.Data), and queues its first step. A contact already in
// the sequence, or who went through it when the sequence does not allow
// re-enrolment, is not enrolled again: Enrol returns that enrolment and
// false. Returns an error with code not_found for an unknown sequence or
// contact.
func (g *Engine) Enrol(ctx context.Context, id, contact, trigger string, data map[string]any) (*dispatcher.Enrolment, bool, error) {
	seq, err := g.store.Sequence(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if ok, err := g.store.ContactExists(ctx, contact); err != nil {
		return nil, false, err
	} else if !ok {
		return nil, false, dispatcher.NotFound("contact")
	}
	now := g.cfg.Now().UTC()
	e := &dispatcher.Enrolment{Sequence: seq.ID, Contact: contact, Version: seq.Version, Trigger: trigger,
		State: dispatcher.EnrolmentActive, At: now, Since: now, StartedAt: now, Data: data}
	r, created, err := g.store.Enrol(ctx, e, seq.Reenrol)
	if err != nil || !created {
		return enrolment(r), false, err
	}
	g.log.Info("contact enrolled", "sequence", seq.ID, "trigger", trigger)
	if !seq.Paused {
		// The first step now; were the task lost, the scheduler's next
		// pop takes it.
		if err := g.cfg.Pipeline.EnqueueSequence(ctx, seq.ID, []string{contact}); err != nil {
			g.log.Warn("sequence step not queued", "sequence", seq.ID, "error", err)
		}
	}
	return &r.Enrolment, true, nil
}

func enrolment(r *store.EnrolmentRecord) *dispatcher.Enrolment {
	if r == nil {
		return nil
	}
	return &r.Enrolment
}

// FireDue queues the enrolments whose step is due at now, of every
// sequence not paused, in tasks of up to Config.Batch, after it told the
// tags that a process left in the journal (replayTags). The scheduler's
// leader calls it each tick.
func (g *Engine) FireDue(ctx context.Context, now time.Time) error {
	if err := g.replayTags(ctx, now); err != nil && ctx.Err() == nil {
		// Tried again next tick; the steps due go on meanwhile.
		g.log.Warn("tag journal not replayed", "error", err)
	}
	seqs, err := g.store.Sequences(ctx)
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		if seq.Paused {
			continue
		}
		for {
			ids, err := g.store.PopDueEnrolments(ctx, seq.ID, now, g.cfg.Lease, g.cfg.Batch)
			if err != nil {
				return err
			}
			if len(ids) > 0 {
				if err := g.cfg.Pipeline.EnqueueSequence(ctx, seq.ID, ids); err != nil {
					return err
				}
			}
			if len(ids) < g.cfg.Batch {
				break
			}
		}
	}
	return nil
}

// firing is what one Fire call reads once for all its contacts.
type firing struct {
	seq      *dispatcher.Sequence
	versions map[int]*dispatcher.Sequence
	topic    *dispatcher.Topic
}

// Fire takes the due steps of the contacts' enrolments in the sequence
// id. It is safe to call twice for the same enrolment, at once or after a
// crash: each step is taken once.
func (g *Engine) Fire(ctx context.Context, id string, contacts []string) error {
	seq, err := g.store.Sequence(ctx, id)
	if dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	topic, err := g.store.Topic(ctx, seq.Topic)
	if err != nil {
		return fmt.Errorf("sequence %s: topic: %w", id, err)
	}
	f := &firing{seq: seq, versions: map[int]*dispatcher.Sequence{seq.Version: seq}, topic: topic}
	var errs []error
	for _, c := range contacts {
		if err := g.advance(ctx, f, c); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// The enrolments that failed come back when their lease ends.
		return fmt.Errorf("sequence %s: %d of %d enrolments: %w", id, len(errs), len(contacts), errors.Join(errs...))
	}
	return nil
}

// errStale: the enrolment changed while it was being advanced.
var errStale = errors.New("enrolment changed")

// advance takes the contact's due steps, reading the enrolment again when
// another worker changed it meanwhile.
func (g *Engine) advance(ctx context.Context, f *firing, contact string) error {
	for range 8 {
		r, err := g.store.Enrolment(ctx, contact, f.seq.ID)
		if errors.Is(err, dispatcher.ErrNotFound) {
			return g.store.DropDue(ctx, f.seq.ID, contact)
		}
		if err != nil {
			return err
		}
		now := g.cfg.Now()
		if r.State != dispatcher.EnrolmentActive || f.seq.Paused || r.At.After(now) {
			// Ended, held by a pause, or not due yet (a stale pop):
			// back where its record says.
			return g.store.RefileEnrolment(ctx, r)
		}
		err = g.steps(ctx, f, r, now)
		if !errors.Is(err, errStale) {
			return err
		}
	}
	return fmt.Errorf("advance enrolment: %w", errStale)
}

// version returns version v of the sequence, read once per firing.
func (g *Engine) version(ctx context.Context, f *firing, v int) (*dispatcher.Sequence, error) {
	if s, ok := f.versions[v]; ok {
		return s, nil
	}
	s, err := g.store.SequenceVersion(ctx, f.seq.ID, v)
	if err != nil {
		return nil, err
	}
	f.versions[v] = s
	return s, nil
}

// save writes r back, or returns errStale.
func (g *Engine) save(ctx context.Context, r *store.EnrolmentRecord) error {
	ok, err := g.store.SaveEnrolment(ctx, r)
	if err == nil && !ok {
		return errStale
	}
	return err
}

// steps takes r's steps from its current one until a wait that has not
// ended, or the end.
func (g *Engine) steps(ctx context.Context, f *firing, r *store.EnrolmentRecord, now time.Time) error {
	// An edit that moved the enrolments on names the version they move
	// to; a later edit that did not keeps them there.
	if r.Sending == "" && f.seq.MovedFrom > r.Version {
		r.Version = f.seq.MovedFrom
	}
	def, err := g.version(ctx, f, r.Version)
	if err != nil {
		return err
	}
	c, err := g.store.Contact(ctx, r.Contact)
	if errors.Is(err, dispatcher.ErrNotFound) || dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		// Erased meanwhile: the erasure deletes the enrolment too.
		_, err := g.store.EraseEnrolments(ctx, r.Contact)
		return err
	}
	if err != nil {
		return err
	}
	if reason, err := g.stopReason(ctx, def, f.topic, c, r.StartedAt); err != nil {
		return err
	} else if reason != "" {
		end(&r.Enrolment, dispatcher.EnrolmentStopped, reason, now)
		return g.save(ctx, r)
	}
	loc, err := dispatcher.LoadLocation(c.Timezone)
	if err != nil || c.Timezone == "" {
		if loc, err = dispatcher.LoadLocation(g.cfg.DefaultTimezone); err != nil {
			loc = time.UTC
		}
	}
	for r.Step < len(def.Steps) {
		st := def.Steps[r.Step]
		if w := st.Wait; w != nil {
			at := w.End(r.Since, loc)
			if at.After(now) {
				r.At = at.UTC()
				return g.save(ctx, r)
			}
			r.Step, r.Since = r.Step+1, at.UTC()
			continue
		}
		sd := st.Send
		tpl, err := g.store.Template(ctx, sd.Template)
		if err != nil {
			return fmt.Errorf("sequence %s step %d: template: %w", def.ID, r.Step, err)
		}
		if r.Sending == "" {
			// The send's id is recorded before it is decided: whoever
			// takes this step again decides the same send.
			run := pipeline.OneRunID(dispatcher.SequenceCampaign+"-"+def.ID+"-s"+strconv.Itoa(r.Step), f.topic.ID, tpl.ID, tpl.Version, now)
			k := sd.Channel
			if sd.Fallback != "" {
				k = "any"
			}
			r.Sending = dispatcher.SendID(run, r.Key(r.Step), k)
			if err := g.save(ctx, r); err != nil {
				return err
			}
		}
		run, _, _ := dispatcher.SplitSendID(r.Sending)
		s, err := g.cfg.Pipeline.DecideOne(ctx, pipeline.OneSend{Campaign: dispatcher.SequenceCampaign, Run: run,
			Key: r.Key(r.Step), Contact: c, Topic: f.topic, Tpl: tpl, Channel: sd.Channel, Fallback: sd.Fallback, Data: r.Data})
		if err != nil {
			return fmt.Errorf("sequence %s step %d: %w", def.ID, r.Step, err)
		}
		// The next wait counts from when this message leaves: a message
		// held by quiet hours until the morning moves the next one too.
		r.Since = now.UTC()
		if s.State == dispatcher.StateDeferred && s.Until.After(now) {
			r.Since = s.Until.UTC()
		}
		r.Step, r.Sending, r.LastSend = r.Step+1, "", s.ID
	}
	end(&r.Enrolment, dispatcher.EnrolmentCompleted, "", now)
	return g.save(ctx, r)
}

func end(e *dispatcher.Enrolment, state, reason string, now time.Time) {
	e.State, e.Reason, e.EndedAt, e.At, e.Sending = state, reason, now.UTC(), time.Time{}, ""
}

// stopReason returns why the contact's enrolment in def ends before its
// next step, or "": a stop tag, or a consent to the topic withdrawn since
// it started.
func (g *Engine) stopReason(ctx context.Context, def *dispatcher.Sequence, topic *dispatcher.Topic, c *dispatcher.Contact, since time.Time) (string, error) {
	for _, t := range def.StopTags {
		if slices.Contains(c.Tags, t) {
			return dispatcher.StopTag, nil
		}
	}
	cur, err := g.store.ConsentStates(ctx, c.ID)
	if err != nil {
		return "", err
	}
	if left(cur, topic.ID, since) {
		return dispatcher.StopLeftTopic, nil
	}
	return "", nil
}

// left reports whether a consent to topic was withdrawn (STOP included)
// since the enrolment started: the contact left the topic. A withdrawal
// from before, on a channel the contact had left already, is no news.
func left(cur map[string]store.ConsentCurrent, topic string, since time.Time) bool {
	for _, k := range channels.Kinds {
		if c, ok := cur[store.ConsentField(k, topic)]; ok && c.State == dispatcher.Withdrawn && !c.At.Before(since) {
			return true
		}
	}
	return false
}

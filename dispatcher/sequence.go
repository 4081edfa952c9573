package dispatcher

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/missive-dev/missive/channels"
)

// SequenceCampaign is the pseudo-campaign of the runs that hold the sends
// of sequences' steps.
const SequenceCampaign = "sequence"

// Sequence is a topic's automation: contacts enter it by a trigger and go
// through its steps, waits and sends, each send through the gate, until
// the last step or a stop. Editing a sequence makes a new version: the
// enrolments keep the version they started with, unless the edit moves
// them on (MoveEnrolments).
type Sequence struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Topic string `json:"topic"`
	// Trigger says what enrols a contact besides the API.
	Trigger SequenceTrigger `json:"trigger"`
	Steps   []SequenceStep  `json:"steps"`
	// StopTags end an enrolment when the contact gets one of them (a
	// purchase, say). Leaving the topic, STOP, a complaint and erasure
	// always end it.
	StopTags []string `json:"stop_tags,omitempty"`
	// Reenrol lets a contact whose enrolment ended enter again; by
	// default a contact goes through a sequence once.
	Reenrol bool `json:"reenrol,omitempty"`
	// Version counts the edits, from 1. Set by Missive.
	Version int `json:"version"`
	// MovedFrom: the enrolments of versions before it move to it at their
	// next step (an edit with move_enrolments). Set by Missive.
	MovedFrom int `json:"moved_from,omitempty"`
	// Paused holds every enrolment where it is: due steps wait for the
	// resume. Set by pause and resume.
	Paused    bool      `json:"paused"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// SequenceTrigger is what enrols contacts automatically.
type SequenceTrigger struct {
	// Signup enrols a contact when their double opt-in sign-up to the
	// sequence's topic is confirmed.
	Signup bool `json:"signup,omitempty"`
	// Tag enrols a contact when an upstream system adds this tag to it.
	Tag string `json:"tag,omitempty"`
}

// SequenceStep is a wait or a send.
type SequenceStep struct {
	Wait *Wait     `json:"wait,omitempty"`
	Send *StepSend `json:"send,omitempty"`
}

// Wait holds an enrolment for Days, calendar days in the recipient's zone
// (so 2 days is 47 or 49 hours across a change of clocks), and Duration;
// then, when At is set ("09:00"), until the recipient's clock shows At:
// on the day Days lands on when Days alone is set ("day 2 at 09:00", even
// if the wait began later in the day), else at the first At after.
type Wait struct {
	Days     int    `json:"days,omitempty"`
	Duration string `json:"duration,omitempty"`
	At       string `json:"at,omitempty"`
}

// StepSend sends a template on a channel; Fallback, when set, is the
// channel used when the first one cannot reach the contact (no address,
// no consent, suppressed).
type StepSend struct {
	Channel  channels.Kind `json:"channel"`
	Template string        `json:"template"`
	Fallback channels.Kind `json:"fallback,omitempty"`
}

// Channels returns the channels the step tries, in order.
func (s *StepSend) Channels() []channels.Kind {
	if s.Fallback == "" {
		return []channels.Kind{s.Channel}
	}
	return []channels.Kind{s.Channel, s.Fallback}
}

// Limits of a sequence.
const (
	maxSequenceSteps = 32
	maxWait          = 366 * 24 * time.Hour
)

// Validate checks the sequence; it returns an *Error with code invalid
// naming the first field at fault. The templates and the topic are checked
// against the catalogue by the caller.
func (s *Sequence) Validate() error {
	if !NamePattern.MatchString(s.ID) {
		return Invalid("id", "must be lower case letters, digits, _ . - (64 at most)")
	}
	if s.Name == "" {
		s.Name = s.ID
	}
	if len(s.Name) > 200 {
		return Invalid("name", "at most 200 bytes")
	}
	if s.Topic == "" {
		return Invalid("topic", "is required")
	}
	if s.Trigger.Tag != "" && !validTag(s.Trigger.Tag) {
		return Invalid("trigger.tag", "must be a tag: 1-64 characters, no spaces")
	}
	for i, t := range s.StopTags {
		if !validTag(t) || slices.Index(s.StopTags, t) != i {
			return Invalid("stop_tags", "must list distinct tags of 1-64 characters, no spaces")
		}
	}
	if s.Trigger.Tag != "" && slices.Contains(s.StopTags, s.Trigger.Tag) {
		return Invalid("stop_tags", "holds the trigger's tag: no one could stay")
	}
	if len(s.Steps) == 0 || len(s.Steps) > maxSequenceSteps {
		return Invalid("steps", "must hold 1 to %d steps", maxSequenceSteps)
	}
	sends := 0
	for i := range s.Steps {
		if err := s.Steps[i].validate(fmt.Sprintf("steps[%d]", i)); err != nil {
			return err
		}
		if s.Steps[i].Send != nil {
			sends++
		}
	}
	if sends == 0 {
		return Invalid("steps", "must hold at least one send")
	}
	return nil
}

func (st *SequenceStep) validate(field string) error {
	if (st.Wait == nil) == (st.Send == nil) {
		return Invalid(field, "must be either a wait or a send")
	}
	if w := st.Wait; w != nil {
		if w.Days < 0 || w.Days > 366 {
			return Invalid(field+".wait.days", "must be 0 to 366")
		}
		d, err := w.duration()
		if err != nil || d < 0 || d > maxWait {
			return Invalid(field+".wait.duration", "must be a duration like 36h or 90m, up to a year")
		}
		if w.At != "" {
			if _, _, err := ParseClock(w.At); err != nil {
				return Invalid(field+".wait.at", "must be a time of day HH:MM")
			}
		}
		if w.Days == 0 && d == 0 && w.At == "" {
			return Invalid(field+".wait", "must set days, duration or at")
		}
		return nil
	}
	sd := st.Send
	if !sd.Channel.Valid() {
		return Invalid(field+".send.channel", "must be email or sms")
	}
	if sd.Fallback != "" && (!sd.Fallback.Valid() || sd.Fallback == sd.Channel) {
		return Invalid(field+".send.fallback", "must be the other channel")
	}
	if !NamePattern.MatchString(sd.Template) {
		return Invalid(field+".send.template", "must name a template")
	}
	return nil
}

func (w *Wait) duration() (time.Duration, error) {
	if w.Duration == "" {
		return 0, nil
	}
	return time.ParseDuration(w.Duration)
}

// End returns when a wait that starts at since ends for a recipient in
// loc (see Wait).
func (w *Wait) End(since time.Time, loc *time.Location) time.Time {
	t := since
	d, _ := w.duration()
	if w.Days > 0 {
		l := since.In(loc)
		if h, m, err := ParseClock(w.At); err == nil && d == 0 {
			return time.Date(l.Year(), l.Month(), l.Day()+w.Days, h, m, 0, 0, loc)
		}
		t = time.Date(l.Year(), l.Month(), l.Day()+w.Days, l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), loc)
	}
	t = t.Add(d)
	if w.At != "" {
		t = NextLocal(t, w.At, loc)
	}
	return t
}

// NextLocal returns the next instant at or after now when the wall clock
// in loc shows hh:mm. On a day when hh:mm does not exist (spring forward),
// time.Date moves it forward by the gap, which is what a person expects.
func NextLocal(now time.Time, hhmm string, loc *time.Location) time.Time {
	h, m, err := ParseClock(hhmm)
	if err != nil {
		return now
	}
	l := now.In(loc)
	t := time.Date(l.Year(), l.Month(), l.Day(), h, m, 0, 0, loc)
	if t.Before(now) {
		t = time.Date(l.Year(), l.Month(), l.Day()+1, h, m, 0, 0, loc)
	}
	return t
}

func validTag(t string) bool {
	if t == "" || len(t) > 64 {
		return false
	}
	for _, r := range t {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// Enrolment states.
const (
	EnrolmentActive    = "active"
	EnrolmentCompleted = "completed"
	EnrolmentStopped   = "stopped"
)

// Why an enrolment stopped before its last step.
const (
	StopLeftTopic  = "left_topic"  // the contact withdrew their consent to the topic (STOP included)
	StopTag        = "stop_tag"    // the contact got one of the sequence's stop tags
	StopComplaint  = "complaint"   // the contact reported a message as spam
	StopByOperator = "by_operator" // an operator ended it
)

// Ways a contact enters a sequence.
const (
	TriggerAPI    = "api"
	TriggerSignup = "signup"
	TriggerTag    = "tag"
)

// Enrolment is one contact's way through a sequence: the step to start
// next and when.
type Enrolment struct {
	Sequence string `json:"sequence"`
	Contact  string `json:"contact"`
	// N counts the contact's enrolments in the sequence, from 1.
	N       int    `json:"n"`
	Version int    `json:"version"`
	Trigger string `json:"trigger"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	// Step is the index of the next step to start, At when (the end of
	// the wait before it).
	Step int       `json:"step"`
	At   time.Time `json:"at,omitzero"`
	// Since is when the step before ended: the next wait counts from it.
	Since time.Time `json:"since"`
	// Sending is the id of the send of step Step while it is being
	// decided: a retry decides the same send.
	Sending string `json:"sending,omitempty"`
	// LastSend is the id of the last send the enrolment decided.
	LastSend  string    `json:"last_send,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// Data is what the enrolling call gave the templates (.Data); it is
	// sealed with the enrolment.
	Data map[string]any `json:"data,omitempty"`
}

// Key returns what names the enrolment's send of step i: the sequence,
// the contact, the enrolment and the step.
func (e *Enrolment) Key(step int) string {
	return "seq:" + e.Sequence + ":" + e.Contact + ":" + strconv.Itoa(e.N) + ":" + strconv.Itoa(step)
}

package dispatcher

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/throttle"
	"github.com/robfig/cron/v3"
)

// TopicKind says which consent rule a topic follows.
type TopicKind string

const (
	// Marketing topics need explicit opt-in consent per channel.
	Marketing TopicKind = "marketing"
	// Transactional topics need no marketing consent but honour suppression.
	Transactional TopicKind = "transactional"
)

// Topic is a purpose of communication.
type Topic struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Kind        TopicKind `json:"kind"`
	Description string    `json:"description,omitempty"`
	// Frequencies are the paces a recipient may choose for this topic
	// (Frequencies), on the preference page and through the API. Default:
	// all of them.
	Frequencies []string `json:"frequencies,omitempty"`
}

// Offered returns the paces a recipient may choose for the topic.
func (t *Topic) Offered() []string {
	if len(t.Frequencies) == 0 {
		return Frequencies
	}
	return t.Frequencies
}

// Validate checks the topic and fills its defaults; it returns an
// *Error with code invalid naming the first field at fault.
func (t *Topic) Validate() error {
	if !NamePattern.MatchString(t.ID) {
		return Invalid("id", "must be lower case letters, digits, _ . - (64 at most)")
	}
	if t.Kind != Marketing && t.Kind != Transactional {
		return Invalid("kind", "must be marketing or transactional")
	}
	if t.Name == "" {
		t.Name = t.ID
	}
	for i, f := range t.Frequencies {
		if !slices.Contains(Frequencies, f) || slices.Contains(t.Frequencies[:i], f) {
			return Invalid("frequencies", "must list distinct paces among %s", strings.Join(Frequencies, ", "))
		}
	}
	return nil
}

// ConsentState is granted or withdrawn.
type ConsentState string

const (
	Granted   ConsentState = "granted"
	Withdrawn ConsentState = "withdrawn"
)

// ConsentEvent is one entry of the append-only consent ledger.
type ConsentEvent struct {
	// Channel, Topic and State are those of a consent; a preference event
	// (Kind) leaves out what it does not concern.
	Channel channels.Kind `json:"channel,omitempty"`
	Topic   string        `json:"topic,omitempty"`
	State   ConsentState  `json:"state,omitempty"`
	// Source says where the decision came from: api, import,
	// unsubscribe-link, one-click, preference-page, sms-stop, complaint,
	// unsubscribe-mail (a mailbox provider's unsubscribe request),
	// signup (a confirmed double opt-in).
	Source string `json:"source"`
	// Evidence is what proves it: form id, wording version, IP hash...
	Evidence map[string]string `json:"evidence,omitempty"`
	At       time.Time         `json:"at"`
	// Kind is empty for a consent (granted or withdrawn to a channel and
	// topic), or names the recipient's preference the event sets
	// (PreferencePause): such an event has no state, and Value is what
	// the recipient chose ("" lifts the preference).
	Kind  string `json:"kind,omitempty"`
	Value string `json:"value,omitempty"`
}

var consentSources = []string{"api", "import", "unsubscribe-link", "one-click", "preference-page", "sms-stop", "complaint", "unsubscribe-mail", "demo", "signup"}

// Validate checks the consent event and fills its defaults; it returns an
// *Error with code invalid naming the first field at fault.
func (e *ConsentEvent) Validate() error {
	if e.Kind != "" {
		if err := e.validatePreference(); err != nil {
			return err
		}
		return e.validateSource()
	}
	if e.Value != "" {
		return Invalid("value", "is for preferences only")
	}
	if !e.Channel.Valid() {
		return Invalid("channel", "must be email or sms")
	}
	if !NamePattern.MatchString(e.Topic) {
		return Invalid("topic", "must name a topic")
	}
	if e.State != Granted && e.State != Withdrawn {
		return Invalid("state", "must be granted or withdrawn")
	}
	return e.validateSource()
}

// validateSource checks the source and the evidence of any event.
func (e *ConsentEvent) validateSource() error {
	if e.Source == "" {
		e.Source = "api"
	}
	if !slices.Contains(consentSources, e.Source) {
		return Invalid("source", "must be one of %s", strings.Join(consentSources, ", "))
	}
	if len(e.Evidence) > 16 {
		return Invalid("evidence", "at most 16 entries")
	}
	for k, v := range e.Evidence {
		if len(k) > 64 || len(v) > 512 {
			return Invalid("evidence", "keys at most 64 bytes, values at most 512")
		}
	}
	return nil
}

// Suppression reasons, as counted by the gate (suppressed_<reason>).
const (
	SuppressBounce      = "bounce"
	SuppressComplaint   = "complaint"
	SuppressStop        = "stop"
	SuppressUnsubscribe = "unsubscribe"
)

// Wording is the exact text of a consent wording shown to people, in one
// language, stored once and named by its content: consent events name it
// in their evidence ("wording"), and no one can change a text without
// changing its id.
type Wording struct {
	ID        string    `json:"id"`
	Lang      string    `json:"lang"`
	Text      string    `json:"text"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// maxWording bounds a wording's text.
const maxWording = 8 << 10

// WordingID is the id of the wording text in lang: the hex SHA-256 of
// both, 64 characters.
func WordingID(lang, text string) string {
	h := sha256.Sum256([]byte(lang + "\x00" + text))
	return hex.EncodeToString(h[:])
}

// IsWordingID reports whether s has the form of a WordingID (a stored
// wording's), rather than a version label a form chose.
func IsWordingID(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// Validate checks the wording and sets its ID; it returns an *Error with
// code invalid naming the first field at fault.
func (w *Wording) Validate() error {
	if !langPattern.MatchString(w.Lang) {
		return Invalid("lang", "must be a language tag like fr or en-GB")
	}
	if strings.TrimSpace(w.Text) == "" {
		return Invalid("text", "is required: the exact consent text shown")
	}
	if len(w.Text) > maxWording || !utf8.ValidString(w.Text) {
		return Invalid("text", "must be UTF-8 text of at most %d bytes", maxWording)
	}
	w.ID = WordingID(w.Lang, w.Text)
	return nil
}

var langPattern = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$`)

// Suppression is an entry of the suppression list. The address itself is
// not kept: the entry is found by a keyed hash of it.
type Suppression struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	// Until is zero for a permanent suppression.
	Until time.Time `json:"until,omitzero"`
}

// Segment is a saved audience. All non-empty criteria must hold.
type Segment struct {
	ID string `json:"id"`
	// Contacts is a static list of contact ids; when set, only they are
	// considered.
	Contacts []string `json:"contacts,omitempty"`
	// TagsAll: every tag must be present; TagsAny: at least one;
	// TagsNone: none of them.
	TagsAll  []string    `json:"tags_all,omitempty"`
	TagsAny  []string    `json:"tags_any,omitempty"`
	TagsNone []string    `json:"tags_none,omitempty"`
	Where    []Predicate `json:"where,omitempty"`
}

// Predicate compares a contact attribute with a value.
type Predicate struct {
	Attr string `json:"attr"`
	// Op is eq, ne, in, prefix, exists or absent.
	Op     string   `json:"op"`
	Value  string   `json:"value,omitempty"`
	Values []string `json:"values,omitempty"`
}

var predicateOps = []string{"eq", "ne", "in", "prefix", "exists", "absent"}

// Validate checks the segment and fills its defaults; it returns an
// *Error with code invalid naming the first field at fault.
func (s *Segment) Validate() error {
	if !NamePattern.MatchString(s.ID) {
		return Invalid("id", "must be lower case letters, digits, _ . - (64 at most)")
	}
	if len(s.Contacts) > 100_000 {
		return Invalid("contacts", "at most 100000 ids in a static list; use tags for more")
	}
	for _, id := range s.Contacts {
		if !ValidID(id) {
			return Invalid("contacts", "holds an invalid contact id")
		}
	}
	for i, p := range s.Where {
		field := fmt.Sprintf("where[%d]", i)
		if !NamePattern.MatchString(p.Attr) {
			return Invalid(field+".attr", "must name an attribute")
		}
		if !slices.Contains(predicateOps, p.Op) {
			return Invalid(field+".op", "must be one of %s", strings.Join(predicateOps, ", "))
		}
	}
	return nil
}

// Match reports whether c belongs to the segment (static list membership is
// decided by the caller, which streams the list).
func (s *Segment) Match(c *Contact) bool {
	for _, t := range s.TagsAll {
		if !slices.Contains(c.Tags, t) {
			return false
		}
	}
	if len(s.TagsAny) > 0 && !slices.ContainsFunc(s.TagsAny, func(t string) bool { return slices.Contains(c.Tags, t) }) {
		return false
	}
	if slices.ContainsFunc(s.TagsNone, func(t string) bool { return slices.Contains(c.Tags, t) }) {
		return false
	}
	for _, p := range s.Where {
		v, ok := c.Attributes[p.Attr]
		var hold bool
		switch p.Op {
		case "eq":
			hold = ok && v == p.Value
		case "ne":
			hold = !ok || v != p.Value
		case "in":
			hold = ok && slices.Contains(p.Values, v)
		case "prefix":
			hold = ok && strings.HasPrefix(v, p.Value)
		case "exists":
			hold = ok
		case "absent":
			hold = !ok
		}
		if !hold {
			return false
		}
	}
	return true
}

// CampaignState is the campaign's state machine:
// draft -> scheduled -> running -> paused -> completed | cancelled.
type CampaignState string

const (
	Draft     CampaignState = "draft"
	Scheduled CampaignState = "scheduled"
	Running   CampaignState = "running"
	Paused    CampaignState = "paused"
	Completed CampaignState = "completed"
	Cancelled CampaignState = "cancelled"
)

// Schedule says when a campaign fires. Exactly one of At and Cron is set;
// LocalTime may be added to either.
type Schedule struct {
	// At fires one run at that instant.
	At time.Time `json:"at,omitzero"`
	// Cron fires a run at each match of a standard 5-field spec in TZ.
	Cron string `json:"cron,omitempty"`
	TZ   string `json:"tz,omitempty"`
	// LocalTime ("10:00"), when set, holds each message of a run until that
	// time of day in the recipient's own time zone.
	LocalTime string `json:"local_time,omitempty"`
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Validate checks the schedule and fills its defaults; it returns an
// *Error with code invalid naming the first field at fault.
func (s *Schedule) Validate() error {
	if s.At.IsZero() == (s.Cron == "") {
		return Invalid("schedule", "set exactly one of at and cron")
	}
	if s.TZ != "" {
		if _, err := time.LoadLocation(s.TZ); err != nil {
			return Invalid("schedule.tz", "is not an IANA time zone name")
		}
	}
	if s.Cron != "" {
		if _, err := s.CronSchedule(); err != nil {
			return Invalid("schedule.cron", "%v", err)
		}
	}
	if s.LocalTime != "" {
		if _, _, err := ParseClock(s.LocalTime); err != nil {
			return Invalid("schedule.local_time", "must be HH:MM")
		}
	}
	return nil
}

// CronSchedule parses the cron spec in the schedule's zone.
func (s *Schedule) CronSchedule() (cron.Schedule, error) {
	spec := s.Cron
	if s.TZ != "" {
		spec = "CRON_TZ=" + s.TZ + " " + spec
	}
	return cronParser.Parse(spec)
}

// NextFires returns up to n times at which c's schedule fires next, at or
// after now, while it may fire (scheduled or running): what a marketer
// checks before saving a schedule. With a local time, each run's messages
// then leave at that time of day in each recipient's zone.
func (c *Campaign) NextFires(now time.Time, n int) []time.Time {
	s := c.Schedule
	if s == nil || (c.State != Scheduled && c.State != Running) {
		return nil
	}
	if !s.At.IsZero() {
		if c.LastFire.IsZero() {
			return []time.Time{s.At}
		}
		return nil
	}
	sched, err := s.CronSchedule()
	if err != nil {
		return nil
	}
	var out []time.Time
	for t := sched.Next(now.Add(-time.Second)); len(out) < n && !t.IsZero(); t = sched.Next(t) {
		out = append(out, t)
	}
	return out
}

// ParseClock parses "HH:MM" into hours and minutes.
func ParseClock(s string) (h, m int, err error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, 0, err
	}
	return t.Hour(), t.Minute(), nil
}

// Campaign sends a topic's message to a segment on one or more channels.
type Campaign struct {
	ID       string          `json:"id"`
	Name     string          `json:"name,omitempty"`
	Topic    string          `json:"topic"`
	Segment  string          `json:"segment"`
	Channels []channels.Kind `json:"channels"`
	// Fallback sends on the first channel, in order, that passes the gate
	// for a contact, instead of on every channel.
	Fallback bool `json:"fallback,omitempty"`
	// Templates maps a channel to the template id used on it.
	Templates map[channels.Kind]string `json:"templates"`
	Schedule  *Schedule                `json:"schedule,omitempty"`
	// RateLimit ("200/s") caps this campaign's own sending pace.
	RateLimit string        `json:"rate_limit,omitempty"`
	State     CampaignState `json:"state"`
	// LastFire is the schedule time of the newest run fired.
	LastFire time.Time `json:"last_fire,omitzero"`
	// LastRun is the id of the newest run started.
	LastRun string `json:"last_run,omitempty"`
	// ScheduledAt is when the schedule was set: a cron fires from then on,
	// never for a time before it.
	ScheduledAt time.Time `json:"scheduled_at,omitzero"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Validate checks the campaign and fills its defaults; it returns an
// *Error with code invalid naming the first field at fault.
func (c *Campaign) Validate() error {
	if !NamePattern.MatchString(c.ID) {
		return Invalid("id", "must be lower case letters, digits, _ . - (64 at most)")
	}
	if c.Topic == "" {
		return Invalid("topic", "is required")
	}
	if c.Segment == "" {
		return Invalid("segment", "is required")
	}
	if len(c.Channels) == 0 {
		return Invalid("channels", "name at least one of email, sms")
	}
	for i, k := range c.Channels {
		if !k.Valid() {
			return Invalid(fmt.Sprintf("channels[%d]", i), "must be email or sms")
		}
		if slices.Index(c.Channels, k) != i {
			return Invalid("channels", "lists %s twice", k)
		}
		if c.Templates[k] == "" {
			return Invalid("templates."+string(k), "a template is required for each channel")
		}
	}
	if c.Schedule != nil {
		if err := c.Schedule.Validate(); err != nil {
			return err
		}
	}
	if c.RateLimit != "" {
		if _, err := throttle.ParseRate(c.RateLimit); err != nil {
			return Invalid("rate_limit", "%v", err)
		}
	}
	return nil
}

// Run states.
const (
	RunPlanning  = "planning"
	RunSending   = "sending"
	RunPaused    = "paused"
	RunCompleted = "completed"
	RunCancelled = "cancelled"
)

// Run is one firing of a campaign, with its counters.
type Run struct {
	ID       string    `json:"id"`
	Campaign string    `json:"campaign"`
	State    string    `json:"state"`
	FireAt   time.Time `json:"fire_at"`
	Created  time.Time `json:"created_at"`
	Finished time.Time `json:"finished_at,omitzero"`
	// Counters: planned, then one entry per outcome (see the gate reasons,
	// queued, deferred, sending, sent, failed, cancelled).
	Counters map[string]int64 `json:"counters"`
	// Balanced is true when planned equals the sum of all outcomes.
	Balanced bool `json:"balanced"`
	// Feedback counts what providers and recipients reported after the
	// run's messages: delivered, bounced_hard, bounced_soft, complained,
	// failed, unsubscribes.
	Feedback map[string]int64 `json:"feedback"`
	// PausedReason says why the run paused its campaign by itself (a
	// bounce or complaint rate past the policy).
	PausedReason string `json:"paused_reason,omitempty"`
}

// Send states.
const (
	StateQueued     = "queued"
	StateDeferred   = "deferred"
	StateSending    = "sending"
	StateSent       = "sent"
	StateDelivered  = "delivered" // the provider confirmed delivery
	StateBounced    = "bounced"   // Reason: hard_bounce or opted_out
	StateFailed     = "failed"
	StateSuppressed = "suppressed" // Reason names the gate check.
	StateCancelled  = "cancelled"
)

// Pseudo-campaigns of the runs that hold sends decided one at a time,
// outside any campaign: API sends and sign-up confirmations (and the
// steps of sequences, SequenceCampaign).
const (
	APICampaign    = "api"
	SignupCampaign = "signup"
)

// OneAtATime reports whether campaign is one of the pseudo-campaigns.
func OneAtATime(campaign string) bool {
	return campaign == APICampaign || campaign == SignupCampaign || campaign == SequenceCampaign
}

// Send is one message to one contact on one channel.
type Send struct {
	ID       string        `json:"id"`
	Run      string        `json:"run,omitempty"`
	Contact  string        `json:"contact"`
	Channel  channels.Kind `json:"channel"`
	Topic    string        `json:"topic"`
	Template string        `json:"template"`
	// Ref names what a send answers, for a message built from more than
	// its template: the pending sign-up a confirmation asks to confirm.
	Ref       string    `json:"ref,omitempty"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	Until     time.Time `json:"until,omitzero"`
	Provider  string    `json:"provider_id,omitempty"`
	ErrorCode string    `json:"error_code,omitempty"`
	Attempts  int       `json:"attempts"`
	UpdatedAt time.Time `json:"updated_at"`
	// Data is the send's per-send template data as held at rest: sealed
	// under the data keyring, bound to the send id (store.OpenSendData).
	// Never in an answer, a log or a task payload.
	Data []byte `json:"-"`
}

package dispatcher

import (
	"slices"
	"strings"
	"time"

	"github.com/missive-dev/missive/throttle"
)

// The recipient sets the pace: preferences recorded in the consent
// ledger as events of their own kind (ConsentEvent.Kind), beside the
// consents, and enforced by the gate for marketing topics.

// PreferencePause is the kind of the event that pauses every marketing
// message of a contact until a time: its value is that instant (RFC 3339,
// UTC), or "" when the recipient lifts the pause. Transactional messages
// still go.
const PreferencePause = "pause"

// PreferenceFrequency is the kind of the event that sets how often a
// contact hears about one topic (its Topic): its value is one of
// Frequencies, "" going back to every message.
const PreferenceFrequency = "frequency"

// The paces a recipient may choose for a topic.
const (
	FrequencyEvery   = "every"   // every message
	FrequencyWeekly  = "weekly"  // at most one in any 7 days
	FrequencyMonthly = "monthly" // at most one in any 30 days
)

// Frequencies are the paces, in the order pages show them.
var Frequencies = []string{FrequencyEvery, FrequencyWeekly, FrequencyMonthly}

// FrequencyCap is the cap a contact's choice f puts on topic's messages
// on channel, or nil when f caps nothing. The gate counts it with the
// operator's caps (throttle.CapRequest.Rules), per channel.
func FrequencyCap(channel, topic, f string) []throttle.CapRule {
	var w time.Duration
	switch f {
	case FrequencyWeekly:
		w = 7 * 24 * time.Hour
	case FrequencyMonthly:
		w = 30 * 24 * time.Hour
	default:
		return nil
	}
	return []throttle.CapRule{{Channel: channel, Topic: topic, Limit: 1, Window: w, Recipient: true}}
}

// PreferenceHours is the kind of the event that sets when a contact
// wants marketing messages: days and hours in their own time zone, in the
// syntax of throttle.ParseCalendar without holidays ("mon-fri
// 18:00-24:00; sat 10:00-20:00"), "" for any time. Messages outside them
// wait for the next preferred moment the operator's quiet hours also
// allow.
const PreferenceHours = "hours"

// maxHours bounds the text of preferred hours.
const maxHours = 256

// ParseHours reads preferred hours as an event's value holds them; the
// calendar's String is the form to store.
func ParseHours(v string) (throttle.Calendar, error) {
	if len(v) > maxHours || strings.Contains(v, "holidays") {
		return throttle.Calendar{}, Invalid("hours", "must be days and hours such as mon-fri 18:00-24:00; sat 10:00-20:00")
	}
	c, err := throttle.ParseCalendar(v)
	if err != nil {
		return throttle.Calendar{}, Invalid("hours", "must be days and hours such as mon-fri 18:00-24:00; sat 10:00-20:00, with at least one open window")
	}
	return c, nil
}

// MaxPause is how far ahead a pause may end: a longer silence is an
// unsubscribe, which the recipient has one click away.
const MaxPause = 366 * 24 * time.Hour

// validatePreference checks the fields of a preference event.
func (e *ConsentEvent) validatePreference() error {
	switch e.Kind {
	case PreferencePause:
		return validateContactWide(e, "a pause names no channel, topic or state", ParsePause)
	case PreferenceFrequency:
		if e.Channel != "" || e.State != "" {
			return Invalid("kind", "a frequency names no channel or state")
		}
		if !NamePattern.MatchString(e.Topic) {
			return Invalid("topic", "must name a topic")
		}
		if e.Value != "" && !slices.Contains(Frequencies, e.Value) {
			return Invalid("frequency", "must be one of %s", strings.Join(Frequencies, ", "))
		}
		return nil
	case PreferenceHours:
		return validateContactWide(e, "hours name no channel, topic or state", ParseHours)
	}
	return Invalid("kind", "must be empty (a consent), %s, %s or %s", PreferencePause, PreferenceFrequency, PreferenceHours)
}

// validateContactWide checks a preference event of a kind that holds for
// every channel and topic: fault says why one that names any is invalid;
// parse reads its value, when set.
func validateContactWide[T any](e *ConsentEvent, fault string, parse func(string) (T, error)) error {
	if e.Channel != "" || e.Topic != "" || e.State != "" {
		return Invalid("kind", "%s", fault)
	}
	if e.Value == "" {
		return nil
	}
	_, err := parse(e.Value)
	return err
}

// ParsePause reads the end of a pause as an event's value holds it.
func ParsePause(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, Invalid("pause_until", "must be a time in RFC 3339 form (2026-08-31T00:00:00Z)")
	}
	return t.UTC(), nil
}

// ValidPauseEnd checks the end of a pause a person or a system asks for
// at now: in the future, at most MaxPause ahead. It returns the value of
// the event that records it.
func ValidPauseEnd(until, now time.Time) (string, error) {
	if !until.After(now) {
		return "", Invalid("pause_until", "must be in the future")
	}
	if until.Sub(now) > MaxPause {
		return "", Invalid("pause_until", "must be at most 366 days ahead")
	}
	return until.UTC().Format(time.RFC3339), nil
}

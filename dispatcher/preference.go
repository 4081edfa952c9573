package dispatcher

import "time"

// The recipient sets the pace: preferences recorded in the consent
// ledger as events of their own kind (ConsentEvent.Kind), beside the
// consents, and enforced by the gate for marketing topics.

// PreferencePause is the kind of the event that pauses every marketing
// message of a contact until a time: its value is that instant (RFC 3339,
// UTC), or "" when the recipient lifts the pause. Transactional messages
// still go.
const PreferencePause = "pause"

// MaxPause is how far ahead a pause may end: a longer silence is an
// unsubscribe, which the recipient has one click away.
const MaxPause = 366 * 24 * time.Hour

// validatePreference checks the fields of a preference event.
func (e *ConsentEvent) validatePreference() error {
	switch e.Kind {
	case PreferencePause:
		if e.Channel != "" || e.Topic != "" || e.State != "" {
			return Invalid("kind", "a pause names no channel, topic or state")
		}
		if e.Value != "" {
			if _, err := ParsePause(e.Value); err != nil {
				return err
			}
		}
		return nil
	}
	return Invalid("kind", "must be empty (a consent) or %s", PreferencePause)
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

package consent

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
)

// Ledger sources of the changes made here.
const (
	// SourcePreferencePage: choices made on the preference page.
	SourcePreferencePage = "preference-page"
	// SourceOneClick: the List-Unsubscribe one-click POST, or the button
	// of the unsubscribe page.
	SourceOneClick = "one-click"
	// SourceSMSStop: an SMS STOP or START keyword.
	SourceSMSStop = "sms-stop"
	// SourceUnsubscribeMail: an unsubscribe request the recipient's mailbox
	// provider sent for them (a List-Unsubscribe mailto:, an ARF opt-out).
	SourceUnsubscribeMail = "unsubscribe-mail"
)

// Manager changes consents. It is safe for concurrent use.
type Manager struct {
	store  *store.Store
	now    func() time.Time
	events dispatcher.Events
}

// SetEvents sets where the Manager tells the consent changes it writes
// (consent.changed, unsubscribed). Default: nowhere.
func (m *Manager) SetEvents(e dispatcher.Events) { m.events = e }

// change writes consent changes (store.ChangeConsents) and tells those
// written.
func (m *Manager) change(ctx context.Context, contact string, withContact bool, decide func(*dispatcher.Contact, map[string]store.ConsentCurrent) []dispatcher.ConsentEvent) ([]dispatcher.ConsentEvent, error) {
	evs, err := m.store.ChangeConsents(ctx, contact, withContact, decide)
	if err == nil {
		for _, e := range dispatcher.ConsentChanges(contact, evs) {
			m.events.Emit(ctx, e)
		}
	}
	return evs, err
}

// New returns a Manager writing to st; now is the clock of the events.
func New(st *store.Store, now func() time.Time) *Manager {
	return &Manager{store: st, now: now, events: dispatcher.NoEvents}
}

// topicKinds maps every topic id to whether it is transactional.
func (m *Manager) topicKinds(ctx context.Context) (map[string]bool, error) {
	topics, err := m.store.Topics(ctx)
	if err != nil {
		return nil, err
	}
	transactional := make(map[string]bool, len(topics))
	for _, t := range topics {
		transactional[t.ID] = t.Kind == dispatcher.Transactional
	}
	return transactional, nil
}

// WithdrawOneClick records a withdrawal for the token's contact, channel
// and topic, once: when consent is already withdrawn it changes nothing.
// The check and the write are one transaction, so two clicks at once add
// one ledger event. An erased contact has nothing to withdraw. A
// withdrawal counts as an unsubscribe of the topic and of the run whose
// message carried the link.
func (m *Manager) WithdrawOneClick(ctx context.Context, cl templates.Claims) error {
	var evidence map[string]string
	if cl.Send != "" {
		evidence = map[string]string{"send": cl.Send}
	}
	changed, err := m.Withdraw(ctx, cl.Contact, channels.Kind(cl.Channel), cl.Topic, SourceOneClick, evidence)
	if err != nil || !changed {
		return err
	}
	// A crash between the withdrawal and the count misses one unsubscribe
	// in the counters (the repeated click finds nothing to withdraw): a
	// counter off by one, never a consent.
	run, _, _ := dispatcher.SplitSendID(cl.Send)
	return m.store.CountFeedback(ctx, run, cl.Topic, store.FeedbackUnsubscribes)
}

// Withdraw records a withdrawal of contact's consent to topic on channel
// k, with source and evidence, once: when consent is already withdrawn it
// changes nothing. The check and the write are one transaction. It
// reports whether it recorded an event; an erased contact has nothing to
// withdraw.
func (m *Manager) Withdraw(ctx context.Context, contact string, k channels.Kind, topic, source string, evidence map[string]string) (bool, error) {
	e := dispatcher.ConsentEvent{Channel: k, Topic: topic, State: dispatcher.Withdrawn, Source: source, Evidence: evidence, At: m.now().UTC()}
	if err := e.Validate(); err != nil {
		return false, err
	}
	field := store.ConsentField(e.Channel, e.Topic)
	changed, err := m.change(ctx, contact, false, func(_ *dispatcher.Contact, cur map[string]store.ConsentCurrent) []dispatcher.ConsentEvent {
		if cur[field].State == dispatcher.Withdrawn {
			return nil
		}
		return []dispatcher.ConsentEvent{e}
	})
	if errors.Is(err, dispatcher.ErrNotFound) {
		return false, nil
	}
	return len(changed) > 0, err
}

// SavePreferences applies the preference page's toggles: of the pairs the
// page showed ("channel/topic"), those in on are wanted, the others not.
// Only marketing topics on channels the contact has an address for are
// considered; a pair whose state already matches adds nothing. Returns
// the events recorded, or ErrNotFound if the contact is gone.
func (m *Manager) SavePreferences(ctx context.Context, contact string, shown, on []string, now time.Time) ([]dispatcher.ConsentEvent, error) {
	transactional, err := m.topicKinds(ctx)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, f := range on {
		want[f] = true
	}
	return m.change(ctx, contact, true, func(c *dispatcher.Contact, cur map[string]store.ConsentCurrent) []dispatcher.ConsentEvent {
		var out []dispatcher.ConsentEvent
		seen := map[string]bool{}
		for _, f := range shown {
			k, topic, ok := strings.Cut(f, "/")
			ch := channels.Kind(k)
			tr, known := transactional[topic]
			if !ok || seen[f] || !ch.Valid() || !known || tr || c.Address(ch) == "" {
				continue
			}
			seen[f] = true
			granted := cur[f].State == dispatcher.Granted
			switch {
			case want[f] && !granted:
				out = append(out, pageEvent(ch, topic, dispatcher.Granted, now))
			case !want[f] && granted:
				out = append(out, pageEvent(ch, topic, dispatcher.Withdrawn, now))
			}
		}
		return out
	})
}

// WithdrawAllMarketing withdraws, from the preference page, every granted
// consent that is not for a transactional topic, on every channel (a
// topic since deleted counts as marketing: leaving must leave nothing
// behind).
func (m *Manager) WithdrawAllMarketing(ctx context.Context, contact string, now time.Time) ([]dispatcher.ConsentEvent, error) {
	transactional, err := m.topicKinds(ctx)
	if err != nil {
		return nil, err
	}
	return m.change(ctx, contact, true, func(_ *dispatcher.Contact, cur map[string]store.ConsentCurrent) []dispatcher.ConsentEvent {
		var out []dispatcher.ConsentEvent
		for _, f := range slices.Sorted(maps.Keys(cur)) {
			k, topic, ok := strings.Cut(f, "/")
			if !ok || cur[f].State != dispatcher.Granted || transactional[topic] || !channels.Kind(k).Valid() || !dispatcher.NamePattern.MatchString(topic) {
				continue
			}
			out = append(out, pageEvent(channels.Kind(k), topic, dispatcher.Withdrawn, now))
		}
		return out
	})
}

func pageEvent(k channels.Kind, topic string, st dispatcher.ConsentState, now time.Time) dispatcher.ConsentEvent {
	return dispatcher.ConsentEvent{Channel: k, Topic: topic, State: st, Source: SourcePreferencePage,
		Evidence: map[string]string{"page": "preferences"}, At: now.UTC()}
}

// WithdrawMarketingOn withdraws every granted consent of the contact on
// channel k that is not for a transactional topic, with the given source
// and evidence (a complaint, a hard bounce). Returns ErrNotFound if the
// contact is gone.
func (m *Manager) WithdrawMarketingOn(ctx context.Context, contact string, k channels.Kind, source string, evidence map[string]string) error {
	transactional, err := m.topicKinds(ctx)
	if err != nil {
		return err
	}
	now := m.now().UTC()
	_, err = m.change(ctx, contact, true, func(_ *dispatcher.Contact, cur map[string]store.ConsentCurrent) []dispatcher.ConsentEvent {
		var out []dispatcher.ConsentEvent
		for f, st := range cur {
			ch, topic, _ := strings.Cut(f, "/")
			if channels.Kind(ch) == k && st.State == dispatcher.Granted && !transactional[topic] {
				out = append(out, dispatcher.ConsentEvent{Channel: k, Topic: topic, State: dispatcher.Withdrawn, Source: source, Evidence: evidence, At: now})
			}
		}
		return out
	})
	return err
}

// SetSMSConsents records, with source sms-stop, state for the contact's
// SMS marketing consents that STOP or START concern, and returns their
// topics:
//
//   - Withdrawn (STOP): every SMS consent currently granted. A topic
//     without any consent is left alone: there is nothing to withdraw,
//     and START must not later turn it into a consent never given.
//   - Granted (START): every SMS consent withdrawn by sms-stop, and no
//     other: an unsubscribe by link or preference page stays.
//
// Transactional topics need no consent and are skipped. An unknown
// contact changes nothing.
func (m *Manager) SetSMSConsents(ctx context.Context, contact string, state dispatcher.ConsentState, evidence map[string]string) ([]string, error) {
	transactional, err := m.topicKinds(ctx)
	if err != nil {
		return nil, err
	}
	now := m.now().UTC()
	events, err := m.change(ctx, contact, false, func(_ *dispatcher.Contact, cur map[string]store.ConsentCurrent) []dispatcher.ConsentEvent {
		var out []dispatcher.ConsentEvent
		for _, field := range slices.Sorted(maps.Keys(cur)) {
			topic, ok := strings.CutPrefix(field, string(channels.SMS)+"/")
			if !ok || transactional[topic] {
				continue
			}
			c := cur[field]
			switch {
			case state == dispatcher.Withdrawn && c.State == dispatcher.Granted:
			case state == dispatcher.Granted && c.State == dispatcher.Withdrawn && c.Source == SourceSMSStop:
			default:
				continue
			}
			e := dispatcher.ConsentEvent{Channel: channels.SMS, Topic: topic, State: state, Source: SourceSMSStop, Evidence: evidence, At: now}
			if e.Validate() == nil {
				out = append(out, e)
			}
		}
		return out
	})
	if errors.Is(err, dispatcher.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	topics := make([]string, len(events))
	for i, e := range events {
		topics[i] = e.Topic
	}
	return topics, nil
}

// StopSMS applies an SMS STOP from the number phone: the number is
// suppressed first, so that the opt-out protects it even if the rest
// fails, then the SMS marketing consents of contact ("" for a number
// Missive does not know) are withdrawn (SetSMSConsents). It returns the
// topics withdrawn. Both steps are idempotent.
func (m *Manager) StopSMS(ctx context.Context, contact, phone string, evidence map[string]string) ([]string, error) {
	if err := m.store.SuppressStop(ctx, channels.SMS, phone); err != nil {
		return nil, err
	}
	if contact == "" {
		return nil, nil
	}
	return m.SetSMSConsents(ctx, contact, dispatcher.Withdrawn, evidence)
}

// StartSMS undoes an SMS STOP from the number phone: its STOP suppression
// goes and the consents STOP withdrew come back (SetSMSConsents). It
// returns the topics granted again.
func (m *Manager) StartSMS(ctx context.Context, contact, phone string, evidence map[string]string) ([]string, error) {
	if err := m.store.UnsuppressStop(ctx, channels.SMS, phone); err != nil {
		return nil, err
	}
	if contact == "" {
		return nil, nil
	}
	return m.SetSMSConsents(ctx, contact, dispatcher.Granted, evidence)
}

// Pace is what a change of the pace a contact chose sets; what it leaves
// nil stays as it is.
type Pace struct {
	// Pause: no marketing message until then; a zero time lifts the
	// pause.
	Pause *time.Time
	// Frequency: topic -> one of dispatcher.Frequencies the topic offers
	// ("" goes back to every message).
	Frequency map[string]string
	// Hours: the days and hours the contact prefers, in their zone
	// (dispatcher.ParseHours); "" for any time.
	Hours *string
}

// SetPace records, with source and evidence, the changes of p that change
// something, in one transaction: one ledger event each. Values are checked
// first, all of them before anything is written (an *dispatcher.Error
// naming pause_until, hours or frequency.<topic>). It returns the events
// recorded; ErrNotFound if the contact does not exist.
func (m *Manager) SetPace(ctx context.Context, contact string, p Pace, source string, evidence map[string]string) ([]dispatcher.ConsentEvent, error) {
	now := m.now().UTC()
	var events []dispatcher.ConsentEvent
	if p.Pause != nil {
		value := ""
		if !p.Pause.IsZero() {
			var err error
			if value, err = dispatcher.ValidPauseEnd(*p.Pause, now); err != nil {
				return nil, err
			}
		}
		events = append(events, dispatcher.ConsentEvent{Kind: dispatcher.PreferencePause, Value: value})
	}
	if p.Hours != nil {
		value := ""
		if *p.Hours != "" {
			cal, err := dispatcher.ParseHours(*p.Hours)
			if err != nil {
				return nil, err
			}
			value = cal.String()
		}
		events = append(events, dispatcher.ConsentEvent{Kind: dispatcher.PreferenceHours, Value: value})
	}
	if len(p.Frequency) > 0 {
		topics, err := m.store.Topics(ctx)
		if err != nil {
			return nil, err
		}
		for _, id := range slices.Sorted(maps.Keys(p.Frequency)) {
			f := p.Frequency[id]
			field := "frequency." + dispatcher.Truncate(id, 64)
			i := slices.IndexFunc(topics, func(t dispatcher.Topic) bool { return t.ID == id })
			switch {
			case i < 0:
				return nil, dispatcher.Invalid(field, "names no topic")
			case topics[i].Kind != dispatcher.Marketing:
				return nil, dispatcher.Invalid(field, "a transactional topic has no pace to choose")
			case f != "" && !slices.Contains(topics[i].Offered(), f):
				return nil, dispatcher.Invalid(field, "must be one of %s", strings.Join(topics[i].Offered(), ", "))
			}
			events = append(events, dispatcher.ConsentEvent{Kind: dispatcher.PreferenceFrequency, Topic: id, Value: f})
		}
	}
	for i := range events {
		events[i].Source, events[i].Evidence, events[i].At = source, evidence, now
		if err := events[i].Validate(); err != nil {
			return nil, err
		}
	}
	return m.store.ChangeConsents(ctx, contact, false, func(_ *dispatcher.Contact, cur map[string]store.ConsentCurrent) []dispatcher.ConsentEvent {
		var out []dispatcher.ConsentEvent
		for _, e := range events {
			kind := e.Kind
			if e.Topic != "" {
				kind += "/" + e.Topic
			}
			if cur[store.PreferenceField(kind)].Value != e.Value {
				out = append(out, e)
			}
		}
		return out
	})
}

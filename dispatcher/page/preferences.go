package page

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
)

// PreferencesView is the preference centre of one contact: the topics
// they may choose per channel, and everything held on them (GDPR Art.
// 15). The caller fills it; the page translates and formats.
//
// Its three forms post to Action: csrf, do=save with the pairs shown and
// the pairs on, each "channel/topic" (marketing topics only); csrf and
// do=pace with pause_until (a local date, empty to resume), freq.<topic>
// per marketing topic, day (mon...sun, those ticked), from and to
// (HH:MM); or csrf and do=unsubscribe-all.
type PreferencesView struct {
	Lang   Lang
	Sender string // who sends, as the introduction names it
	// Action is where the forms post; the caller keeps ?lang= in it when
	// the reader chose the language, so that the choice survives.
	Action string
	CSRF   string
	// Saved is the outcome of the last post: "1" the choices were saved,
	// "all" everything was left; anything else shows no banner.
	Saved string
	// Channels are those the contact has an address on, in order.
	Channels []PreferenceChannel
	Profile  Profile
	Consents []Consent // current consents
	// History is the consent ledger, newest first; HistoryCut, when
	// positive, says it holds only the latest HistoryCut events.
	History      []Consent
	HistoryCut   int
	Suppressions []Suppression
	// Location is the contact's time zone, for every time shown; nil
	// shows UTC.
	Location *time.Location
	// Pace is the pace the contact chose, and what they may choose.
	Pace Pace
}

// Pace is what the pace form shows and what is held of it.
type Pace struct {
	// PauseUntil is the local date the pause ends ("" none); First the
	// first date it may end (the contact's tomorrow), the form's lower
	// bound.
	PauseUntil, First string
	// Topics are the marketing topics, with the paces they offer.
	Topics []PaceTopic
	// Days are the preferred days ticked (mon...sun); From and To the
	// span (HH:MM).
	Days     []string
	From, To string
	// Held are the preferences on record, for "what we hold".
	Held []PaceHeld
}

// PaceTopic is a marketing topic's pace choice.
type PaceTopic struct {
	ID, Name string
	Offered  []string // dispatcher.Frequencies the topic offers
	Chosen   string   // "" for every
}

// PaceHeld is a preference on record: Kind is pause, hours or
// frequency; Topic the topic's name for a frequency.
type PaceHeld struct {
	Kind, Topic, Value, Source string
	At                         time.Time
}

// PreferenceChannel is a channel the contact has an address on.
type PreferenceChannel struct {
	Channel channels.Kind
	Address string
	Topics  []PreferenceTopic
}

// PreferenceTopic is a topic offered on a channel.
type PreferenceTopic struct {
	ID, Name, Description string
	// Transactional topics are always on: shown ticked and disabled.
	Transactional bool
	// Checked says consent is granted (marketing topics).
	Checked bool
}

// Profile is what the contact record holds.
type Profile struct {
	Email, Phone, Timezone, Locale string
	Tags                           []string
	Attributes                     map[string]string
	Created, Updated               time.Time
}

// Consent is one consent, current or in the history (Evidence is shown
// in the history only). State, Source are the ledger's words (granted,
// one-click...), translated when the catalogue knows them.
type Consent struct {
	Channel       channels.Kind
	Topic         string // the topic's name, or its id if it is gone
	State, Source string
	At            time.Time
	Evidence      map[string]string
	// Kind and Value are those of a preference event (pause, hours,
	// frequency), shown in place of the state.
	Kind, Value string
}

// Suppression is a blocked address of the contact.
type Suppression struct {
	Channel channels.Kind
	Address string
	Reason  string // bounce, complaint, stop, unsubscribe
	At      time.Time
	Until   time.Time // zero: permanent
}

type prefData struct {
	Lang, Other                Lang
	Class                      string
	Intro, Action, CSRF, Saved string
	Channels                   []prefChannel
	HasTx, HasMarketing        bool
	Profile, Attributes        []row
	// Ledgers are the consents, their history and the suppressions.
	Ledgers []ledger
	Pace    paceData
}

type paceData struct {
	PauseUntil, First, From, To string
	Topics                      []paceTopic
	Days                        []dayBox
}

type paceTopic struct {
	Field, Name string
	Options     []paceOption
}

type paceOption struct {
	Value, Label string
	Selected     bool
}

type dayBox struct {
	ID, Value, Label string
	Checked          bool
}

// Weekdays are the day values of the pace form, Monday first.
var Weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// ledger is a table of what is held on the contact, under its heading,
// or the Empty text when it has no rows. Note, when set, comes before
// the rows.
type ledger struct {
	Heading, Note, Empty string
	Cols                 []string
	Rows                 [][]string
}

// newLedger returns a ledger whose heading, empty text and column names
// are the catalogue's texts at those keys.
func newLedger(l Lang, heading, empty string, cols ...string) ledger {
	g := ledger{Heading: text(l, heading), Empty: text(l, empty)}
	for _, c := range cols {
		g.Cols = append(g.Cols, text(l, c))
	}
	return g
}

type prefChannel struct {
	Legend, Address string
	Topics          []prefTopic
}

type prefTopic struct {
	InputID, Value, Name, Description string
	Checked, Transactional            bool
}

type row struct{ Name, Value string }

// Preferences writes the preference centre, 200, with Content-Language.
// It may not be framed.
func Preferences(w http.ResponseWriter, v PreferencesView) {
	lang := v.Lang.orDefault()
	render(w, http.StatusOK, false, preferencesTmpl, preferences(lang, v), lang, lang)
}

func preferences(l Lang, v PreferencesView) prefData {
	loc := v.Location
	if loc == nil {
		loc = time.UTC
	}
	when := func(at time.Time) string {
		if at.IsZero() {
			return ""
		}
		return at.In(loc).Format(text(l, "time.layout"))
	}
	channel := func(k channels.Kind) string { return word(l, "channel.", string(k)) }

	d := prefData{Lang: l, Other: l.other(), Class: classPreferences, Intro: text(l, "pref.intro", v.Sender),
		Action: v.Action, CSRF: v.CSRF, Saved: v.Saved}
	for _, c := range v.Channels {
		pc := prefChannel{Legend: text(l, "pref.legend.email"), Address: c.Address}
		if c.Channel == channels.SMS {
			pc.Legend = text(l, "pref.legend.sms")
		}
		for _, t := range c.Topics {
			pt := prefTopic{InputID: "t-" + string(c.Channel) + "-" + t.ID, Value: string(c.Channel) + "/" + t.ID,
				Name: t.Name, Description: t.Description, Checked: t.Checked || t.Transactional, Transactional: t.Transactional}
			d.HasTx = d.HasTx || t.Transactional
			d.HasMarketing = d.HasMarketing || !t.Transactional
			pc.Topics = append(pc.Topics, pt)
		}
		d.Channels = append(d.Channels, pc)
	}

	p := v.Profile
	d.Profile = []row{
		{text(l, "pref.email"), p.Email}, {text(l, "pref.phone"), p.Phone}, {text(l, "pref.timezone"), p.Timezone},
		{text(l, "pref.locale"), p.Locale}, {text(l, "pref.tags"), strings.Join(p.Tags, ", ")},
		{text(l, "pref.created"), when(p.Created)}, {text(l, "pref.updated"), when(p.Updated)},
	}
	for i := range d.Profile {
		if d.Profile[i].Value == "" {
			d.Profile[i].Value = "—"
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.Attributes)) {
		d.Attributes = append(d.Attributes, row{k, p.Attributes[k]})
	}

	consents := newLedger(l, "pref.consents", "pref.no-consents", "pref.channel", "pref.topic", "pref.state", "pref.since", "pref.source")
	for _, c := range v.Consents {
		consents.Rows = append(consents.Rows, []string{channel(c.Channel), c.Topic, word(l, "state.", c.State),
			when(c.At), word(l, "source.", c.Source)})
	}
	history := newLedger(l, "pref.history", "pref.no-history", "pref.when", "pref.channel", "pref.topic", "pref.state", "pref.source", "pref.evidence")
	if v.HistoryCut > 0 {
		history.Note = text(l, "pref.history-cut", v.HistoryCut)
	}
	for _, e := range v.History {
		var ev []string
		for _, k := range slices.Sorted(maps.Keys(e.Evidence)) {
			ev = append(ev, k+": "+e.Evidence[k])
		}
		state := word(l, "state.", e.State)
		if e.Kind != "" {
			value := e.Value
			if e.Kind == "frequency" {
				value = word(l, "freq.", value)
			}
			state = strings.TrimSpace(word(l, "pref.kind.", e.Kind) + " " + value)
		}
		history.Rows = append(history.Rows, []string{when(e.At), channel(e.Channel), e.Topic,
			state, word(l, "source.", e.Source), strings.Join(ev, "; ")})
	}
	suppressions := newLedger(l, "pref.suppressions", "pref.no-suppressions", "pref.channel", "pref.address", "pref.reason", "pref.since", "pref.until")
	for _, s := range v.Suppressions {
		until := text(l, "pref.permanent")
		if !s.Until.IsZero() {
			until = when(s.Until)
		}
		suppressions.Rows = append(suppressions.Rows, []string{channel(s.Channel), s.Address, word(l, "reason.", s.Reason), when(s.At), until})
	}
	pace := newLedger(l, "pref.pace-held", "pref.no-pace", "pref.what", "pref.value", "pref.since", "pref.source")
	for _, h := range v.Pace.Held {
		what := word(l, "pref.kind.", h.Kind)
		if h.Topic != "" {
			what += " — " + h.Topic
		}
		value := h.Value
		if h.Kind == "frequency" {
			value = word(l, "freq.", h.Value)
		}
		pace.Rows = append(pace.Rows, []string{what, value, when(h.At), word(l, "source.", h.Source)})
	}
	d.Ledgers = []ledger{consents, pace, history, suppressions}

	d.Pace = paceData{PauseUntil: v.Pace.PauseUntil, First: v.Pace.First, From: v.Pace.From, To: v.Pace.To}
	for _, t := range v.Pace.Topics {
		pt := paceTopic{Field: "freq." + t.ID, Name: t.Name}
		for _, f := range t.Offered {
			pt.Options = append(pt.Options, paceOption{Value: f, Label: word(l, "freq.", f), Selected: f == t.Chosen || (t.Chosen == "" && f == "every")})
		}
		d.Pace.Topics = append(d.Pace.Topics, pt)
	}
	for _, day := range Weekdays {
		d.Pace.Days = append(d.Pace.Days, dayBox{ID: "day-" + day, Value: day, Label: word(l, "day.", day), Checked: slices.Contains(v.Pace.Days, day)})
	}
	return d
}

package gate

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/throttle"
)

// Gate reasons: one per decision, counted per run.
const (
	ReasonNoAddress      = "no_address"
	ReasonInvalidAddress = "invalid_address"
	ReasonNoConsent      = "no_consent"
	ReasonReachedBefore  = "reached_before"
	ReasonCapped         = "capped"
	// ReasonPausedByRecipient: the recipient paused marketing messages
	// until a date that has not come (dispatcher.PreferencePause).
	ReasonPausedByRecipient = "paused_by_recipient"
	// ReasonRecipientFrequency: the recipient chose to hear about the
	// topic at most once a week or a month, and already did
	// (dispatcher.PreferenceFrequency).
	ReasonRecipientFrequency = "recipient_frequency"
)

// SuppressedReason is the gate reason of an address suppressed for r
// (dispatcher.SuppressBounce...).
func SuppressedReason(r string) string { return "suppressed_" + r }

// Loader reads what checks 2 and 3 need, for many addresses at once, and
// whether earlier sends reached their contact (store.Store does each in
// one pipeline).
type Loader interface {
	LoadChecks(ctx context.Context, topic *dispatcher.Topic, reqs []store.CheckRequest) ([]store.Checked, error)
	ReachedBefore(ctx context.Context, sends []string) ([]bool, error)
}

// Reserver counts sends against the frequency caps, the operator's and
// those the recipients chose, and tells whose held a send back
// (throttle.Caps).
type Reserver interface {
	ReserveEach(ctx context.Context, now time.Time, reqs []throttle.CapRequest) ([]throttle.CapVerdict, error)
}

// Config configures a Gate.
type Config struct {
	// Loader reads suppression and consent. Required.
	Loader Loader
	// Caps reserves frequency caps. Default: no caps.
	Caps Reserver
	// Quiet are the quiet-hours calendars per channel. Default: none.
	Quiet map[channels.Kind]throttle.Calendar
	// Jitter spreads deferred sends over the first moments of an open
	// window. Default: none.
	Jitter time.Duration
}

// Gate runs the checks of the design in order, for many contacts at once:
// address, suppression, consent, caps, quiet hours. Rate limits apply at
// send time. It is safe for concurrent use.
type Gate struct {
	cfg Config
}

// New returns a Gate.
func New(cfg Config) *Gate { return &Gate{cfg: cfg} }

// Job describes what the gate decides for: one run of one campaign.
type Job struct {
	Run       string
	Campaign  *dispatcher.Campaign
	Topic     *dispatcher.Topic
	LocalTime string // "HH:MM" in each recipient's zone, or ""
	// SendID, when set, is the id of the one send decided (an API send,
	// whose id derives from its idempotency key).
	SendID string
	// Ref is what the one send answers (dispatcher.Send.Ref), or "".
	Ref string
	// Requested: the recipient asked for this message a moment ago (a
	// sign-up confirmation): quiet hours do not hold it back.
	Requested bool
	// Earlier are the runs of the same one-shot campaign before this one:
	// a contact one of them reached gets reason reached_before.
	Earlier []string
}

// Candidate is one contact on one channel before the gate's verdict:
// Reason is empty while every check passed.
type Candidate struct {
	Contact *dispatcher.Contact
	Channel channels.Kind
	Send    string
	Reason  string
	// Frequency is the pace the contact chose for the topic, and Hours
	// the days and hours they prefer, as checks 2 and 3 read them (""
	// when none).
	Frequency string
	Hours     string
}

// CheckAddress is check 1: an address present and usable on the channel.
func CheckAddress(c *dispatcher.Contact, k channels.Kind) string {
	addr := c.Address(k)
	if addr == "" {
		return ReasonNoAddress
	}
	switch k {
	case channels.Email:
		if _, err := dispatcher.NormalizeEmail(addr); err != nil {
			return ReasonInvalidAddress
		}
	case channels.SMS:
		if _, err := dispatcher.NormalizePhone(addr); err != nil || !dispatcher.SMSCapable(addr) {
			return ReasonInvalidAddress
		}
	}
	return ""
}

// checkSuppressionConsent applies checks 2 and 3 (suppression, consent
// and the recipient's pause for a marketing topic) to the candidates that passed the ones before, in one read. The
// send path applies them again (Verdict) to what each send's claim reads,
// so that an opt-out recorded meanwhile wins.
func (g *Gate) checkSuppressionConsent(ctx context.Context, now time.Time, topic *dispatcher.Topic, cs []*Candidate) error {
	reqs := make([]store.CheckRequest, 0, len(cs))
	idx := make([]int, 0, len(cs))
	for i, c := range cs {
		if c.Reason == "" {
			reqs = append(reqs, store.CheckRequest{Contact: c.Contact.ID, Channel: c.Channel, Address: c.Contact.Address(c.Channel)})
			idx = append(idx, i)
		}
	}
	if len(reqs) == 0 {
		return nil
	}
	got, err := g.cfg.Loader.LoadChecks(ctx, topic, reqs)
	if err != nil {
		return fmt.Errorf("gate: load suppression and consent: %w", err)
	}
	for j, i := range idx {
		cs[i].Reason = Verdict(got[j], topic.Kind == dispatcher.Marketing, now)
		cs[i].Frequency = got[j].Frequency
		cs[i].Hours = got[j].Hours
	}
	return nil
}

// Verdict applies checks 2 and 3 to what was read, at now: the gate
// reason, or "" when both pass. An entry that does not say why counts as
// an unsubscribe. A marketing message is held by the recipient's pause
// while it lasts (paused_by_recipient), consent or not.
func Verdict(c store.Checked, marketing bool, now time.Time) string {
	if c.Suppressed {
		if c.SuppressReason == "" {
			return SuppressedReason(dispatcher.SuppressUnsubscribe)
		}
		return SuppressedReason(c.SuppressReason)
	}
	if marketing && c.Consent != dispatcher.Granted {
		return ReasonNoConsent
	}
	if marketing && c.PausedUntil.After(now) {
		return ReasonPausedByRecipient
	}
	return ""
}

// Decide returns one decision per contact and channel (or per contact in
// fallback mode). Caps are reserved for the sends that will go out.
func (g *Gate) Decide(ctx context.Context, now time.Time, job Job, contacts []*dispatcher.Contact) ([]store.Decision, error) {
	camp := job.Campaign
	var cands []*Candidate
	if camp.Fallback {
		var err error
		if cands, err = g.fallback(ctx, now, job, contacts); err != nil {
			return nil, err
		}
	} else {
		cands = candidates(job, contacts, camp.Channels)
		if err := g.checkSuppressionConsent(ctx, now, job.Topic, cands); err != nil {
			return nil, err
		}
		if err := g.checkEarlier(ctx, job, cands); err != nil {
			return nil, err
		}
	}

	// Check 5 before check 4: a send deferred by quiet hours takes its cap
	// slot when it leaves (the send path reserves it then), so that a
	// message waiting for Monday does not hold back Saturday's.
	var until []time.Time // by candidate, once one waits
	reqs := make([]throttle.CapRequest, 0, len(cands))
	reqIdx := make([]int, 0, len(cands))
	for i, c := range cands {
		if c.Reason != "" {
			continue
		}
		if t := g.sendTime(now, job.LocalTime, c); t.After(now) && !job.Requested {
			if until == nil {
				until = make([]time.Time, len(cands))
			}
			until[i] = t
			continue
		}
		reqs = append(reqs, CapRequest(c, job.Topic))
		reqIdx = append(reqIdx, i)
	}
	if len(reqs) > 0 && g.cfg.Caps != nil {
		vs, err := g.cfg.Caps.ReserveEach(ctx, now, reqs)
		if err != nil {
			return nil, fmt.Errorf("gate: reserve caps: %w", err)
		}
		for j, i := range reqIdx {
			cands[i].Reason = capReason(vs[j])
		}
	}

	out := make([]store.Decision, 0, len(cands))
	for i, c := range cands {
		d := store.Decision{Send: c.Send, Contact: c.Contact.ID, Channel: c.Channel, Topic: job.Topic.ID,
			Template: camp.Templates[c.Channel], State: dispatcher.StateSuppressed, Reason: c.Reason, Ref: job.Ref}
		switch {
		case c.Reason != "":
		case until != nil && !until[i].IsZero():
			d.State, d.Reason, d.Until = dispatcher.StateDeferred, "", until[i]
		default:
			d.State, d.Reason = dispatcher.StateQueued, ""
		}
		out = append(out, d)
	}
	return out, nil
}

// checkEarlier marks the candidates that an earlier run of the campaign
// reached, or still may (its send is under way): a one-shot campaign
// reaches each contact once, however many runs it takes.
func (g *Gate) checkEarlier(ctx context.Context, job Job, cs []*Candidate) error {
	if len(job.Earlier) == 0 {
		return nil
	}
	var ids []string
	var idx []int
	for i, c := range cs {
		if c.Reason != "" {
			continue
		}
		k := c.Channel
		if job.Campaign.Fallback {
			k = "any"
		}
		for _, run := range job.Earlier {
			ids = append(ids, dispatcher.SendID(run, c.Contact.ID, k))
			idx = append(idx, i)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	reached, err := g.cfg.Loader.ReachedBefore(ctx, ids)
	if err != nil {
		return fmt.Errorf("gate: read earlier runs: %w", err)
	}
	for j, i := range idx {
		if reached[j] {
			cs[i].Reason = ReasonReachedBefore
		}
	}
	return nil
}

// CapRequest is what check 4 counts for candidate c of topic: the
// operator's caps and, for a marketing topic, the pace the contact chose.
func CapRequest(c *Candidate, topic *dispatcher.Topic) throttle.CapRequest {
	r := throttle.CapRequest{Contact: c.Contact.ID, Channel: string(c.Channel), Topic: topic.ID, SendID: c.Send,
		Marketing: topic.Kind == dispatcher.Marketing}
	if r.Marketing {
		r.Rules = dispatcher.FrequencyCap(r.Channel, topic.ID, c.Frequency)
	}
	return r
}

// capReason is the gate reason of a cap's verdict, "" when reserved.
func capReason(v throttle.CapVerdict) string {
	switch v {
	case throttle.CapReserved:
		return ""
	case throttle.CapRecipient:
		return ReasonRecipientFrequency
	}
	return ReasonCapped
}

// ReserveDeferred is check 4 for deferred sends whose time came: it
// reserves their cap slots now, the pace their contacts chose read again,
// and gives reason capped or recipient_frequency to those over a cap.
// Reserving again for a send already reserved changes nothing.
func (g *Gate) ReserveDeferred(ctx context.Context, now time.Time, topic *dispatcher.Topic, cs []*Candidate) error {
	if g.cfg.Caps == nil || len(cs) == 0 {
		return nil
	}
	if topic.Kind == dispatcher.Marketing {
		reqs := make([]store.CheckRequest, len(cs))
		for i, c := range cs {
			reqs[i] = store.CheckRequest{Contact: c.Contact.ID, Channel: c.Channel, Address: c.Contact.Address(c.Channel)}
		}
		got, err := g.cfg.Loader.LoadChecks(ctx, topic, reqs)
		if err != nil {
			return fmt.Errorf("gate: load preferences: %w", err)
		}
		for i, c := range cs {
			c.Frequency = got[i].Frequency
		}
	}
	reqs := make([]throttle.CapRequest, len(cs))
	for i, c := range cs {
		reqs[i] = CapRequest(c, topic)
	}
	vs, err := g.cfg.Caps.ReserveEach(ctx, now, reqs)
	if err != nil {
		return fmt.Errorf("gate: reserve caps: %w", err)
	}
	for i, c := range cs {
		c.Reason = capReason(vs[i])
	}
	return nil
}

// candidates returns the candidates of contacts on each channel of ks,
// contact after contact, with check 1 applied.
func candidates(job Job, contacts []*dispatcher.Contact, ks []channels.Kind) []*Candidate {
	// One allocation for the candidates: the slice never grows, so the
	// pointers stay valid.
	all := make([]Candidate, 0, len(contacts)*len(ks))
	cands := make([]*Candidate, 0, cap(all))
	for _, c := range contacts {
		for _, k := range ks {
			all = append(all, Candidate{Contact: c, Channel: k, Reason: CheckAddress(c, k)})
			cd := &all[len(all)-1]
			switch {
			case job.SendID != "":
				cd.Send = job.SendID
			case job.Campaign.Fallback:
				cd.Send = dispatcher.SendID(job.Run, c.ID, "any")
			default:
				cd.Send = dispatcher.SendID(job.Run, c.ID, k)
			}
			cands = append(cands, cd)
		}
	}
	return cands
}

// fallback keeps, for each contact, the first channel that passes checks
// 1-3 and that no earlier run reached, or else the first channel with its
// reason. A channel is checked only for the contacts no channel before it
// passed: a contact whose email passes costs no read, nor number parsing,
// for its SMS. Every channel of a contact shares its send id, so a contact
// an earlier run reached stops there, with its first channel's reason.
func (g *Gate) fallback(ctx context.Context, now time.Time, job Job, contacts []*dispatcher.Contact) ([]*Candidate, error) {
	picks := make([]*Candidate, len(contacts))
	open := contacts
	at := make([]int, len(contacts)) // index in contacts of open[j]
	for i := range at {
		at[i] = i
	}
	for n, k := range job.Campaign.Channels {
		cands := candidates(job, open, []channels.Kind{k})
		if err := g.checkSuppressionConsent(ctx, now, job.Topic, cands); err != nil {
			return nil, err
		}
		if err := g.checkEarlier(ctx, job, cands); err != nil {
			return nil, err
		}
		var next []*dispatcher.Contact
		var nextAt []int
		for j, c := range cands {
			i := at[j]
			if n == 0 || c.Reason == "" {
				picks[i] = c
			}
			if c.Reason != "" && c.Reason != ReasonReachedBefore {
				next = append(next, open[j])
				nextAt = append(nextAt, i)
			}
		}
		open, at = next, nextAt
		if len(open) == 0 {
			break
		}
	}
	return picks, nil
}

// sendTime is check 5: the first instant at or after now (or the
// recipient's local send time) that the channel's quiet hours allow, in the
// recipient's zone, and that the days and hours the recipient prefers
// allow too (those read for a marketing topic); when the two share no
// moment, the quiet hours alone decide. Deferred sends get a jitter
// derived from the send id, so that they do not all leave in the same
// second, kept inside the windows.
func (g *Gate) sendTime(now time.Time, localTime string, c *Candidate) time.Time {
	loc, err := dispatcher.LoadLocation(c.Contact.Timezone)
	if err != nil {
		loc = time.UTC
	}
	at := now
	if localTime != "" {
		at = dispatcher.NextLocal(now, localTime, loc)
	}
	var cals []throttle.Calendar
	if cal, ok := g.cfg.Quiet[c.Channel]; ok {
		cals = append(cals, cal)
	}
	if c.Hours != "" {
		if pref, err := dispatcher.ParseHours(c.Hours); err == nil {
			cals = append(cals, pref)
		}
	}
	if len(cals) == 0 {
		return at
	}
	open := throttle.NextOpenAll(at, loc, cals...)
	if open.IsZero() {
		cals = cals[:1]
		open = throttle.NextOpenAll(at, loc, cals...)
	}
	if !open.After(now) || g.cfg.Jitter <= 0 {
		return open
	}
	h := sha256.Sum256([]byte(c.Send))
	j := time.Duration(binary.BigEndian.Uint64(h[:8]) % uint64(g.cfg.Jitter))
	if jittered := open.Add(j); throttle.NextOpenAll(jittered, loc, cals...).Equal(jittered) {
		return jittered
	}
	return open
}

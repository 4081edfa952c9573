package feedback

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// Policy decides what feedback does to the suppression list and to
// a run. Zero values take the defaults in each field's comment.
type Policy struct {
	// SoftBounces within SoftWindow suppress an address for SoftSuspend.
	// Defaults: 3 within 7 days suspend for 30 days.
	SoftBounces int
	SoftWindow  time.Duration
	SoftSuspend time.Duration
	// A run pauses itself when, after MinSample messages left, its bounce
	// rate passes MaxBounceRate or its complaint rate MaxComplaintRate.
	// Defaults: 100 messages, 5 % bounces, 0.3 % complaints.
	MinSample        int64
	MaxBounceRate    float64
	MaxComplaintRate float64
}

// SetDefaults fills the zero fields with their defaults.
func (p *Policy) SetDefaults() {
	p.SoftBounces = cmp.Or(p.SoftBounces, 3)
	p.SoftWindow = cmp.Or(p.SoftWindow, 7*24*time.Hour)
	p.SoftSuspend = cmp.Or(p.SoftSuspend, 30*24*time.Hour)
	p.MinSample = cmp.Or(p.MinSample, 100)
	p.MaxBounceRate = cmp.Or(p.MaxBounceRate, 0.05)
	p.MaxComplaintRate = cmp.Or(p.MaxComplaintRate, 0.003)
}

// Run feedback counters, besides unsubscribes and confirmations.
const (
	FeedbackDelivered   = "delivered"
	FeedbackHardBounces = "bounced_hard"
	FeedbackSoftBounces = "bounced_soft"
	FeedbackComplaints  = "complained"
	FeedbackFailed      = "failed"
)

// ErrBusy is returned by RecordDelivery when the same feedback on the
// same send is still being applied by another call after ClaimWait, or
// was by a handler that died before its claim's lease ended: the
// provider's retry applies it.
var ErrBusy = errors.New("feedback being applied; retry later")

// ClaimWait is how long a call waits for another applying the same
// feedback to finish, so that duplicates sent at once are answered as
// duplicates.
const ClaimWait = 5 * time.Second

// ErrUnknownSend is returned by RecordDelivery when the event names a send
// Missive does not hold (expired, erased, or never ours) and no address.
var ErrUnknownSend = errors.New("feedback names no known send")

// RecordDelivery applies a piece of feedback, once per send and kind: the
// send's state moves forward (sent -> delivered or bounced; never back),
// the suppression list follows the policy, the run's feedback counters
// move, and a run whose bounce or complaint rate passes the policy pauses
// its campaign. Duplicate and out-of-order events change nothing.
func (d *Handler) RecordDelivery(ctx context.Context, ev channels.Feedback) (err error) {
	s := d.Store
	if ev.At.IsZero() {
		ev.At = d.now()
	}
	var sd *dispatcher.Send
	var c *dispatcher.Contact
	var domain string // the recipient's provider group, recorded when the message left
	if ev.Send != "" {
		var err error
		if sd, domain, err = s.SendAndDomain(ctx, ev.Send); err != nil && !dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			return err
		}
	}
	if sd != nil {
		ev.Channel = sd.Channel
		var err error
		if c, err = s.Contact(ctx, sd.Contact); err == nil && ev.Address == "" {
			ev.Address = channels.Address(c.Address(sd.Channel))
		}
	} else if ev.Address != "" && ev.Channel.Valid() {
		if id, err := s.ContactIDByAddress(ctx, ev.Channel, string(ev.Address)); err == nil {
			c, _ = s.Contact(ctx, id)
		}
	}
	if sd == nil && ev.Address == "" {
		return ErrUnknownSend
	}

	// Once per send and kind: webhooks are retried and reports resent.
	// The claim is a lease until the feedback is applied, then a mark
	// kept with the send: a handler that dies in between (where no
	// release runs) leaves the report to the provider's retry once the
	// lease ends, rather than dropped as done.
	if sd != nil {
		mark := s.FeedbackClaim(sd.ID, ev.Kind)
		switch state, err := s.AwaitClaim(ctx, mark, d.claimLease, ClaimWait); {
		case err != nil:
			return err
		case state == storepkg.ClaimDone:
			return nil
		case state == storepkg.ClaimBusy:
			return ErrBusy
		}
		counted := false
		defer func() {
			if err != nil && !counted {
				// Let the provider's retry do the work again: every step up
				// to the count is idempotent, and advanceSend lets a retry
				// go on past a state this report already set.
				_ = s.Release(ctx, mark)
			}
		}()
		moved, err := d.advanceSend(ctx, sd, ev)
		if err != nil {
			return err
		}
		if !moved {
			// An out-of-order report: the send is past it.
			return s.MarkDone(ctx, mark, d.sendTTL)
		}
		if err := d.applyPolicy(ctx, ev, sd, c); err != nil {
			return err
		}
		if name := feedbackName(ev.Kind); name != "" {
			topic := ""
			if ev.Kind == channels.Unsubscribed {
				topic = sd.Topic // counted per topic too, as a one-click is
			}
			if err := s.CountFeedback(ctx, sd.Run, topic, name, analyticsEvent(sd, domain, ev)...); err != nil {
				return err
			}
		}
		// Counted: a retry would count again, so the claim stays even if
		// the check below fails (the next report checks the rates anew).
		// A crash between the count and the mark counts this report twice
		// once the lease ends: a counter off by one, against a bounce or
		// a complaint never applied.
		counted = true
		if err := s.MarkDone(ctx, mark, d.sendTTL); err != nil {
			return err
		}
		d.m.Feedback(string(ev.Channel), string(ev.Kind))
		d.tell(ctx, ev, sd, c)
		return d.checkRates(ctx, sd.Run)
	}
	if err := d.applyPolicy(ctx, ev, nil, c); err != nil {
		return err
	}
	d.m.Feedback(string(ev.Channel), string(ev.Kind))
	d.tell(ctx, ev, nil, c)
	return nil
}

// feedbackEvents maps a kind of feedback to the event it tells.
var feedbackEvents = map[channels.FeedbackKind]string{
	channels.Delivered:   dispatcher.EventDelivered,
	channels.HardBounce:  dispatcher.EventBounced,
	channels.SoftBounce:  dispatcher.EventBounced,
	channels.OptedOut:    dispatcher.EventBounced,
	channels.Complaint:   dispatcher.EventComplained,
	channels.Undelivered: dispatcher.EventFailed,
}

// tell emits the event of a piece of feedback applied (unsubscribes are
// told by the consent change they make).
func (d *Handler) tell(ctx context.Context, ev channels.Feedback, sd *dispatcher.Send, c *dispatcher.Contact) {
	typ := feedbackEvents[ev.Kind]
	if typ == "" {
		return
	}
	e := dispatcher.Event{Type: typ, Time: ev.At, Channel: string(ev.Channel), Reason: string(ev.Kind), Address: string(ev.Address)}
	if ev.Kind == channels.Delivered {
		e.Reason = ""
	}
	if c != nil {
		e.Contact = c.ID
	}
	if sd != nil {
		e.Contact, e.Topic, e.Run, e.Send = sd.Contact, sd.Topic, sd.Run, sd.ID
	}
	d.events.Emit(ctx, e)
}

// suppressed tells that an address of c was put on the suppression list.
func (d *Handler) suppressed(ctx context.Context, ev channels.Feedback, c *dispatcher.Contact, reason string) {
	if c == nil {
		return
	}
	d.events.Emit(ctx, dispatcher.Event{Type: dispatcher.EventSuppressed, Contact: c.ID, Time: ev.At,
		Channel: string(ev.Channel), Reason: reason, Send: ev.Send, Address: string(ev.Address)})
}

// analyticsEvent is what a piece of feedback about sd counts in the
// analytics of its run and topic, under domain (the provider group
// recorded with the send; for a send that left before it was, that of
// the address the feedback is about).
func analyticsEvent(sd *dispatcher.Send, domain string, ev channels.Feedback) []storepkg.Event {
	m := storepkg.FeedbackMetric(sd.Channel, ev.Kind)
	if m == "" {
		return nil
	}
	if domain == "" && sd.Channel == channels.Email && ev.Address != "" {
		domain = storepkg.ProviderGroup(string(ev.Address))
	}
	if sd.Channel != channels.Email {
		domain = ""
	}
	return []storepkg.Event{{Run: sd.Run, Topic: sd.Topic, Metric: m, Domain: domain}}
}

func feedbackName(k channels.FeedbackKind) string {
	switch k {
	case channels.Delivered:
		return FeedbackDelivered
	case channels.HardBounce, channels.OptedOut:
		return FeedbackHardBounces
	case channels.SoftBounce:
		return FeedbackSoftBounces
	case channels.Complaint:
		return FeedbackComplaints
	case channels.Undelivered:
		return FeedbackFailed
	case channels.Unsubscribed:
		return storepkg.FeedbackUnsubscribes
	}
	return ""
}

// advanceSend moves the send's state forward only. It reports false when
// the event would move it back (a delivery report after a bounce). A
// report about a send still "sending" proves its message left: it may
// come before the settlement of the chunk the message left in, which then
// finds the send past it and leaves it so.
func (d *Handler) advanceSend(ctx context.Context, sd *dispatcher.Send, ev channels.Feedback) (bool, error) {
	var t storepkg.Transition
	const left = dispatcher.StateSending + "," + dispatcher.StateSent
	switch ev.Kind {
	case channels.Delivered:
		t = storepkg.Transition{Send: sd.ID, From: left, To: dispatcher.StateDelivered}
	case channels.HardBounce, channels.OptedOut:
		t = storepkg.Transition{Send: sd.ID, From: left + "," + dispatcher.StateDelivered, To: dispatcher.StateBounced, Reason: string(ev.Kind)}
	case channels.Undelivered:
		t = storepkg.Transition{Send: sd.ID, From: left, To: dispatcher.StateFailed, Reason: string(ev.Kind)}
	default:
		return true, nil // soft bounces and complaints leave the state as it is
	}
	if ev.Code != "" {
		t.Fields = []any{"error_code", ev.Code}
	}
	rs, err := d.Store.TransitionSends(ctx, []storepkg.Transition{t})
	if err != nil {
		return false, err
	}
	done := rs[0].RunDone
	if !rs[0].Applied {
		if sd.State != t.To || sd.Reason != t.Reason {
			return false, nil // out of order: the send is past this report
		}
		// This very report moved the send in a try that failed later (its
		// claim was released): go on, and finish the run it may have left
		// open, which nothing else would.
		if done, err = d.Store.FinishBatch(ctx, sd.Run, ""); err != nil {
			return false, err
		}
	}
	if done {
		return true, d.runs.CompleteRun(ctx, sd.Run)
	}
	return true, nil
}

// applyPolicy feeds the suppression list and the ledger; sd is the send
// the feedback is about, or nil.
func (d *Handler) applyPolicy(ctx context.Context, ev channels.Feedback, sd *dispatcher.Send, c *dispatcher.Contact) error {
	s := d.Store
	if ev.Address == "" || !ev.Channel.Valid() {
		return nil
	}
	p := d.policy
	switch ev.Kind {
	case channels.HardBounce:
		if err := s.Suppress(ctx, ev.Channel, string(ev.Address), dispatcher.SuppressBounce, time.Time{}); err != nil {
			return err
		}
		d.suppressed(ctx, ev, c, dispatcher.SuppressBounce)
	case channels.OptedOut:
		if err := s.SuppressStop(ctx, ev.Channel, string(ev.Address)); err != nil {
			return err
		}
		d.suppressed(ctx, ev, c, dispatcher.SuppressStop)
	case channels.SoftBounce:
		member := ev.Send
		if member == "" {
			member = strconv.FormatInt(ev.At.UnixMilli(), 10) + ":" + ev.Code + ":" + ev.Source
		}
		n, err := s.CountSoftBounce(ctx, ev.Channel, string(ev.Address), member, ev.At, p.SoftWindow)
		if err != nil {
			return err
		}
		if n >= int64(p.SoftBounces) {
			if err := s.Suppress(ctx, ev.Channel, string(ev.Address), dispatcher.SuppressBounce, d.now().Add(p.SoftSuspend)); err != nil {
				return err
			}
			d.suppressed(ctx, ev, c, dispatcher.SuppressBounce)
		}
	case channels.Complaint:
		if err := s.Suppress(ctx, ev.Channel, string(ev.Address), dispatcher.SuppressComplaint, time.Time{}); err != nil {
			return err
		}
		d.suppressed(ctx, ev, c, dispatcher.SuppressComplaint)
		if c != nil {
			return d.consent.WithdrawMarketingOn(ctx, c.ID, ev.Channel, "complaint", map[string]string{"report": ev.Source})
		}
	case channels.Unsubscribed:
		// The person leaves the message's topic, as with its one-click
		// link; without the message, every marketing topic of the channel.
		switch {
		case c == nil:
		case sd != nil && sd.Topic != "":
			_, err := d.consent.Withdraw(ctx, c.ID, ev.Channel, sd.Topic, consent.SourceUnsubscribeMail, map[string]string{"send": sd.ID, "report": ev.Source})
			return err
		default:
			return d.consent.WithdrawMarketingOn(ctx, c.ID, ev.Channel, consent.SourceUnsubscribeMail, map[string]string{"report": ev.Source})
		}
	}
	return nil
}

// checkRates pauses a run's campaign when its bounce or complaint rate
// passes the policy, and records why on the run.
func (d *Handler) checkRates(ctx context.Context, run string) error {
	m, err := d.Store.RunFields(ctx, run)
	if err != nil || m["paused_reason"] != "" {
		return err
	}
	num := func(f string) int64 { v, _ := strconv.ParseInt(m[f], 10, 64); return v }
	left := num("n:sent") + num("n:delivered") + num("n:bounced")
	p := d.policy
	if left < p.MinSample {
		return nil
	}
	bounces := float64(num("f:"+FeedbackHardBounces)+num("f:"+FeedbackSoftBounces)) / float64(left)
	complaints := float64(num("f:"+FeedbackComplaints)) / float64(left)
	var reason string
	switch {
	case complaints > p.MaxComplaintRate:
		reason = fmt.Sprintf("complaint rate %.2f%% passed %.2f%%", 100*complaints, 100*p.MaxComplaintRate)
	case bounces > p.MaxBounceRate:
		reason = fmt.Sprintf("bounce rate %.1f%% passed %.1f%%", 100*bounces, 100*p.MaxBounceRate)
	default:
		return nil
	}
	// The campaign pauses before the reason is recorded: the reason makes
	// the pause once only, so a pause that failed must leave it unset for
	// the next report to try again. A second pause is a conflict.
	if campaign := m["campaign"]; campaign != "" && !dispatcher.OneAtATime(campaign) {
		if _, err := d.runs.SetCampaignState(ctx, campaign, "pause"); err != nil && !dispatcher.IsCode(err, dispatcher.CodeConflict) {
			return err
		}
	}
	ok, err := d.Store.PauseRunOnce(ctx, run, reason)
	if err != nil || !ok {
		return err
	}
	d.log.Warn("run paused by its feedback", "run", run, "reason", reason)
	return nil
}

// Refused applies the feedback policy to a permanent refusal at send
// time, as to a bounce that came back later: an address that does not
// exist is suppressed, a full mailbox counts as a soft bounce, a number
// that opted out is recorded as a STOP. Other refusals (policy, content)
// fail the send without blaming the address.
func (d *Handler) Refused(ctx context.Context, s *dispatcher.Send, c *dispatcher.Contact, err error) error {
	var ce *channels.Error
	if !errors.As(err, &ce) {
		return nil
	}
	kind := ce.Feedback
	if kind == "" {
		return nil
	}
	ev := channels.Feedback{Send: s.ID, Channel: s.Channel, Address: channels.Address(c.Address(s.Channel)), Kind: kind, Code: ce.Code, Source: "smtp",
		At: d.now()} // a soft bounce counts in the policy's window from now
	if s.Channel == channels.SMS {
		ev.Source = "twilio"
	}
	if err := d.applyPolicy(ctx, ev, s, c); err != nil {
		return err
	}
	if err := d.Store.CountFeedback(ctx, s.Run, "", feedbackName(kind), analyticsEvent(s, "", ev)...); err != nil {
		return err
	}
	d.m.Feedback(string(ev.Channel), string(kind))
	return nil
}

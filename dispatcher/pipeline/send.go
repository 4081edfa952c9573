package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	gatepkg "github.com/missive-dev/missive/dispatcher/gate"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
	"github.com/missive-dev/missive/templates"
	"github.com/missive-dev/missive/throttle"
)

// pausedRecheck is how often a send task of a paused run looks whether the
// run was resumed.
const pausedRecheck = 5 * time.Second

// snoozeError asks the queue to run the task again later without counting
// a failure: a paused run.
type snoozeError struct{ d time.Duration }

func (e *snoozeError) Error() string { return "run paused; retry in " + e.d.String() }

// RetryDelay tells asynq when to retry a task: when a limit says, when a
// paused run says, else with exponential backoff and jitter.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var le *throttle.LimitError
	if errors.As(err, &le) {
		return max(le.RetryIn, 100*time.Millisecond)
	}
	var se *snoozeError
	if errors.As(err, &se) {
		return se.d
	}
	var ce *channels.Error
	if errors.As(err, &ce) && ce.RetryIn > 0 {
		return ce.RetryIn
	}
	d := time.Duration(1<<min(n, 10)) * 2 * time.Second
	return min(d, 30*time.Minute) + rand.N(d/4+1)
}

// IsFailure tells asynq which errors count against a task's retries:
// throttling and pauses do not.
func IsFailure(err error) bool {
	var le *throttle.LimitError
	var se *snoozeError
	return !errors.As(err, &le) && !errors.As(err, &se)
}

const InflightStates = dispatcher.StateQueued + "," + dispatcher.StateDeferred

// handleSend delivers the sends of one task, sendChunk at a time. The
// sends of a chunk are claimed ("sending") in Redis in one call once
// their channel holds what they leave through, and settled in one call
// right after, so a retried task or a second worker never sends one
// twice; a worker that dies between the two leaves them "sending", which
// the reconciler settles as ambiguous rather than risk a double send.
func (d *Pipeline) handleSend(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload[sendPayload](t, "send")
	if err != nil {
		return err
	}
	return d.sendTask(ctx, p, sendOptions{lastTry: isLastTry(ctx)})
}

// sendOptions say how a send task runs.
type sendOptions struct {
	// lastTry: sends that fail for a time are failed for good.
	lastTry bool
	// noWait: a rate limit to wait for ends the task (a *LimitError)
	// instead of being waited for.
	noWait bool
}

// sendTask delivers the sends of p.
func (d *Pipeline) sendTask(ctx context.Context, p sendPayload, o sendOptions) error {
	st, err := d.LoadRun(ctx, p.Run)
	if err != nil {
		if errors.Is(err, dispatcher.ErrNotFound) || dispatcher.IsCode(err, dispatcher.CodeNotFound) {
			return nil
		}
		return err
	}
	ids := make([]string, len(p.Sends))
	for i, h := range p.Sends {
		ids[i] = p.Run + "~" + h
	}
	if held, err := d.hold(ctx, st.state, ids); held {
		return err
	}
	sends, err := d.Store.Sends(ctx, ids)
	if err != nil {
		return err
	}
	now := d.cfg.Now()
	var live []*dispatcher.Send
	for _, s := range sends {
		if s == nil || (s.State != dispatcher.StateQueued && s.State != dispatcher.StateDeferred) {
			continue
		}
		if s.State == dispatcher.StateDeferred && s.Until.After(now.Add(time.Second)) {
			continue // early: its own task runs at the time
		}
		live = append(live, s)
	}
	if len(live) == 0 {
		return nil
	}
	live, contacts, err := d.recheck(ctx, st, live)
	if err != nil || len(live) == 0 {
		return err
	}

	var tempErr, limitErr error
	for i := 0; i < len(live); {
		k := live[i].Channel
		j := i
		for j < len(live) && live[j].Channel == k {
			j++
		}
		group := live[i:j]
		i = j
		for len(group) > 0 {
			n, wait, err := d.reserve(ctx, st, k, len(group))
			if err != nil {
				return err
			}
			if n == 0 || (wait > 0 && o.noWait) {
				// Nothing free within maxPace: the queue brings the task
				// back when something is. (Slots taken with noWait are
				// lost: the pace is a ceiling.)
				limitErr = &throttle.LimitError{RetryIn: wait}
				break
			}
			if wait > 0 {
				// Pace here rather than through the queue, whose delayed
				// tasks move only once a second.
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(wait):
				}
			}
			err = d.deliverAll(ctx, st, k, group[:n], contacts, o.lastTry, &tempErr)
			var he *heldError
			if errors.As(err, &he) {
				_, err := d.hold(ctx, he.state, ids)
				return err
			}
			if err != nil {
				return err
			}
			group = group[n:]
		}
	}
	if tempErr != nil {
		return tempErr
	}
	return limitErr
}

// hold reports whether a send task of a run in state ends here, and with
// what: a cancelled run's sends are settled as cancelled; a paused run's
// wait, queued, and the task comes back later.
func (d *Pipeline) hold(ctx context.Context, state string, ids []string) (bool, error) {
	switch state {
	case dispatcher.RunCancelled:
		return true, d.settle(ctx, "", ids, InflightStates, dispatcher.StateCancelled, dispatcher.ReasonRunCancelled)
	case dispatcher.RunPaused:
		return true, &snoozeError{d: pausedRecheck}
	}
	return false, nil
}

// heldError: a claim found the run paused or cancelled.
type heldError struct{ state string }

func (e *heldError) Error() string { return "run " + e.state }

// maxPace is the longest wait for a rate limit a task does itself; past it
// the task goes back to the queue.
const maxPace = 2 * time.Second

// sendChunk is how many sends are claimed at once and handed to their
// channel together: the SMTP sender streams them over one connection. It
// bounds what a pause or an opt-out cannot stop any more once claimed, and
// what a worker killed mid-chunk leaves unknown (settled ambiguous): 8
// costs ~5% more CPU a message than 16, and a quarter less than 4.
const sendChunk = 8

// maxRetries is how many times a send the provider asked to come back
// later (a 429 with Retry-After) is tried again within its task.
const maxRetries = 3

// deliverAll delivers sends of channel k in order, sendChunk at a time, and
// keeps the last temporary error.
func (d *Pipeline) deliverAll(ctx context.Context, st *runState, k channels.Kind, group []*dispatcher.Send, contacts map[string]*dispatcher.Contact, lastTry bool, tempErr *error) error {
	for tries := 0; len(group) > 0; tries++ {
		var again []*dispatcher.Send
		var wait time.Duration
		for len(group) > 0 {
			if ctx.Err() != nil {
				return ctx.Err() // the rest stay queued; the task runs again
			}
			chunk := group[:min(len(group), sendChunk)]
			group = group[len(chunk):]
			errs, err := d.deliverChunk(ctx, st, k, chunk, contacts)
			if err != nil {
				return err
			}
			var exhausted []string
			refused := false
			for i, err := range errs {
				switch kind := channels.KindOf(err); {
				case err == nil:
				case kind == channels.Sender:
					// The rest would be refused alike: they wait, queued,
					// until an operator fixes the channel.
					*tempErr, refused = err, true
				case kind != channels.Temporary:
				case tries < maxRetries && retryIn(err)<<tries > 0 && retryIn(err)<<tries <= maxPace:
					// The provider asked to come back shortly (a 429): the
					// send is tried again, waiting longer each time, without
					// a second rate token.
					again = append(again, chunk[i])
					wait = max(wait, retryIn(err)<<tries)
				case lastTry:
					exhausted = append(exhausted, chunk[i].ID)
				default:
					*tempErr = err
				}
			}
			if len(exhausted) > 0 {
				if err := d.settle(ctx, k, exhausted, dispatcher.StateQueued, dispatcher.StateFailed, dispatcher.ReasonExhausted); err != nil {
					return err
				}
			}
			if refused {
				return nil
			}
		}
		if group = again; len(group) > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
	}
	return nil
}

// retryIn is when a temporary error asks to be tried again, 0 unsaid.
func retryIn(err error) time.Duration {
	var ce *channels.Error
	if errors.As(err, &ce) {
		return ce.RetryIn
	}
	return 0
}

// reserve takes up to n slots of the channel's provider rate and the
// campaign's own, the first free ones within maxPace, and returns how many
// it took and how long to wait before they may leave: never a polling
// loop, each caller gets slots of its own. It takes at most a tenth of a
// second of the slower rate at once, so that what leaves together stays a
// small burst. Slots of the provider rate the campaign's does not match
// are lost: the provider's pace is a ceiling, not a target.
func (d *Pipeline) reserve(ctx context.Context, st *runState, k channels.Kind, n int) (int, time.Duration, error) {
	var rates []throttle.Rate
	var keys []string
	if r, ok := d.cfg.ProviderRates[k]; ok {
		rates, keys = append(rates, r), append(keys, "provider:"+string(k))
	}
	if st.campaign.RateLimit != "" {
		if r, err := throttle.ParseRate(st.campaign.RateLimit); err == nil {
			rates, keys = append(rates, r), append(keys, "campaign:"+st.campaign.ID)
		}
	}
	for _, r := range rates {
		n = min(n, max(1, int(float64(r.Count)*float64(time.Second/10)/float64(r.Per))))
	}
	var wait time.Duration
	for i, r := range rates {
		taken, w, err := d.limiter.Reserve(ctx, keys[i], r, n, maxPace)
		if err != nil {
			return 0, 0, err
		}
		if taken == 0 {
			d.m.RateWait(string(k), w)
			return 0, w, nil
		}
		n, wait = taken, max(wait, w)
	}
	d.m.RateWait(string(k), wait)
	return n, wait, nil
}

// recheck loads the contacts of live and runs check 1 again, and check 4
// for the deferred sends whose time came: it settles the sends whose
// contact was erased, whose address no longer serves or that are over a
// cap, and returns the others with their contacts. Checks 2 and 3 run
// with each send's claim (takeClaim).
func (d *Pipeline) recheck(ctx context.Context, st *runState, live []*dispatcher.Send) ([]*dispatcher.Send, map[string]*dispatcher.Contact, error) {
	cids := make([]string, len(live))
	for i, s := range live {
		cids[i] = s.Contact
	}
	cs, err := d.Store.Contacts(ctx, cids)
	if err != nil {
		return nil, nil, err
	}
	var cands, deferred []*gatepkg.Candidate
	var settle []storepkg.Transition
	for i, s := range live {
		if cs[i] == nil {
			settle = append(settle, storepkg.Transition{Send: s.ID, From: InflightStates, To: dispatcher.StateCancelled, Reason: dispatcher.ReasonErased})
			continue
		}
		cands = append(cands, &gatepkg.Candidate{Contact: cs[i], Channel: s.Channel, Send: s.ID,
			Reason: gatepkg.CheckAddress(cs[i], s.Channel)})
		if c := cands[len(cands)-1]; c.Reason == "" && s.State == dispatcher.StateDeferred {
			deferred = append(deferred, c)
		}
	}
	// A deferred send takes its cap slot now that it leaves.
	if err := d.gate.ReserveDeferred(ctx, d.cfg.Now(), st.topic, deferred); err != nil {
		return nil, nil, err
	}
	var out []*dispatcher.Send
	contacts := map[string]*dispatcher.Contact{}
	for _, c := range cands {
		if c.Reason != "" {
			settle = append(settle, storepkg.Transition{Send: c.Send, From: InflightStates, To: dispatcher.StateSuppressed, Reason: c.Reason})
			_ = d.caps.Release(ctx, c.Contact.ID, string(c.Channel), st.topic.ID, c.Send)
			continue
		}
		contacts[c.Send] = c.Contact
	}
	for _, s := range live {
		if contacts[s.ID] != nil {
			out = append(out, s)
		}
	}
	if len(settle) > 0 {
		if err := d.applyTransitions(ctx, "", settle); err != nil {
			return nil, nil, err
		}
	}
	return out, contacts, nil
}

// deliverChunk renders sends of channel k and hands them to the channel
// at once; the channel claims them right before their bytes go out
// (claimChunk), then their outcomes are settled in one round trip. It
// returns each send's channel error (a *channels.Error, nil when it left
// or needs no retry), a *heldError when the claim found the run paused or
// cancelled, or a Redis error.
func (d *Pipeline) deliverChunk(ctx context.Context, st *runState, k channels.Kind, chunk []*dispatcher.Send, contacts map[string]*dispatcher.Contact) ([]error, error) {
	errs := make([]error, len(chunk))
	ch := d.cfg.Channels[k]
	if ch == nil {
		return errs, d.settle(ctx, k, sendIDs(chunk), InflightStates, dispatcher.StateFailed, dispatcher.ReasonNoChannel)
	}
	var settle []storepkg.Transition
	var batch channels.Batch
	var sends []*dispatcher.Send // of batch.Messages
	var at []int                 // their index in chunk
	for i, s := range chunk {
		msg, err := d.render(ctx, st, s, contacts[s.ID])
		if errors.Is(err, ErrNothingToSend) {
			settle = append(settle, storepkg.Transition{Send: s.ID, From: InflightStates, To: dispatcher.StateCancelled, Reason: dispatcher.ReasonAnswered})
			continue
		}
		if err != nil {
			d.log.Warn("render failed", "send", s.ID, "error", err)
			settle = append(settle, storepkg.Transition{Send: s.ID, From: InflightStates, To: dispatcher.StateFailed, Reason: dispatcher.ReasonRender})
			continue
		}
		if k == channels.Email {
			if msg.ReturnPath, err = d.fb.ReturnPath(ctx, s.ID); err != nil {
				return nil, err
			}
		}
		batch.Messages = append(batch.Messages, msg)
		sends, at = append(sends, s), append(at, i)
	}
	if len(settle) > 0 {
		if err := d.applyTransitions(ctx, k, settle); err != nil {
			return nil, err
		}
	}
	if len(sends) == 0 {
		return errs, nil
	}
	claimed := make([]bool, len(sends))
	batch.Claim = func(ctx context.Context, idx []int) []error {
		out := d.claimChunk(ctx, st, sends, contacts, idx)
		for j, i := range idx {
			claimed[i] = out[j] == nil
		}
		return out
	}
	// The provider calls are not cut short by a shutdown: a message half
	// handed over is the one case that could be lost or sent twice. The
	// channels bound their own calls (the SMTP and Twilio timeouts), and a
	// context that is never done cannot cut their connection mid-message.
	// The settlement after them outlives the task too: a delivered message
	// must not be left "sending" for the reconciler to call ambiguous.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	d.handing.start()
	defer d.handing.end()
	began := time.Now()
	outcomes := channels.SendBatch(sctx, ch, batch)
	d.m.ProviderCall(string(k), time.Since(began))
	for _, o := range outcomes {
		if isChannelErr(o.Err) {
			d.m.ProviderError(string(k), errorClass(k, o.Err))
		}
	}
	// Every outcome is settled before any failure returns: a message that
	// left must not stay "sending".
	var fail, held error
	settle = settle[:0]
	var left []storepkg.Event // counted with the settlement, in its round trip
	for j, o := range outcomes {
		s, c := sends[j], contacts[sends[j].ID]
		var he *heldError
		var we *withheldError
		switch {
		case errors.Is(o.Err, errNotClaimed):
			continue
		case errors.As(o.Err, &we):
			fail = cmp.Or(fail, we.err)
			continue
		case errors.As(o.Err, &he):
			held = he
			continue
		case !claimed[j] && !isChannelErr(o.Err):
			fail = cmp.Or(fail, o.Err) // the claim's own failure (Redis): the task retries
			continue
		case !claimed[j]:
			// The channel gave up before claiming it: nothing left. A
			// message it cannot build fails; anything else stays queued
			// for the task's retry.
			if channels.KindOf(o.Err) == channels.Permanent {
				if err := d.fb.Refused(sctx, s, c, o.Err); err != nil {
					fail = cmp.Or(fail, err)
					continue
				}
				settle = append(settle, storepkg.Transition{Send: s.ID, From: InflightStates, To: dispatcher.StateFailed, Reason: dispatcher.ReasonRejected})
			}
			errs[at[j]] = d.logFailure(s, o.Err)
			continue
		}
		t := storepkg.Transition{Send: s.ID, From: dispatcher.StateSending}
		ev := storepkg.Event{Run: s.Run, Topic: s.Topic, Metric: storepkg.SentMetric(k)}
		if k == channels.Email {
			ev.Domain = storepkg.ProviderGroup(c.Address(k))
			if dispatcher.OneAtATime(st.campaign.ID) {
				ev.Recipient = c.ID // one person may get several of the run's messages
			}
		}
		switch channels.KindOf(o.Err) {
		case 0:
			// SMS delivery reports name Twilio's message id: the way
			// back is recorded before the send shows as sent, so that a
			// report racing the settlement finds it. Email feedback names
			// the Message-ID, which derives from the send's id: it needs
			// no way back. The recipient's provider group stays with the
			// send for the feedback to come.
			t.To, t.Fields = dispatcher.StateSent, []any{"provider", o.Result.ProviderID}
			if k == channels.SMS {
				t.ProviderID = o.Result.ProviderID
			}
			if ev.Domain != "" {
				t.Fields = append(t.Fields, storepkg.SendDomainField, ev.Domain)
			}
			left = append(left, ev)
		case channels.Temporary, channels.Sender:
			t.To, t.Deadline = dispatcher.StateQueued, d.cfg.Now().Add(d.cfg.InflightDeadline)
			if ctx.Err() != nil {
				// The task is over (shut down, or handed to another worker
				// while this one stood frozen): nothing retries it, so the
				// reconciler takes the send up on its next pass.
				t.Deadline = d.cfg.Now()
			}
		case channels.Ambiguous:
			t.To, t.Reason = dispatcher.StateFailed, dispatcher.ReasonAmbiguous
		default:
			t.To, t.Reason = dispatcher.StateFailed, dispatcher.ReasonRejected
			if err := d.fb.Refused(sctx, s, c, o.Err); err != nil {
				fail = cmp.Or(fail, err)
			}
			if refusedForRecipient(o.Err) {
				// A bounce at once: it counts as sent, as bounces do.
				left = append(left, ev)
			}
		}
		var ce *channels.Error
		if errors.As(o.Err, &ce) && ce.Code != "" {
			t.Fields = append(t.Fields, "error_code", ce.Code)
		}
		settle = append(settle, t)
		errs[at[j]] = d.logFailure(s, o.Err)
	}
	if err := d.applyTransitions(sctx, k, settle, left...); err != nil {
		return nil, err
	}
	return errs, cmp.Or(fail, held)
}

// refusedForRecipient tells whether a permanent refusal is about the
// recipient (a bounce at send time), which feedback counts.
func refusedForRecipient(err error) bool {
	var ce *channels.Error
	return errors.As(err, &ce) && ce.Feedback != ""
}

// settleTimeout bounds what a send does once its task is cancelled: the
// provider call, bounded by the channel, and the settlement after it.
const settleTimeout = 5 * time.Minute

// errNotClaimed: the send was settled or claimed elsewhere meanwhile.
var errNotClaimed = errors.New("send not claimed: settled or taken elsewhere")

// withheldError: the claim found an opt-out or an erasure recorded
// meanwhile and settled the send; err is the settlement's failure, if any.
type withheldError struct{ err error }

func (e *withheldError) Error() string { return "send withheld: an opt-out or an erasure came first" }

// claimChunk claims sends[i] for each i of idx right before their messages
// leave (channels call it through Batch.Claim), in one round trip that
// also reads the run's state, the contacts, suppression and consent: a
// pause holds a send queued (*heldError), an erasure or an opt-out
// recorded meanwhile settles it (*withheldError), and its message never
// leaves. It returns one error per index, nil for a claimed send.
func (d *Pipeline) claimChunk(ctx context.Context, st *runState, sends []*dispatcher.Send, contacts map[string]*dispatcher.Contact, idx []int) []error {
	out := make([]error, len(idx))
	cs := make([]storepkg.SendClaim, len(idx))
	lease := d.cfg.Now().Add(d.cfg.SendLease)
	for j, i := range idx {
		s, c := sends[i], contacts[sends[i].ID]
		cs[j] = storepkg.SendClaim{Send: s.ID, Lease: lease, Topic: st.topic,
			Check: storepkg.CheckRequest{Contact: c.ID, Channel: s.Channel, Address: c.Address(s.Channel)}}
	}
	claims, err := d.Store.ClaimSends(ctx, cs)
	if err != nil {
		for j := range out {
			out[j] = err
		}
		return out
	}
	var settle []storepkg.Transition
	var withheld []int
	for j, claim := range claims {
		s, c := sends[idx[j]], contacts[sends[idx[j]].ID]
		switch {
		case claim.Held != "":
			out[j] = &heldError{state: claim.Held}
		case !claim.Claimed:
			out[j] = errNotClaimed
		case claim.Erased:
			settle = append(settle, storepkg.Transition{Send: s.ID, From: dispatcher.StateSending, To: dispatcher.StateCancelled, Reason: dispatcher.ReasonErased})
			withheld = append(withheld, j)
		default:
			if reason := gatepkg.Verdict(claim.Checked, st.topic.Kind == dispatcher.Marketing, d.cfg.Now()); reason != "" {
				_ = d.caps.Release(ctx, c.ID, string(s.Channel), st.topic.ID, s.ID)
				settle = append(settle, storepkg.Transition{Send: s.ID, From: dispatcher.StateSending, To: dispatcher.StateSuppressed, Reason: reason})
				withheld = append(withheld, j)
			}
		}
	}
	if len(settle) > 0 {
		err := d.applyTransitions(ctx, sends[0].Channel, settle)
		for _, j := range withheld {
			out[j] = &withheldError{err}
		}
	}
	return out
}

func sendIDs(sends []*dispatcher.Send) []string {
	ids := make([]string, len(sends))
	for i, s := range sends {
		ids[i] = s.ID
	}
	return ids
}

// logFailure logs a failed send and returns its error as a
// *channels.Error.
func (d *Pipeline) logFailure(s *dispatcher.Send, sendErr error) error {
	if channels.KindOf(sendErr) == channels.Sender {
		d.log.Error("the provider refuses the sender: check the channel's configuration; sends wait meanwhile",
			"channel", string(s.Channel), "error", sendErr)
	} else if sendErr != nil {
		d.log.Info("send failed", "send", s.ID, "kind", channels.KindOf(sendErr).String(), "error", sendErr)
		if !isChannelErr(sendErr) {
			sendErr = &channels.Error{Kind: channels.Temporary, Err: sendErr}
		}
	}
	return sendErr
}

// Settle moves sends from the given states to a final one.
func (d *Pipeline) Settle(ctx context.Context, ids []string, from, to, reason string) error {
	return d.settle(ctx, "", ids, from, to, reason)
}

// settle is Settle for sends of channel k ("" when unknown or mixed).
func (d *Pipeline) settle(ctx context.Context, k channels.Kind, ids []string, from, to, reason string) error {
	ts := make([]storepkg.Transition, len(ids))
	for i, id := range ids {
		ts[i] = storepkg.Transition{Send: id, From: from, To: to, Reason: reason}
	}
	return d.applyTransitions(ctx, k, ts)
}

// applyTransitions applies ts, the changes of sends of channel k ("" when
// unknown or mixed), counts them (evs in the analytics, in the same round
// trip), and completes the runs they finish.
func (d *Pipeline) applyTransitions(ctx context.Context, k channels.Kind, ts []storepkg.Transition, evs ...storepkg.Event) error {
	rs, err := d.Store.TransitionSends(ctx, ts, evs...)
	if err != nil {
		return err
	}
	d.countSettled(ctx, k, ts, func(i int) bool { return rs[i].Applied })
	d.tellFailed(ctx, ts, func(i int) bool { return rs[i].Applied })
	for i, r := range rs {
		if r.RunDone {
			run, _, _ := dispatcher.SplitSendID(ts[i].Send)
			if err := d.CompleteRun(ctx, run); err != nil {
				return err
			}
		}
	}
	return nil
}

// tellFailed emits a failed event for each send the transitions failed
// for good. It reads those sends for their contacts: a failure is rare,
// and its event worth the read.
func (d *Pipeline) tellFailed(ctx context.Context, ts []storepkg.Transition, applied func(int) bool) {
	if d.cfg.Events == dispatcher.NoEvents {
		return
	}
	var ids, reasons []string
	for i, t := range ts {
		if applied(i) && t.To == dispatcher.StateFailed {
			ids, reasons = append(ids, t.Send), append(reasons, t.Reason)
		}
	}
	if len(ids) == 0 {
		return
	}
	sends, err := d.Store.Sends(ctx, ids)
	if err != nil {
		d.log.Warn("failed sends not told", "error", err)
		return
	}
	now := d.cfg.Now()
	for i, s := range sends {
		if s == nil {
			continue
		}
		d.cfg.Events.Emit(ctx, dispatcher.Event{Type: dispatcher.EventFailed, Contact: s.Contact, Time: now,
			Topic: s.Topic, Channel: string(s.Channel), Run: s.Run, Send: s.ID, Reason: reasons[i]})
	}
}

// render builds the message for one send, at send time: the contact's
// data is never queued.
func (d *Pipeline) render(ctx context.Context, st *runState, s *dispatcher.Send, c *dispatcher.Contact) (channels.Message, error) {
	comp := st.compiled[s.Channel]
	if comp == nil {
		return channels.Message{}, fmt.Errorf("no template for %s", s.Channel)
	}
	attr, locale := c.Attributes, c.Locale
	if s.Ref != "" {
		var err error
		if attr, locale, err = d.refData(ctx, s.Ref); err != nil {
			return channels.Message{}, err
		}
	}
	var sendData map[string]any
	if s.Data != nil {
		var err error
		if sendData, err = d.Store.OpenSendData(s.ID, s.Data); err != nil {
			return channels.Message{}, err
		}
	}
	token, err := d.signer.Sign(templates.Claims{Contact: c.ID, Channel: string(s.Channel), Topic: s.Topic, Send: s.ID})
	if err != nil {
		return channels.Message{}, err
	}
	unsub := templates.UnsubscribeURL(d.cfg.PublicURL, token)
	data := templates.Data{
		Contact:        templates.ContactData{ID: c.ID, Email: c.Email, Phone: c.Phone, Locale: locale, Timezone: c.Timezone},
		Attr:           attr,
		Campaign:       st.campaign.Name,
		Topic:          st.topic.Name,
		UnsubscribeURL: unsub,
		PreferencesURL: templates.PreferencesURL(d.cfg.PublicURL, token),
		Locale:         locale,
		Now:            d.cfg.Now(),
		Data:           sendData,
	}
	opts := templates.RenderOptions{
		Marketing:             st.topic.Kind == dispatcher.Marketing,
		UnsubscribeURL:        unsub,
		ListUnsubscribeMailto: d.cfg.ListUnsubscribeMailto,
		ListID:                st.topic.ID + "." + d.listDomain(),
		Locale:                locale,
	}
	r, err := comp.Render(s.Channel, data, opts)
	if err != nil {
		return channels.Message{}, err
	}
	m := r.Message(s.ID, channels.Address(c.Address(s.Channel)))
	if m.From == "" && s.Channel == channels.Email {
		m.From = d.cfg.EmailFrom
	}
	return m, nil
}

// ErrNothingToSend: what a send answered is gone (a sign-up confirmed or
// expired before its confirmation left); the send is cancelled.
var ErrNothingToSend = errors.New("nothing to send any more")

func isChannelErr(err error) bool {
	var ce *channels.Error
	return errors.As(err, &ce)
}

func isLastTry(ctx context.Context) bool {
	n, ok1 := asynq.GetRetryCount(ctx)
	m, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && n >= m
}

package privacy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// ErasureReport tells what an erasure deleted and what it kept.
type ErasureReport struct {
	Contact string `json:"contact"`
	// Erased counts the records deleted, per kind: contact, consents
	// (current states), addresses (index entries), sends, sends_cancelled
	// (in flight, settled as cancelled before deletion), pending_signups,
	// soft_bounces, and when there were any, enrolments (in sequences) and
	// webhook_events.
	Erased map[string]int `json:"erased"`
	// CapsForgotten says the frequency-cap reservations were deleted.
	CapsForgotten bool `json:"caps_forgotten"`
	// RecordUnreadable says the contact record did not open with the
	// keyring (a lost data key): it was erased all the same, its address
	// index entries found by scanning the index, and the suppression
	// entries of its addresses, which stay, could not be counted.
	RecordUnreadable bool `json:"record_unreadable,omitempty"`
	// Kept lists what stays, with the reason.
	Kept []KeptRecords `json:"kept"`
}

// KeptRecords is one kind of record an erasure keeps.
type KeptRecords struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
	Why   string `json:"why"`
}

const (
	whySuppression = "suppression entries are kept as keyed hashes without the address, to honour opt-outs, complaints and bounces if the address comes back (CNIL: opposition lists kept at least 3 years, as hashes)"
	whyLedger      = "the consent ledger is kept as proof of consent and of its withdrawal (GDPR Art. 7(1)), pseudonymous: channel, topic, state, source and time, without identifying evidence"
	whySending     = "these sends were being handed to a provider during the erasure; their records settle the run's counters and expire with the send retention"
)

// EraseContact erases the contact id: its record, current consents,
// address index entries, sends (in-flight ones are first settled as
// cancelled, so that runs stay balanced and nothing more goes out), cap
// reservations, soft-bounce counts, pending sign-ups and enrolments in
// sequences. It keeps the
// suppression entries of its addresses and a pseudonymous consent ledger;
// the report says what was erased and what was kept, and why.
//
// The contact record goes last, so an erasure cut short is finished by
// calling again. Returns an error with code not_found when there is no such
// contact (including when it was erased before).
func (d *Privacy) EraseContact(ctx context.Context, id string) (*ErasureReport, error) {
	s := d.Store
	c, err := s.Contact(ctx, id)
	if errors.Is(err, dispatcher.ErrNotFound) || dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		// An erasure that died after the record leaves the id in the list
		// of contacts (DeleteContact): gone with this call.
		if err := s.DropContactID(ctx, id); err != nil {
			return nil, fmt.Errorf("erase: %w", err)
		}
		return nil, dispatcher.NotFound("contact")
	}
	rep := &ErasureReport{Contact: id, Erased: map[string]int{}}
	if errors.Is(err, storepkg.ErrUnknownDataKey) || errors.Is(err, storepkg.ErrSealed) {
		// The right to erasure does not wait for a lost key: without the
		// addresses, their index entries are found by scanning the index.
		c, err, rep.RecordUnreadable = &dispatcher.Contact{ID: id}, nil, true
	}
	if err != nil {
		return nil, fmt.Errorf("erase: %w", err)
	}

	// Sends: settle what is in flight, then delete. A send claimed by a
	// worker ("sending") is past stopping: it is kept until it settles.
	sent, cancelled, sending, err := d.eraseSends(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("erase: sends: %w", err)
	}
	rep.Erased["sends"], rep.Erased["sends_cancelled"] = sent, cancelled

	if err := d.caps.Forget(ctx, id); err != nil {
		return nil, fmt.Errorf("erase: %w", err)
	}
	rep.CapsForgotten = true

	n, err := d.erasePendingSignups(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("erase: pending sign-ups: %w", err)
	}
	rep.Erased["pending_signups"] = n

	if n, err = s.EraseEnrolments(ctx, id); err != nil {
		return nil, fmt.Errorf("erase: %w", err)
	} else if n > 0 {
		rep.Erased["enrolments"] = n
	}
	// Tags journaled for the sequences and not told yet.
	if _, err := s.ForgetTagJournal(ctx, id); err != nil {
		return nil, fmt.Errorf("erase: %w", err)
	}

	ledger, err := s.PseudonymizeLedger(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("erase: ledger: %w", err)
	}

	var sups, soft, addrs int
	for _, k := range channels.Kinds {
		addr := c.Address(k)
		if addr == "" {
			continue
		}
		if _, err := s.Suppression(ctx, k, addr); err == nil {
			sups++
		} else if !errors.Is(err, dispatcher.ErrNotFound) {
			return nil, fmt.Errorf("erase: %w", err)
		}
		removed, gone, err := s.ForgetAddress(ctx, id, k, addr)
		if err != nil {
			return nil, fmt.Errorf("erase: address index: %w", err)
		}
		soft += removed
		addrs += gone
	}
	if rep.RecordUnreadable {
		n, err := s.EraseAddressesOf(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("erase: address index: %w", err)
		}
		addrs += n
	}
	rep.Erased["addresses"], rep.Erased["soft_bounces"] = addrs, soft

	// Events waiting for webhooks that receive addresses hold the address.
	// Before the record: a call again finishes an erasure cut short only
	// while the record is there.
	n, err = s.ForgetWebhookEvents(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("erase: webhook events: %w", err)
	}
	if n > 0 {
		rep.Erased["webhook_events"] = n
	}

	consents, err := s.DeleteContact(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("erase: contact: %w", err)
	}
	rep.Erased["contact"], rep.Erased["consents"] = 1, consents

	if sups > 0 {
		rep.Kept = append(rep.Kept, KeptRecords{Kind: "suppressions", Count: sups, Why: whySuppression})
	}
	if ledger > 0 {
		rep.Kept = append(rep.Kept, KeptRecords{Kind: "consent_ledger", Count: ledger, Why: whyLedger})
	}
	if sending > 0 {
		rep.Kept = append(rep.Kept, KeptRecords{Kind: "sends_in_progress", Count: sending, Why: whySending})
	}
	// No id: the audit log names what was erased through the API, and a
	// retention purge reports counts, never the people it erased.
	d.log.Debug("contact erased", "sends", sent, "cancelled", cancelled)
	return rep, nil
}

// eraseSends settles the contact's queued and deferred sends as cancelled
// (reason erased) through the transition script, which keeps the runs'
// counters balanced and completes the runs that had nothing else in
// flight; then it deletes every send record but those being sent, with
// the keys that lead to them.
func (d *Privacy) eraseSends(ctx context.Context, contact string) (deleted, cancelled, sending int, err error) {
	s := d.Store
	held, err := s.ContactSends(ctx, contact)
	if err != nil || len(held) == 0 {
		return 0, 0, 0, err
	}
	ids := make([]string, len(held))
	for i, sd := range held {
		ids[i] = sd.ID
	}
	ts := make([]storepkg.Transition, len(ids))
	for i, id := range ids {
		ts[i] = storepkg.Transition{Send: id, From: pipeline.InflightStates, To: dispatcher.StateCancelled, Reason: dispatcher.ReasonErased}
	}
	rs, err := s.TransitionSends(ctx, ts)
	if err != nil {
		return 0, 0, 0, err
	}
	completed := map[string]bool{}
	for i, r := range rs {
		if r.Applied {
			cancelled++
		}
		run, _, _ := dispatcher.SplitSendID(ts[i].Send)
		done := r.RunDone
		if !r.Applied && !completed[run] && held[i].State == dispatcher.StateCancelled && held[i].Reason == dispatcher.ReasonErased {
			// An erasure cut short cancelled this send, and may have failed
			// to complete its run: no one else will, since nothing of it is
			// left in flight.
			if done, err = s.FinishBatch(ctx, run, ""); err != nil {
				return 0, 0, 0, err
			}
		}
		if done && !completed[run] {
			if err := d.runs.CompleteRun(ctx, run); err != nil {
				return 0, 0, 0, err
			}
			completed[run] = true
		}
	}
	sends, err := s.Sends(ctx, ids)
	if err != nil {
		return 0, 0, 0, err
	}
	deleted, sending, err = s.DeleteSends(ctx, contact, ids, sends)
	return deleted, cancelled, sending, err
}

// erasePendingSignups deletes the contact's sign-ups awaiting
// confirmation, found through the contact's index of pending sign-ups and
// through its addresses' (a sign-up made before the address was the
// contact's, with its provisional record), and the SMS index by the
// contact's number. It returns how many pending records it deleted.
func (d *Privacy) erasePendingSignups(ctx context.Context, c *dispatcher.Contact) (int, error) {
	n, err := d.Store.DeletePendingSignups(ctx, c.ID, c.Phone)
	if err != nil {
		return n, err
	}
	for _, k := range channels.Kinds {
		if addr := c.Address(k); addr != "" {
			m, err := d.Store.DeletePendingSignupsOf(ctx, k, addr)
			if n += m; err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// ContactExport is everything Missive holds on one contact (GDPR Art. 15
// and 20), as one JSON document.
type ContactExport struct {
	ExportedAt time.Time           `json:"exported_at"`
	Contact    *dispatcher.Contact `json:"contact"`
	// Consents is the current state per "channel/topic".
	Consents map[string]storepkg.ConsentCurrent `json:"consents"`
	// ConsentHistory is the ledger, oldest first, with its evidence.
	ConsentHistory []dispatcher.ConsentEvent `json:"consent_history"`
	// Preferences is the pace the contact chose, per "pause", "hours"
	// and "frequency/topic": its value, when and from where.
	Preferences map[string]storepkg.ConsentCurrent `json:"preferences"`
	// Suppressions are the entries held for the contact's addresses.
	Suppressions []ExportSuppression `json:"suppressions"`
	// Sends are the messages within the send retention.
	Sends []ExportSend `json:"sends"`
	// Feedback is what providers reported about the contact's addresses
	// and is still held (soft bounces within their window).
	Feedback []ExportFeedback `json:"feedback"`
	// Enrolments are the contact's ways through sequences, one per
	// sequence, with the data they were enrolled with.
	Enrolments []dispatcher.Enrolment `json:"enrolments"`
	// Retention says how long send records and feedback are kept.
	Retention string `json:"retention"`
}

// ExportSuppression is one suppression entry of a contact's address.
type ExportSuppression struct {
	Channel channels.Kind `json:"channel"`
	Address string        `json:"address"`
	dispatcher.Suppression
}

// ExportSend is one send record as exported.
type ExportSend struct {
	ID      string        `json:"id"`
	Run     string        `json:"run"`
	Channel channels.Kind `json:"channel"`
	Topic   string        `json:"topic"`
	State   string        `json:"state"`
	Reason  string        `json:"reason,omitempty"`
	At      time.Time     `json:"at"`
	// Data is the data the send was triggered with (POST /v1/sends),
	// while the send record holds it.
	Data map[string]any `json:"data,omitempty"`
	// DataUnreadable says the send holds data that does not open with the
	// keyring (a lost data key).
	DataUnreadable bool `json:"data_unreadable,omitempty"`
}

// ExportFeedback is one piece of feedback on a contact's address.
type ExportFeedback struct {
	Channel channels.Kind         `json:"channel"`
	Kind    channels.FeedbackKind `json:"kind"`
	At      time.Time             `json:"at"`
}

// ExportContact gathers everything held on the contact id. Returns an
// error with code not_found when there is no such contact, as after its
// erasure: what remains then (suppression hashes, a pseudonymous ledger)
// cannot be tied to a person by Missive.
func (d *Privacy) ExportContact(ctx context.Context, id string) (*ContactExport, error) {
	s := d.Store
	c, err := s.Contact(ctx, id)
	if errors.Is(err, dispatcher.ErrNotFound) || dispatcher.IsCode(err, dispatcher.CodeNotFound) {
		return nil, dispatcher.NotFound("contact")
	}
	if err != nil {
		return nil, err
	}
	out := &ContactExport{ExportedAt: d.cfg.Now().UTC(), Contact: c, Consents: map[string]storepkg.ConsentCurrent{},
		Suppressions: []ExportSuppression{}, Sends: []ExportSend{}, Feedback: []ExportFeedback{},
		Retention: d.cfg.SendTTL.String()}
	if out.Consents, err = s.ConsentStates(ctx, id); err != nil {
		return nil, err
	}
	if out.ConsentHistory, err = s.ConsentLedger(ctx, id); err != nil {
		return nil, err
	}
	if out.Preferences, err = s.Preferences(ctx, id); err != nil {
		return nil, err
	}
	for _, k := range channels.Kinds {
		addr := c.Address(k)
		if addr == "" {
			continue
		}
		sup, err := s.Suppression(ctx, k, addr)
		if err == nil {
			out.Suppressions = append(out.Suppressions, ExportSuppression{Channel: k, Address: addr, Suppression: *sup})
		} else if !errors.Is(err, dispatcher.ErrNotFound) {
			return nil, err
		}
		soft, err := s.SoftBounceTimes(ctx, k, addr)
		if err != nil {
			return nil, err
		}
		for _, at := range soft {
			out.Feedback = append(out.Feedback, ExportFeedback{Channel: k, Kind: channels.SoftBounce, At: at})
		}
	}
	sends, err := s.ContactSends(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, sd := range sends {
		e := ExportSend{ID: sd.ID, Run: sd.Run, Channel: sd.Channel, Topic: sd.Topic,
			State: sd.State, Reason: sd.Reason, At: sd.UpdatedAt}
		if sd.Data != nil {
			if e.Data, err = s.OpenSendData(sd.ID, sd.Data); err != nil {
				// A lost data key does not withhold the rest of the export.
				e.Data, e.DataUnreadable = nil, true
			}
		}
		out.Sends = append(out.Sends, e)
	}
	enrs, err := s.Enrolments(ctx, id)
	if err != nil {
		return nil, err
	}
	out.Enrolments = make([]dispatcher.Enrolment, len(enrs))
	for i, r := range enrs {
		out.Enrolments[i] = r.Enrolment
	}
	return out, nil
}

package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
	storepkg "github.com/missive-dev/missive/dispatcher/store"
)

// Erasure (GDPR Art. 17) and access/portability (Art. 15, 20) of one
// contact. Both find the contact's sends by their ids: a campaign send's
// id derives from run, contact and channel, so every run of every campaign
// gives the candidates (the gate writes no index: it would cost the hot
// path two commands a recipient); API sends, whose ids derive from their
// idempotency key, are in a per-contact index:
//
//	P:c:{id}:sends   set of the contact's API send ids, expiring with the
//	                 newest of them (the send retention)
//
// What erasure keeps, and why:
//
//   - Suppression entries of the contact's addresses. They are keyed by a
//     keyed hash of the address and hold no address; they are the way to
//     honour an opt-out, a complaint or a bounce if the same address comes
//     back (a re-import, a sign-up). The CNIL asks that opposition lists be
//     kept at least 3 years, as hashes.
//   - The consent ledger, rewritten as pseudonymous: channel, topic, state,
//     source and time of each event stay, as the proof that consent was
//     given or withdrawn (Art. 7(1)); evidence values that could point back
//     to the person (IP hash, user agent, message and send ids) are
//     dropped, and only the ones that describe how consent was collected
//     (form, wording, page, confirmation channel) stay.
//   - Sends being handed to a provider at that very moment: their outcome
//     settles the run's counters; the records expire with the retention.

// ErasureReport tells what an erasure deleted and what it kept.
type ErasureReport struct {
	Contact string `json:"contact"`
	// Erased counts the records deleted, per kind: contact, consents
	// (current states), addresses (index entries), sends, sends_cancelled
	// (in flight, settled as cancelled before deletion), pending_signups,
	// soft_bounces.
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
// reservations, soft-bounce counts and pending sign-ups. It keeps the
// suppression entries of its addresses and a pseudonymous consent ledger;
// the report says what was erased and what was kept, and why.
//
// The contact record goes last, so an erasure cut short is finished by
// calling again. Returns an error with code not_found when there is no such
// contact (including when it was erased before).
func (d *Dispatcher) EraseContact(ctx context.Context, id string) (*ErasureReport, error) {
	s := d.Store
	c, err := s.Contact(ctx, id)
	if errors.Is(err, dispatcher.ErrNotFound) || dispatcher.IsCode(err, dispatcher.CodeNotFound) {
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
		h := s.AddressHash(k, addr)
		if _, err := s.Suppression(ctx, k, addr); err == nil {
			sups++
		} else if !errors.Is(err, dispatcher.ErrNotFound) {
			return nil, fmt.Errorf("erase: %w", err)
		}
		removed, err := s.Redis.Del(ctx, s.Key("soft", h)).Result()
		if err != nil {
			return nil, fmt.Errorf("erase: %w", err)
		}
		soft += int(removed)
		gone, err := storepkg.AddrDelScript.Run(ctx, s.Redis, []string{s.Key("addr", h)}, id).Int()
		if err != nil {
			return nil, fmt.Errorf("erase: address index: %w", err)
		}
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

	var consents *redis.IntCmd
	_, err = s.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		consents = p.HLen(ctx, s.ConsentKey(id))
		p.Del(ctx, s.ConsentKey(id), s.SignupsKey(id))
		p.Del(ctx, s.ContactKey(id))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("erase: contact: %w", err)
	}
	if err := s.Redis.ZRem(ctx, s.Key("contacts"), id).Err(); err != nil {
		return nil, fmt.Errorf("erase: contact list: %w", err)
	}
	rep.Erased["contact"], rep.Erased["consents"] = 1, int(consents.Val())

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
func (d *Dispatcher) eraseSends(ctx context.Context, contact string) (deleted, cancelled, sending int, err error) {
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
		ts[i] = storepkg.Transition{Send: id, From: pipeline.InflightStates, To: dispatcher.StateCancelled, Reason: pipeline.ReasonErased}
	}
	rs, err := s.TransitionSends(ctx, ts)
	if err != nil {
		return 0, 0, 0, err
	}
	for i, r := range rs {
		if r.Applied {
			cancelled++
		}
		if r.RunDone {
			run, _, _ := dispatcher.SplitSendID(ts[i].Send)
			if err := d.Pipeline.CompleteRun(ctx, run); err != nil {
				return 0, 0, 0, err
			}
		}
	}
	sends, err := s.Sends(ctx, ids)
	if err != nil {
		return 0, 0, 0, err
	}
	var gone []any
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sd := range sends {
			if sd != nil && sd.State == dispatcher.StateSending {
				sending++
				continue
			}
			gone = append(gone, ids[i])
			if sd == nil {
				continue // expired already
			}
			deleted++
			_, h, _ := dispatcher.SplitSendID(sd.ID)
			keys := []string{s.SendKey(sd.ID), s.Key("verp", h)}
			if sd.Provider != "" {
				keys = append(keys, s.ProviderKey(sd.Provider))
			}
			for _, k := range []channels.FeedbackKind{channels.Delivered, channels.HardBounce, channels.SoftBounce, channels.Complaint, channels.OptedOut, channels.Undelivered} {
				keys = append(keys, s.Key("fb", sd.ID, string(k)))
			}
			// One key per call: on Redis Cluster they live in other slots.
			for _, k := range keys {
				p.Unlink(ctx, k)
			}
		}
		if len(gone) > 0 {
			p.SRem(ctx, s.ContactSendsKey(contact), gone...)
		}
		return nil
	})
	return deleted, cancelled, sending, err
}

// erasePendingSignups deletes the contact's sign-ups awaiting
// confirmation, found through the contact's index of pending sign-ups,
// and the SMS index by the contact's number. It returns how many pending
// records it deleted.
func (d *Dispatcher) erasePendingSignups(ctx context.Context, c *dispatcher.Contact) (int, error) {
	s := d.Store
	hashes, err := s.Redis.SMembers(ctx, s.PendingIndexKey(c.ID)).Result()
	if err != nil {
		return 0, err
	}
	gone := 0
	cmds := make([]*redis.IntCmd, len(hashes))
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hashes {
			cmds[i] = p.Unlink(ctx, s.PendingKey(h))
		}
		p.Unlink(ctx, s.PendingIndexKey(c.ID))
		if c.Phone != "" {
			p.Unlink(ctx, s.Key("pendingsms", s.AddressHash(channels.SMS, c.Phone)))
		}
		return nil
	})
	for _, cmd := range cmds {
		gone += int(cmd.Val())
	}
	return gone, err
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
	// Suppressions are the entries held for the contact's addresses.
	Suppressions []ExportSuppression `json:"suppressions"`
	// Sends are the messages within the send retention.
	Sends []ExportSend `json:"sends"`
	// Feedback is what providers reported about the contact's addresses
	// and is still held (soft bounces within their window).
	Feedback []ExportFeedback `json:"feedback"`
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
func (d *Dispatcher) ExportContact(ctx context.Context, id string) (*ContactExport, error) {
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
	raw, err := s.Redis.HGetAll(ctx, s.ConsentKey(id)).Result()
	if err != nil {
		return nil, err
	}
	for f, v := range raw {
		var cc storepkg.ConsentCurrent
		if json.Unmarshal([]byte(v), &cc) == nil {
			out.Consents[f] = cc
		}
	}
	if out.ConsentHistory, err = s.ConsentLedger(ctx, id); err != nil {
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
		soft, err := s.Redis.ZRangeWithScores(ctx, s.Key("soft", s.AddressHash(k, addr)), 0, -1).Result()
		if err != nil {
			return nil, err
		}
		for _, z := range soft {
			out.Feedback = append(out.Feedback, ExportFeedback{Channel: k, Kind: channels.SoftBounce, At: time.UnixMilli(int64(z.Score)).UTC()})
		}
	}
	sends, err := s.ContactSends(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, sd := range sends {
		out.Sends = append(out.Sends, ExportSend{ID: sd.ID, Run: sd.Run, Channel: sd.Channel, Topic: sd.Topic,
			State: sd.State, Reason: sd.Reason, At: sd.UpdatedAt})
	}
	return out, nil
}

// --- HTTP

func (a *api) eraseContact(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, dispatcher.NotFound("contact")
	}
	rep, err := a.d.EraseContact(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rep, nil
}

func (a *api) exportContact(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := pathID(r)
	if err != nil {
		return 0, nil, dispatcher.NotFound("contact")
	}
	exp, err := a.d.ExportContact(r.Context(), id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, exp, nil
}

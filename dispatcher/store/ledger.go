package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/dispatcher"
)

// The consent ledger is tamper-evident. Each event carries two MACs,
// keyed by a key derived from the secret (so that a Redis user cannot
// compute them): sig, over the event and the contact id, and mac, over
// sig and the mac of the event before it. An edited event fails its sig; an event removed,
// inserted or moved breaks the chain of macs after it (VerifyLedger).
// Removing the newest events leaves current consents that no event
// accounts for, which VerifyLedger checks too.
//
// Erasure removes the evidence that could identify the person
// (PseudonymizeLedger) and keeps, in its place, a keyed digest of it: the
// chain still verifies, and the evidence is gone.

// sealedEvent is a ledger entry as stored: the event, its MACs and, once
// erased, the digest of the evidence erasure removed.
type sealedEvent struct {
	dispatcher.ConsentEvent
	Sig    string `json:"sig,omitempty"`
	MAC    string `json:"mac,omitempty"`
	Erased string `json:"erased,omitempty"`
}

// ledgerHead is where a contact's ledger ends: its length and its last
// event's mac ("" when empty or written before the ledger was sealed).
type ledgerHead struct {
	n   int64
	mac string
}

// ledgerMAC is the keyed MAC of the JSON of v under the ledger key of
// purpose.
func (s *Store) ledgerMAC(purpose string, v any) string {
	b, _ := json.Marshal(v)
	m := hmac.New(sha256.New, DeriveKey(s.secret, "ledger/"+purpose))
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// eventSig is the sig of e in contact's ledger. removed is the digest of
// the evidence erasure removes (or has removed).
func (s *Store) eventSig(contact string, e *dispatcher.ConsentEvent, removed string) string {
	kept := map[string]string{}
	for _, k := range ledgerEvidenceKept {
		if v, ok := e.Evidence[k]; ok {
			kept[k] = v
		}
	}
	// A struct: its fields keep their order; json sorts the map's keys.
	// Kind and Value are left out when empty, so that a consent's MAC is
	// what it was before preferences had events.
	return s.ledgerMAC("sig", struct {
		Contact  string            `json:"contact"`
		Channel  string            `json:"channel"`
		Topic    string            `json:"topic"`
		State    string            `json:"state"`
		Source   string            `json:"source"`
		At       string            `json:"at"`
		Evidence map[string]string `json:"evidence"`
		Removed  string            `json:"removed"`
		Kind     string            `json:"kind,omitempty"`
		Value    string            `json:"value,omitempty"`
	}{contact, string(e.Channel), e.Topic, string(e.State), e.Source, e.At.UTC().Format(time.RFC3339Nano), kept, removed, e.Kind, e.Value})
}

// chainMAC links the event of sig to the event before it, whose mac is
// prev ("" for the first).
func (s *Store) chainMAC(contact, prev, sig string) string {
	return s.ledgerMAC("chain", []string{contact, prev, sig})
}

// removableDigest is the keyed digest of the evidence of e that erasure
// removes, "" when there is none. Keyed: evidence such as an address hash
// or a user agent cannot be guessed back from it.
func (s *Store) removableDigest(e *dispatcher.ConsentEvent) string {
	removed := map[string]string{}
	for k, v := range e.Evidence {
		if !slices.Contains(ledgerEvidenceKept, k) {
			removed[k] = v
		}
	}
	if len(removed) == 0 {
		return ""
	}
	return s.ledgerMAC("evidence", removed)
}

// sealEvents returns the stored form of events appended to contact's
// ledger after head, and the new head.
func (s *Store) sealEvents(contact string, head ledgerHead, events []dispatcher.ConsentEvent) ([][]byte, ledgerHead) {
	out := make([][]byte, len(events))
	for i := range events {
		e := events[i]
		e.At = e.At.UTC()
		se := sealedEvent{ConsentEvent: e, Sig: s.eventSig(contact, &e, s.removableDigest(&e))}
		se.MAC = s.chainMAC(contact, head.mac, se.Sig)
		out[i], _ = json.Marshal(se)
		head = ledgerHead{n: head.n + 1, mac: se.MAC}
	}
	return out, head
}

// readLedgerHead reads where contact's ledger ends, in tx, a transaction
// that watches the ledger.
func (s *Store) readLedgerHead(ctx context.Context, tx *redis.Tx, contact string) (ledgerHead, error) {
	key := s.ledgerKey(contact)
	var n *redis.IntCmd
	var last *redis.StringCmd
	_, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
		n, last = p.LLen(ctx, key), p.LIndex(ctx, key, -1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return ledgerHead{}, err
	}
	return headOf(n, last), nil
}

// headOf is the head read by the length and last element of a ledger.
func headOf(n *redis.IntCmd, last *redis.StringCmd) ledgerHead {
	h := ledgerHead{n: n.Val()}
	var se sealedEvent
	if b := last.Val(); b != "" && json.Unmarshal([]byte(b), &se) == nil {
		h.mac = se.MAC
	}
	return h
}

// readLedgerHeads reads where the ledgers of contacts end, in one
// pipeline; "" contacts are skipped (zero heads).
func (s *Store) readLedgerHeads(ctx context.Context, contacts []string) ([]ledgerHead, error) {
	type reads struct {
		n    *redis.IntCmd
		last *redis.StringCmd
	}
	rs := make([]reads, len(contacts))
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range contacts {
			if c != "" {
				rs[i] = reads{p.LLen(ctx, s.ledgerKey(c)), p.LIndex(ctx, s.ledgerKey(c), -1)}
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	heads := make([]ledgerHead, len(contacts))
	for i, r := range rs {
		if r.n != nil {
			heads[i] = headOf(r.n, r.last)
		}
	}
	return heads, nil
}

// writeConsents appends events, sealed after head, to contact's ledger
// and sets the current consents, in p: a transaction that watches the
// ledger since head was read.
func (s *Store) writeConsents(ctx context.Context, p redis.Pipeliner, contact string, head ledgerHead, events []dispatcher.ConsentEvent) {
	sealed, _ := s.sealEvents(contact, head, events)
	for i, e := range events {
		cur, _ := json.Marshal(ConsentCurrent{State: e.State, At: e.At, Source: e.Source, Value: e.Value})
		p.RPush(ctx, s.ledgerKey(contact), sealed[i])
		if f, pref := eventField(&e); pref {
			p.HSet(ctx, s.prefsKey(contact), f, cur)
		} else {
			p.HSet(ctx, s.ConsentKey(contact), f, cur)
		}
	}
}

// consentsAt is events with those of no time dated now.
func consentsAt(events []dispatcher.ConsentEvent, now time.Time) []dispatcher.ConsentEvent {
	out := slices.Clone(events)
	for i := range out {
		if out[i].At.IsZero() {
			out[i].At = now
		}
	}
	return out
}

// appendConsents appends events, sealed after head, to contact's ledger
// and sets the current consents, in p, a pipeline that watches nothing:
// only if the ledger still ends at head (the command answers 1, else 0
// and writes nothing).
func (s *Store) appendConsents(ctx context.Context, p redis.Pipeliner, contact string, head ledgerHead, events []dispatcher.ConsentEvent, now time.Time) *redis.Cmd {
	events = consentsAt(events, now)
	sealed, _ := s.sealEvents(contact, head, events)
	args := make([]any, 0, 1+3*len(events))
	args = append(args, head.n)
	for i, e := range events {
		cur, _ := json.Marshal(ConsentCurrent{State: e.State, At: e.At, Source: e.Source})
		args = append(args, sealed[i], ConsentField(e.Channel, e.Topic), cur)
	}
	return appendLedgerScript.Eval(ctx, p, []string{s.ledgerKey(contact), s.ConsentKey(contact)}, args...)
}

// appendLedgerScript appends sealed events to a ledger and sets the
// current consents, only if the ledger still has the length they were
// sealed after: the writes of a pipeline that watches nothing. KEYS:
// ledger, consent. ARGV: expected length, then per event its sealed JSON,
// its consent field and the current consent's JSON. Returns 1, or 0 when
// the ledger moved (nothing written).
var appendLedgerScript = redis.NewScript(`
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
for i = 2, #ARGV, 3 do
  redis.call('RPUSH', KEYS[1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i+1], ARGV[i+2])
end
return 1
`)

// LedgerProblem is one place where a contact's ledger does not prove
// itself.
type LedgerProblem struct {
	// Index is the event's position in the ledger, oldest first (0), or -1
	// for a problem of the whole ledger.
	Index int `json:"index"`
	// Kind is one of:
	//   edited: the event's MAC does not match it, where the one before
	//     it did: the event was changed;
	//   broken_chain: the event does not follow the one before it: an
	//     event was removed, inserted or moved before it;
	//   unsealed: an event without a MAC after sealed ones;
	//   unreadable: not an event;
	//   current_mismatch: a current consent that no ledger event accounts
	//     for: the newest events were removed, or the consent was set by
	//     hand;
	//   wording_missing: the event names a stored wording (by its id) that
	//     is gone, or whose text no longer matches its id.
	Kind   string `json:"kind"`
	Detail string `json:"detail,omitempty"`
}

// LedgerReport is what VerifyLedger found for one contact.
type LedgerReport struct {
	Contact string `json:"contact"`
	Events  int    `json:"events"`
	// Unsealed counts the events written before the ledger was sealed,
	// which come first and prove nothing by themselves.
	Unsealed int             `json:"unsealed"`
	Problems []LedgerProblem `json:"problems"`
}

// OK reports whether the ledger proved itself.
func (r LedgerReport) OK() bool { return len(r.Problems) == 0 }

// VerifyLedger checks contact's ledger: each event's MAC, its place in
// the chain, and that the current consents are those its last events set.
// A contact with no ledger (unknown, or erased with nothing recorded)
// gives an empty report.
func (s *Store) VerifyLedger(ctx context.Context, contact string) (LedgerReport, error) {
	var raw *redis.StringSliceCmd
	var cur, prefs *redis.MapStringStringCmd
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		raw = p.LRange(ctx, s.ledgerKey(contact), 0, -1)
		cur = p.HGetAll(ctx, s.ConsentKey(contact))
		prefs = p.HGetAll(ctx, s.prefsKey(contact))
		return nil
	})
	if err != nil {
		return LedgerReport{}, err
	}
	var ids []string
	for _, r := range raw.Val() {
		var e dispatcher.ConsentEvent
		if json.Unmarshal([]byte(r), &e) == nil && dispatcher.IsWordingID(e.Evidence["wording"]) && !slices.Contains(ids, e.Evidence["wording"]) {
			ids = append(ids, e.Evidence["wording"])
		}
	}
	ws, err := s.Wordings(ctx, ids)
	if err != nil {
		return LedgerReport{}, err
	}
	stored := map[string]bool{}
	for i, w := range ws {
		stored[ids[i]] = w != nil
	}
	current := cur.Val()
	for f, v := range prefs.Val() {
		current[prefPrefix+f] = v
	}
	return s.verifyLedger(contact, raw.Val(), current, stored), nil
}

// verifyLedger is VerifyLedger on what was read (cur: the current
// consents, and the preferences under prefPrefix); wordings says which of
// the wordings the events name are stored as their id says.
func (s *Store) verifyLedger(contact string, raw []string, cur map[string]string, wordings map[string]bool) LedgerReport {
	rep := LedgerReport{Contact: contact, Events: len(raw), Problems: []LedgerProblem{}}
	problem := func(i int, kind, format string, args ...any) {
		rep.Problems = append(rep.Problems, LedgerProblem{Index: i, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	last := map[string]dispatcher.ConsentEvent{} // by consent field
	prev, sealed := "", false
	for i, r := range raw {
		var se sealedEvent
		if err := json.Unmarshal([]byte(r), &se); err != nil {
			problem(i, "unreadable", "not a consent event")
			prev = ""
			continue
		}
		if f, pref := eventField(&se.ConsentEvent); pref {
			last[prefPrefix+f] = se.ConsentEvent
		} else {
			last[f] = se.ConsentEvent
		}
		if id := se.Evidence["wording"]; dispatcher.IsWordingID(id) && !wordings[id] {
			problem(i, "wording_missing", "the consent wording the event names is not stored, or was edited")
		}
		if se.MAC == "" {
			if sealed {
				problem(i, "unsealed", "an event without a MAC after sealed ones")
			} else {
				rep.Unsealed++
			}
			continue
		}
		removed := s.removableDigest(&se.ConsentEvent)
		if se.Erased != "" {
			if removed != "" {
				problem(i, "edited", "evidence present in an erased event")
			}
			removed = se.Erased
		}
		switch {
		case !hmac.Equal([]byte(se.Sig), []byte(s.eventSig(contact, &se.ConsentEvent, removed))):
			problem(i, "edited", "the event does not match its MAC")
		case !hmac.Equal([]byte(se.MAC), []byte(s.chainMAC(contact, prev, se.Sig))):
			problem(i, "broken_chain", "the event does not follow the one before it: an event was removed, inserted or moved")
		}
		prev, sealed = se.MAC, true
	}
	fields := slices.Sorted(maps.Keys(cur))
	for _, f := range fields {
		var c ConsentCurrent
		if err := json.Unmarshal([]byte(cur[f]), &c); err != nil {
			problem(-1, "current_mismatch", "current consent %s is unreadable", f)
			continue
		}
		e, ok := last[f]
		if !ok || e.State != c.State || !e.At.Equal(c.At) || e.Source != c.Source || e.Value != c.Value {
			problem(-1, "current_mismatch", "current consent %s (%s) is not what the ledger's last event for it says", f, c.State)
		}
	}
	return rep
}

// ledgerKeysPattern matches every contact's ledger key, for VerifyLedgers.
func (s *Store) ledgerKeysPattern() string { return s.p + ":c:{*}:ledger" }

// VerifyLedgers checks every ledger under the prefix, those of erased
// contacts included, calling report for each. It walks the keyspace
// (SCAN): an audit, not a request's work.
func (s *Store) VerifyLedgers(ctx context.Context, report func(LedgerReport) error) error {
	return s.Scan(ctx, s.ledgerKeysPattern(), func(keys []string) error {
		for _, key := range keys {
			contact, ok := strings.CutPrefix(key, s.p+":c:{")
			if contact, ok2 := strings.CutSuffix(contact, "}:ledger"); ok && ok2 {
				rep, err := s.VerifyLedger(ctx, contact)
				if err != nil {
					return err
				}
				if err := report(rep); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// wordingKey names the stored text of a consent wording.
func (s *Store) wordingKey(id string) string { return s.Key("wording", id) }

// PutWording stores a validated wording once; it reports whether it was
// new. The same text again changes nothing: its id is its content.
func (s *Store) PutWording(ctx context.Context, w *dispatcher.Wording) (bool, error) {
	if err := w.Validate(); err != nil {
		return false, err
	}
	if w.CreatedAt.IsZero() {
		w.CreatedAt = s.now().UTC()
	}
	b, err := json.Marshal(w)
	if err != nil {
		return false, err
	}
	return s.Redis.SetNX(ctx, s.wordingKey(w.ID), b, 0).Result()
}

// Wordings returns the stored wordings of ids, nil where none is stored
// or the stored one is not the text its id names (it was edited).
func (s *Store) Wordings(ctx context.Context, ids []string) ([]*dispatcher.Wording, error) {
	cmds, err := pipelineEach(ctx, s, ids, func(p redis.Pipeliner, id string) *redis.StringCmd {
		return p.Get(ctx, s.wordingKey(id))
	})
	if err != nil {
		return nil, err
	}
	out := make([]*dispatcher.Wording, len(ids))
	for i, c := range cmds {
		var w dispatcher.Wording
		if b, err := c.Bytes(); err == nil && json.Unmarshal(b, &w) == nil && w.ID == ids[i] && dispatcher.WordingID(w.Lang, w.Text) == w.ID {
			out[i] = &w
		}
	}
	return out, nil
}

// Wording returns one stored wording or an error with code not_found.
func (s *Store) Wording(ctx context.Context, id string) (*dispatcher.Wording, error) {
	ws, err := s.Wordings(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if ws[0] == nil {
		return nil, dispatcher.NotFound("wording")
	}
	return ws[0], nil
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// PendingSignup is what a sign-up leaves until it is confirmed
// (P:pending:<h>, where h is the hash of the confirmation token).
type PendingSignup struct {
	// Nonce makes the confirmation token again when the confirmation is
	// rendered: the token itself is never stored, and the nonce alone does
	// not make it without the secret.
	Nonce     string        `json:"nonce"`
	Contact   string        `json:"contact"`
	Channel   channels.Kind `json:"channel"`
	Topics    []string      `json:"topics"`
	Wording   string        `json:"wording"`
	Form      string        `json:"form,omitempty"`
	Locale    string        `json:"locale"`
	Created   time.Time     `json:"created"`
	IPHash    string        `json:"ip_hash"`
	UserAgent string        `json:"user_agent,omitempty"`
	// Provisional: the address had no contact, and Contact names a
	// provisional record (PutProvisionalContact) holding the address until
	// the sign-up is confirmed, when the contact is made (AdoptContact).
	Provisional bool `json:"provisional,omitempty"`
}

// SignupGrant tells what GrantSignup did.
type SignupGrant int

const (
	// SignupNoContact: the contact is gone (erased meanwhile); nothing was
	// granted.
	SignupNoContact SignupGrant = iota
	// SignupGranted: the consents were granted by this call.
	SignupGranted
	// SignupAlreadyGranted: an earlier confirmation of the same sign-up
	// granted them; nothing was written.
	SignupAlreadyGranted
)

// TopicsByID returns the topics named by ids, in the order of ids, in one
// round trip; an entry is nil where no topic has that id (or its record
// does not decode).
func (s *Store) TopicsByID(ctx context.Context, ids []string) ([]*dispatcher.Topic, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	raw, err := s.Redis.HMGet(ctx, s.Key("topics"), ids...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*dispatcher.Topic, len(raw))
	for i, v := range raw {
		b, ok := v.(string)
		var t dispatcher.Topic
		if ok && json.Unmarshal([]byte(b), &t) == nil {
			out[i] = &t
		}
	}
	return out, nil
}

// EnsureTopic creates t unless a topic with its id exists, and returns the
// topic stored under that id: one written before, perhaps renamed by a
// marketer, wins over t.
func (s *Store) EnsureTopic(ctx context.Context, t *dispatcher.Topic) (*dispatcher.Topic, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	if err := s.Redis.HSetNX(ctx, s.Key("topics"), t.ID, b).Err(); err != nil {
		return nil, err
	}
	return s.Topic(ctx, t.ID)
}

// ClaimAddress claims the address index entry of addr for a contact to be
// created under id (SETNX), so that two sign-ups at once create one
// contact. It returns the id the entry names and whether a contact record
// exists under it. A won claim returns id and false; so does an entry left
// by a creation that died half way, under the id of that creation: either
// way the caller creates the contact under the returned id.
func (s *Store) ClaimAddress(ctx context.Context, k channels.Kind, addr, id string) (owner string, exists bool, err error) {
	idx := s.Key("addr", s.AddressHash(k, addr))
	ok, err := s.Redis.SetNX(ctx, idx, id, 0).Result()
	if err != nil || ok {
		return id, false, err
	}
	if owner, err = s.Redis.Get(ctx, idx).Result(); err != nil {
		return "", false, fmt.Errorf("claim address: %w", err)
	}
	ok, err = s.ContactExists(ctx, owner)
	return owner, ok, err
}

// PutPendingSignup stores the pending sign-up h for ttl, adds h to its
// contact's index of pending sign-ups (found by erasure), and, for an SMS
// sign-up (phone, in E.164 form, not ""), makes h the newest pending
// sign-up of that number (PendingSMSSignup).
func (s *Store) PutPendingSignup(ctx context.Context, h string, ps *PendingSignup, phone string, ttl time.Duration) error {
	rec, err := json.Marshal(ps)
	if err != nil {
		return fmt.Errorf("encode pending sign-up: %w", err)
	}
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.PendingKey(h), rec, ttl)
		p.SAdd(ctx, s.pendingIndexKey(ps.Contact), h)
		p.Expire(ctx, s.pendingIndexKey(ps.Contact), ttl)
		if phone != "" {
			p.Set(ctx, s.pendingSMSKey(phone), h, ttl)
		}
		return nil
	})
	return err
}

// RepointPendingSignup rewrites the pending sign-up h as ps, keeping its
// expiry, if it is still pending; ps names the contact it now belongs to.
func (s *Store) RepointPendingSignup(ctx context.Context, h string, ps *PendingSignup) error {
	rec, err := json.Marshal(ps)
	if err != nil {
		return fmt.Errorf("encode pending sign-up: %w", err)
	}
	err = s.Redis.SetArgs(ctx, s.PendingKey(h), rec, redis.SetArgs{Mode: "XX", KeepTTL: true}).Err()
	if errors.Is(err, redis.Nil) {
		return nil // ended meanwhile
	}
	return err
}

// PendingSignup returns the pending sign-up h. Returns ErrNotFound if there
// is none (never made, expired, confirmed or erased).
func (s *Store) PendingSignup(ctx context.Context, h string) (*PendingSignup, error) {
	b, err := s.Redis.Get(ctx, s.PendingKey(h)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, dispatcher.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var ps PendingSignup
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("decode pending sign-up: %w", err)
	}
	return &ps, nil
}

// GrantSignup grants the consents of the confirmed sign-up h: it appends
// events to contact's ledger, sets its current consents and marks h in
// the contact's signups hash (kept ttl) in one transaction watched on the
// contact and that hash, so that two confirmations at once grant once.
// Returns an error saying the records kept changing when every attempt of
// the transaction lost a race.
func (s *Store) GrantSignup(ctx context.Context, contact, h string, events []dispatcher.ConsentEvent, at time.Time, ttl time.Duration) (SignupGrant, error) {
	signups := s.signupsKey(contact)
	grant := SignupNoContact
	txn := func(tx *redis.Tx) error {
		grant = SignupNoContact
		n, err := tx.Exists(ctx, s.ContactKey(contact)).Result()
		if err != nil || n == 0 {
			return err // erased meanwhile: nothing to grant
		}
		done, err := tx.HExists(ctx, signups, h).Result()
		if err != nil {
			return err
		}
		if done {
			grant = SignupAlreadyGranted
			return nil
		}
		head, err := s.readLedgerHead(ctx, tx, contact)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			s.writeConsents(ctx, p, contact, head, events)
			p.HSet(ctx, signups, h, at.Format(time.RFC3339))
			p.Expire(ctx, signups, ttl)
			return nil
		})
		if err == nil {
			grant = SignupGranted
		}
		return err
	}
	if err := s.watch(ctx, "grant sign-up", txn, s.ContactKey(contact), signups, s.ledgerKey(contact)); err != nil {
		return SignupNoContact, err
	}
	return grant, nil
}

// EndPendingSignup deletes the pending sign-up h. When confirmed, it
// leaves in its place a marker kept ttl, by which SignupConfirmed tells a
// second confirmation that the sign-up was confirmed.
func (s *Store) EndPendingSignup(ctx context.Context, h string, confirmed bool, ttl time.Duration) error {
	if !confirmed {
		return s.Redis.Del(ctx, s.PendingKey(h)).Err()
	}
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.signupDoneKey(h), 1, ttl)
		p.Del(ctx, s.PendingKey(h))
		return nil
	})
	return err
}

// SignupConfirmed reports whether the sign-up h was confirmed within the
// time its marker is kept (EndPendingSignup).
func (s *Store) SignupConfirmed(ctx context.Context, h string) (bool, error) {
	n, err := s.Redis.Exists(ctx, s.signupDoneKey(h)).Result()
	return n == 1, err
}

// PendingSMSSignup returns h of the newest pending SMS sign-up of phone
// (in E.164 form). Returns ErrNotFound if the number has none.
func (s *Store) PendingSMSSignup(ctx context.Context, phone string) (string, error) {
	h, err := s.Redis.Get(ctx, s.pendingSMSKey(phone)).Result()
	if errors.Is(err, redis.Nil) {
		return "", dispatcher.ErrNotFound
	}
	return h, err
}

// ForgetPendingSMSSignup drops phone's entry of pending SMS sign-ups if it
// still names h: a newer sign-up of the number may have replaced it.
func (s *Store) ForgetPendingSMSSignup(ctx context.Context, phone, h string) error {
	// addrDelScript is the store's compare-and-delete.
	return addrDelScript.Run(ctx, s.Redis, []string{s.pendingSMSKey(phone)}, h).Err()
}

// PutProvisionalContact stores c, sealed, for ttl, under its id, unless a
// record exists there: it holds the address of a sign-up not yet
// confirmed, so that its confirmation can be sent, and nothing else
// finds it. It is neither in the index of contacts, which segments walk,
// nor in the address index, so no campaign reaches it and no lookup by
// address finds it; it expires with its pending sign-up. c must be
// normalised (dispatcher.Contact.Normalize).
func (s *Store) PutProvisionalContact(ctx context.Context, c *dispatcher.Contact, ttl time.Duration) error {
	now := s.now().UTC()
	c.CreatedAt, c.UpdatedAt = now, now
	sealed, err := s.SealContact(c)
	if err != nil {
		return err
	}
	ok, err := s.Redis.SetNX(ctx, s.ContactKey(c.ID), sealed, ttl).Result()
	if err == nil && !ok {
		err = errors.New("provisional contact: the id is taken")
	}
	return err
}

// IndexPendingByAddress adds the pending sign-up h to the index of the
// sign-ups of the address addr (kept ttl), by which erasure finds them
// even when the address had no contact when they were made.
func (s *Store) IndexPendingByAddress(ctx context.Context, k channels.Kind, addr, h string, ttl time.Duration) error {
	key := s.pendingAddrKey(s.AddressHash(k, addr))
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, key, h)
		p.Expire(ctx, key, ttl)
		return nil
	})
	return err
}

// DeletePendingSignupsOf deletes the sign-ups of the address addr
// awaiting confirmation, found through the address's index, with the
// provisional records of those made before the address had a contact. It
// returns how many pending records it deleted.
func (s *Store) DeletePendingSignupsOf(ctx context.Context, k channels.Kind, addr string) (int, error) {
	key := s.pendingAddrKey(s.AddressHash(k, addr))
	hashes, err := s.Redis.SMembers(ctx, key).Result()
	if err != nil {
		return 0, err
	}
	var provisional []string
	for _, h := range hashes {
		ps, err := s.PendingSignup(ctx, h)
		if errors.Is(err, dispatcher.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if ps.Provisional {
			provisional = append(provisional, ps.Contact)
		}
	}
	cmds := make([]*redis.IntCmd, len(hashes))
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hashes {
			cmds[i] = p.Unlink(ctx, s.PendingKey(h))
		}
		for _, id := range provisional {
			p.Unlink(ctx, s.ContactKey(id), s.pendingIndexKey(id))
		}
		p.Unlink(ctx, key)
		return nil
	})
	gone := 0
	for _, cmd := range cmds {
		gone += int(cmd.Val())
	}
	return gone, err
}

// DropProvisionalContact deletes the provisional record id (and its index
// of pending sign-ups) once its sign-up was confirmed for another contact.
func (s *Store) DropProvisionalContact(ctx context.Context, id string) error {
	return s.Redis.Unlink(ctx, s.ContactKey(id), s.pendingIndexKey(id)).Err()
}

// pendingAddrKey names the set of the pending sign-ups of an address, by
// the address's keyed hash.
func (s *Store) pendingAddrKey(addrHash string) string { return s.Key("pendingaddr", addrHash) }

package store

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/dispatcher"
)

// ChangeConsents reads the contact's current consents and preferences
// (these named by PreferenceField) and, with withContact, its record; asks decide for the events to record and
// writes them, sealed, to the ledger and the current state, in one WATCH
// transaction on the contact's keys (one slot), so that two changes at
// once cannot record the same event twice. It is the one transaction that
// changes consents after a read. Without withContact, decide gets a nil
// contact and a record that no longer opens does not stop the change.
//
// It returns the events written; an *dispatcher.Error with code invalid if
// one of them does not validate (nothing is written); ErrNotFound if the
// contact does not exist; an error wrapping ErrUnknownDataKey or ErrSealed
// if withContact and the record does not open.
func (s *Store) ChangeConsents(ctx context.Context, contact string, withContact bool, decide func(*dispatcher.Contact, map[string]ConsentCurrent) []dispatcher.ConsentEvent) ([]dispatcher.ConsentEvent, error) {
	var out []dispatcher.ConsentEvent
	txn := func(tx *redis.Tx) error {
		out = nil
		var c *dispatcher.Contact
		if withContact {
			b, err := tx.Get(ctx, s.ContactKey(contact)).Bytes()
			if errors.Is(err, redis.Nil) {
				return dispatcher.ErrNotFound
			}
			if err != nil {
				return err
			}
			if c, _, err = s.OpenContact(contact, b); err != nil {
				return err
			}
		} else if n, err := tx.Exists(ctx, s.ContactKey(contact)).Result(); err != nil {
			return err
		} else if n == 0 {
			return dispatcher.ErrNotFound
		}
		raw, err := tx.HGetAll(ctx, s.ConsentKey(contact)).Result()
		if err != nil {
			return err
		}
		prefs, err := tx.HGetAll(ctx, s.prefsKey(contact)).Result()
		if err != nil {
			return err
		}
		for f, v := range prefs {
			raw[PreferenceField(f)] = v
		}
		head, err := s.readLedgerHead(ctx, tx, contact)
		if err != nil {
			return err
		}
		events := decide(c, decodeConsents(raw))
		for i := range events {
			if err := events[i].Validate(); err != nil {
				return err
			}
		}
		if len(events) == 0 {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			s.writeConsents(ctx, p, contact, head, events)
			return nil
		})
		if err == nil {
			out = events
		}
		return err
	}
	if err := s.watch(ctx, "change consents", txn, s.ContactKey(contact), s.ConsentKey(contact), s.prefsKey(contact), s.ledgerKey(contact)); err != nil {
		return nil, err
	}
	return out, nil
}

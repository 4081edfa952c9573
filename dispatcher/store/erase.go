package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// ledgerEvidenceKept are the evidence keys that describe how a consent was
// collected, not who gave it: they stay in the ledger after erasure.
var ledgerEvidenceKept = []string{"form", "wording", "page", "confirmed_via"}

// IndexSends adds each decided send to its contact's index and pushes the
// index's expiry to the send retention, in one pipeline. The index keys
// carry the contact's hash tag, not the run's, so this cannot be part of
// decideScript on Redis Cluster.
func (s *Store) IndexSends(ctx context.Context, ds []Decision) error {
	byContact := map[string][]any{}
	var order []string
	for _, d := range ds {
		if d.Contact == "" {
			continue
		}
		if _, ok := byContact[d.Contact]; !ok {
			order = append(order, d.Contact)
		}
		byContact[d.Contact] = append(byContact[d.Contact], d.Send)
	}
	if len(order) == 0 {
		return nil
	}
	ttl := max(s.sendTTL, time.Second)
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range order {
			key := s.ContactSendsKey(c)
			p.SAdd(ctx, key, byContact[c]...)
			p.Expire(ctx, key, ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index sends: %w", err)
	}
	return nil
}

// contactSendIDs returns the ids the contact's sends may have: those of
// campaign sends derive from run, contact and channel (so the gate writes
// no index for them); API sends are in the contact's index.
func (s *Store) contactSendIDs(ctx context.Context, contact string) ([]string, error) {
	ids, err := s.Redis.SMembers(ctx, s.ContactSendsKey(contact)).Result()
	if err != nil {
		return nil, err
	}
	campaigns, err := s.Campaigns(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range campaigns {
		runs, err := s.Redis.ZRange(ctx, s.Key("runs", c.ID), 0, -1).Result()
		if err != nil {
			return nil, err
		}
		for _, run := range runs {
			ids = append(ids, dispatcher.SendID(run, contact, channels.Email), dispatcher.SendID(run, contact, channels.SMS), dispatcher.SendID(run, contact, "any"))
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// ContactSends returns the contact's send records still held, oldest
// first.
func (s *Store) ContactSends(ctx context.Context, contact string) ([]*dispatcher.Send, error) {
	ids, err := s.contactSendIDs(ctx, contact)
	if err != nil {
		return nil, err
	}
	ss, err := s.Sends(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := ss[:0]
	for _, sd := range ss {
		if sd != nil && sd.Contact == contact {
			out = append(out, sd)
		}
	}
	slices.SortStableFunc(out, func(a, b *dispatcher.Send) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	return out, nil
}

// addrDelScript deletes an address index entry only if it still points to
// the contact: another contact may have taken the address since.
var addrDelScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// EraseAddressesOf deletes the address index entries that point to the
// contact, for a record that does not open: they are found through the
// contact's set of address hashes, or, for a contact written before that
// set existed, by scanning the address index.
func (s *Store) EraseAddressesOf(ctx context.Context, contact string) (int, error) {
	hashes, err := s.Redis.SMembers(ctx, s.AddressesKey(contact)).Result()
	if err != nil {
		return 0, err
	}
	if len(hashes) > 0 {
		n := 0
		for _, h := range hashes {
			gone, err := addrDelScript.Run(ctx, s.Redis, []string{s.Key("addr", h)}, contact).Int()
			if err != nil {
				return n, err
			}
			n += gone
		}
		return n, s.Redis.Unlink(ctx, s.AddressesKey(contact)).Err()
	}
	n := 0
	err = s.Scan(ctx, s.Key("addr", "*"), func(keys []string) error {
		for _, k := range keys {
			gone, err := addrDelScript.Run(ctx, s.Redis, []string{k}, contact).Int()
			if err != nil {
				return err
			}
			n += gone
		}
		return nil
	})
	return n, err
}

// Scan calls fn with the keys matching pattern, in pages, on every master
// of a Redis Cluster. The masters are scanned at once, but fn is called
// one page at a time, so it needs no lock of its own.
func (s *Store) Scan(ctx context.Context, pattern string, fn func([]string) error) error {
	return scanKeys(ctx, s.Redis, pattern, fn)
}

// scanKeys calls fn with the keys matching pattern, a page at a time, on
// every master of a Redis Cluster.
func scanKeys(ctx context.Context, rdb Client, pattern string, fn func([]string) error) error {
	var mu sync.Mutex
	one := func(ctx context.Context, rdb redis.UniversalClient) error {
		var cursor uint64
		for {
			keys, next, err := rdb.Scan(ctx, cursor, pattern, 1000).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				mu.Lock()
				err := fn(keys)
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return one(ctx, node) })
	}
	return one(ctx, rdb)
}

// PseudonymizeLedger rewrites the contact's consent ledger without the
// evidence that could identify the person, in a transaction watched on
// the ledger. It returns how many events it holds.
func (s *Store) PseudonymizeLedger(ctx context.Context, contact string) (int, error) {
	key := s.ledgerKey(contact)
	n := 0
	txn := func(tx *redis.Tx) error {
		raw, err := tx.LRange(ctx, key, 0, -1).Result()
		if err != nil {
			return err
		}
		n = len(raw)
		if n == 0 {
			return nil
		}
		out := make([]any, 0, len(raw))
		for _, r := range raw {
			var e sealedEvent
			if json.Unmarshal([]byte(r), &e) != nil {
				continue // not ours to read: an unreadable event proves nothing
			}
			out = append(out, s.pseudonymousEvent(e))
		}
		n = len(out)
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, key)
			if len(out) > 0 {
				p.RPush(ctx, key, out...)
			}
			return nil
		})
		return err
	}
	if err := s.watch(ctx, "pseudonymize ledger", txn, key); err != nil {
		return 0, err
	}
	return n, nil
}

// pseudonymousEvent is e without identifying evidence, as JSON. A sealed
// event keeps the keyed digest of what was removed, so that its MAC still
// verifies.
func (s *Store) pseudonymousEvent(e sealedEvent) []byte {
	if e.Sig != "" && e.Erased == "" {
		e.Erased = s.removableDigest(&e.ConsentEvent)
	}
	var ev map[string]string
	for _, k := range ledgerEvidenceKept {
		if v, ok := e.Evidence[k]; ok {
			if ev == nil {
				ev = map[string]string{}
			}
			ev[k] = v
		}
	}
	e.Evidence = ev
	b, _ := json.Marshal(e)
	return b
}

package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// DeleteSends deletes the records of sends (read by Sends, in the order of
// ids) with the keys that lead to them (VERP, provider id, feedback
// claims) and their entries in the contact's and the run's send indexes,
// but for those being sent: a worker holds them until they settle (their
// data is deleted all the same). It returns how many records it deleted
// and how many it kept as being sent.
func (s *Store) DeleteSends(ctx context.Context, contact string, ids []string, sends []*dispatcher.Send) (deleted, sending int, err error) {
	// Their entries in their runs' indexes are blanked, not removed, so
	// the positions pages go by hold; and first, since the records are
	// what leads an erasure to them: a crash in between leaves records
	// that a call again finds, and blanks nothing twice.
	for _, sd := range sends {
		if sd == nil || sd.State == dispatcher.StateSending {
			continue
		}
		run, _, _ := dispatcher.SplitSendID(sd.ID)
		if err := blankRunSendScript.Run(ctx, s.Redis, []string{s.runSendsKey(run)}, sd.ID).Err(); err != nil && !errors.Is(err, redis.Nil) {
			return 0, 0, fmt.Errorf("delete sends: run index: %w", err)
		}
	}
	var gone []any
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, sd := range sends {
			if sd != nil && sd.State == dispatcher.StateSending {
				sending++
				// Its worker read the data already: the record keeps none.
				p.HDel(ctx, s.SendKey(sd.ID), sendDataField)
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
				keys = append(keys, s.providerKey(sd.Provider))
			}
			for _, k := range []channels.FeedbackKind{channels.Delivered, channels.HardBounce, channels.SoftBounce, channels.Complaint, channels.OptedOut, channels.Undelivered} {
				keys = append(keys, s.FeedbackClaim(sd.ID, k).key)
			}
			// One key per call: on Redis Cluster they live in other slots.
			for _, k := range keys {
				p.Unlink(ctx, k)
			}
		}
		return nil
	})
	if err != nil || len(gone) == 0 {
		return deleted, sending, err
	}
	// The contact's index leads an erasure to its API sends: it goes
	// after them, not in the pipeline, whose parts Redis Cluster may
	// apply in any order.
	return deleted, sending, s.Redis.SRem(ctx, s.ContactSendsKey(contact), gone...).Err()
}

// DeletePendingSignups deletes the contact's sign-ups awaiting
// confirmation, found through its index, and the SMS index entry of phone
// (when not ""). It returns how many pending records it deleted.
func (s *Store) DeletePendingSignups(ctx context.Context, contact, phone string) (int, error) {
	hashes, err := s.Redis.SMembers(ctx, s.pendingIndexKey(contact)).Result()
	if err != nil {
		return 0, err
	}
	cmds := make([]*redis.IntCmd, len(hashes))
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range hashes {
			cmds[i] = p.Unlink(ctx, s.PendingKey(h))
		}
		p.Unlink(ctx, s.pendingIndexKey(contact))
		if phone != "" {
			p.Unlink(ctx, s.Key("pendingsms", s.AddressHash(channels.SMS, phone)))
		}
		return nil
	})
	gone := 0
	for _, cmd := range cmds {
		gone += int(cmd.Val())
	}
	return gone, err
}

// ForgetAddress deletes the soft-bounce count of an address and its index
// entry when it still names contact (another contact may have taken the
// address since). It returns how many of each it deleted.
func (s *Store) ForgetAddress(ctx context.Context, contact string, k channels.Kind, addr string) (soft, index int, err error) {
	h := s.AddressHash(k, addr)
	removed, err := s.Redis.Del(ctx, s.Key("soft", h)).Result()
	if err != nil {
		return 0, 0, err
	}
	gone, err := addrDelScript.Run(ctx, s.Redis, []string{s.Key("addr", h)}, contact).Int()
	return int(removed), gone, err
}

// DeleteContact deletes the contact's record, current consents, sign-up
// confirmations and its place in the contact list. The record goes last
// but for the list entry, so an erasure cut short is finished by calling
// again (the entry, which a crash may leave behind the record, by
// DropContactID). It returns how many current consents it deleted.
func (s *Store) DeleteContact(ctx context.Context, id string) (consents int, err error) {
	var n *redis.IntCmd
	_, err = s.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.HLen(ctx, s.ConsentKey(id))
		p.Del(ctx, s.ConsentKey(id), s.prefsKey(id), s.signupsKey(id), s.AddressesKey(id))
		p.Del(ctx, s.ContactKey(id))
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := s.Redis.ZRem(ctx, s.Key("contacts"), id).Err(); err != nil {
		return 0, err
	}
	return int(n.Val()), nil
}

// DropContactID takes id out of the list of contacts, where a deletion
// cut short after the record (DeleteContact) left it.
func (s *Store) DropContactID(ctx context.Context, id string) error {
	return s.Redis.ZRem(ctx, s.Key("contacts"), id).Err()
}

// SoftBounceTimes returns when the address soft-bounced within the
// policy's window, oldest first.
func (s *Store) SoftBounceTimes(ctx context.Context, k channels.Kind, addr string) ([]time.Time, error) {
	zs, err := s.Redis.ZRangeWithScores(ctx, s.Key("soft", s.AddressHash(k, addr)), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, len(zs))
	for i, z := range zs {
		out[i] = time.UnixMilli(int64(z.Score)).UTC()
	}
	return out, nil
}

// ClaimRetention takes the daily retention purge for now, once per every
// across all processes; it reports false when another took it within
// every.
func (s *Store) ClaimRetention(ctx context.Context, now time.Time, every time.Duration) (bool, error) {
	return claimRetentionScript.Run(ctx, s.Redis, []string{s.Key("retention", "last")}, now.UnixMilli(), every.Milliseconds()).Bool()
}

// SetRetentionStats records the outcome of the last retention purge.
func (s *Store) SetRetentionStats(ctx context.Context, at time.Time, scanned, purged, errs int64) error {
	return s.Redis.HSet(ctx, s.Key("retention", "stats"), "last_run", at.UTC().Format(time.RFC3339),
		"scanned", scanned, "purged", purged, "errors", errs).Err()
}

// ContactIDs returns up to n contact ids after the id after ("" for the
// first ones), in id order: the one walk over the contact list, for the
// planner, segment counts, key rotation and the retention purge. Ids
// erased meanwhile do not move the walk.
func (s *Store) ContactIDs(ctx context.Context, after string, n int64) ([]string, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	return s.Redis.ZRangeArgs(ctx, redis.ZRangeArgs{Key: s.Key("contacts"), Start: start, Stop: "+", ByLex: true, Count: n}).Result()
}

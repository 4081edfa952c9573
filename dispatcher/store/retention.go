package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// InactiveContacts returns those of ids that hold no granted consent and
// whose last activity is before cutoff, and how many records did not open.
// One pipeline reads the current consents and the last ledger event of
// each; the records come through Store.contacts.
func (s *Store) InactiveContacts(ctx context.Context, ids []string, cutoff time.Time) (stale []string, unreadable int, err error) {
	cs, err := s.Contacts(ctx, ids)
	if err != nil {
		// One record that does not open fails the chunk: read them one by
		// one and leave out the unreadable, whose activity is unknown.
		cs = make([]*dispatcher.Contact, len(ids))
		for i, id := range ids {
			c, err := s.Contact(ctx, id)
			switch {
			case err == nil:
				cs[i] = c
			case errors.Is(err, dispatcher.ErrNotFound):
			case errors.Is(err, ErrUnknownDataKey) || errors.Is(err, ErrSealed):
				unreadable++
			default:
				return nil, 0, err
			}
		}
	}
	consents := make([]*redis.MapStringStringCmd, len(ids))
	lastEvents := make([]*redis.StringCmd, len(ids))
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			consents[i] = p.HGetAll(ctx, s.ConsentKey(id))
			lastEvents[i] = p.LIndex(ctx, s.ledgerKey(id), -1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, err
	}
next:
	for i, c := range cs {
		if c == nil {
			continue // erased meanwhile, or unreadable
		}
		last := c.UpdatedAt
		for _, v := range consents[i].Val() {
			var cur ConsentCurrent
			if json.Unmarshal([]byte(v), &cur) != nil {
				continue
			}
			if cur.State == dispatcher.Granted {
				continue next
			}
			if cur.At.After(last) {
				last = cur.At
			}
		}
		// The ledger's last event is the newest written; an event recorded
		// with an earlier time is covered by the current states above.
		var e dispatcher.ConsentEvent
		if b, err := lastEvents[i].Bytes(); err == nil && json.Unmarshal(b, &e) == nil && e.At.After(last) {
			last = e.At
		}
		if last.Before(cutoff) {
			stale = append(stale, c.ID)
		}
	}
	return stale, unreadable, nil
}

// claimRetentionScript sets the last purge time to now if the last one is
// older than the period, so that one purge starts per period even across
// a change of leader. KEYS: last. ARGV: now ms, period ms.
var claimRetentionScript = redis.NewScript(`
local last = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tonumber(ARGV[1]) - last > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
`)

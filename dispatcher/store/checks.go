package store

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// CheckRequest names an address whose suppression and consent the gate
// checks.
type CheckRequest struct {
	Contact string
	Channel channels.Kind
	Address string
}

// Checked is what LoadChecks read for one address.
type Checked struct {
	// Suppressed: the address is on the suppression list;
	// SuppressReason says why ("" when the entry does not say).
	Suppressed     bool
	SuppressReason string
	// Consent is the current consent of the contact for the channel and
	// the topic, read for a marketing topic only; "" when none.
	Consent dispatcher.ConsentState
}

// LoadChecks reads, in one pipeline, the suppression entry of each
// address and, for a marketing topic, the contact's consent. Results
// follow the order of reqs.
func (s *Store) LoadChecks(ctx context.Context, topic *dispatcher.Topic, reqs []CheckRequest) ([]Checked, error) {
	sup := make([]*redis.StringCmd, len(reqs))
	con := make([]*redis.StringCmd, len(reqs))
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range reqs {
			sup[i] = p.Get(ctx, s.Key("sup", s.AddressHash(r.Channel, r.Address)))
			if topic.Kind == dispatcher.Marketing {
				con[i] = p.HGet(ctx, s.ConsentKey(r.Contact), ConsentField(r.Channel, topic.ID))
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]Checked, len(reqs))
	for i := range reqs {
		if b, err := sup[i].Bytes(); err == nil {
			out[i].Suppressed = true
			var e dispatcher.Suppression
			if json.Unmarshal(b, &e) == nil {
				out[i].SuppressReason = e.Reason
			}
		}
		if con[i] != nil {
			var cur ConsentCurrent
			if b, err := con[i].Bytes(); err == nil && json.Unmarshal(b, &cur) == nil {
				out[i].Consent = cur.State
			}
		}
	}
	return out, nil
}

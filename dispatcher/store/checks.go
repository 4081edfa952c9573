package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

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
	// PausedUntil is when the pause the recipient set ends, read for a
	// marketing topic only; zero when none.
	PausedUntil time.Time
	// Frequency is how often the recipient wants the topic
	// (dispatcher.Frequencies), read for a marketing topic only; "" when
	// they did not say.
	Frequency string
	// Hours are the days and hours the recipient prefers
	// (dispatcher.PreferenceHours), read for a marketing topic only; ""
	// for any time.
	Hours string
}

// LoadChecks reads, in one pipeline, the suppression entry of each
// address and, for a marketing topic, the contact's consent and pause. Results
// follow the order of reqs.
func (s *Store) LoadChecks(ctx context.Context, topic *dispatcher.Topic, reqs []CheckRequest) ([]Checked, error) {
	var reads []checkReads
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		reads = s.queueChecks(ctx, p, len(reqs), true, func(i int) (*dispatcher.Topic, CheckRequest) { return topic, reqs[i] })
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]Checked, len(reqs))
	for i, r := range reads {
		out[i] = r.checked()
	}
	return out, nil
}

// queueChecks queues on p the reads of n check requests (at gives each
// with its topic): the suppression entries in one MGET on a single Redis,
// a GET each on Redis Cluster, where they live in different slots. The
// recipient's pace (frequency and hours) is read with pace only: a claim
// needs the pause alone.
func (s *Store) queueChecks(ctx context.Context, p redis.Pipeliner, n int, pace bool, at func(i int) (*dispatcher.Topic, CheckRequest)) []checkReads {
	reads := make([]checkReads, n)
	var sups *redis.SliceCmd
	if n > 1 && !IsCluster(s.Redis) {
		keys := make([]string, n)
		for i := range n {
			_, r := at(i)
			keys[i] = s.suppressionKey(r)
		}
		sups = p.MGet(ctx, keys...)
	}
	for i := range n {
		topic, r := at(i)
		reads[i] = s.readChecks(ctx, p, topic, r, pace)
		if sups == nil {
			reads[i].sup = p.Get(ctx, s.suppressionKey(r))
		} else {
			reads[i].sups, reads[i].at = sups, i
		}
	}
	return reads
}

func (s *Store) suppressionKey(r CheckRequest) string {
	return s.Key("sup", s.AddressHash(r.Channel, r.Address))
}

// checkReads are the pipelined reads of one CheckRequest: its
// suppression entry by sup, or by element at of sups (an MGET).
type checkReads struct {
	sups     *redis.SliceCmd
	at       int
	sup, con *redis.StringCmd
	// prefs are the pause, the topic's frequency and the hours, in one
	// read.
	prefs *redis.SliceCmd
}

// readChecks queues the consent, pause and, with pace, pace reads of r;
// queueChecks adds its suppression entry's.
func (s *Store) readChecks(ctx context.Context, p redis.Pipeliner, topic *dispatcher.Topic, r CheckRequest, pace bool) checkReads {
	var c checkReads
	if topic.Kind == dispatcher.Marketing {
		c.con = p.HGet(ctx, s.ConsentKey(r.Contact), ConsentField(r.Channel, topic.ID))
		if pace {
			c.prefs = p.HMGet(ctx, s.prefsKey(r.Contact), dispatcher.PreferencePause,
				dispatcher.PreferenceFrequency+"/"+topic.ID, dispatcher.PreferenceHours)
		} else {
			c.prefs = p.HMGet(ctx, s.prefsKey(r.Contact), dispatcher.PreferencePause)
		}
	}
	return c
}

func (c checkReads) checked() Checked {
	var out Checked
	var sup string
	if c.sups != nil {
		sup, out.Suppressed = c.sups.Val()[c.at].(string)
	} else if v, err := c.sup.Result(); err == nil {
		sup, out.Suppressed = v, true
	}
	if out.Suppressed {
		var e dispatcher.Suppression
		if json.Unmarshal([]byte(sup), &e) == nil {
			out.SuppressReason = e.Reason
		}
	}
	if c.con != nil {
		if b, err := c.con.Bytes(); err == nil {
			out.Consent, _, _ = decodeCurrent(b)
		}
	}
	if c.prefs != nil {
		vals := c.prefs.Val()
		pref := func(i int) string {
			if i < len(vals) {
				if v, ok := vals[i].(string); ok {
					_, value, _ := decodeCurrent([]byte(v))
					return value
				}
			}
			return ""
		}
		if v := pref(0); v != "" {
			// A pause that does not read holds everything: the recipient
			// asked for silence.
			t, err := dispatcher.ParsePause(v)
			if err != nil {
				t = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
			}
			out.PausedUntil = t
		}
		out.Frequency, out.Hours = pref(1), pref(2)
	}
	return out
}

// decodeCurrent returns the State and Value of a ConsentCurrent in JSON;
// ok is false, and both empty, when b does not decode. What json.Marshal
// wrote is read without encoding/json (scanCurrent), a tenth of the cost:
// the gate and every claim read a consent; anything else is left to
// encoding/json.
func decodeCurrent(b []byte) (state dispatcher.ConsentState, value string, ok bool) {
	if state, value, ok := scanCurrent(b); ok {
		return state, value, true
	}
	var cur ConsentCurrent
	if err := json.Unmarshal(b, &cur); err != nil {
		return "", "", false
	}
	return cur.State, cur.Value, true
}

// scanCurrent reads a ConsentCurrent as json.Marshal writes it: an object
// of the fields state, at, source and value (in any order, each once or
// more: the last counts), each a string of printable ASCII without
// escapes, with no space between tokens, at a time that reads as
// encoding/json reads it. ok is false for anything else.
func scanCurrent(b []byte) (state dispatcher.ConsentState, value string, ok bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return "", "", false
	}
	if len(b) == 2 {
		return "", "", true
	}
	for i := 1; ; {
		key, j, ok := scanString(b, i)
		if !ok || j >= len(b) || b[j] != ':' {
			return "", "", false
		}
		val, k, ok := scanString(b, j+1)
		if !ok || k >= len(b) {
			return "", "", false
		}
		switch string(key) {
		case "state":
			switch string(val) {
			case string(dispatcher.Granted):
				state = dispatcher.Granted
			case string(dispatcher.Withdrawn):
				state = dispatcher.Withdrawn
			default:
				state = dispatcher.ConsentState(val)
			}
		case "value":
			value = string(val)
		case "source":
		case "at":
			var t time.Time
			if t.UnmarshalJSON(b[j+1:k]) != nil {
				return "", "", false
			}
		default:
			return "", "", false
		}
		switch {
		case b[k] == ',':
			i = k + 1
		case b[k] == '}' && k == len(b)-1:
			return state, value, true
		default:
			return "", "", false
		}
	}
}

// scanString reads the JSON string at b[i] made of printable ASCII
// without escapes: its content and the index after it.
func scanString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, j, false
		}
	}
	return nil, len(b), false
}

// ReachedBefore reports, for each send id (of earlier runs of a one-shot
// campaign), whether that send reached its contact or still may: it exists
// and is neither suppressed nor cancelled, nor failed for a reason that
// proves it never left (an ambiguous failure may have).
func (s *Store) ReachedBefore(ctx context.Context, ids []string) ([]bool, error) {
	cmds, err := pipelineEach(ctx, s, ids, func(p redis.Pipeliner, id string) *redis.SliceCmd {
		return p.HMGet(ctx, s.SendKey(id), "state", "reason")
	})
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(ids))
	for i, c := range cmds {
		v := c.Val()
		state, _ := v[0].(string)
		reason, _ := v[1].(string)
		switch state {
		case "", dispatcher.StateSuppressed, dispatcher.StateCancelled:
		case dispatcher.StateFailed:
			out[i] = reason == dispatcher.ReasonAmbiguous
		default:
			out[i] = true
		}
	}
	return out, nil
}

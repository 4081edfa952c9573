package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// Sequences and their enrolments:
//
//	P:{sequences}          hash id -> current sequence (JSON)
//	P:{sequences}:v:<id>   hash version -> sequence (JSON), every version kept; one slot
//	                       with the current ones, written in one transaction
//	P:seq:{id}:due         sorted set contact -> when the enrolment's next step is due (ms);
//	                       a popped entry is pushed a lease ahead until its step is done
//	P:seq:{id}:stats       hash of the sequence's counters: enrolled, completed, stopped:<reason>
//	P:c:{id}:enr           hash sequence -> the contact's enrolment (JSON, data sealed)

// sequencesHash names the hash of current sequences, for getJSON; its
// versions share its hash tag (seqVersionsHash).
const sequencesHash = "{sequences}"

func seqVersionsHash(id string) string { return sequencesHash + ":v:" + id }

func (s *Store) seqDueKey(seq string) string   { return s.p + ":seq:{" + seq + "}:due" }
func (s *Store) seqStatsKey(seq string) string { return s.p + ":seq:{" + seq + "}:stats" }
func (s *Store) enrolmentsKey(contact string) string {
	return s.ContactKey(contact) + ":enr"
}

// PutSequence stores seq, validated, as the sequence's next version when
// it differs from the current one (its version, times and pause state are
// Missive's); move moves the enrolments of earlier versions to it. It
// returns the sequence as stored and whether a version was made.
func (s *Store) PutSequence(ctx context.Context, seq *dispatcher.Sequence, move bool, now time.Time) (*dispatcher.Sequence, bool, error) {
	if err := seq.Validate(); err != nil {
		return nil, false, err
	}
	var out *dispatcher.Sequence
	var made bool
	txn := func(tx *redis.Tx) error {
		next := *seq
		next.Version, next.MovedFrom, next.CreatedAt, next.UpdatedAt = 1, 0, now.UTC(), now.UTC()
		next.Paused = false
		b, err := tx.HGet(ctx, s.Key(sequencesHash), seq.ID).Bytes()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if err == nil {
			var cur dispatcher.Sequence
			if err := json.Unmarshal(b, &cur); err != nil {
				return fmt.Errorf("decode sequence %s: %w", seq.ID, err)
			}
			next.Version, next.MovedFrom, next.CreatedAt, next.Paused = cur.Version, cur.MovedFrom, cur.CreatedAt, cur.Paused
			same := next
			same.UpdatedAt = cur.UpdatedAt
			if reflect.DeepEqual(same, cur) && !move {
				out, made = &cur, false
				return nil
			}
			if !sameContent(&next, &cur) {
				next.Version = cur.Version + 1
			}
			if move {
				next.MovedFrom = next.Version
			}
		}
		nb, err := json.Marshal(next)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, s.Key(sequencesHash), seq.ID, nb)
			p.HSet(ctx, s.Key(seqVersionsHash(seq.ID)), strconv.Itoa(next.Version), nb)
			return nil
		})
		out, made = &next, err == nil
		return err
	}
	if err := s.watch(ctx, "put sequence", txn, s.Key(sequencesHash)); err != nil {
		return nil, false, err
	}
	return out, made, nil
}

// sameContent reports whether two versions send the same steps to the
// same people: the name alone changes no version.
func sameContent(a, b *dispatcher.Sequence) bool {
	x, y := *a, *b
	x.Name, y.Name = "", ""
	x.Version, y.Version, x.MovedFrom, y.MovedFrom = 0, 0, 0, 0
	x.CreatedAt, y.CreatedAt, x.UpdatedAt, y.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	x.Paused, y.Paused = false, false
	return reflect.DeepEqual(x, y)
}

// Sequence returns the current version of the sequence id. Returns an error
// with code not_found if there is none.
func (s *Store) Sequence(ctx context.Context, id string) (*dispatcher.Sequence, error) {
	var seq dispatcher.Sequence
	return &seq, s.getJSON(ctx, sequencesHash, id, "sequence", &seq)
}

// SequenceVersion returns version v of the sequence id. Returns an error
// with code not_found if there is none.
func (s *Store) SequenceVersion(ctx context.Context, id string, v int) (*dispatcher.Sequence, error) {
	var seq dispatcher.Sequence
	return &seq, s.getJSON(ctx, seqVersionsHash(id), strconv.Itoa(v), "sequence version", &seq)
}

// Sequences returns the current version of every sequence, by id.
func (s *Store) Sequences(ctx context.Context) ([]dispatcher.Sequence, error) {
	return listJSON[dispatcher.Sequence](ctx, s, sequencesHash)
}

// SetSequencePaused pauses or resumes the sequence id; it makes no
// version. Returns an error with code not_found if there is none.
func (s *Store) SetSequencePaused(ctx context.Context, id string, paused bool, now time.Time) (*dispatcher.Sequence, error) {
	var out dispatcher.Sequence
	txn := func(tx *redis.Tx) error {
		b, err := tx.HGet(ctx, s.Key(sequencesHash), id).Bytes()
		if errors.Is(err, redis.Nil) {
			return dispatcher.NotFound("sequence")
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return err
		}
		if out.Paused == paused {
			return nil
		}
		out.Paused, out.UpdatedAt = paused, now.UTC()
		nb, err := json.Marshal(out)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, s.Key(sequencesHash), id, nb)
			return nil
		})
		return err
	}
	if err := s.watch(ctx, "pause sequence", txn, s.Key(sequencesHash)); err != nil {
		return nil, err
	}
	return &out, nil
}

// EnrolmentRecord is an enrolment as read: SaveEnrolment writes it back
// only if no one changed it in between.
type EnrolmentRecord struct {
	dispatcher.Enrolment
	raw string
}

// enrolmentJSON is an enrolment as stored: its data sealed, and without
// the sequence and the contact, which its key and field name.
type enrolmentJSON struct {
	dispatcher.Enrolment
	// These hide the Enrolment's fields of the same names.
	Sequence any `json:"sequence,omitempty"`
	Contact  any `json:"contact,omitempty"`
	Data     any `json:"data,omitempty"`

	Sealed []byte `json:"sealed,omitempty"`
}

func enrolmentAAD(e *dispatcher.Enrolment) []byte {
	return []byte("enrolment:" + e.Sequence + ":" + e.Contact + ":" + strconv.Itoa(e.N))
}

func (s *Store) encodeEnrolment(e *dispatcher.Enrolment) (string, error) {
	rec := enrolmentJSON{Enrolment: *e}
	if e.Data != nil {
		b, err := json.Marshal(e.Data)
		if err != nil {
			return "", fmt.Errorf("encode enrolment data: %w", err)
		}
		rec.Sealed = s.Keys.Seal(b, enrolmentAAD(e))
	}
	b, err := json.Marshal(rec)
	return string(b), err
}

func (s *Store) decodeEnrolment(contact, seq, raw string) (*EnrolmentRecord, error) {
	var rec enrolmentJSON
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("decode enrolment: %w", err)
	}
	e := rec.Enrolment
	e.Contact, e.Sequence, e.Data = contact, seq, nil
	if rec.Sealed != nil {
		js, _, err := s.Keys.Open(rec.Sealed, enrolmentAAD(&e))
		if err != nil {
			return nil, fmt.Errorf("open enrolment data %s/%d: %w", e.Sequence, e.N, err)
		}
		if err := json.Unmarshal(js, &e.Data); err != nil {
			return nil, fmt.Errorf("decode enrolment data: %w", err)
		}
	}
	return &EnrolmentRecord{Enrolment: e, raw: raw}, nil
}

// Enrolment returns the contact's enrolment in seq, the newest if it
// entered several times. Returns ErrNotFound if it never entered.
func (s *Store) Enrolment(ctx context.Context, contact, seq string) (*EnrolmentRecord, error) {
	raw, err := s.Redis.HGet(ctx, s.enrolmentsKey(contact), seq).Result()
	if errors.Is(err, redis.Nil) {
		return nil, dispatcher.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return s.decodeEnrolment(contact, seq, raw)
}

// Enrolments returns the contact's enrolments, one per sequence, by
// sequence id.
func (s *Store) Enrolments(ctx context.Context, contact string) ([]*EnrolmentRecord, error) {
	raw, err := s.Redis.HGetAll(ctx, s.enrolmentsKey(contact)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*EnrolmentRecord, 0, len(raw))
	for seq, v := range raw {
		r, err := s.decodeEnrolment(contact, seq, v)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *EnrolmentRecord) int { return strings.Compare(a.Sequence, b.Sequence) })
	return out, nil
}

// Enrol writes e as the contact's new enrolment in its sequence, due at
// e.At, unless the contact is in it already, or was and reenrol is false:
// then it returns the enrolment there and false. A new enrolment's N
// follows the previous one's.
func (s *Store) Enrol(ctx context.Context, e *dispatcher.Enrolment, reenrol bool) (*EnrolmentRecord, bool, error) {
	key := s.enrolmentsKey(e.Contact)
	// The due entry first, unless there is one: an entry without its
	// record is dropped when it fires, while a record without its entry
	// would never fire. (The two cannot share a transaction on Redis
	// Cluster.) Were the contact in the sequence already, this files an
	// entry that a crash left out.
	due := s.seqDueKey(e.Sequence)
	filed, err := s.Redis.ZAddNX(ctx, due, redis.Z{Score: float64(ms(e.At)), Member: e.Contact}).Result()
	if err != nil {
		return nil, false, fmt.Errorf("enrol: %w", err)
	}
	var out *EnrolmentRecord
	var created bool
	txn := func(tx *redis.Tx) error {
		raw, err := tx.HGet(ctx, key, e.Sequence).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		e.N = 1
		if err == nil {
			prev, err := s.decodeEnrolment(e.Contact, e.Sequence, raw)
			if err != nil {
				return err
			}
			if prev.State == dispatcher.EnrolmentActive || !reenrol {
				out, created = prev, false
				return nil
			}
			e.N = prev.N + 1
		}
		enc, err := s.encodeEnrolment(e)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, e.Sequence, enc)
			return nil
		})
		out, created = &EnrolmentRecord{Enrolment: *e, raw: enc}, err == nil
		return err
	}
	if err := s.watch(ctx, "enrol", txn, key); err != nil {
		return nil, false, err
	}
	if !created {
		if filed == 1 && out.State != dispatcher.EnrolmentActive {
			// Filed above for an enrolment that had ended.
			if err := s.Redis.ZRem(ctx, due, e.Contact).Err(); err != nil {
				return nil, false, fmt.Errorf("enrol: %w", err)
			}
		}
		return out, false, nil
	}
	// A crash here misses one in this counter, never in the others.
	if err := s.Redis.HIncrBy(ctx, s.seqStatsKey(e.Sequence), "enrolled", 1).Err(); err != nil {
		return nil, false, fmt.Errorf("enrol: %w", err)
	}
	return out, true, nil
}

// swapScript writes a hash field if it still holds what was read (a
// contact's enrolment, a record sealed again). KEYS: the hash. ARGV:
// field, value read, new value. Returns 1 if written.
var swapScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`)

// SaveEnrolment writes r back if no one changed it since it was read,
// and files it where it is due: an active enrolment at r.At, an ended one
// nowhere (counted as completed or stopped). It reports whether it wrote;
// false means r is stale and should be read again.
func (s *Store) SaveEnrolment(ctx context.Context, r *EnrolmentRecord) (bool, error) {
	enc, err := s.encodeEnrolment(&r.Enrolment)
	if err != nil {
		return false, err
	}
	n, err := swapScript.Run(ctx, s.Redis, []string{s.enrolmentsKey(r.Contact)}, r.Sequence, r.raw, enc).Int()
	if err != nil {
		return false, fmt.Errorf("save enrolment: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	r.raw = enc
	return true, s.fileEnrolment(ctx, &r.Enrolment)
}

// endScript takes an ended enrolment's due entry out and counts how it
// ended, if the entry was there: whoever takes it out counts it, once,
// even when a crash left the entry behind its record.
// KEYS: due, stats. ARGV: contact, counter.
var endScript = redis.NewScript(`
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then redis.call('HINCRBY', KEYS[2], ARGV[2], 1) end
return 0
`)

// fileEnrolment puts e where it is due, or takes an ended one out and
// counts how it ended.
func (s *Store) fileEnrolment(ctx context.Context, e *dispatcher.Enrolment) error {
	due := s.seqDueKey(e.Sequence)
	var err error
	switch e.State {
	case dispatcher.EnrolmentActive:
		err = s.Redis.ZAdd(ctx, due, redis.Z{Score: float64(ms(e.At)), Member: e.Contact}).Err()
	case dispatcher.EnrolmentCompleted:
		err = endScript.Run(ctx, s.Redis, []string{due, s.seqStatsKey(e.Sequence)}, e.Contact, "completed").Err()
	default:
		err = endScript.Run(ctx, s.Redis, []string{due, s.seqStatsKey(e.Sequence)}, e.Contact, "stopped:"+e.Reason).Err()
	}
	if err != nil {
		return fmt.Errorf("file enrolment: %w", err)
	}
	return nil
}

// RefileEnrolment files an enrolment where its record says, after a pop
// that did not take its step: an active one where it is due, an ended
// one out, counted if it was not.
func (s *Store) RefileEnrolment(ctx context.Context, r *EnrolmentRecord) error {
	return s.fileEnrolment(ctx, &r.Enrolment)
}

// DropDue takes the contact out of seq's due entries (an entry whose
// enrolment is gone).
func (s *Store) DropDue(ctx context.Context, seq, contact string) error {
	return s.Redis.ZRem(ctx, s.seqDueKey(seq), contact).Err()
}

// popDueScript returns up to n members due by now and pushes them to a
// lease ahead, so that a popper that dies leaves them to the next pop.
// KEYS: due. ARGV: now ms, lease end ms, n.
var popDueScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id) end
return ids
`)

// PopDueEnrolments returns up to n contacts whose enrolment in seq is due
// at now, and files them lease ahead: the one who took them saves their
// next due time, or they come back when the lease ends.
func (s *Store) PopDueEnrolments(ctx context.Context, seq string, now time.Time, lease time.Duration, n int) ([]string, error) {
	ids, err := popDueScript.Run(ctx, s.Redis, []string{s.seqDueKey(seq)}, ms(now), ms(now.Add(lease)), n).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("pop due enrolments: %w", err)
	}
	return ids, nil
}

// SequenceStats returns how many enrolments of seq are active and its
// counters (enrolled, completed, stopped:<reason>).
func (s *Store) SequenceStats(ctx context.Context, seq string) (int64, map[string]int64, error) {
	var card *redis.IntCmd
	var stats *redis.MapStringStringCmd
	_, err := s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		card = p.ZCard(ctx, s.seqDueKey(seq))
		stats = p.HGetAll(ctx, s.seqStatsKey(seq))
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return card.Val(), counters(stats.Val(), ""), nil
}

// EraseEnrolments deletes the contact's enrolments and their due entries;
// it returns how many there were.
func (s *Store) EraseEnrolments(ctx context.Context, contact string) (int, error) {
	seqs, err := s.Redis.HKeys(ctx, s.enrolmentsKey(contact)).Result()
	if err != nil {
		return 0, err
	}
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, seq := range seqs {
			p.ZRem(ctx, s.seqDueKey(seq), contact)
		}
		p.Del(ctx, s.enrolmentsKey(contact))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("erase enrolments: %w", err)
	}
	return len(seqs), nil
}

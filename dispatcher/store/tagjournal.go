package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The tags a contact upsert or an import adds are told to the sequences
// (TagsAdded) after the contacts are written, which live in other slots:
// a process that dies in between would lose the enrolments they trigger,
// since a retry finds the tags already there. So they are journaled first,
// in P:tagjournal, a sorted set of entries by when they were written, each
// "<contact>\n<sealed JSON list of tags>", and taken out once the
// sequences heard of them; the scheduler's leader replays the entries a
// dead process left (TagJournal). The tags are personal data: sealed
// under the data keyring, bound to the contact, and kept for moments.

func (s *Store) tagJournalKey() string { return s.Key("tagjournal") }

func tagJournalAAD(contact string) []byte { return []byte("tagjournal:" + contact) }

// TagJournalEntry is the tags added to a contact, as journaled.
type TagJournalEntry struct {
	Contact string
	Tags    []string
	member  string
}

// journalTags writes an entry for each contact of added at now, and
// returns the entries.
func (s *Store) journalTags(ctx context.Context, added map[string][]string, now time.Time) ([]TagJournalEntry, error) {
	out := make([]TagJournalEntry, 0, len(added))
	zs := make([]redis.Z, 0, len(added))
	for c, tags := range added {
		b, err := json.Marshal(tags)
		if err != nil {
			return nil, err
		}
		e := TagJournalEntry{Contact: c, Tags: tags, member: c + "\n" + string(s.Keys.Seal(b, tagJournalAAD(c)))}
		out = append(out, e)
		zs = append(zs, redis.Z{Score: float64(ms(now)), Member: e.member})
	}
	if err := s.Redis.ZAdd(ctx, s.tagJournalKey(), zs...).Err(); err != nil {
		return nil, fmt.Errorf("journal tags: %w", err)
	}
	return out, nil
}

// TagJournal returns up to n entries written at or before before, oldest
// first. An entry that does not open (unknown key, moved or damaged) is
// returned without a contact, to be taken out.
func (s *Store) TagJournal(ctx context.Context, before time.Time, n int) ([]TagJournalEntry, error) {
	members, err := s.Redis.ZRangeByScore(ctx, s.tagJournalKey(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(ms(before), 10), Count: int64(n)}).Result()
	if err != nil {
		return nil, fmt.Errorf("read tag journal: %w", err)
	}
	out := make([]TagJournalEntry, 0, len(members))
	for _, m := range members {
		e := TagJournalEntry{member: m}
		if c, sealed, ok := strings.Cut(m, "\n"); ok {
			if js, _, err := s.Keys.Open([]byte(sealed), tagJournalAAD(c)); err == nil && json.Unmarshal(js, &e.Tags) == nil {
				e.Contact = c
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// DeferTagJournal files entries again at at: their telling failed, and is
// tried again later, behind the entries written meanwhile.
func (s *Store) DeferTagJournal(ctx context.Context, entries []TagJournalEntry, at time.Time) error {
	if len(entries) == 0 {
		return nil
	}
	zs := make([]redis.Z, len(entries))
	for i, e := range entries {
		zs[i] = redis.Z{Score: float64(ms(at)), Member: e.member}
	}
	if err := s.Redis.ZAddXX(ctx, s.tagJournalKey(), zs...).Err(); err != nil {
		return fmt.Errorf("defer tag journal entries: %w", err)
	}
	return nil
}

// AckTagJournal takes entries out of the journal.
func (s *Store) AckTagJournal(ctx context.Context, entries []TagJournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	members := make([]any, len(entries))
	for i, e := range entries {
		members[i] = e.member
	}
	if err := s.Redis.ZRem(ctx, s.tagJournalKey(), members...).Err(); err != nil {
		return fmt.Errorf("take tag journal entries out: %w", err)
	}
	return nil
}

// ForgetTagJournal takes the contact's entries out of the journal (an
// erasure), and returns how many there were. The journal holds only what
// is being told, and what a failure left: it is read whole.
func (s *Store) ForgetTagJournal(ctx context.Context, contact string) (int, error) {
	members, err := s.Redis.ZRange(ctx, s.tagJournalKey(), 0, -1).Result()
	if err != nil {
		return 0, fmt.Errorf("forget tag journal: %w", err)
	}
	var gone []any
	for _, m := range members {
		if strings.HasPrefix(m, contact+"\n") {
			gone = append(gone, m)
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	if err := s.Redis.ZRem(ctx, s.tagJournalKey(), gone...).Err(); err != nil {
		return 0, fmt.Errorf("forget tag journal: %w", err)
	}
	return len(gone), nil
}

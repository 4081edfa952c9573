package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// ImportResult tells what a bulk import did. Errors name the line and the
// field, never the value.
type ImportResult struct {
	Imported int           `json:"imported"`
	Failed   int           `json:"failed"`
	Errors   []ImportError `json:"errors,omitempty"`
}

// ImportError is one rejected line.
type ImportError struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

const (
	importChunk     = 500
	maxImportErrors = 100
	maxImportLine   = 64 << 10
)

// ImportLine is one line of a bulk import: a contact, with optional
// consents granted at import (source "import").
type ImportLine struct {
	dispatcher.Contact
	Consents []dispatcher.ConsentEvent `json:"consents,omitempty"`
}

// ImportContacts reads NDJSON contacts from r and upserts them in pipelined
// chunks. Bad lines are counted and reported, good ones imported. progress,
// when not nil, is called after each chunk with the lines read so far.
func (s *Store) ImportContacts(ctx context.Context, r io.Reader, defaultTZ string, progress func(lines int)) (*ImportResult, error) {
	res := &ImportResult{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxImportLine)
	var chunk []ImportLine
	line := 0
	fail := func(field, msg string) {
		res.Failed++
		if len(res.Errors) < maxImportErrors {
			res.Errors = append(res.Errors, ImportError{Line: line, Field: field, Message: msg})
		}
	}
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if err := s.upsertMany(ctx, chunk); err != nil {
			return err
		}
		res.Imported += len(chunk)
		chunk = chunk[:0]
		if progress != nil {
			progress(line)
		}
		return nil
	}
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var l ImportLine
		if err := json.Unmarshal(b, &l); err != nil {
			fail("", "not a JSON object")
			continue
		}
		if err := l.Contact.Normalize(defaultTZ); err != nil {
			var e *dispatcher.Error
			if errors.As(err, &e) {
				fail(e.Field, e.Message)
			} else {
				fail("", err.Error())
			}
			continue
		}
		bad := false
		for i := range l.Consents {
			if l.Consents[i].Source == "" {
				l.Consents[i].Source = "import"
			}
			if err := l.Consents[i].Validate(); err != nil {
				var e *dispatcher.Error
				errors.As(err, &e)
				fail(fmt.Sprintf("consents[%d].%s", i, e.Field), e.Message)
				bad = true
				break
			}
		}
		if bad {
			continue
		}
		chunk = append(chunk, l)
		if len(chunk) == importChunk {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return res, dispatcher.Invalid("body", "line %d is longer than %d bytes", line+1, maxImportLine)
		}
		return res, err
	}
	return res, flush()
}

// upsertMany writes validated contacts in two pipelines: one read of the
// previous records (creation time, old addresses), decrypted here, and one
// write of the records sealed under the active data key.
func (s *Store) upsertMany(ctx context.Context, ls []ImportLine) error {
	ids := make([]string, len(ls))
	for i := range ls {
		ids[i] = ls[i].ID
	}
	prev, err := s.Contacts(ctx, ids)
	if err != nil {
		return err
	}
	withConsents := make([]string, len(ls)) // "" for a line without consents
	for i := range ls {
		if len(ls[i].Consents) > 0 {
			withConsents[i] = ls[i].ID
		}
	}
	heads, err := s.readLedgerHeads(ctx, withConsents)
	if err != nil {
		return err
	}
	appends := make([]*redis.Cmd, len(ls))
	now := s.now().UTC()
	sealed := make([][]byte, len(ls))
	for i := range ls {
		c := &ls[i].Contact
		c.CreatedAt, c.UpdatedAt = now, now
		if prev[i] != nil {
			c.CreatedAt = prev[i].CreatedAt
		}
		if sealed[i], err = s.SealContact(c); err != nil {
			return err
		}
	}
	_, err = s.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range ls {
			c := &ls[i].Contact
			if prev[i] != nil {
				for _, k := range channels.Kinds {
					if a := prev[i].Address(k); a != "" && a != c.Address(k) {
						h := s.AddressHash(k, a)
						p.Del(ctx, s.Key("addr", h))
						p.SRem(ctx, s.AddressesKey(c.ID), h)
					}
				}
			}
			p.Set(ctx, s.ContactKey(c.ID), sealed[i], 0)
			p.ZAdd(ctx, s.Key("contacts"), redis.Z{Member: c.ID})
			for _, k := range channels.Kinds {
				if a := c.Address(k); a != "" {
					h := s.AddressHash(k, a)
					p.Set(ctx, s.Key("addr", h), c.ID, 0)
					p.SAdd(ctx, s.AddressesKey(c.ID), h)
				}
			}
			if len(ls[i].Consents) > 0 {
				appends[i] = s.appendConsents(ctx, p, c.ID, heads[i], ls[i].Consents, now)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// A consent recorded meanwhile moved the ledger: nothing of those lines'
	// consents was written; they are recorded again after it.
	for i, cmd := range appends {
		if cmd == nil {
			continue
		}
		if n, err := cmd.Int(); err != nil {
			return err
		} else if n == 0 {
			events := consentsAt(ls[i].Consents, now)
			if _, err := s.ChangeConsents(ctx, ls[i].ID, false, func(*dispatcher.Contact, map[string]ConsentCurrent) []dispatcher.ConsentEvent {
				return events
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

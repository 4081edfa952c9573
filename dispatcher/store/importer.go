package store

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/redis/go-redis/v9"
)

// ImportResult tells what a bulk import did: the lines read (blank ones
// aside), those imported, those refused, and the first MaxImportErrors
// refused lines. Errors name the line and the field, never the value.
type ImportResult struct {
	Lines    int           `json:"lines"`
	Imported int           `json:"imported"`
	Failed   int           `json:"failed"`
	Errors   []ImportError `json:"errors,omitempty"`
	// ErrorsCapped is true when more lines were refused than Errors lists.
	ErrorsCapped bool `json:"errors_capped,omitempty"`
}

// ImportError is one refused line.
type ImportError struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// MaxImportErrors is how many refused lines an ImportResult lists.
const MaxImportErrors = 100

const (
	importChunk   = 500
	maxImportLine = 64 << 10
)

// ImportLine is one line of a bulk import: a contact, with optional
// consents granted at import (source "import"). On the wire it has the
// fields of the API's contact upsert, its id and its consents, and no
// other: ImportContacts refuses a line with any other field, and
// MarshalJSON writes no other (the contact's times are Missive's).
type ImportLine struct {
	dispatcher.Contact
	Consents []dispatcher.ConsentEvent `json:"consents,omitempty"`
}

// importWire is an import line as a client writes it.
type importWire struct {
	ID string `json:"id"`
	dispatcher.ContactFields
	Consents []consentWire `json:"consents,omitempty"`
}

// consentWire is a consent of an import line: a ConsentEvent's fields.
type consentWire struct {
	Channel  channels.Kind           `json:"channel"`
	Topic    string                  `json:"topic"`
	State    dispatcher.ConsentState `json:"state"`
	Source   string                  `json:"source,omitempty"`
	Evidence map[string]string       `json:"evidence,omitempty"`
	At       *time.Time              `json:"at,omitempty"`
}

// MarshalJSON writes l as ImportContacts reads it.
func (l ImportLine) MarshalJSON() ([]byte, error) {
	w := importWire{ID: l.ID, ContactFields: l.Fields()}
	for _, e := range l.Consents {
		c := consentWire{Channel: e.Channel, Topic: e.Topic, State: e.State, Source: e.Source, Evidence: e.Evidence}
		if !e.At.IsZero() {
			c.At = &e.At
		}
		w.Consents = append(w.Consents, c)
	}
	return json.Marshal(w)
}

// importFields are the fields an import line may hold, and those of each
// of its consents: the JSON names of importWire and consentWire.
var importFields, consentFields = jsonFields[importWire](), jsonFields[consentWire]()

func jsonFields[T any]() map[string]bool {
	out := map[string]bool{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[T]()) {
		if f.Anonymous {
			continue // its fields are promoted, and listed
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out[name] = true
	}
	return out
}

// ImportContacts reads NDJSON contacts from r and upserts them in pipelined
// chunks. A line is imported whole or not at all: one that is not a JSON
// object, holds a field the API's contact upsert does not know, a value
// the API would refuse, or a consent to a topic that does not exist is
// refused, counted and listed (the first MaxImportErrors) with its number
// and the field at fault; the other lines are imported. progress, when
// not nil, is called after each chunk with the lines read so far. An
// error comes back only when Redis fails or r cannot be read; res then
// counts what was imported before.
func (s *Store) ImportContacts(ctx context.Context, r io.Reader, defaultTZ string, progress func(lines int)) (*ImportResult, error) {
	res := &ImportResult{}
	br := bufio.NewReaderSize(r, 64<<10)
	var chunk []ImportLine
	line := 0
	fail := func(field, msg string) {
		res.Failed++
		if len(res.Errors) < MaxImportErrors {
			res.Errors = append(res.Errors, ImportError{Line: line, Field: field, Message: msg})
		} else {
			res.ErrorsCapped = true
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
	topics := map[string]bool{} // topic id -> exists, as looked up
	topicExists := func(id string) (bool, error) {
		ok, seen := topics[id]
		if seen {
			return ok, nil
		}
		_, err := s.Topic(ctx, id)
		switch {
		case err == nil:
			ok = true
		case errors.Is(err, dispatcher.ErrNotFound) || dispatcher.IsCode(err, dispatcher.CodeNotFound):
			ok = false
		default:
			return false, err
		}
		topics[id] = ok
		return ok, nil
	}
	var buf []byte
	for {
		b, tooLong, err := readLine(br, buf[:0], maxImportLine)
		buf = b
		eof := errors.Is(err, io.EOF)
		if err != nil && !eof {
			return res, err
		}
		if eof && len(b) == 0 && !tooLong {
			break
		}
		line++
		if tooLong || len(bytes.TrimSpace(b)) > 0 {
			res.Lines++
			l, bad, err := s.parseImportLine(b, tooLong, defaultTZ, topicExists)
			switch {
			case err != nil:
				return res, err
			case bad != nil:
				fail(bad.Field, bad.Message)
			default:
				chunk = append(chunk, l)
				if len(chunk) == importChunk {
					if err := flush(); err != nil {
						return res, err
					}
				}
			}
		}
		if eof {
			break
		}
	}
	return res, flush()
}

// readLine reads one line into buf, without its end of line. A line
// longer than max is read to its end but not kept: tooLong says so.
// err is io.EOF for the last line, or whatever r returned.
func readLine(r *bufio.Reader, buf []byte, max int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(frag) > max+2 { // + "\r\n"
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		buf = bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r"))
		return buf, tooLong, err
	}
}

// parseImportLine reads one import line. bad, when not nil, tells why the
// line is refused; err is a failure to look a topic up.
func (s *Store) parseImportLine(b []byte, tooLong bool, defaultTZ string, topicExists func(string) (bool, error)) (l ImportLine, bad *ImportError, err error) {
	refuse := func(field, format string, args ...any) (ImportLine, *ImportError, error) {
		return ImportLine{}, &ImportError{Field: field, Message: fmt.Sprintf(format, args...)}, nil
	}
	if tooLong {
		return refuse("", "is longer than %d bytes", maxImportLine)
	}
	var w importWire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		field, msg := importJSONError(b, err)
		return refuse(field, "%s", msg)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return refuse("", "must hold one JSON object and nothing after it")
	}
	l.Contact = w.Contact(w.ID)
	if err := l.Contact.Normalize(defaultTZ); err != nil {
		var e *dispatcher.Error
		if errors.As(err, &e) {
			return refuse(e.Field, "%s", e.Message)
		}
		return refuse("", "%s", err.Error())
	}
	for i, c := range w.Consents {
		e := dispatcher.ConsentEvent{Channel: c.Channel, Topic: c.Topic, State: c.State, Source: cmp.Or(c.Source, "import"), Evidence: c.Evidence}
		if c.At != nil {
			e.At = c.At.UTC()
		}
		if err := e.Validate(); err != nil {
			var de *dispatcher.Error
			if errors.As(err, &de) {
				return refuse(fmt.Sprintf("consents[%d].%s", i, de.Field), "%s", de.Message)
			}
			return refuse(fmt.Sprintf("consents[%d]", i), "%s", err.Error())
		}
		ok, err := topicExists(e.Topic)
		if err != nil {
			return ImportLine{}, nil, fmt.Errorf("import: topic: %w", err)
		}
		if !ok {
			return refuse(fmt.Sprintf("consents[%d].topic", i), "names no topic")
		}
		l.Consents = append(l.Consents, e)
	}
	return l, nil, nil
}

// importJSONError names the field of a line that does not decode, and
// why, without quoting a value. An unknown field is found by a second,
// untyped read of the line, which also tells in which consent it is.
func importJSONError(b []byte, err error) (field, msg string) {
	var (
		te  *json.UnmarshalTypeError
		tpe *time.ParseError
	)
	switch {
	case errors.As(err, &te) && te.Field == "":
		return "", "must be a JSON object"
	case errors.As(err, &te):
		field = strings.TrimPrefix(te.Field, "ContactFields.") // encoding/json names the embedded struct
		if f, ok := strings.CutPrefix(field, "consents."); ok {
			field = "consents[]." + f // encoding/json does not say which consent
		}
		return field, "must be " + jsonKind(te.Type)
	case errors.As(err, &tpe):
		return "consents[].at", "must be a time in RFC 3339 form (2026-03-01T10:00:00Z)"
	case !strings.HasPrefix(err.Error(), "json: unknown field "):
		return "", "is not valid JSON"
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return "", "holds an unknown field"
	}
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if !importFields[k] {
			return dispatcher.Truncate(k, 64), "is not a known field"
		}
	}
	var consents []map[string]json.RawMessage
	if json.Unmarshal(top["consents"], &consents) == nil {
		for i, c := range consents {
			for _, k := range slices.Sorted(maps.Keys(c)) {
				if !consentFields[k] {
					return fmt.Sprintf("consents[%d].%s", i, dispatcher.Truncate(k, 64)), "is not a known field"
				}
			}
		}
	}
	return "", "holds an unknown field"
}

// jsonKind names the JSON type a field of an import line is read from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "an array"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "an object"
	}
	return "of another type"
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
	// The tags added, journaled before the records (see tagjournal.go).
	var journaled []TagJournalEntry
	added := map[string][]string{}
	if s.TagsAdded != nil {
		for i := range ls {
			for _, t := range ls[i].Tags {
				if prev[i] == nil || !slices.Contains(prev[i].Tags, t) {
					added[ls[i].ID] = append(added[ls[i].ID], t)
				}
			}
		}
		if len(added) > 0 {
			if journaled, err = s.journalTags(ctx, added, now); err != nil {
				return err
			}
		}
	}
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
		events := consentsAt(ls[i].Consents, now)
		if n, err := cmd.Int(); err != nil {
			return err
		} else if n == 0 {
			if _, err := s.ChangeConsents(ctx, ls[i].ID, false, func(*dispatcher.Contact, map[string]ConsentCurrent) []dispatcher.ConsentEvent {
				return events
			}); err != nil {
				return err
			}
		}
		if s.ConsentsImported != nil {
			s.ConsentsImported(ctx, ls[i].ID, events)
		}
	}
	if len(added) > 0 && s.TagsAdded(ctx, added) == nil {
		return s.AckTagJournal(ctx, journaled)
	}
	return nil
}

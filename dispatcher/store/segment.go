package store

import (
	"context"
)

// countChunk is how many contacts CountSegment reads per round trip.
const countChunk = 500

// CountSegment counts the contacts that belong to a segment now. It
// streams the contact index (or the static list) in pipelined chunks, so
// memory does not grow with the audience. Returns an error with code
// not_found if there is no such segment.
func (s *Store) CountSegment(ctx context.Context, id string) (int64, error) {
	sg, err := s.Segment(ctx, id)
	if err != nil {
		return 0, err
	}
	var n int64
	count := func(ids []string) error {
		cs, err := s.Contacts(ctx, ids)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c != nil && sg.Match(c) {
				n++
			}
		}
		return nil
	}
	if sg.Contacts != nil {
		for i := 0; i < len(sg.Contacts); i += countChunk {
			if err := count(sg.Contacts[i:min(i+countChunk, len(sg.Contacts))]); err != nil {
				return 0, err
			}
		}
		return n, nil
	}
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		ids, err := s.ContactIDs(ctx, after, countChunk)
		if err != nil {
			return 0, err
		}
		if len(ids) == 0 {
			return n, nil
		}
		if err := count(ids); err != nil {
			return 0, err
		}
		if len(ids) < countChunk {
			return n, nil
		}
		after = ids[len(ids)-1]
	}
}

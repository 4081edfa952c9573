package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/dispatcher"
)

// The tags an upsert adds are journaled, sealed, before the contact is
// written, and taken out once told; what a failed telling leaves is read
// back by age, and an entry that does not open comes back without a
// contact, to be dropped.
func TestTagJournal(t *testing.T) {
	t.Parallel()
	s, ctx := setup(t)
	var told []map[string][]string
	fail := true
	s.TagsAdded = func(_ context.Context, added map[string][]string) error {
		told = append(told, added)
		if fail {
			return errors.New("sequences unreachable")
		}
		return nil
	}
	if err := s.UpsertContact(ctx, &dispatcher.Contact{ID: "c1", Email: "c1@example.com", Tags: []string{"vip", "pregnant"}}, "UTC"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]map[string][]string{{"c1": {"pregnant", "vip"}}}, told); diff != "" {
		t.Fatalf("told (-want +got):\n%s", diff)
	}
	raw, err := s.Redis.ZRange(ctx, s.tagJournalKey(), 0, -1).Result()
	if err != nil || len(raw) != 1 || strings.Contains(raw[0], "pregnant") {
		t.Fatalf("journal %q %v: want one sealed entry", raw, err)
	}
	if es, err := s.TagJournal(ctx, testNow.Add(-time.Second), 10); err != nil || len(es) != 0 {
		t.Fatalf("entries before they were written: %v %v", es, err)
	}
	es, err := s.TagJournal(ctx, testNow, 10)
	if err != nil || len(es) != 1 || es[0].Contact != "c1" || !cmp.Equal(es[0].Tags, []string{"pregnant", "vip"}) {
		t.Fatalf("entries %+v %v", es, err)
	}
	if err := s.AckTagJournal(ctx, es); err != nil {
		t.Fatal(err)
	}

	// Told: nothing stays.
	fail = false
	if err := s.UpsertContact(ctx, &dispatcher.Contact{ID: "c1", Email: "c1@example.com", Tags: []string{"vip", "pregnant", "buyer"}}, "UTC"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Redis.ZCard(ctx, s.tagJournalKey()).Result(); err != nil || n != 0 {
		t.Fatalf("journal holds %d entries after a telling: %v", n, err)
	}

	// An entry moved to another contact does not open.
	if err := s.Redis.ZAdd(ctx, s.tagJournalKey(), redis.Z{Score: float64(ms(testNow)), Member: "c2\n" + strings.SplitN(raw[0], "\n", 2)[1]}).Err(); err != nil {
		t.Fatal(err)
	}
	if es, err := s.TagJournal(ctx, testNow, 10); err != nil || len(es) != 1 || es[0].Contact != "" {
		t.Fatalf("moved entry read as %+v %v", es, err)
	}
}

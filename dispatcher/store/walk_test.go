package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/dispatcher"
)

// The walks over the contact list (segment counts, key rotation, key
// usage) go through ContactIDs and see every contact once, across chunks.
func TestContactWalks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		contacts int
	}{
		{"empty", 0},
		{"one chunk", 3},
		{"chunks and a rest", 2*RotateChunk + 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := setup(t)
			ctx := context.Background()
			ls := make([]ImportLine, tt.contacts)
			for i := range ls {
				ls[i].Contact = dispatcher.Contact{ID: fmt.Sprintf("c-%05d", i), Email: fmt.Sprintf("p%d@example.com", i), Timezone: "UTC"}
				if i%2 == 0 {
					ls[i].Tags = []string{"even"}
				}
			}
			if len(ls) > 0 {
				if err := s.upsertMany(ctx, ls); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.PutSegment(ctx, &dispatcher.Segment{ID: "even", TagsAll: []string{"even"}}); err != nil {
				t.Fatal(err)
			}
			n, err := s.CountSegment(ctx, "even")
			if err != nil {
				t.Fatal(err)
			}
			if want := int64((tt.contacts + 1) / 2); n != want {
				t.Errorf("CountSegment = %d, want %d", n, want)
			}
			wantUsage := map[string]int64{}
			if tt.contacts > 0 {
				wantUsage["k1"] = int64(tt.contacts)
			}
			usage, err := s.ContactKeyUsage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantUsage, usage); diff != "" {
				t.Errorf("ContactKeyUsage before rotation (-want +got):\n%s", diff)
			}
			keys, err := NewKeyring(map[string][]byte{"k1": make32(1), "k2": make32(2)}, "k2")
			if err != nil {
				t.Fatal(err)
			}
			s.Keys = keys
			rotated, err := s.RotateContacts(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rotated != int64(tt.contacts) {
				t.Errorf("RotateContacts = %d, want %d", rotated, tt.contacts)
			}
			if usage, err = s.ContactKeyUsage(ctx); err != nil {
				t.Fatal(err)
			}
			delete(wantUsage, "k1")
			if tt.contacts > 0 {
				wantUsage["k2"] = int64(tt.contacts)
			}
			if diff := cmp.Diff(wantUsage, usage); diff != "" {
				t.Errorf("ContactKeyUsage after rotation (-want +got):\n%s", diff)
			}
			if _, err := s.Contact(ctx, "c-00000"); tt.contacts > 0 && err != nil {
				t.Errorf("contact after rotation: %v", err)
			}
		})
	}
}

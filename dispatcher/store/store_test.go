package store

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/dispatcher"
)

// TestContacts reads contacts, missing ones and every field included, in
// one call, on a single server (MGET) and on a Redis Cluster (GETs).
func TestContacts(t *testing.T) {
	t.Parallel()
	for _, cluster := range []bool{false, true} {
		t.Run(fmt.Sprintf("cluster=%v", cluster), func(t *testing.T) {
			if !cluster {
				t.Parallel()
			}
			var s *Store
			if cluster {
				s, _ = setupCluster(t)
			} else {
				s, _ = setup(t)
			}
			ctx := t.Context()
			full := &dispatcher.Contact{ID: "full", Email: "Ana@Example.com", Phone: "+33612345678", Timezone: "America/New_York", Locale: "fr-FR",
				Attributes: map[string]string{"first_name": "Anaïs", "plan": "gold & <co>"}, Tags: []string{"customer", "vip"}}
			var ids []string
			for i := range 1203 {
				id := fmt.Sprintf("c%04d", i)
				ids = append(ids, id)
				if i%100 == 7 {
					continue // missing
				}
				putContact(t, s, id, id+"@example.com")
			}
			if err := s.UpsertContact(ctx, full, "Europe/Paris"); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, "full")
			got, err := s.Contacts(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(ids) {
				t.Fatalf("%d contacts for %d ids", len(got), len(ids))
			}
			for i, id := range ids {
				switch {
				case i < 1203 && i%100 == 7:
					if got[i] != nil {
						t.Errorf("%s: %+v, want nil", id, got[i])
					}
				case got[i] == nil || got[i].ID != id:
					t.Errorf("contact %d: %+v, want %s", i, got[i], id)
				}
			}
			one, err := s.Contact(ctx, "full")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(one, got[len(got)-1]); diff != "" {
				t.Errorf("Contacts and Contact differ (-Contact +Contacts):\n%s", diff)
			}
			if got[len(got)-1].Attributes["plan"] != "gold & <co>" {
				t.Errorf("attributes: %v", got[len(got)-1].Attributes)
			}
		})
	}
}

// contactRecords are records decodeContact meets: as json.Marshal writes
// them, and as it may find them.
var contactRecords = []string{
	`{"id":"b0000042","email":"b0000042@example.com","timezone":"Europe/Paris","attributes":{"first_name":"Ana"},"tags":["customer"],"created_at":"2026-12-01T09:30:00Z","updated_at":"2026-12-01T09:30:00.123456789+01:00"}`,
	`{"id":"x","created_at":"0001-01-01T00:00:00Z","updated_at":"0001-01-01T00:00:00Z"}`,
	`{"id":"x","attributes":{},"tags":[]}`,
	`{"id":"x","phone":"+33612345678","locale":"fr","attributes":{"a":"1","b":"Anaïs","a":"2"}}`,
	`{}`,
	`{"id":"a\u0026b","email":"x\"y@example.com"}`,
	`{"ID":"x"}`,
	`{"id":"x","id":"y"}`,
	`{"id":"x","tags":["a"],"tags":["b"]}`,
	`{"id":null,"tags":null,"attributes":null}`,
	`{ "id" : "x" }`,
	`{"id":"x","extra":1}`,
	`{"id":"x","created_at":"2026-13-01T00:00:00Z"}`,
	`{"id":"x","created_at":"2026-12-01 00:00:00Z"}`,
	"{\"id\":\"\xff\"}",
	"{\"id\":\"a\tb\"}",
	`{"id":"x"}trailing`,
	`{"id":"x",}`,
	`{"id":"x"`,
	`[]`,
	``,
}

// FuzzDecodeContact: decodeContact reads every record as json.Unmarshal
// does, whichever path it takes.
func FuzzDecodeContact(f *testing.F) {
	for _, r := range contactRecords {
		f.Add([]byte(r))
	}
	f.Fuzz(func(t *testing.T, js []byte) {
		var want, got dispatcher.Contact
		wantErr := json.Unmarshal(js, &want)
		err := decodeContact(js, &got)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decodeContact(%q): error %v, json.Unmarshal: %v", js, err, wantErr)
		}
		if err == nil && !cmp.Equal(want, got) {
			t.Fatalf("decodeContact(%q) (-json.Unmarshal +decodeContact):\n%s", js, cmp.Diff(want, got))
		}
	})
}

// TestScanContactTakesMarshalled: what SealContact writes takes the fast
// path.
func TestScanContactTakesMarshalled(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 9, 30, 0, 123, time.FixedZone("", 3600))
	for _, c := range []dispatcher.Contact{
		{ID: "b0000042", Email: "b0000042@example.com", Timezone: "Europe/Paris", Attributes: map[string]string{"first_name": "Ana"},
			Tags: []string{"customer"}, CreatedAt: at, UpdatedAt: at},
		{ID: "x", Phone: "+33612345678", Locale: "fr", Attributes: map[string]string{"name": "Anaïs", "city": "Köln"}, Tags: []string{"a", "b"}},
		{},
	} {
		js, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var got dispatcher.Contact
		if !scanContact(js, &got) {
			t.Errorf("%s: not taken by the fast path", js)
			continue
		}
		if diff := cmp.Diff(c, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", js, diff)
		}
	}
}

// BenchmarkDecodeContact opens and decodes a record as the gate does, by
// decodeContact and by json.Unmarshal.
func BenchmarkDecodeContact(b *testing.B) {
	js := []byte(contactRecords[0])
	b.Run("decodeContact", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c dispatcher.Contact
			if err := decodeContact(js, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c dispatcher.Contact
			if err := json.Unmarshal(js, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

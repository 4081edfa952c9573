package store

import (
	"context"
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/throttle/redistest"
)

// testNow is the clock of every test store.
var testNow = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)

// setup returns a store on a real Redis under a key prefix of its own,
// sealing contacts under key "k1", and the test's context.
func setup(t testing.TB) (*Store, context.Context) {
	t.Helper()
	r := redistest.New(t)
	return newTestStore(t, r.Client, r.Prefix), t.Context()
}

// newTestStore returns the store of setup on rdb under prefix.
func newTestStore(t testing.TB, rdb Client, prefix string) *Store {
	t.Helper()
	s := NewStore(rdb, prefix, []byte("test-secret-test-secret-test-secret!"), func() time.Time { return testNow }, time.Hour)
	keys, err := NewKeyring(map[string][]byte{"k1": make32(1)}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	s.Keys = keys
	return s
}

// putContact stores a contact with an email address.
func putContact(t *testing.T, s *Store, id, email string) {
	t.Helper()
	if err := s.UpsertContact(context.Background(), &dispatcher.Contact{ID: id, Email: email}, "Europe/Paris"); err != nil {
		t.Fatal(err)
	}
}

// ttlAbout fails t unless key expires in (want-1m, want].
func ttlAbout(t *testing.T, s *Store, key string, want time.Duration) {
	t.Helper()
	got, err := s.Redis.TTL(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got <= want-time.Minute || got > want {
		t.Errorf("TTL of %s: %s, want %s", key, got, want)
	}
}

func make32(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b
	}
	return k
}

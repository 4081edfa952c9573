package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/dispatcher"
)

// testKey returns a random 32-byte data key.
func testKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newRing(t testing.TB, active string, keys map[string][]byte) *Keyring {
	t.Helper()
	r, err := NewKeyring(keys, active)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestKeyringRoundTrip(t *testing.T) {
	t.Parallel()
	k := newRing(t, "a1", map[string][]byte{"a1": testKey(t)})
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte(`{"email":"ana@example.com"}`), 100)} {
		sealed := k.Seal(pt, []byte("contact:ana"))
		if !bytes.HasPrefix(sealed, []byte("v1\x02a1")) {
			t.Errorf("sealed value starts with %q, want v1, the id length and the id", sealed[:min(5, len(sealed))])
		}
		if want := 2 + 1 + 2 + 12 + len(pt) + 16; len(sealed) != want {
			t.Errorf("sealed %d bytes into %d, want %d", len(pt), len(sealed), want)
		}
		got, id, err := k.Open(sealed, []byte("contact:ana"))
		if err != nil || id != "a1" || !bytes.Equal(got, pt) {
			t.Errorf("Open = %q, %q, %v; want the plaintext, a1, nil", got, id, err)
		}
	}
	if a, b := k.Seal([]byte("same"), nil), k.Seal([]byte("same"), nil); bytes.Equal(a, b) {
		t.Error("two seals of the same plaintext are equal: the nonce is not random")
	}
}

func TestKeyringRefusesWhatWasNotSealedForIt(t *testing.T) {
	t.Parallel()
	k := newRing(t, "a", map[string][]byte{"a": testKey(t)})
	aad := []byte("contact:ana")
	sealed := k.Seal([]byte(`{"email":"ana@example.com"}`), aad)

	if _, _, err := k.Open(sealed, []byte("contact:bob")); !errors.Is(err, ErrSealed) {
		t.Errorf("open with another record's AAD: %v, want ErrSealed", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, _, err := k.Open(bad, aad); err == nil {
			t.Errorf("a value with byte %d flipped opens", i)
		}
	}
	for _, n := range []int{0, 2, 4, 4 + 11, len(sealed) - 1} {
		if _, _, err := k.Open(sealed[:n], aad); err == nil {
			t.Errorf("a value cut to %d bytes opens", n)
		}
	}

	other := newRing(t, "b", map[string][]byte{"b": testKey(t)})
	_, id, err := other.Open(sealed, aad)
	if !errors.Is(err, ErrUnknownDataKey) || id != "a" {
		t.Errorf("open under a ring without key a: %q, %v; want a, ErrUnknownDataKey", id, err)
	}
	// Same id, another key: the value does not authenticate.
	impostor := newRing(t, "a", map[string][]byte{"a": testKey(t)})
	if _, _, err := impostor.Open(sealed, aad); !errors.Is(err, ErrSealed) {
		t.Errorf("open under another key with the same id: %v, want ErrSealed", err)
	}
}

func TestKeyringOldKeyOpensAfterRotation(t *testing.T) {
	t.Parallel()
	ka, kb := testKey(t), testKey(t)
	before := newRing(t, "a", map[string][]byte{"a": ka})
	old := before.Seal([]byte("kept"), []byte("contact:x"))

	after := newRing(t, "b", map[string][]byte{"a": ka, "b": kb})
	if got, id, err := after.Open(old, []byte("contact:x")); err != nil || id != "a" || string(got) != "kept" {
		t.Errorf("old value under the rotated ring: %q, %q, %v", got, id, err)
	}
	fresh := after.Seal([]byte("new"), []byte("contact:x"))
	if id, ok := SealedKeyID(fresh); !ok || id != "b" {
		t.Errorf("the rotated ring seals under %q, want b", id)
	}
	if _, _, err := before.Open(fresh, []byte("contact:x")); !errors.Is(err, ErrUnknownDataKey) {
		t.Errorf("a ring without the new key opens its values: %v", err)
	}
}

func TestNewKeyringValidates(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	for name, tc := range map[string]struct {
		keys   map[string][]byte
		active string
	}{
		"no keys":        {map[string][]byte{}, "a"},
		"short key":      {map[string][]byte{"a": key[:16]}, "a"},
		"upper-case id":  {map[string][]byte{"A": key}, "A"},
		"long id":        {map[string][]byte{strings.Repeat("a", 17): key}, strings.Repeat("a", 17)},
		"missing active": {map[string][]byte{"a": key}, "b"},
	} {
		if _, err := NewKeyring(tc.keys, tc.active); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "\x00\x00\x00\x00") {
			t.Errorf("%s: the error shows the key", name)
		}
	}
}

func FuzzKeyringOpen(f *testing.F) {
	k := newRing(f, "a", map[string][]byte{"a": make([]byte, 32)})
	f.Add(k.Seal([]byte("hello"), []byte("contact:x")))
	f.Add([]byte("v1\x10"))
	f.Add([]byte("v1\x01a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if pt, _, err := k.Open(b, []byte("contact:x")); err == nil && string(pt) != "hello" {
			t.Errorf("forged value opens: %q", pt)
		}
	})
}

// --- contacts at rest

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
			s, ctx := setup(t)
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
			usage, err := s.DataKeyUsage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantUsage, usage.Contacts); diff != "" {
				t.Errorf("DataKeyUsage before rotation (-want +got):\n%s", diff)
			}
			keys, err := NewKeyring(map[string][]byte{"k1": make32(1), "k2": make32(2)}, "k2")
			if err != nil {
				t.Fatal(err)
			}
			s.Keys = keys
			rotated, err := s.RotateData(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if rotated.Contacts != int64(tt.contacts) {
				t.Errorf("RotateData = %+v, want %d contacts", rotated, tt.contacts)
			}
			if usage, err = s.DataKeyUsage(ctx); err != nil {
				t.Fatal(err)
			}
			delete(wantUsage, "k1")
			if tt.contacts > 0 {
				wantUsage["k2"] = int64(tt.contacts)
			}
			if diff := cmp.Diff(wantUsage, usage.Contacts); diff != "" {
				t.Errorf("DataKeyUsage after rotation (-want +got):\n%s", diff)
			}
			if _, err := s.Contact(ctx, "c-00000"); tt.contacts > 0 && err != nil {
				t.Errorf("contact after rotation: %v", err)
			}
		})
	}
}

func TestAnnounceKeysListsLiveProcessesOnly(t *testing.T) {
	s, ctx := setup(t)
	stopA, err := s.AnnounceKeys(ctx, "worker", nil)
	if err != nil {
		t.Fatal(err)
	}
	other := newTestStore(t, s.Redis, s.p)
	other.Keys = newRing(t, "k2", map[string][]byte{"k1": make32(1), "k2": make32(2)})
	stopB, err := other.AnnounceKeys(ctx, "api", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stopB()

	got, err := s.KeyHolders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("KeyHolders = %+v, want 2 processes", got)
	}
	byRole := map[string]KeyHolder{}
	for _, h := range got {
		byRole[h.Role] = h
		if len(h.Process) != 16 {
			t.Errorf("process id %q, want 16 hex digits", h.Process)
		}
		ttlAbout(t, s, s.keyHolderKey(h.Process), KeyHolderTTL)
		raw, err := s.Redis.Get(ctx, s.keyHolderKey(h.Process)).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, make32(1)) || bytes.Contains(raw, make32(2)) {
			t.Error("an announcement holds a key")
		}
	}
	if diff := cmp.Diff(KeyHolder{Process: byRole["worker"].Process, Role: "worker", Active: "k1", Keys: []string{"k1"}}, byRole["worker"]); diff != "" {
		t.Errorf("worker's announcement (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(KeyHolder{Process: byRole["api"].Process, Role: "api", Active: "k2", Keys: []string{"k1", "k2"}}, byRole["api"]); diff != "" {
		t.Errorf("api's announcement (-want +got):\n%s", diff)
	}
	if !byRole["api"].Holds("k2") || byRole["api"].Holds("k1") || byRole["worker"].Holds("k2") {
		t.Error("Holds: want true only for the key a process seals with")
	}

	// A process that stops withdraws its announcement.
	stopA()
	if got, err := s.KeyHolders(ctx); err != nil || len(got) != 1 || got[0].Role != "api" {
		t.Errorf("after the worker stopped: %+v, %v; want the api only", got, err)
	}
	// One killed is forgotten once its announcement expired.
	if err := s.Redis.Del(ctx, s.keyHolderKey(byRole["api"].Process)).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.KeyHolders(ctx); err != nil || len(got) != 0 {
		t.Errorf("after the api's announcement expired: %+v, %v; want none", got, err)
	}
	if n, err := s.Redis.SCard(ctx, s.keyHoldersKey()).Result(); err != nil || n != 0 {
		t.Errorf("index holds %d processes (%v) after both left, want 0", n, err)
	}
}

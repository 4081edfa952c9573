package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
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

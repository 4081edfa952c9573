package templates

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func newTestSigner(t testing.TB, keys map[string][]byte, active string) *Signer {
	t.Helper()
	s, err := NewSigner(keys, active)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var testClaims = Claims{Contact: "c-42", Channel: "email", Topic: "promotions", Send: "run-7:c-42:email"}

func TestTokenRoundTrip(t *testing.T) {
	s := newTestSigner(t, map[string][]byte{"k1": testKey(1)}, "k1")
	for _, c := range []Claims{
		testClaims,
		{Contact: "c", Channel: "sms"},
		{Contact: strings.Repeat("é", MaxClaimLen/2), Channel: strings.Repeat("x", MaxClaimLen), Topic: strings.Repeat("t", MaxClaimLen), Send: strings.Repeat("s", MaxClaimLen)},
		{Contact: "a.b/c?d=e&f", Channel: "email", Topic: "x.y"},
	} {
		tok, err := s.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) > MaxTokenLen {
			t.Errorf("token of %d bytes, over %d", len(tok), MaxTokenLen)
		}
		if strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
			t.Errorf("token %q is not URL-safe", tok)
		}
		got, err := s.Verify(tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if diff := cmp.Diff(c, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		again, _ := s.Sign(c)
		if again != tok {
			t.Error("Sign is not deterministic")
		}
	}
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestTokenEverySingleByteAlterationFails(t *testing.T) {
	s := newTestSigner(t, map[string][]byte{"k1": testKey(1)}, "k1")
	tok, err := s.Sign(testClaims)
	if err != nil {
		t.Fatal(err)
	}
	subst := b64Alphabet + ".=+/ %\x00\xff"
	for i := range len(tok) {
		for j := range len(subst) {
			if subst[j] == tok[i] {
				continue
			}
			altered := tok[:i] + subst[j:j+1] + tok[i+1:]
			if _, err := s.Verify(altered); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("altered at %d to %q: err = %v, want ErrInvalidToken", i, subst[j], err)
			}
		}
		// Dropping or inserting a byte fails too.
		if _, err := s.Verify(tok[:i] + tok[i+1:]); err == nil {
			t.Fatalf("token without byte %d verifies", i)
		}
		for _, ins := range []string{"A", "\r", "\n", "\r\n", "=", " "} {
			if _, err := s.Verify(tok[:i] + ins + tok[i:]); err == nil {
				t.Fatalf("token with %q inserted at %d verifies", ins, i)
			}
		}
	}
}

func TestTokenTruncationFails(t *testing.T) {
	s := newTestSigner(t, map[string][]byte{"k1": testKey(1)}, "k1")
	tok, _ := s.Sign(testClaims)
	for n := range len(tok) {
		if _, err := s.Verify(tok[:n]); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("prefix of %d bytes: err = %v, want ErrInvalidToken", n, err)
		}
	}
	if _, err := s.Verify(tok + "A"); err == nil {
		t.Fatal("token with a trailing byte verifies")
	}
}

func TestTokenKeys(t *testing.T) {
	s1 := newTestSigner(t, map[string][]byte{"k1": testKey(1)}, "k1")
	tok, _ := s1.Sign(testClaims)

	t.Run("re-signed with another key under the same id", func(t *testing.T) {
		forger := newTestSigner(t, map[string][]byte{"k1": testKey(2)}, "k1")
		forged, _ := forger.Sign(Claims{Contact: "someone-else", Channel: "email", Topic: "promotions"})
		if _, err := s1.Verify(forged); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("err = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("unknown key id", func(t *testing.T) {
		other := newTestSigner(t, map[string][]byte{"zz9": testKey(1)}, "zz9")
		unknown, _ := other.Sign(testClaims)
		if _, err := s1.Verify(unknown); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("err = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("rotation keeps old tokens valid", func(t *testing.T) {
		s2 := newTestSigner(t, map[string][]byte{"k1": testKey(1), "k2": testKey(3)}, "k2")
		got, err := s2.Verify(tok)
		if err != nil || got != testClaims {
			t.Fatalf("old token after rotation: %+v, %v", got, err)
		}
		fresh, _ := s2.Sign(testClaims)
		if fresh == tok {
			t.Error("new token still signed with the old key")
		}
		if _, err := s2.Verify(fresh); err != nil {
			t.Errorf("new token: %v", err)
		}
		// Once k1 is retired, its tokens stop working.
		s3 := newTestSigner(t, map[string][]byte{"k2": testKey(3)}, "k2")
		if _, err := s3.Verify(tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("retired key: err = %v, want ErrInvalidToken", err)
		}
		if _, err := s3.Verify(fresh); err != nil {
			t.Errorf("fresh token under s3: %v", err)
		}
	})
	t.Run("other contact cannot be claimed without the key", func(t *testing.T) {
		enc, sig, _ := strings.Cut(tok, ".")
		p, err := b64.DecodeString(enc)
		if err != nil {
			t.Fatal(err)
		}
		swapped := bytes.Replace(p, []byte("c-42"), []byte("c-43"), 1)
		if bytes.Equal(swapped, p) {
			t.Fatal("contact not found in payload")
		}
		if _, err := s1.Verify(b64.EncodeToString(swapped) + "." + sig); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("err = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("too long before decoding", func(t *testing.T) {
		if _, err := s1.Verify(strings.Repeat("A", MaxTokenLen+1)); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("err = %v, want ErrInvalidToken", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		for _, bad := range []string{"", ".", "abc", "abc.", ".abc", "a.b.c", tok + "." + "AAAA", "AQ.AAAAAAAAAAAAAAAAAAAAAA"} {
			if _, err := s1.Verify(bad); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify(%q) err = %v, want ErrInvalidToken", bad, err)
			}
		}
	})
}

func TestSignRejects(t *testing.T) {
	s := newTestSigner(t, map[string][]byte{"k1": testKey(1)}, "k1")
	for name, c := range map[string]Claims{
		"no contact":       {Channel: "email"},
		"no channel":       {Contact: "c"},
		"control char":     {Contact: "c\n", Channel: "email"},
		"NUL":              {Contact: "c", Channel: "email", Topic: "a\x00b"},
		"invalid UTF-8":    {Contact: "c\xff", Channel: "email"},
		"field too long":   {Contact: "c", Channel: "email", Send: strings.Repeat("s", MaxClaimLen+1)},
		"contact too long": {Contact: strings.Repeat("c", MaxClaimLen+1), Channel: "email"},
	} {
		if tok, err := s.Sign(c); err == nil {
			t.Errorf("%s: Sign = %q, want an error", name, tok)
		}
	}
}

func TestNewSignerRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		keys   map[string][]byte
		active string
	}{
		"no keys":        {nil, "k1"},
		"short key":      {map[string][]byte{"k1": make([]byte, 31)}, "k1"},
		"upper case id":  {map[string][]byte{"K1": testKey(1)}, "K1"},
		"dot in id":      {map[string][]byte{"k.1": testKey(1)}, "k.1"},
		"empty id":       {map[string][]byte{"": testKey(1)}, ""},
		"long id":        {map[string][]byte{strings.Repeat("k", 17): testKey(1)}, strings.Repeat("k", 17)},
		"missing active": {map[string][]byte{"k1": testKey(1)}, "k2"},
	} {
		if _, err := NewSigner(tc.keys, tc.active); err == nil {
			t.Errorf("%s: NewSigner succeeded", name)
		}
	}
}

func TestSignerDoesNotKeepCallerKeys(t *testing.T) {
	key := testKey(1)
	s := newTestSigner(t, map[string][]byte{"k1": key}, "k1")
	tok, _ := s.Sign(testClaims)
	key[0] ^= 0xff
	if _, err := s.Verify(tok); err != nil {
		t.Errorf("changing the caller's key slice changed the signer: %v", err)
	}
}

func TestLinkURLs(t *testing.T) {
	if got, want := UnsubscribeURL("https://mail.example.com/", "T.S"), "https://mail.example.com/u/T.S"; got != want {
		t.Errorf("UnsubscribeURL = %q, want %q", got, want)
	}
	if got, want := PreferencesURL("https://mail.example.com", "T.S"), "https://mail.example.com/preferences/T.S"; got != want {
		t.Errorf("PreferencesURL = %q, want %q", got, want)
	}
}

package templates

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidToken is the only error Verify returns. It never says which
// part of the token was wrong.
var ErrInvalidToken = errors.New("invalid token")

// Claims is what an unsubscribe or preference token stands for: the POST of
// a one-click unsubscribe carries no cookie, so the token alone names the
// contact, the channel and the topic. Send, optional, names the send the
// link came from (for the consent ledger's evidence).
type Claims struct {
	Contact string `json:"contact"`
	Channel string `json:"channel"`
	Topic   string `json:"topic"`
	Send    string `json:"send"`
}

// Token layout (before base64url without padding):
//
//	payload = version(1) | len(kid)(1) | kid | 4 x (len(1) | field)
//	token   = b64(payload) "." b64(HMAC-SHA256(subkey(kid), payload)[:16])
//
// Fields are length-prefixed, so no separator can be smuggled through a
// field; Sign still refuses control characters, invalid UTF-8 and fields
// over MaxClaimLen bytes, which keeps every token under MaxTokenLen.
const (
	tokenVersion = 1
	macLen       = 16
	// MaxClaimLen is the longest claim field, in bytes.
	MaxClaimLen = 128
	// MaxTokenLen is the longest token Verify looks at.
	MaxTokenLen = 1024
	// MinKeyLen is the shortest accepted key.
	MinKeyLen = 32
	maxKeyID  = 16
)

var b64 = base64.RawURLEncoding.Strict()

// Signer signs and verifies tokens under a keyring. Sign uses the active
// key; Verify accepts any key of the ring, so tokens in mail already sent
// keep working after a rotation until their key is dropped. A Signer is
// safe for concurrent use.
type Signer struct {
	keys   map[string]*sync.Pool // key id -> HMACs keyed with its subkey
	active string
}

// NewSigner returns a Signer for keys (id -> secret) signing with active.
// Key ids are 1 to 16 characters from [a-z0-9]; keys are at least
// MinKeyLen bytes. The secrets are not used directly: each is turned into a
// subkey for tokens, so the same secret may serve other purposes (hashes,
// blind indexes) without one MAC standing for another.
func NewSigner(keys map[string][]byte, active string) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("templates: new signer: no keys")
	}
	s := &Signer{keys: make(map[string]*sync.Pool, len(keys)), active: active}
	for id, k := range keys {
		if !validKeyID(id) {
			return nil, fmt.Errorf("templates: new signer: key id %q: want 1 to %d characters from [a-z0-9]", id, maxKeyID)
		}
		if len(k) < MinKeyLen {
			return nil, fmt.Errorf("templates: new signer: key %q: shorter than %d bytes", id, MinKeyLen)
		}
		m := hmac.New(sha256.New, k)
		m.Write([]byte("missive/templates/token/v1"))
		// Keying an HMAC costs more than a token's MAC: each key keeps
		// its keyed HMACs for reuse.
		sub := m.Sum(nil)
		s.keys[id] = &sync.Pool{New: func() any { return hmac.New(sha256.New, sub) }}
	}
	if _, ok := s.keys[active]; !ok {
		return nil, fmt.Errorf("templates: new signer: active key %q is not in the keyring", active)
	}
	return s, nil
}

func validKeyID(id string) bool {
	if id == "" || len(id) > maxKeyID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Sign returns a compact URL-safe token for c under the active key. Contact
// and Channel are required; every field must be valid UTF-8 without control
// characters and at most MaxClaimLen bytes. Signing is deterministic: the
// same claims under the same key give the same token.
func (s *Signer) Sign(c Claims) (string, error) {
	if c.Contact == "" || c.Channel == "" {
		return "", errors.New("templates: sign: contact and channel are required")
	}
	fields := [4]string{c.Contact, c.Channel, c.Topic, c.Send}
	names := [4]string{"contact", "channel", "topic", "send"}
	for i, f := range fields {
		if err := checkClaim(f); err != nil {
			return "", fmt.Errorf("templates: sign: %s: %w", names[i], err)
		}
	}
	p := make([]byte, 0, 2+len(s.active)+4+len(c.Contact)+len(c.Channel)+len(c.Topic)+len(c.Send))
	p = append(p, tokenVersion, byte(len(s.active)))
	p = append(p, s.active...)
	for _, f := range fields {
		p = append(p, byte(len(f)))
		p = append(p, f...)
	}
	return b64.EncodeToString(p) + "." + b64.EncodeToString(s.mac(s.keys[s.active], p)), nil
}

func checkClaim(f string) error {
	if len(f) > MaxClaimLen {
		return fmt.Errorf("longer than %d bytes", MaxClaimLen)
	}
	if !utf8.ValidString(f) {
		return errors.New("invalid UTF-8")
	}
	if strings.IndexFunc(f, unicode.IsControl) >= 0 {
		return errors.New("control character")
	}
	return nil
}

func (s *Signer) mac(key *sync.Pool, payload []byte) []byte {
	m := key.Get().(hash.Hash)
	m.Reset()
	m.Write(payload)
	sum := m.Sum(make([]byte, 0, sha256.Size))[:macLen]
	key.Put(m)
	return sum
}

// Verify checks token and returns its claims. It returns ErrInvalidToken
// for anything it cannot vouch for: too long, malformed, altered,
// truncated, signed with a key outside the ring, or an unknown version.
// The MAC is compared in constant time.
func (s *Signer) Verify(token string) (Claims, error) {
	if len(token) > MaxTokenLen {
		return Claims{}, ErrInvalidToken
	}
	enc, encMAC, ok := strings.Cut(token, ".")
	// The decoder skips CR and LF, so "AB\nCD" would decode like "ABCD":
	// check the alphabet first, so that a token has one spelling only.
	if !ok || len(encMAC) != b64.EncodedLen(macLen) || !isB64(enc) || !isB64(encMAC) {
		return Claims{}, ErrInvalidToken
	}
	sum, err := b64.DecodeString(encMAC)
	if err != nil || len(sum) != macLen {
		return Claims{}, ErrInvalidToken
	}
	p, err := b64.DecodeString(enc)
	if err != nil || len(p) < 2 || p[0] != tokenVersion {
		return Claims{}, ErrInvalidToken
	}
	n := int(p[1])
	if n == 0 || n > maxKeyID || len(p) < 2+n {
		return Claims{}, ErrInvalidToken
	}
	key, ok := s.keys[string(p[2:2+n])]
	if !ok {
		return Claims{}, ErrInvalidToken
	}
	if !hmac.Equal(sum, s.mac(key, p)) {
		return Claims{}, ErrInvalidToken
	}
	// The MAC holds, so the payload is ours; parse it strictly all the
	// same.
	rest := p[2+n:]
	var fields [4]string
	for i := range fields {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return Claims{}, ErrInvalidToken
		}
		l := int(rest[0])
		fields[i] = string(rest[1 : 1+l])
		rest = rest[1+l:]
	}
	if len(rest) != 0 || fields[0] == "" || fields[1] == "" {
		return Claims{}, ErrInvalidToken
	}
	return Claims{Contact: fields[0], Channel: fields[1], Topic: fields[2], Send: fields[3]}, nil
}

func isB64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// UnsubscribeURL returns the one-click unsubscribe URL for token under the
// public base URL ("https://example.com" -> "https://example.com/u/TOKEN").
func UnsubscribeURL(base, token string) string {
	return strings.TrimRight(base, "/") + "/u/" + token
}

// PreferencesURL returns the preference page URL for token.
func PreferencesURL(base, token string) string {
	return strings.TrimRight(base, "/") + "/preferences/" + token
}

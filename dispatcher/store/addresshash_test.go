package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"

	"github.com/missive-dev/missive/channels"
)

// AddressHash is the first 20 bytes of HMAC-SHA256(secret, channel, 0,
// normalised address), in hex, whoever asks, however many at once: the
// suppression list and the address index depend on it not changing.
func TestAddressHashIsStable(t *testing.T) {
	t.Parallel()
	secret := make32('s')
	s := NewStore(nil, "p", secret, nil, 0)
	want := func(k channels.Kind, norm string) string {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(k))
		m.Write([]byte{0})
		m.Write([]byte(norm))
		return hex.EncodeToString(m.Sum(nil)[:20])
	}
	if got, w := s.AddressHash(channels.Email, " Ann@Example.org "), want(channels.Email, "ann@example.org"); got != w {
		t.Errorf("email: %s, want %s", got, w)
	}
	if got, w := s.AddressHash(channels.SMS, "+33612345678 "), want(channels.SMS, "+33612345678"); got != w {
		t.Errorf("sms: %s, want %s", got, w)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				addr := fmt.Sprintf("user%d.%d@example.com", g, i)
				if got, w := s.AddressHash(channels.Email, addr), want(channels.Email, addr); got != w {
					t.Errorf("%s: %s, want %s", addr, got, w)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkAddressHash(b *testing.B) {
	s := NewStore(nil, "p", make32('s'), nil, 0)
	b.ReportAllocs()
	for b.Loop() {
		s.AddressHash(channels.Email, "someone.quite.long@example.com")
	}
}

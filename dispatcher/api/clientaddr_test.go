package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/missive-dev/missive/dispatcher"
)

var proxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, peer, header, value, want string
	}{
		{"no proxy: the peer", "192.0.2.7:4000", HeaderXForwardedFor, "198.51.100.1", "192.0.2.7"},
		{"an untrusted peer's header is ignored", "192.0.2.7:4000", HeaderForwarded, "for=198.51.100.1", "192.0.2.7"},
		{"a trusted proxy names the client", "10.1.2.3:4000", HeaderXForwardedFor, "198.51.100.1", "198.51.100.1"},
		{"what the client wrote itself is ignored", "10.1.2.3:4000", HeaderXForwardedFor, "203.0.113.9, 198.51.100.1", "198.51.100.1"},
		{"a chain of trusted proxies", "10.1.2.3:4000", HeaderXForwardedFor, "203.0.113.9, 198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"every hop trusted: the first", "10.1.2.3:4000", HeaderXForwardedFor, "10.7.7.7, 10.9.9.9", "10.7.7.7"},
		{"no header: the proxy", "10.1.2.3:4000", HeaderXForwardedFor, "", "10.1.2.3"},
		{"garbage stops at the last trusted hop", "10.1.2.3:4000", HeaderXForwardedFor, "198.51.100.1, nonsense", "10.1.2.3"},
		{"IPv6 peer and client", "[2001:db8:ffff::1]:4000", HeaderXForwardedFor, "2001:db8:1::5", "2001:db8:1::5"},
		{"Forwarded, quoted IPv6 with a port", "10.1.2.3:4000", HeaderForwarded, `for=203.0.113.9, for="[2001:db8:1::5]:4711";proto=https`, "2001:db8:1::5"},
		{"Forwarded, IPv4 with a port", "10.1.2.3:4000", HeaderForwarded, "for=198.51.100.1:555;by=10.1.2.3", "198.51.100.1"},
		{"Forwarded, obfuscated", "10.1.2.3:4000", HeaderForwarded, "for=_hidden", "10.1.2.3"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:4000", HeaderXForwardedFor, "198.51.100.1", "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/subscribe", nil)
			r.RemoteAddr = tt.peer
			if tt.value != "" {
				r.Header.Set(tt.header, tt.value)
			}
			if got := clientAddr(r, proxies, tt.header); got.String() != tt.want {
				t.Errorf("clientAddr = %s, want %s", got, tt.want)
			}
		})
	}
}

// Behind a reverse proxy, the sign-up limit counts each client, not the
// proxy; headers from anyone but the proxy change nothing.
func TestSubscribeLimitBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	must(t, b.d.Store.PutTopic(context.Background(), &dispatcher.Topic{ID: "newsletter", Kind: dispatcher.Marketing}))
	h := New(b.d, Config{TrustedProxies: proxies})
	post := func(peer, xff string) int {
		r := httptest.NewRequest("POST", "/subscribe", strings.NewReader(`{"topics":["newsletter"]}`))
		r.RemoteAddr = peer
		r.Header.Set("Content-Type", "application/json")
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	// Ten clients through the proxy, one request each: none is limited
	// (422: the body names no address).
	for i := range 10 {
		if code := post("10.0.0.1:5000", fmt.Sprintf("198.51.100.%d", i)); code != http.StatusUnprocessableEntity {
			t.Fatalf("client %d through the proxy: %d, want 422", i, code)
		}
	}
	// One client through the proxy, forging what it can: limited at the 6th.
	for i := range 6 {
		code := post("10.0.0.1:5000", fmt.Sprintf("203.0.113.%d, 198.51.100.200", i))
		if want := map[bool]int{true: http.StatusTooManyRequests, false: http.StatusUnprocessableEntity}[i == 5]; code != want {
			t.Fatalf("request %d of one client: %d, want %d", i, code, want)
		}
	}
	// A client that is not a proxy cannot pick its address.
	for i := range 6 {
		code := post("192.0.2.9:5000", fmt.Sprintf("198.51.100.%d", 100+i))
		if want := map[bool]int{true: http.StatusTooManyRequests, false: http.StatusUnprocessableEntity}[i == 5]; code != want {
			t.Fatalf("request %d of an untrusted peer: %d, want %d", i, code, want)
		}
	}
	// An IPv6 client counts by /64: rotating addresses inside it does not help.
	for i := range 6 {
		code := post(fmt.Sprintf("[2001:db8:5:6::%x]:5000", i+1), "")
		if want := map[bool]int{true: http.StatusTooManyRequests, false: http.StatusUnprocessableEntity}[i == 5]; code != want {
			t.Fatalf("request %d from one /64: %d, want %d", i, code, want)
		}
	}
}

package api

// The client's address, as the sign-up limit and the sign-up evidence
// take it: the connection's peer, or, when that peer is a trusted reverse
// proxy, the address the proxies say they received the request from.

import (
	"net/http"
	"net/netip"
	"strings"
)

// Headers a reverse proxy may name the client in (Config.ClientIPHeader).
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded"
)

// clientAddr returns the client's address. The peer is the client unless
// it is in trusted: then the proxies' header (X-Forwarded-For, or RFC 7239
// Forwarded "for=") is read from its last entry back, skipping trusted
// proxies, and the first address that is not one is the client. Entries
// to its left were written by the client and are never believed. An entry
// that is not an address (an obfuscated RFC 7239 identifier, "unknown",
// garbage) stops the walk at the last trusted hop. The zero Addr when
// the peer is not an IP address.
func clientAddr(r *http.Request, trusted []netip.Prefix, header string) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	var hops []string
	for _, v := range r.Header.Values(header) {
		for _, e := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(e))
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		var a netip.Addr
		if header == HeaderForwarded {
			a = forwardedFor(hops[i])
		} else {
			a = hopAddr(hops[i])
		}
		if !a.IsValid() {
			return client
		}
		client = a
		if !isTrusted(a, trusted) {
			return a
		}
	}
	return client
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr reads a RemoteAddr, "192.0.2.1:4711" or "[2001:db8::1]:4711".
func peerAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}

// hopAddr reads one X-Forwarded-For entry: an address, possibly with a
// port or in brackets.
func hopAddr(s string) netip.Addr {
	s = strings.Trim(s, `"`)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	return a.Unmap()
}

// forwardedFor reads the for= parameter of one RFC 7239 element,
// `for=192.0.2.60;proto=http` or `for="[2001:db8::1]:4711"`.
func forwardedFor(elem string) netip.Addr {
	for _, pair := range strings.Split(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if ok && strings.EqualFold(k, "for") {
			return hopAddr(v)
		}
	}
	return netip.Addr{}
}

// limitPrefix is the part of a client address that the sign-up limit
// counts: an IPv6 client holds a whole /64, so the limit counts /64s, not
// the addresses it could rotate through.
func limitPrefix(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// ClientAddr is the client's address as the API takes it (clientAddr),
// for the other handlers of the same listener: the console's sign-in
// lock-out counts failures per client with it.
func ClientAddr(r *http.Request, trusted []netip.Prefix, header string) netip.Addr {
	return clientAddr(r, trusted, header)
}

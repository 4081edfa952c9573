package twilioproto

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ValidSignature reports whether signature is Twilio's X-Twilio-Signature
// for a webhook request to fullURL (the public URL Twilio called, query
// included) with the given POST parameters, under authToken: the base64
// HMAC-SHA1, keyed with the token, of the URL followed by each parameter's
// name and value, sorted by name. Comparisons take constant time.
//
// It is twilio-go's RequestValidator.Validate, step for step (a test holds
// the two to the same answers): like it, it accepts the signature of the
// URL with its default port made explicit (":443" for https, ":80"
// otherwise) or with its port removed, since Twilio has signed both ways.
//
// A parameter given several times cannot be checked with one value per
// name; Twilio never sends one twice, so a caller should refuse such a
// form rather than pick a value.
func ValidSignature(authToken, fullURL string, params map[string]string, signature string) bool {
	var p strings.Builder
	for _, name := range slices.Sorted(maps.Keys(params)) {
		p.WriteString(name)
		p.WriteString(params[name])
	}
	key := []byte(authToken)
	withPort := sign(key, withDefaultPort(fullURL)+p.String())
	withoutPort := sign(key, withoutPort(fullURL)+p.String())
	// Both are compared, whatever the first gives, so that the time taken
	// does not tell which form of the URL matched.
	a := subtle.ConstantTimeCompare([]byte(withPort), []byte(signature))
	b := subtle.ConstantTimeCompare([]byte(withoutPort), []byte(signature))
	return a|b == 1
}

func sign(key []byte, s string) string {
	h := hmac.New(sha1.New, key)
	h.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// withDefaultPort is twilio-go's addPort: the URL with ":443" (https) or
// ":80" (any other scheme) after the host when it has no port, re-encoded
// by net/url; unchanged when it has a port or does not parse.
func withDefaultPort(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Port() != "" {
		return s
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	u.Host += ":" + strconv.Itoa(port)
	return u.String()
}

// withoutPort is twilio-go's removePort: the URL with the host cut at its
// first colon when it has a port, re-encoded by net/url; unchanged when it
// has none or does not parse. Cutting at the first colon mangles an IPv6
// literal ("[::1]:8443" becomes "["), as twilio-go does: Twilio only calls
// host names, and the signature must match twilio-go's exactly.
func withoutPort(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Port() == "" {
		return s
	}
	u.Host, _, _ = strings.Cut(u.Host, ":")
	return u.String()
}

package twiliotest

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Sign returns the X-Twilio-Signature Twilio sends with a webhook request to
// fullURL (scheme, host, port if any, path and query, exactly as configured
// in Twilio) carrying the POST form: base64 of the HMAC-SHA1, keyed with the
// auth token, of the URL followed by every parameter name and value, sorted
// by name. For a GET webhook, pass a nil form. A name given several values
// contributes each value, sorted, as Twilio's reference libraries do.
func Sign(authToken, fullURL string, form url.Values) string {
	var b strings.Builder
	b.WriteString(fullURL)
	for _, name := range slices.Sorted(maps.Keys(form)) {
		values := slices.Sorted(slices.Values(form[name]))
		for _, v := range values {
			b.WriteString(name)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

package sms

import "github.com/missive-dev/missive/channels/sms/twilioproto"

// ValidSignature reports whether signature is Twilio's X-Twilio-Signature
// for a webhook request to url (the full public URL Twilio called, query
// included) with the given POST parameters, under authToken, comparing in
// constant time. It is twilioproto.ValidSignature, which follows twilio-go's
// validator step for step without importing it; callers that cannot import
// twilio-go may call that one directly.
func ValidSignature(authToken, url string, params map[string]string, signature string) bool {
	return twilioproto.ValidSignature(authToken, url, params, signature)
}

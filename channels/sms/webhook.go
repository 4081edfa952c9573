package sms

import "github.com/twilio/twilio-go/client"

// ValidSignature reports whether signature is Twilio's X-Twilio-Signature
// for a webhook request to url (the full public URL Twilio called, query
// included) with the given POST parameters, under authToken. It uses
// twilio-go's validator, which compares in constant time.
func ValidSignature(authToken, url string, params map[string]string, signature string) bool {
	v := client.NewRequestValidator(authToken)
	return v.Validate(url, params, signature)
}

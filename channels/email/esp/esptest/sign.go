package esptest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// SNSCanonical builds the string SNS signs the way AWS documents it: the
// signed names present in the message, in byte order, "Name\nvalue\n".
func SNSCanonical(m map[string]string) []byte {
	signed := []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	if m["Type"] != "Notification" {
		signed = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
	}
	slices.Sort(signed)
	var b bytes.Buffer
	for _, k := range signed {
		if v, ok := m[k]; ok {
			b.WriteString(k + "\n" + v + "\n")
		}
	}
	return b.Bytes()
}

// SignSNS fills the signature fields of m with SNSKey and version "1"
// (SHA1) or "2" (SHA256), SigningCertURL defaulting to SNSCertURL, and
// returns m in JSON.
func SignSNS(t testing.TB, m map[string]string, version string) []byte {
	t.Helper()
	m["SignatureVersion"] = version
	if _, ok := m["SigningCertURL"]; !ok {
		m["SigningCertURL"] = SNSCertURL
	}
	msg := SNSCanonical(m)
	var sig []byte
	var err error
	if version == "1" {
		sum := sha1.Sum(msg)
		sig, err = rsa.SignPKCS1v15(rand.Reader, SNSKey(), crypto.SHA1, sum[:])
	} else {
		sum := sha256.Sum256(msg)
		sig, err = rsa.SignPKCS1v15(rand.Reader, SNSKey(), crypto.SHA256, sum[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	m["Signature"] = base64.StdEncoding.EncodeToString(sig)
	return Marshal(t, m)
}

// SignSendGrid is the headers SendGrid sends with body, signed with key
// at at.
func SignSendGrid(t testing.TB, key *ecdsa.PrivateKey, body []byte, at time.Time) http.Header {
	t.Helper()
	ts := strconv.FormatInt(at.Unix(), 10)
	sum := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{
		"Content-Type":                           {"application/json"},
		"X-Twilio-Email-Event-Webhook-Signature": {base64.StdEncoding.EncodeToString(sig)},
		"X-Twilio-Email-Event-Webhook-Timestamp": {ts},
	}
}

// SignMailgun is Mailgun's signature of timestamp ts and token with key:
// the hex HMAC-SHA256 of ts followed by token.
func SignMailgun(key, ts, token string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(ts + token))
	return hex.EncodeToString(m.Sum(nil))
}

// MailgunBody wraps event-data in a Mailgun body signed with key at at.
func MailgunBody(t testing.TB, eventData any, key string, at time.Time, token string) []byte {
	t.Helper()
	ts := strconv.FormatInt(at.Unix(), 10)
	return Marshal(t, map[string]any{
		"signature":  map[string]string{"timestamp": ts, "token": token, "signature": SignMailgun(key, ts, token)},
		"event-data": eventData,
	})
}

// PostmarkHeaders are the headers of a Postmark webhook with basic-auth
// credentials user and pass.
func PostmarkHeaders(user, pass string) http.Header {
	return http.Header{"Content-Type": {"application/json"},
		"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

package esp_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/esp"
)

const (
	sgSignature = "X-Twilio-Email-Event-Webhook-Signature"
	sgTimestamp = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// Every forged, stale or malformed SendGrid request is refused with the
// status the webhook answers and the header at fault.
func TestSendGridRefusals(t *testing.T) {
	s := newSendGrid(t)
	body := sendgridEvents(t, map[string]any{"event": "bounce", "type": "bounce", "email": "m0000@example.com",
		"smtp-id": "<run-1~0123456789abcdef01234567@example.com>", "status": "5.1.1"})
	wrongKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	with := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		h.Set(k, v)
		return h
	}
	signed := sendgridHeaders(t, keys().sg, body, now)
	notArray := []byte(`{"event":"bounce"}`)
	cases := []struct {
		name   string
		body   []byte
		header http.Header
		want   refusal
	}{
		{"unsigned", body, http.Header{}, refusal{403, sgSignature}},
		{"wrong key", body, sendgridHeaders(t, wrongKey, body, now), refusal{403, sgSignature}},
		{"body altered", bytes.Replace(body, []byte("m0000"), []byte("m0001"), 1), signed, refusal{403, sgSignature}},
		{"timestamp altered", body, with(signed, sgTimestamp, "1772366401"), refusal{403, sgSignature}},
		{"signature not base64", body, with(signed, sgSignature, "!!"), refusal{403, sgSignature}},
		{"stale", body, sendgridHeaders(t, keys().sg, body, now.Add(-11*time.Minute)), refusal{403, sgTimestamp}},
		{"too far ahead", body, sendgridHeaders(t, keys().sg, body, now.Add(6*time.Minute)), refusal{403, sgTimestamp}},
		{"no timestamp", body, with(signed, sgTimestamp, ""), refusal{403, sgTimestamp}},
		{"timestamp not a number", body, with(signed, sgTimestamp, "1e9"), refusal{403, sgTimestamp}},
		{"timestamp negative", body, with(signed, sgTimestamp, "-1"), refusal{403, sgTimestamp}},
		{"timestamp over 12 digits", body, with(signed, sgTimestamp, "0001772366400"), refusal{403, sgTimestamp}},
		{"not an array", notArray, sendgridHeaders(t, keys().sg, notArray, now), refusal{400, "body"}},
		{"signed", body, signed, refusal{}},
	}
	for _, c := range cases {
		_, err := s.Parse(c.header, c.body, now)
		if diff := cmp.Diff(c.want, refusalOf(t, err)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

// Freshness is ten minutes back and five ahead, both ends included.
func TestSendGridFreshness(t *testing.T) {
	s := newSendGrid(t)
	body := []byte(`[]`)
	for at, ok := range map[time.Duration]bool{
		-10 * time.Minute: true, -10*time.Minute - time.Second: false,
		5 * time.Minute: true, 5*time.Minute + time.Second: false,
	} {
		_, err := s.Parse(sendgridHeaders(t, keys().sg, body, now.Add(at)), body, now)
		if (err == nil) != ok {
			t.Errorf("signed at %v: %v, want ok %v", at, err, ok)
		}
	}
}

// Each SendGrid event maps to one kind, or is ignored.
func TestSendGridEvents(t *testing.T) {
	s := newSendGrid(t)
	body := []byte(`[
		{"event":"processed","email":"a@example.com"},
		{"event":"deferred","email":"a@example.com"},
		{"event":"open","email":"a@example.com"},
		{"event":"bounce","type":"bounce","email":"a@example.com","status":"5.1.1","sg_event_id":"e1"},
		{"event":"bounce","type":"blocked","email":"a@example.com","status":"4.7.1","sg_message_id":"m2"},
		{"event":"dropped","reason":"Bounced Address","email":"a@example.com","sg_event_id":"e3"},
		{"event":"dropped","reason":"Spam Reporting Address","email":"a@example.com","sg_event_id":"e4"},
		{"event":"dropped","reason":"Unsubscribed Address","email":"a@example.com","sg_event_id":"e5"},
		{"event":"spamreport","email":"a@example.com","smtp-id":"<m-` + base64.RawURLEncoding.EncodeToString([]byte("a b~c")) + `@x>","sg_event_id":"e6"},
		{"event":"delivered","email":7},
		{"event":["x"]}, 1, "s", null,
		{"event":"delivered","email":"a@example.com","sg_event_id":"` + string(bytes.Repeat([]byte("e"), 600)) + `"}
	]`)
	got, err := s.Parse(sendgridHeaders(t, keys().sg, body, now), body, now)
	if err != nil {
		t.Fatal(err)
	}
	fb := func(kind channels.FeedbackKind, code, id string) channels.Feedback {
		return channels.Feedback{Channel: channels.Email, Source: "sendgrid", Address: "a@example.com", Kind: kind, Code: code, EventID: id}
	}
	complaint := fb(channels.Complaint, "", "e6")
	complaint.Send = "a b~c"
	want := esp.Events{
		Feedback: []channels.Feedback{
			fb(channels.HardBounce, "5.1.1", "e1"),
			fb(channels.SoftBounce, "4.7.1", "m2"),
			fb(channels.HardBounce, "", "e3"),
			fb(channels.Complaint, "", "e4"),
			fb(channels.Undelivered, "", "e5"),
			complaint,
			fb(channels.Delivered, "", ""), // an id too long to be one
		},
		// processed, deferred, open and null (an empty event) change
		// nothing; 7, ["x"], 1 and "s" are not events.
		Ignored: 4 + 4,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// The key is read from base64 DER or PEM, and must be ECDSA.
func TestNewSendGridKey(t *testing.T) {
	der, err := base64.StdEncoding.DecodeString(keys().sgPublic)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	rsaDER, err := x509.MarshalPKIXPublicKey(&otherRSA().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for key, ok := range map[string]bool{
		keys().sgPublic:              true,
		" " + keys().sgPublic + "\n": true,
		pemKey:                       true,
		base64.StdEncoding.EncodeToString(rsaDER):                      false,
		"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n": false,
	} {
		s, err := esp.NewSendGrid(key)
		if (err == nil) != ok {
			t.Errorf("%.30q: %v, want ok %v", key, err, ok)
			continue
		}
		if ok {
			body := []byte(`[]`)
			if _, err := s.Parse(sendgridHeaders(t, keys().sg, body, now), body, now); err != nil {
				t.Errorf("%.30q: %v", key, err)
			}
		}
	}
}

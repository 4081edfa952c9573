package esp_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels/email/esp"
)

// now is the clock of every test: signatures, freshness and certificate
// validity are computed from it, never from the wall clock.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	sesTopic   = "arn:aws:sns:eu-west-1:123456789012:missive-ses"
	sesCertURL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
	mailgunKey = "key-mailgun-signing-0123456789abcdef"
	pmUser     = "postmark-hook"
	pmPassword = "pm-password-0123456789abcdef"
)

// keys are the signing keys of the fake providers, made once per test
// binary (RSA generation is slow).
var keys = sync.OnceValue(func() (k struct {
	ses      *rsa.PrivateKey
	sesPEM   []byte
	sg       *ecdsa.PrivateKey
	sgPublic string
},
) {
	var err error
	if k.ses, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	k.sesPEM = certPEM(k.ses, now.Add(-time.Hour), now.Add(48*time.Hour))
	if k.sg, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.sg.PublicKey)
	if err != nil {
		panic(err)
	}
	k.sgPublic = base64.StdEncoding.EncodeToString(pub)
	return k
})

// otherRSA is a key that is not SNS's.
var otherRSA = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// certPEM is a self-signed certificate of key, valid from notBefore to
// notAfter, in PEM.
func certPEM(key *rsa.PrivateKey, notBefore, notAfter time.Time) []byte {
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(notBefore.UnixNano()), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: notBefore, NotAfter: notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// aws is a real HTTPS server standing for every SNS host: the client it
// gives dials it whatever the host, and trusts its certificate. It serves
// certs by path, confirms subscriptions, and records every request.
type aws struct {
	srv  *httptest.Server
	mu   sync.Mutex
	urls []string
	// files are served by path: a body, or a status when the body is a
	// decimal number.
	files map[string]string
}

func newAWS(t testing.TB) *aws {
	a := &aws{files: map[string]string{
		"/SimpleNotificationService-0123456789abcdef.pem": string(keys().sesPEM),
	}}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.urls = append(a.urls, "https://"+r.Host+r.URL.RequestURI())
		body, ok := a.files[r.URL.Path]
		a.mu.Unlock()
		switch {
		case r.URL.Path == "/" && r.URL.Query().Get("Action") == "ConfirmSubscription":
			w.Write([]byte("<ConfirmSubscriptionResponse/>"))
		case r.URL.Path == "/redirect.pem":
			http.Redirect(w, r, "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem", http.StatusFound)
		case !ok:
			http.NotFound(w, r)
		default:
			if code, err := strconv.Atoi(body); err == nil {
				w.WriteHeader(code)
				return
			}
			w.Write([]byte(body))
		}
	}))
	// Connections the client dialed but did not use end in handshake
	// errors when the server closes: not a test failure.
	a.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

// client reaches the server for any host of sns.eu-west-1 and
// sns.us-west-2; any other host is out of reach.
func (a *aws) client() *http.Client {
	tr := a.srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.ServerName = "example.com" // in httptest's certificate
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if host != "sns.eu-west-1.amazonaws.com" && host != "sns.us-west-2.amazonaws.com" {
			return nil, errors.New("no network in tests")
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", a.srv.Listener.Addr().String())
	}
	return &http.Client{Transport: tr}
}

func (a *aws) serve(path, body string) {
	a.mu.Lock()
	a.files[path] = body
	a.mu.Unlock()
}

func (a *aws) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.urls)
}

func newSNS(t testing.TB, a *aws) *esp.SNS {
	s, err := esp.NewSNS([]string{sesTopic}, esp.NewCertCache(a.client()))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// snsCanonical builds the string SNS signs the way AWS documents it: the
// signed names present in the message, in byte order, "Name\nvalue\n".
func snsCanonical(m map[string]string) []byte {
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

// snsSign fills the signature fields of m with version "1" or "2" and
// returns it in JSON.
func snsSign(t testing.TB, m map[string]string, version string) []byte {
	t.Helper()
	m["SignatureVersion"] = version
	if _, ok := m["SigningCertURL"]; !ok {
		m["SigningCertURL"] = sesCertURL
	}
	msg := snsCanonical(m)
	var sig []byte
	var err error
	if version == "1" {
		sum := sha1.Sum(msg)
		sig, err = rsa.SignPKCS1v15(rand.Reader, keys().ses, crypto.SHA1, sum[:])
	} else {
		sum := sha256.Sum256(msg)
		sig, err = rsa.SignPKCS1v15(rand.Reader, keys().ses, crypto.SHA256, sum[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	m["Signature"] = base64.StdEncoding.EncodeToString(sig)
	return marshal(t, m)
}

const snsMessageID = "6e5b1c2d-0000-4a4a-9b9b-0123456789ab"

// snsNotification wraps an SES notification in an SNS envelope published
// at now.
func snsNotification(message string) map[string]string {
	return map[string]string{
		"Type": "Notification", "MessageId": snsMessageID, "TopicArn": sesTopic,
		"Message": message, "Timestamp": now.UTC().Format("2006-01-02T15:04:05.000Z"),
		"UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
	}
}

func sesMessage(kind, mid string, addrs ...string) string {
	mail := map[string]any{"messageId": "0102018f-ses-own", "commonHeaders": map[string]any{"messageId": mid}}
	n := map[string]any{"notificationType": kind, "mail": mail}
	switch kind {
	case "Bounce", "SoftBounce":
		typ := "Permanent"
		if kind == "SoftBounce" {
			n["notificationType"], typ = "Bounce", "Transient"
		}
		var rs []any
		for _, a := range addrs {
			rs = append(rs, map[string]string{"emailAddress": a, "action": "failed", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"})
		}
		n["bounce"] = map[string]any{"bounceType": typ, "bounceSubType": "General", "bouncedRecipients": rs}
	case "Complaint":
		var rs []any
		for _, a := range addrs {
			rs = append(rs, map[string]string{"emailAddress": a})
		}
		n["complaint"] = map[string]any{"complainedRecipients": rs, "complaintFeedbackType": "abuse"}
	case "Delivery":
		n["delivery"] = map[string]any{"recipients": addrs, "smtpResponse": "250 ok"}
	}
	b, _ := json.Marshal(n)
	return string(b)
}

func newSendGrid(t testing.TB) *esp.SendGrid {
	s, err := esp.NewSendGrid(keys().sgPublic)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sendgridHeaders signs body at at with key.
func sendgridHeaders(t testing.TB, key *ecdsa.PrivateKey, body []byte, at time.Time) http.Header {
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

// sendgridEvents numbers evs ev-0, ev-1...
func sendgridEvents(t testing.TB, evs ...map[string]any) []byte {
	for i, e := range evs {
		e["sg_event_id"] = "ev-" + strconv.Itoa(i)
		e["timestamp"] = now.Unix()
	}
	return marshal(t, evs)
}

func newMailgun(t testing.TB) *esp.Mailgun {
	m, err := esp.NewMailgun(mailgunKey)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mailgunSign(key, ts, token string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(ts + token))
	return hex.EncodeToString(m.Sum(nil))
}

// mailgunBody wraps event-data in a body signed with key at at.
func mailgunBody(t testing.TB, eventData any, key string, at time.Time, token string) []byte {
	ts := strconv.FormatInt(at.Unix(), 10)
	return marshal(t, map[string]any{
		"signature":  map[string]string{"timestamp": ts, "token": token, "signature": mailgunSign(key, ts, token)},
		"event-data": eventData,
	})
}

func mailgunEventData(event, severity, mid, recipient string) map[string]any {
	e := map[string]any{"id": "mg-event-1", "event": event, "recipient": recipient, "timestamp": float64(now.Unix()),
		"message": map[string]any{"headers": map[string]any{"message-id": strings.Trim(mid, "<>")}}}
	if severity != "" {
		e["severity"] = severity
		e["delivery-status"] = map[string]any{"code": 550, "message": "5.1.1 The email account does not exist", "description": ""}
	}
	return e
}

func newPostmark(t testing.TB) *esp.Postmark {
	p, err := esp.NewPostmark(pmUser, pmPassword)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func postmarkHeaders(user, pass string) http.Header {
	return http.Header{"Content-Type": {"application/json"},
		"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

const postmarkMessageID = "883953f4-6105-42a2-a16a-77a8eac79483"

func postmarkRecord(t testing.TB, recordType, typ, mid, address string) []byte {
	e := map[string]any{"RecordType": recordType, "MessageID": postmarkMessageID, "ServerID": 23, "MessageStream": "outbound"}
	switch recordType {
	case "Delivery":
		e["Recipient"] = address
	default:
		e["ID"], e["Type"], e["Email"], e["Details"] = 4323372036854775807, typ, address, "smtp;550 5.1.1 The email account that you tried to reach does not exist"
	}
	if mid != "" {
		e["Headers"] = []map[string]string{{"Name": "Message-ID", "Value": mid}}
	}
	return marshal(t, e)
}

func marshal(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refusal is what a test expects of an error: its status and field.
type refusal struct {
	Status int
	Field  string
}

// refusalOf returns the status and field of err, an *esp.Error; a zero
// refusal for nil; it fails t for any other error.
func refusalOf(t testing.TB, err error) refusal {
	t.Helper()
	if err == nil {
		return refusal{}
	}
	var e *esp.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *esp.Error", err, err)
	}
	return refusal{e.Status, e.Field}
}

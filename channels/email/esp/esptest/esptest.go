// Package esptest is the test machinery shared by the tests of the email
// providers' webhooks (package esp) and of the dispatcher that serves them:
// the providers' signing keys, a TLS double of AWS serving the SNS signing
// certificate and subscription confirmations, and helpers that sign and
// build requests as Amazon SNS/SES, SendGrid, Mailgun and Postmark do.
//
// Inject the double's client wherever the code under test fetches from AWS:
//
//	aws := esptest.NewAWS(t, esptest.SNSCert(now.Add(-time.Hour), now.Add(time.Hour)))
//	s, _ := esp.NewSNS([]string{esptest.SESTopic}, esp.NewCertCache(aws.Client()))
//	body := esptest.SignSNS(t, esptest.SNSNotification(id, esptest.SESMessage("Bounce", mid, rcpt), now), "2")
//	...
//	fetched := aws.Requests()
package esptest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
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
	"sync"
	"testing"
	"time"
)

// Settings of the fake providers.
const (
	// SESTopic is the SNS topic SES publishes to.
	SESTopic = "arn:aws:sns:eu-west-1:123456789012:missive-ses"
	// SNSCertPath is where the AWS double serves the SNS signing
	// certificate, at SNSCertURL.
	SNSCertPath = "/SimpleNotificationService-0123456789abcdef.pem"
	// SNSCertURL is the SigningCertURL SignSNS puts in a message that
	// names none.
	SNSCertURL = "https://sns.eu-west-1.amazonaws.com" + SNSCertPath
	// MailgunKey is Mailgun's webhook signing key.
	MailgunKey = "key-mailgun-signing-0123456789abcdef"
	// PostmarkUser and PostmarkPassword are the basic-auth credentials
	// Postmark sends.
	PostmarkUser     = "postmark-hook"
	PostmarkPassword = "pm-password-0123456789abcdef"
)

// keys are the signing keys of the fake providers, made once per test
// binary (RSA generation is slow).
var keys = sync.OnceValue(func() (k struct {
	sns      *rsa.PrivateKey
	other    *rsa.PrivateKey
	sg       *ecdsa.PrivateKey
	sgPublic string
},
) {
	var err error
	if k.sns, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.other, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
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

// SNSKey is the key SNS signs with; SNSCert certifies it.
func SNSKey() *rsa.PrivateKey { return keys().sns }

// OtherRSA is an RSA key that is not SNS's.
func OtherRSA() *rsa.PrivateKey { return keys().other }

// SendGridKey is the key SendGrid signs its event webhook with.
func SendGridKey() *ecdsa.PrivateKey { return keys().sg }

// SendGridPublicKey is SendGridKey's public half as SendGrid shows it:
// base64 of its PKIX DER.
func SendGridPublicKey() string { return keys().sgPublic }

// SNSCert is a self-signed certificate of SNSKey valid from notBefore to
// notAfter, in PEM.
func SNSCert(notBefore, notAfter time.Time) []byte {
	return CertPEM(SNSKey(), notBefore, notAfter)
}

// CertPEM is a self-signed certificate of key, valid from notBefore to
// notAfter, in PEM.
func CertPEM(key *rsa.PrivateKey, notBefore, notAfter time.Time) []byte {
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

// AWS is a real HTTPS server standing for every SNS host: the client it
// gives dials it for sns.eu-west-1 and sns.us-west-2, whatever the port
// asked, and trusts its certificate; any other host is out of reach. It
// serves files by path (the SNS certificate at SNSCertPath), confirms
// subscriptions (GET /?Action=ConfirmSubscription), redirects
// /redirect.pem to SNSCertURL, answers 404 for anything else, and records
// every request.
type AWS struct {
	srv *httptest.Server
	mu  sync.Mutex
	// urls are the requests the server received; attempts every URL the
	// client was asked to fetch, reached or not.
	urls, attempts []string
	// files are served by path: a body, or a status when the body is a
	// decimal number.
	files map[string]string
}

// NewAWS starts an AWS double serving cert at SNSCertPath; it stops with t.
func NewAWS(t testing.TB, cert []byte) *AWS {
	a := &AWS{files: map[string]string{SNSCertPath: string(cert)}}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.urls = append(a.urls, "https://"+r.Host+r.URL.RequestURI())
		body, ok := a.files[r.URL.Path]
		a.mu.Unlock()
		switch {
		case r.URL.Path == "/" && r.URL.Query().Get("Action") == "ConfirmSubscription":
			w.Write([]byte("<ConfirmSubscriptionResponse/>"))
		case r.URL.Path == "/redirect.pem":
			http.Redirect(w, r, SNSCertURL, http.StatusFound)
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

// Client reaches the server for any host of sns.eu-west-1 and
// sns.us-west-2; any other host is out of reach.
func (a *AWS) Client() *http.Client {
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
	return &http.Client{Transport: recorder{a, tr}}
}

// recorder notes every URL before its transport tries it.
type recorder struct {
	a  *AWS
	tr http.RoundTripper
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.a.mu.Lock()
	r.a.attempts = append(r.a.attempts, req.URL.String())
	r.a.mu.Unlock()
	return r.tr.RoundTrip(req)
}

// Serve serves body at path on every host: the body itself, or that
// status when body is a decimal number.
func (a *AWS) Serve(path, body string) {
	a.mu.Lock()
	a.files[path] = body
	a.mu.Unlock()
}

// Requests are the URLs of the requests the server received, in order.
func (a *AWS) Requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.urls)
}

// Attempts are the URLs the client was asked to fetch, in order, whether
// or not their host was in reach.
func (a *AWS) Attempts() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.attempts)
}

// Marshal is v in JSON; it fails t if v has no JSON form.
func Marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package esp_test

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/esp"
	"github.com/missive-dev/missive/channels/email/esp/esptest"
)

// now is the clock of every test: signatures, freshness and certificate
// validity are computed from it, never from the wall clock.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// keys are the signing keys of the fake providers; sesPEM certifies ses
// around now.
var keys = sync.OnceValue(func() (k struct {
	ses      *rsa.PrivateKey
	sesPEM   []byte
	sg       *ecdsa.PrivateKey
	sgPublic string
},
) {
	k.ses, k.sg, k.sgPublic = esptest.SNSKey(), esptest.SendGridKey(), esptest.SendGridPublicKey()
	k.sesPEM = esptest.SNSCert(now.Add(-time.Hour), now.Add(48*time.Hour))
	return k
})

var (
	otherRSA = esptest.OtherRSA
	certPEM  = esptest.CertPEM
	snsSign  = esptest.SignSNS
	marshal  = esptest.Marshal
)

// newAWS is the AWS double serving keys().sesPEM.
func newAWS(t testing.TB) *esptest.AWS { return esptest.NewAWS(t, keys().sesPEM) }

func newSNS(t testing.TB, a *esptest.AWS) *esp.SNS {
	s, err := esp.NewSNS([]string{esptest.SESTopic}, esp.NewCertCache(a.Client()))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const snsMessageID = "6e5b1c2d-0000-4a4a-9b9b-0123456789ab"

// snsNotification wraps an SES notification in an SNS envelope published
// at now.
func snsNotification(message string) map[string]string {
	return esptest.SNSNotification(snsMessageID, message, now)
}

var sesMessage = esptest.SESMessage

func newSendGrid(t testing.TB) *esp.SendGrid {
	s, err := esp.NewSendGrid(keys().sgPublic)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var sendgridHeaders = esptest.SignSendGrid

// sendgridEvents numbers evs ev-0, ev-1...
func sendgridEvents(t testing.TB, evs ...map[string]any) []byte {
	return esptest.SendGridEvents(t, "ev-", now, evs...)
}

func newMailgun(t testing.TB) *esp.Mailgun {
	m, err := esp.NewMailgun(esptest.MailgunKey)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	mailgunSign = esptest.SignMailgun
	mailgunBody = esptest.MailgunBody
)

func mailgunEventData(event, severity, mid, recipient string) map[string]any {
	return esptest.MailgunEventData("mg-event-1", event, severity, mid, recipient, now)
}

func newPostmark(t testing.TB) *esp.Postmark {
	p, err := esp.NewPostmark(esptest.PostmarkUser, esptest.PostmarkPassword)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var postmarkHeaders = esptest.PostmarkHeaders

const postmarkMessageID = esptest.PostmarkMessageID

func postmarkRecord(t testing.TB, recordType, typ, mid, address string) []byte {
	return esptest.PostmarkRecord(t, 4323372036854775807, recordType, typ, mid, address)
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

// checkOneEvent compares what Parse made of one event with want, or with
// one ignored event when want is nil.
func checkOneEvent(t *testing.T, name string, got esp.Events, want *channels.Feedback) {
	t.Helper()
	w := esp.Events{Ignored: 1}
	if want != nil {
		w = esp.Events{Feedback: []channels.Feedback{*want}}
	}
	if diff := cmp.Diff(w, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

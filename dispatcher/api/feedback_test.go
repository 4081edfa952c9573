package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/esp/esptest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/feedback"
	"github.com/missive-dev/missive/dispatcher/webhook"
)

const (
	espDomain   = "example.com"
	espAttacker = "victim@example.net"
)

// newAWS is the only "network" the dispatcher sees (esptest.AWS): it
// serves an SNS certificate valid now at esptest.SNSCertURL, takes
// subscription confirmations, and records every URL asked of it.
func newAWS(t testing.TB) *esptest.AWS {
	return esptest.NewAWS(t, esptest.SNSCert(time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)))
}

// espHarness is a dispatcher with the four email webhooks on, served by a
// real HTTP server, after a campaign sent one email to each of m0000...
type espHarness struct {
	b   *testBundle
	srv *httptest.Server
	aws *esptest.AWS
	run string
	// mids are the Message-IDs received by the SMTP server, by address.
	mids map[string]string
}

// withESP turns the four email webhooks on, with aws as the network.
func withESP(aws *esptest.AWS) option {
	return withConfig(func(c *app.Config) {
		c.ESP = webhook.ESPConfig{
			SESTopicARNs: []string{esptest.SESTopic}, SendGridPublicKey: esptest.SendGridPublicKey(),
			MailgunSigningKey: esptest.MailgunKey, PostmarkUser: esptest.PostmarkUser, PostmarkPassword: esptest.PostmarkPassword,
		}
		c.HTTPClient = aws.Client()
	})
}

// espSetup is setup with the email webhooks on, after a campaign sent one
// email to each of sends contacts; it checks that the logs hold no address
// and no secret.
func espSetup(t *testing.T, sends int) *espHarness {
	t.Helper()
	aws := newAWS(t)
	b := setup(t, withESP(aws), withConfig(func(c *app.Config) { c.Feedback = feedback.Policy{MinSample: 1000} }))
	h := &espHarness{b: b, aws: aws, mids: map[string]string{}}
	if sends > 0 {
		h.run = runMailing(t, b, sends)
		for _, m := range b.smtp.Messages() {
			msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
			must(t, err)
			h.mids[m.To[0]] = msg.Header.Get("Message-Id")
		}
		if len(h.mids) != sends {
			t.Fatalf("%d messages received, want %d", len(h.mids), sends)
		}
	}
	h.srv = b.srv
	t.Cleanup(func() {
		logs := b.logs.String()
		secrets := []string{"@" + espDomain, espAttacker, esptest.MailgunKey, esptest.PostmarkPassword, "Signature\":", "token="}
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Errorf("logs hold %q:\n%s", s, logs)
			}
		}
	})
	return h
}

func addr(i int) string { return fmt.Sprintf("m%04d@%s", i, espDomain) }

func (h *espHarness) sendID(i int) string {
	return dispatcher.SendID(h.run, fmt.Sprintf("m%04d", i), channels.Email)
}

func (h *espHarness) state(t *testing.T, i int) string {
	t.Helper()
	s, err := h.b.d.Store.Send(context.Background(), h.sendID(i))
	must(t, err)
	return s.State
}

func (h *espHarness) suppression(t *testing.T, a string) string {
	t.Helper()
	sup, err := h.b.d.Store.Suppression(context.Background(), channels.Email, a)
	if err == dispatcher.ErrNotFound {
		return ""
	}
	must(t, err)
	return sup.Reason
}

type espResp struct {
	status int
	body   string
}

func (h *espHarness) post(t *testing.T, provider string, body []byte, hdr http.Header) espResp {
	t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+"/webhooks/email/"+provider, bytes.NewReader(body))
	must(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := h.srv.Client().Do(req)
	must(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return espResp{res.StatusCode, string(b)}
}

// snapshot is every key of the test's prefix with its value, but for the
// replay memories (Mailgun tokens), which any signed request writes.
func (h *espHarness) snapshot(t *testing.T) map[string]string {
	t.Helper()
	return snapshotRedis(t, h.b, ":mailgun:token:")
}

// --- what each provider posts, signed as the provider signs it

// snsNotification wraps an SES notification in an SNS envelope.
func snsNotification(message string) map[string]string {
	return esptest.SNSNotification(randHex(16), message, time.Now())
}

func sendgridHeaders(t testing.TB, body []byte, at time.Time) http.Header {
	return esptest.SignSendGrid(t, esptest.SendGridKey(), body, at)
}

func sendgridEvents(t testing.TB, evs ...map[string]any) []byte {
	return esptest.SendGridEvents(t, fmt.Sprintf("ev-%d-", time.Now().UnixNano()), time.Now(), evs...)
}

func newToken(testing.TB) string { return randHex(25) }

// randHex is n random bytes in hex (crypto/rand.Read never fails).
func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func mailgunEventData(event, severity, mid, recipient string) map[string]any {
	return esptest.MailgunEventData(randHex(16), event, severity, mid, recipient, time.Now())
}

func postmarkRecord(t testing.TB, recordType, typ, mid, address string) []byte {
	return esptest.PostmarkRecord(t, time.Now().UnixNano(), recordType, typ, mid, address)
}

// espProvider posts one kind of event for one provider: mid is our
// Message-ID ("" for none).
type espProvider struct {
	name string
	post func(t *testing.T, h *espHarness, kind, mid, address string) espResp
}

var espProviders = []espProvider{
	{"ses", func(t *testing.T, h *espHarness, kind, mid, address string) espResp {
		return h.post(t, "ses", esptest.SignSNS(t, snsNotification(esptest.SESMessage(kind, mid, address)), "2"), http.Header{"Content-Type": {"text/plain; charset=UTF-8"}})
	}},
	{"sendgrid", func(t *testing.T, h *espHarness, kind, mid, address string) espResp {
		body := sendgridEvents(t, esptest.SendGridEvent(kind, mid, address))
		return h.post(t, "sendgrid", body, sendgridHeaders(t, body, time.Now()))
	}},
	{"mailgun", func(t *testing.T, h *espHarness, kind, mid, address string) espResp {
		var ed map[string]any
		switch kind {
		case "Bounce":
			ed = mailgunEventData("failed", "permanent", mid, address)
		case "SoftBounce":
			ed = mailgunEventData("failed", "temporary", mid, address)
		case "Complaint":
			ed = mailgunEventData("complained", "", mid, address)
		case "Delivery":
			ed = mailgunEventData("delivered", "", mid, address)
		}
		return h.post(t, "mailgun", esptest.MailgunBody(t, ed, esptest.MailgunKey, time.Now(), newToken(t)), http.Header{"Content-Type": {"application/json"}})
	}},
	{"postmark", func(t *testing.T, h *espHarness, kind, mid, address string) espResp {
		var body []byte
		switch kind {
		case "Bounce":
			body = postmarkRecord(t, "Bounce", "HardBounce", mid, address)
		case "SoftBounce":
			body = postmarkRecord(t, "Bounce", "SoftBounce", mid, address)
		case "Complaint":
			body = postmarkRecord(t, "SpamComplaint", "SpamComplaint", mid, address)
		case "Delivery":
			body = postmarkRecord(t, "Delivery", "", mid, address)
		}
		return h.post(t, "postmark", body, esptest.PostmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword))
	}},
}

// Each provider's bounce, complaint and delivery reach the send named by
// our Message-ID and the suppression list; a bounce without our
// Message-ID suppresses by address; a retried event is recorded once.
func TestESPFeedback(t *testing.T) {
	t.Parallel()
	for _, p := range espProviders {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			h := espSetup(t, 5)
			ok := func(r espResp, what string) {
				t.Helper()
				if r.status != http.StatusOK {
					t.Fatalf("%s: status %d: %s", what, r.status, r.body)
				}
			}
			ok(p.post(t, h, "Bounce", h.mids[addr(0)], addr(0)), "bounce")
			ok(p.post(t, h, "Complaint", h.mids[addr(1)], addr(1)), "complaint")
			ok(p.post(t, h, "Delivery", h.mids[addr(2)], addr(2)), "delivery")
			ok(p.post(t, h, "Bounce", "", addr(3)), "bounce by address")
			// A soft bounce to an address we never sent to, and one
			// naming a Message-ID that is not ours: the address is enough.
			ok(p.post(t, h, "SoftBounce", "<someone-else@elsewhere.example>", "stranger@example.org"), "soft bounce")

			got := map[string]string{}
			for i := range 5 {
				got[fmt.Sprintf("state %d", i)] = h.state(t, i)
				got[fmt.Sprintf("suppression %d", i)] = h.suppression(t, addr(i))
			}
			want := map[string]string{
				"state 0": dispatcher.StateBounced, "suppression 0": dispatcher.SuppressBounce,
				"state 1": dispatcher.StateSent, "suppression 1": dispatcher.SuppressComplaint,
				"state 2": dispatcher.StateDelivered, "suppression 2": "",
				"state 3": dispatcher.StateSent, "suppression 3": dispatcher.SuppressBounce,
				"state 4": dispatcher.StateSent, "suppression 4": "",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("after the webhooks (-want +got):\n%s", diff)
			}
			ctx := context.Background()
			if cs, _ := h.b.d.Store.Consents(ctx, "m0001"); cs["email/newsletter"] != dispatcher.Withdrawn {
				t.Errorf("a complaint left marketing consent: %v", cs)
			}
			soft, err := h.b.cfg.Redis.ZCard(ctx, h.b.d.Store.Key("soft", h.b.d.Store.AddressHash(channels.Email, "stranger@example.org"))).Result()
			must(t, err)
			if soft != 1 {
				t.Errorf("%d soft bounces counted, want 1", soft)
			}
			s, err := h.b.d.Store.Send(ctx, h.sendID(0))
			must(t, err)
			if s.ErrorCode != "5.1.1" {
				t.Errorf("bounced send's code %q, want 5.1.1", s.ErrorCode)
			}
			r, err := h.b.d.Store.Run(ctx, h.run)
			must(t, err)
			wantFB := map[string]int64{feedback.FeedbackDelivered: 1, feedback.FeedbackHardBounces: 1, feedback.FeedbackComplaints: 1}
			for k, v := range wantFB {
				if r.Feedback[k] != v {
					t.Errorf("run feedback %s = %d, want %d (%v)", k, r.Feedback[k], v, r.Feedback)
				}
			}
		})
	}
}

// A provider that retries the very same delivery (same signature for SES
// and SendGrid, same event id) counts a soft bounce once.
func TestESPRetriedEventCountsOnce(t *testing.T) {
	t.Parallel()
	h := espSetup(t, 0)
	ctx := context.Background()
	body := esptest.SignSNS(t, snsNotification(esptest.SESMessage("SoftBounce", "", "soft@example.org")), "1")
	ev := sendgridEvents(t, map[string]any{"event": "bounce", "type": "blocked", "email": "soft@example.org"})
	hdr := sendgridHeaders(t, ev, time.Now())
	for range 3 {
		if r := h.post(t, "ses", body, nil); r.status != http.StatusOK {
			t.Fatalf("ses: %d %s", r.status, r.body)
		}
		if r := h.post(t, "sendgrid", ev, hdr); r.status != http.StatusOK {
			t.Fatalf("sendgrid: %d %s", r.status, r.body)
		}
	}
	n, err := h.b.cfg.Redis.ZCard(ctx, h.b.d.Store.Key("soft", h.b.d.Store.AddressHash(channels.Email, "soft@example.org"))).Result()
	must(t, err)
	if n != 2 {
		t.Errorf("%d soft bounces counted, want 2 (one per provider)", n)
	}
}

// Every forged, stale, replayed or malformed request is refused, or
// answered without effect, and writes nothing.
func TestESPAttacks(t *testing.T) {
	t.Parallel()
	h := espSetup(t, 2)
	mid := h.mids[addr(0)]
	now := time.Now()
	hugeAddr := strings.Repeat("a", 1_000_000) + "@example.com"
	json200 := http.Header{"Content-Type": {"application/json"}}

	// SES: signed messages altered afterwards, or signed but off the rules.
	sesSigned := func(mut func(m map[string]string), after func(m map[string]string)) []byte {
		m := snsNotification(esptest.SESMessage("Bounce", mid, addr(0)))
		if mut != nil {
			mut(m)
		}
		esptest.SignSNS(t, m, "2")
		if after != nil {
			after(m)
		}
		b, _ := json.Marshal(m)
		return b
	}
	// sesCertAt is a notification signed with its certificate said to be at u.
	sesCertAt := func(u string) []byte {
		return sesSigned(func(m map[string]string) { m["SigningCertURL"] = u }, nil)
	}
	staleSNS := now.Add(-61 * time.Minute).UTC().Format(time.RFC3339Nano)

	// A replayed Mailgun request: the same token, accepted once.
	replayToken := newToken(t)
	replayed := esptest.MailgunBody(t, mailgunEventData("failed", "permanent", "", "replay@example.org"), esptest.MailgunKey, now, replayToken)
	if r := h.post(t, "mailgun", replayed, json200); r.status != http.StatusOK {
		t.Fatalf("first use of a token: %d %s", r.status, r.body)
	}

	sgBody := sendgridEvents(t, map[string]any{"event": "bounce", "type": "bounce", "email": addr(0), "smtp-id": mid, "status": "5.1.1"})
	sgWrongKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sgForged := func() http.Header {
		hdr := esptest.SignSendGrid(t, sgWrongKey, sgBody, now)
		hdr.Del("Content-Type")
		return hdr
	}
	sgTampered := sendgridHeaders(t, sgBody, now)
	sgCRLF := sendgridEvents(t, map[string]any{"event": "bounce", "type": "bounce", "email": "a@example.com\r\nX: y"},
		map[string]any{"event": "spamreport", "email": "<img src=x>@example.com"})
	sgHuge := sendgridEvents(t, map[string]any{"event": "bounce", "type": "bounce", "email": hugeAddr})

	cases := []struct {
		name, provider string
		body           []byte
		hdr            http.Header
		status         int
	}{
		{"ses unsigned", "ses", func() []byte {
			m := snsNotification(esptest.SESMessage("Bounce", mid, addr(0)))
			m["SigningCertURL"], m["SignatureVersion"] = esptest.SNSCertURL, "2"
			b, _ := json.Marshal(m)
			return b
		}(), nil, 403},
		{"ses message altered", "ses", sesSigned(nil, func(m map[string]string) { m["Message"] = esptest.SESMessage("Bounce", mid, addr(1)) }), nil, 403},
		{"ses subject added", "ses", sesSigned(nil, func(m map[string]string) { m["Subject"] = "x" }), nil, 403},
		{"ses version 1 claimed for a version 2 signature", "ses", sesSigned(nil, func(m map[string]string) { m["SignatureVersion"] = "1" }), nil, 403},
		{"ses stale", "ses", sesSigned(func(m map[string]string) { m["Timestamp"] = staleSNS }, nil), nil, 403},
		{"ses topic not allowed", "ses", sesSigned(func(m map[string]string) { m["TopicArn"] = "arn:aws:sns:eu-west-1:999999999999:other" }, nil), nil, 403},
		{"ses cert over http", "ses", sesCertAt("http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem"), nil, 403},
		{"ses cert on evil.com", "ses", sesCertAt("https://evil.com/SimpleNotificationService-x.pem"), nil, 403},
		{"ses cert on a lookalike host", "ses", sesCertAt("https://sns.amazonaws.com.evil.com/SimpleNotificationService-x.pem"), nil, 403},
		{"ses cert on a lookalike region host", "ses", sesCertAt("https://sns.eu-west-1.amazonaws.com.evil.com/SimpleNotificationService-x.pem"), nil, 403},
		{"ses cert with credentials", "ses", sesCertAt("https://evil.com@sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem"), nil, 403},
		{"ses cert not a pem", "ses", sesCertAt("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.txt"), nil, 403},
		{"ses unknown type", "ses", sesSigned(func(m map[string]string) { m["Type"] = "Other" }, nil), nil, 400},
		{"ses not json", "ses", []byte("<html>"), nil, 400},
		{"ses CRLF and markup address", "ses", esptest.SignSNS(t, snsNotification(esptest.SESMessage("Bounce", "", "a@example.com\r\nBcc: b@example.com", "<b>x</b>@example.com")), "2"), nil, 200},
		{"ses 1 MB address", "ses", esptest.SignSNS(t, snsNotification(esptest.SESMessage("Bounce", "", hugeAddr)), "2"), nil, 200},

		{"sendgrid unsigned", "sendgrid", sgBody, nil, 403},
		{"sendgrid wrong key", "sendgrid", sgBody, sgForged(), 403},
		{"sendgrid body altered", "sendgrid", bytes.Replace(sgBody, []byte("m0000"), []byte("m0001"), 1), sgTampered, 403},
		{"sendgrid stale", "sendgrid", sgBody, sendgridHeaders(t, sgBody, now.Add(-11*time.Minute)), 403},
		{"sendgrid not an array", "sendgrid", []byte(`{"event":"bounce"}`), sendgridHeaders(t, []byte(`{"event":"bounce"}`), now), 400},
		{"sendgrid CRLF and markup address", "sendgrid", sgCRLF, sendgridHeaders(t, sgCRLF, now), 200},
		{"sendgrid 1 MB address", "sendgrid", sgHuge, sendgridHeaders(t, sgHuge, now), 200},

		{"mailgun unsigned", "mailgun", []byte(`{"event-data":{"event":"failed","severity":"permanent","recipient":"` + addr(0) + `"}}`), json200, 403},
		{"mailgun wrong key", "mailgun", esptest.MailgunBody(t, mailgunEventData("failed", "permanent", mid, addr(0)), "another-key", now, newToken(t)), json200, 403},
		{"mailgun stale", "mailgun", esptest.MailgunBody(t, mailgunEventData("failed", "permanent", mid, addr(0)), esptest.MailgunKey, now.Add(-6*time.Minute), newToken(t)), json200, 403},
		{"mailgun replayed token", "mailgun", replayed, json200, 403},
		{"mailgun replayed token, other event", "mailgun", esptest.MailgunBody(t, mailgunEventData("failed", "permanent", mid, addr(0)), esptest.MailgunKey, now, replayToken), json200, 403},
		{"mailgun CRLF address", "mailgun", esptest.MailgunBody(t, mailgunEventData("failed", "permanent", "", "a@example.com\r\n"), esptest.MailgunKey, now, newToken(t)), json200, 200},
		{"mailgun 1 MB address", "mailgun", esptest.MailgunBody(t, mailgunEventData("failed", "permanent", "", hugeAddr), esptest.MailgunKey, now, newToken(t)), json200, 200},
		{"mailgun not json", "mailgun", []byte("token=x"), nil, 400},

		{"postmark no auth", "postmark", postmarkRecord(t, "Bounce", "HardBounce", mid, addr(0)), json200, 401},
		{"postmark wrong password", "postmark", postmarkRecord(t, "Bounce", "HardBounce", mid, addr(0)), esptest.PostmarkHeaders(esptest.PostmarkUser, "guess"), 401},
		{"postmark wrong user", "postmark", postmarkRecord(t, "Bounce", "HardBounce", mid, addr(0)), esptest.PostmarkHeaders("admin", esptest.PostmarkPassword), 401},
		{"postmark CRLF address", "postmark", postmarkRecord(t, "Bounce", "HardBounce", "", "a@example.com\r\n"), esptest.PostmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword), 200},
		{"postmark markup address", "postmark", postmarkRecord(t, "Bounce", "HardBounce", "", `"><script>alert(1)</script>@example.com`), esptest.PostmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword), 200},
		{"postmark 1 MB address", "postmark", postmarkRecord(t, "Bounce", "HardBounce", "", hugeAddr), esptest.PostmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword), 200},
		{"postmark over the body limit", "postmark", postmarkRecord(t, "Bounce", "HardBounce", "", strings.Repeat("a", 1<<20)+"@example.com"), esptest.PostmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword), 413},
	}

	before := h.snapshot(t)
	fetchesBefore := len(h.aws.Attempts())
	for _, c := range cases {
		r := h.post(t, c.provider, c.body, c.hdr)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d: %.300s", c.name, r.status, c.status, r.body)
		}
		if diff := cmp.Diff(before, h.snapshot(t)); diff != "" {
			t.Errorf("%s changed Redis (-before +after):\n%.2000s", c.name, diff)
			before = h.snapshot(t)
		}
		if c.status == 200 && !strings.Contains(r.body, `"recorded":0`) {
			t.Errorf("%s: %s, want nothing recorded", c.name, r.body)
		}
	}
	for _, u := range h.aws.Attempts()[fetchesBefore:] {
		if u != esptest.SNSCertURL {
			t.Errorf("fetched %s", u)
		}
	}
	if got := h.state(t, 0); got != dispatcher.StateSent {
		t.Errorf("send state %s after the attacks, want sent", got)
	}
	for _, a := range []string{addr(0), addr(1), "a@example.com", "replay@example.org"} {
		if got := h.suppression(t, a); got != "" && a != "replay@example.org" {
			t.Errorf("%s suppressed (%s) by an attack", a, got)
		}
	}
}

// SNS asks to confirm a subscription: Missive visits the SubscribeURL
// once signed, and never one off AWS.
func TestESPSESSubscription(t *testing.T) {
	t.Parallel()
	h := espSetup(t, 0)
	confirm := func(subscribeURL string) espResp {
		m := map[string]string{
			"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b", "Token": "2336412f37fb687f5d51e6e241d09c805a",
			"TopicArn": esptest.SESTopic, "Message": "You have chosen to subscribe to the topic " + esptest.SESTopic + ".",
			"SubscribeURL": subscribeURL, "Timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		}
		return h.post(t, "ses", esptest.SignSNS(t, m, "1"), nil)
	}
	good := "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + esptest.SESTopic + "&Token=2336412f37fb687f5d51e6e241d09c805a"
	if r := confirm(good); r.status != http.StatusOK {
		t.Fatalf("confirmation: %d %s", r.status, r.body)
	}
	for _, bad := range []string{
		"http://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
		"https://evil.com/?Action=ConfirmSubscription&Token=x",
		"https://sns.amazonaws.com.evil.com/?Action=ConfirmSubscription&Token=x",
		"https://sns.eu-west-1.amazonaws.com:8443/?Action=ConfirmSubscription&Token=x",
	} {
		if r := confirm(bad); r.status != http.StatusForbidden {
			t.Errorf("SubscribeURL %s: status %d, want 403", bad, r.status)
		}
	}
	var gets []string
	for _, u := range h.aws.Attempts() {
		if u != esptest.SNSCertURL {
			gets = append(gets, u)
		}
	}
	if diff := cmp.Diff([]string{good}, gets); diff != "" {
		t.Errorf("subscription GETs (-want +got):\n%s", diff)
	}
	if n := slices.Index(h.aws.Attempts(), esptest.SNSCertURL); n < 0 || slices.Contains(h.aws.Attempts()[n+1:], esptest.SNSCertURL) {
		t.Errorf("certificate fetched %v, want once (cached)", h.aws.Attempts())
	}
}

// A certificate that is not served, or not valid now, refuses the
// message; AWS out of reach answers 503, so that SNS retries.
func TestESPSESCertificateChecks(t *testing.T) {
	t.Parallel()
	h := espSetup(t, 0)
	post := func() int {
		return h.post(t, "ses", esptest.SignSNS(t, snsNotification(esptest.SESMessage("Bounce", "", "x@example.org")), "2"), nil).status
	}
	serve := func(cert []byte) { h.aws.Serve(esptest.SNSCertPath, string(cert)) }
	serve([]byte("not a certificate"))
	if got := post(); got != http.StatusForbidden {
		t.Errorf("no certificate served: %d, want 403", got)
	}
	serve(esptest.SNSCert(time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)))
	if got := post(); got != http.StatusForbidden {
		t.Errorf("expired certificate: %d, want 403", got)
	}
	if h.suppression(t, "x@example.org") != "" {
		t.Errorf("suppressed through a refused message")
	}
	// A certificate URL the double does not serve: the transport fails.
	m := snsNotification(esptest.SESMessage("Bounce", "", "x@example.org"))
	m["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-other.pem"
	if r := h.post(t, "ses", esptest.SignSNS(t, m, "2"), nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("AWS out of reach: %d, want 503", r.status)
	}
}

// A provider without settings answers 404.
func TestESPOffWithoutSettings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := b.srv
	for _, p := range []string{"ses", "sendgrid", "mailgun", "postmark", "other"} {
		res, err := srv.Client().Post(srv.URL+"/webhooks/email/"+p, "application/json", strings.NewReader("[]"))
		must(t, err)
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, res.StatusCode)
		}
	}
}

// fuzzDispatcher is a dispatcher for fuzzing the webhooks, with one
// contact and no sends.
func fuzzDispatcher(f *testing.F) http.Handler {
	b := setup(f, withESP(newAWS(f)), withoutLogs())
	if err := b.d.Store.UpsertContact(context.Background(), &dispatcher.Contact{ID: "c1", Email: "c1@example.com"}, "Europe/Paris"); err != nil {
		f.Fatal(err)
	}
	return b.srv.Config.Handler
}

// fuzzWebhook fuzzes post, which sends what it is given to a webhook of
// h, a fuzzDispatcher, starting from the seeds of esptest.FuzzSeeds.
func fuzzWebhook(f *testing.F, post func(t *testing.T, h http.Handler, body string)) {
	for _, s := range esptest.FuzzSeeds(f) {
		f.Add(s)
	}
	h := fuzzDispatcher(f)
	f.Fuzz(func(t *testing.T, body string) { post(t, h, body) })
}

func fuzzPost(t *testing.T, h http.Handler, provider string, body []byte, hdr http.Header) {
	req := httptest.NewRequest("POST", "/webhooks/email/"+provider, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s: status %d for %q: %s", provider, rec.Code, body, rec.Body)
	}
}

// FuzzESPSESMessage fuzzes the SES notification inside a validly signed
// SNS message, and the SNS envelope itself.
func FuzzESPSESMessage(f *testing.F) {
	for _, s := range esptest.FuzzSeeds(f) {
		f.Add(s, true)
		f.Add(s, false)
	}
	h := fuzzDispatcher(f)
	f.Fuzz(func(t *testing.T, msg string, signed bool) {
		if signed {
			fuzzPost(t, h, "ses", esptest.SignSNS(t, snsNotification(msg), "2"), nil)
			return
		}
		fuzzPost(t, h, "ses", []byte(msg), nil)
	})
}

// FuzzESPSendGrid fuzzes a validly signed SendGrid body.
func FuzzESPSendGrid(f *testing.F) {
	fuzzWebhook(f, func(t *testing.T, h http.Handler, body string) {
		fuzzPost(t, h, "sendgrid", []byte(body), sendgridHeaders(t, []byte(body), time.Now()))
	})
}

// FuzzESPMailgun fuzzes the event data of a validly signed Mailgun body.
func FuzzESPMailgun(f *testing.F) {
	fuzzWebhook(f, func(t *testing.T, h http.Handler, eventData string) {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		token := newToken(t)
		body := `{"signature":{"timestamp":"` + ts + `","token":"` + token + `","signature":"` + esptest.SignMailgun(esptest.MailgunKey, ts, token) + `"},"event-data":` + eventData + `}`
		fuzzPost(t, h, "mailgun", []byte(body), nil)
		fuzzPost(t, h, "mailgun", []byte(eventData), nil)
	})
}

// FuzzESPPostmark fuzzes an authenticated Postmark body.
func FuzzESPPostmark(f *testing.F) {
	fuzzWebhook(f, func(t *testing.T, h http.Handler, body string) {
		fuzzPost(t, h, "postmark", []byte(body), esptest.PostmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword))
	})
}

func TestRecordDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *app.Config) { c.Feedback = feedback.Policy{MinSample: 1000} }))
	ctx := context.Background()
	run := runMailing(t, b, 5)
	id := func(i int) string { return dispatcher.SendID(run, fmt.Sprintf("m%04d", i), channels.Email) }
	state := func(i int) string {
		s, err := b.d.Store.Send(ctx, id(i))
		must(t, err)
		return s.State
	}
	record := func(ev channels.Feedback) {
		t.Helper()
		must(t, b.d.Feedback.RecordDelivery(ctx, ev))
	}
	record(channels.Feedback{Send: id(0), Kind: channels.Delivered, Source: "ses"})
	record(channels.Feedback{Send: id(1), Kind: channels.HardBounce, Code: "5.1.1", Source: "dsn"})
	record(channels.Feedback{Send: id(1), Kind: channels.HardBounce, Code: "5.1.1", Source: "dsn"}) // resent report
	record(channels.Feedback{Send: id(1), Kind: channels.Delivered, Source: "ses"})                 // out of order
	record(channels.Feedback{Send: id(2), Kind: channels.Complaint, Source: "arf"})
	for i := range 3 {
		record(channels.Feedback{Channel: channels.Email, Address: "m0003@example.com", Kind: channels.SoftBounce, Code: "4.2.2", Source: "dsn",
			At: time.Now().Add(time.Duration(i) * time.Minute)})
	}
	if got := []string{state(0), state(1), state(2)}; got[0] != dispatcher.StateDelivered || got[1] != dispatcher.StateBounced || got[2] != dispatcher.StateSent {
		t.Errorf("states %v, want delivered, bounced, sent", got)
	}
	for addr, want := range map[string]string{"m0001@example.com": dispatcher.SuppressBounce, "m0002@example.com": dispatcher.SuppressComplaint, "m0003@example.com": dispatcher.SuppressBounce} {
		sup, err := b.d.Store.Suppression(ctx, channels.Email, addr)
		if err != nil || sup.Reason != want {
			t.Errorf("%s: suppression %+v %v, want %s", addr, sup, err, want)
		}
		if addr == "m0003@example.com" && (sup == nil || sup.Until.IsZero()) {
			t.Errorf("soft bounces suppressed for good, want for a time")
		}
	}
	if cs, _ := b.d.Store.Consents(ctx, "m0002"); cs["email/newsletter"] != dispatcher.Withdrawn {
		t.Errorf("a complaint left marketing consent: %v", cs)
	}
	r, err := b.d.Store.Run(ctx, run)
	must(t, err)
	want := map[string]int64{feedback.FeedbackDelivered: 1, feedback.FeedbackHardBounces: 1, feedback.FeedbackComplaints: 1}
	for k, v := range want {
		if r.Feedback[k] != v {
			t.Errorf("feedback %s = %d, want %d (%v)", k, r.Feedback[k], v, r.Feedback)
		}
	}
	if !r.Balanced || r.Counters["delivered"] != 1 || r.Counters["bounced"] != 1 || r.Counters["sent"] != 3 {
		t.Errorf("counters %v", r.Counters)
	}
	if err := b.d.Feedback.RecordDelivery(ctx, channels.Feedback{Send: run + "~000000000000000000000000", Kind: channels.HardBounce}); err != feedback.ErrUnknownSend {
		t.Errorf("unknown send: %v, want ErrUnknownSend", err)
	}
}

// A run whose bounce rate passes the policy pauses its campaign and says why.
func TestBounceRatePausesTheRun(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *app.Config) { c.Feedback = feedback.Policy{MinSample: 10, MaxBounceRate: 0.2} }))
	ctx := context.Background()
	seedMailing(t, b, 10)
	_, err := b.d.Pipeline.ScheduleCampaign(ctx, "mailing", dispatcher.Schedule{Cron: "0 10 * * *", TZ: "Europe/Paris"})
	must(t, err)
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	b.waitRun(t, run, 20*time.Second)
	must(t, b.d.Store.Redis.HSet(ctx, b.d.Store.RunKey(run), "state", dispatcher.RunSending).Err())
	c, _ := b.d.Store.Campaign(ctx, "mailing")
	c.State = dispatcher.Running
	must(t, b.d.Store.PutCampaign(ctx, c))
	for i := range 3 {
		must(t, b.d.Feedback.RecordDelivery(ctx, channels.Feedback{Send: dispatcher.SendID(run, fmt.Sprintf("m%04d", i), channels.Email), Kind: channels.HardBounce, Source: "dsn"}))
	}
	c, _ = b.d.Store.Campaign(ctx, "mailing")
	reason, _ := b.d.Store.RunField(ctx, run, "paused_reason")
	if c.State != dispatcher.Paused || reason != "bounce rate 30.0% passed 20.0%" {
		t.Errorf("campaign %s, reason %q; want paused by a 30%% bounce rate", c.State, reason)
	}
}

func TestVERPBounceLeadsBackToItsSend(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *app.Config) { c.BounceDomain = "bounce.shop.example" }))
	ctx := context.Background()
	run := runMailing(t, b, 2)
	var token string
	for _, m := range b.smtp.Messages() {
		local, domain, _ := strings.Cut(m.From, "@")
		if domain != "bounce.shop.example" || !strings.HasPrefix(local, "bounces+") || len(local) > 64 {
			t.Fatalf("envelope sender %q is not a VERP address of the bounce domain", m.From)
		}
		if m.To[0] == "m0001@example.com" {
			token = strings.TrimPrefix(local, "bounces+")
		}
	}
	send := dispatcher.SendID(run, "m0001", channels.Email)

	// A forged MAC, a token for another send, garbage: nothing changes.
	for _, forged := range []string{send + ".0000000000000000", strings.Replace(token, "m", "n", 1), "", "no-mac", token + "x"} {
		if err := b.d.Feedback.HandleBounce(ctx, forged, "dsn", []feedback.BounceRecipient{{Class: "hard", Status: "5.1.1"}}); err == nil {
			t.Errorf("forged token %q accepted", forged)
		}
	}
	if _, err := b.d.Store.Suppression(ctx, channels.Email, "m0001@example.com"); err == nil {
		t.Fatal("a forged report suppressed the address")
	}

	must(t, b.d.Feedback.HandleBounce(ctx, token, "dsn", []feedback.BounceRecipient{{Class: "delay", Status: "4.4.7"}, {Class: "hard", Status: "5.1.1"}}))
	s, err := b.d.Store.Send(ctx, send)
	must(t, err)
	if s.State != dispatcher.StateBounced || s.ErrorCode != "5.1.1" {
		t.Errorf("send %s/%s after the bounce, want bounced with 5.1.1", s.State, s.ErrorCode)
	}
	if sup, err := b.d.Store.Suppression(ctx, channels.Email, "m0001@example.com"); err != nil || sup.Reason != dispatcher.SuppressBounce {
		t.Errorf("suppression %+v %v", sup, err)
	}
}

// A send id too long for a local part travels as its hash, mapped back
// through Redis.
func TestVERPLongSendID(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *app.Config) { c.BounceDomain = "b.example" }))
	ctx := context.Background()
	send := dispatcher.SendID("a-very-long-campaign-identifier-for-the-spring-sale-"+strings.Repeat("x", 10)+"-toxgxx", "c1", channels.Email)
	rp, err := b.d.Feedback.ReturnPath(ctx, send)
	must(t, err)
	local, _, _ := strings.Cut(rp, "@")
	if len(local) > 64 {
		t.Fatalf("local part of %d octets", len(local))
	}
	got, err := b.d.Feedback.SendForVERP(ctx, strings.TrimPrefix(local, "bounces+"))
	if err != nil || got != send {
		t.Errorf("sendForVERP = %q, %v; want %q", got, err, send)
	}
}

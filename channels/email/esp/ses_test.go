package esp_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/esp"
	"github.com/missive-dev/missive/channels/email/esp/esptest"
)

// Every forged, stale or off-the-rules SNS message is refused with the
// status the webhook answers and the field at fault.
func TestSNSRefusals(t *testing.T) {
	a := newAWS(t)
	s := newSNS(t, a)
	mid := "<run-1~0123456789abcdef01234567@example.com>"
	// signed returns a notification signed with version 2 after mut, then
	// altered by after.
	signed := func(mut, after func(m map[string]string)) []byte {
		m := snsNotification(sesMessage("Bounce", mid, "m0000@example.com"))
		if mut != nil {
			mut(m)
		}
		snsSign(t, m, "2")
		if after != nil {
			after(m)
		}
		return marshal(t, m)
	}
	certAt := func(u string) func(m map[string]string) {
		return func(m map[string]string) { m["SigningCertURL"] = u }
	}
	at := func(ts time.Time) func(m map[string]string) {
		return func(m map[string]string) { m["Timestamp"] = ts.UTC().Format(time.RFC3339Nano) }
	}
	forbidden := func(field string) refusal { return refusal{http.StatusForbidden, field} }
	cases := []struct {
		name string
		body []byte
		want refusal
	}{
		{"unsigned", func() []byte {
			m := snsNotification(sesMessage("Bounce", mid, "m0000@example.com"))
			m["SigningCertURL"], m["SignatureVersion"] = esptest.SNSCertURL, "2"
			return marshal(t, m)
		}(), forbidden("Signature")},
		{"signature not base64", signed(nil, func(m map[string]string) { m["Signature"] = "!!" }), forbidden("Signature")},
		{"message altered", signed(nil, func(m map[string]string) { m["Message"] = sesMessage("Bounce", mid, "m0001@example.com") }), forbidden("Signature")},
		{"subject added", signed(nil, func(m map[string]string) { m["Subject"] = "x" }), forbidden("Signature")},
		{"message id altered", signed(nil, func(m map[string]string) { m["MessageId"] = "other" }), forbidden("Signature")},
		{"version 1 claimed for a version 2 signature", signed(nil, func(m map[string]string) { m["SignatureVersion"] = "1" }), forbidden("Signature")},
		{"version 3", signed(nil, func(m map[string]string) { m["SignatureVersion"] = "3" }), forbidden("Signature")},
		{"stale", signed(at(now.Add(-61*time.Minute)), nil), forbidden("Timestamp")},
		{"too far ahead", signed(at(now.Add(6*time.Minute)), nil), forbidden("Timestamp")},
		{"no timestamp", signed(func(m map[string]string) { delete(m, "Timestamp") }, nil), forbidden("Timestamp")},
		{"timestamp not RFC 3339", signed(func(m map[string]string) { m["Timestamp"] = now.Format(time.RFC1123) }, nil), forbidden("Timestamp")},
		{"topic not allowed", signed(func(m map[string]string) { m["TopicArn"] = "arn:aws:sns:eu-west-1:999999999999:other" }, nil), forbidden("TopicArn")},
		{"cert over http", signed(certAt("http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem"), nil), forbidden("SigningCertURL")},
		{"cert on evil.com", signed(certAt("https://evil.com/SimpleNotificationService-x.pem"), nil), forbidden("SigningCertURL")},
		{"cert on a lookalike host", signed(certAt("https://sns.amazonaws.com.evil.com/SimpleNotificationService-x.pem"), nil), forbidden("SigningCertURL")},
		{"cert on a lookalike region host", signed(certAt("https://sns.eu-west-1.amazonaws.com.evil.com/SimpleNotificationService-x.pem"), nil), forbidden("SigningCertURL")},
		{"cert with credentials", signed(certAt("https://evil.com@sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem"), nil), forbidden("SigningCertURL")},
		{"cert with a port", signed(certAt("https://sns.eu-west-1.amazonaws.com:8443/SimpleNotificationService-x.pem"), nil), forbidden("SigningCertURL")},
		{"cert not a pem", signed(certAt("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.txt"), nil), forbidden("SigningCertURL")},
		{"cert with a query", signed(certAt(esptest.SNSCertURL+"?x=1"), nil), forbidden("SigningCertURL")},
		{"cert URL over 2048 bytes", signed(certAt("https://sns.eu-west-1.amazonaws.com/"+strings.Repeat("a", 2048)+".pem"), nil), forbidden("SigningCertURL")},
		{"cert not served", signed(certAt("https://sns.eu-west-1.amazonaws.com/missing.pem"), nil), forbidden("Signature")},
		{"cert behind a redirect", signed(certAt("https://sns.eu-west-1.amazonaws.com/redirect.pem"), nil), forbidden("Signature")},
		{"unknown type", signed(func(m map[string]string) { m["Type"] = "Other" }, nil), refusal{http.StatusBadRequest, "Type"}},
		{"not json", []byte("<html>"), refusal{http.StatusBadRequest, "body"}},
		{"a JSON array", []byte("[]"), refusal{http.StatusBadRequest, "body"}},
	}
	for _, c := range cases {
		_, err := s.Parse(t.Context(), c.body, now)
		if diff := cmp.Diff(c.want, refusalOf(t, err)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	for _, u := range a.Requests() {
		if u != esptest.SNSCertURL && u != "https://sns.eu-west-1.amazonaws.com/missing.pem" && u != "https://sns.eu-west-1.amazonaws.com/redirect.pem" {
			t.Errorf("fetched %s", u)
		}
	}
}

// Freshness is an hour back and five minutes ahead, both ends included;
// version 1 and version 2 signatures both pass.
func TestSNSFreshness(t *testing.T) {
	s := newSNS(t, newAWS(t))
	for _, c := range []struct {
		at      time.Time
		version string
		ok      bool
	}{
		{now.Add(-time.Hour), "1", true},
		{now.Add(-time.Hour - time.Millisecond), "2", false},
		{now.Add(5 * time.Minute), "2", true},
		{now.Add(5*time.Minute + time.Millisecond), "1", false},
		{now, "1", true},
	} {
		m := snsNotification(sesMessage("Bounce", "", "a@example.com"))
		m["Timestamp"] = c.at.Format(time.RFC3339Nano)
		_, err := s.Parse(t.Context(), snsSign(t, m, c.version), now)
		if (err == nil) != c.ok {
			t.Errorf("published %v, version %s: %v, want ok %v", c.at.Sub(now), c.version, err, c.ok)
		}
	}
}

// An SES notification in either form (topic notification or event
// publishing) yields one event per recipient, ids numbered within the SNS
// message; a signed Message that is not an SES notification is ignored,
// as are types that change nothing.
func TestSESNotifications(t *testing.T) {
	s := newSNS(t, newAWS(t))
	send := "run-1~0123456789abcdef01234567"
	fb := func(kind channels.FeedbackKind, addr, code string, i int) channels.Feedback {
		return channels.Feedback{Send: send, Channel: channels.Email, Source: "ses", Kind: kind, Address: channels.Address(addr),
			Code: code, EventID: fmt.Sprintf("%s\x00%d", snsMessageID, i)}
	}
	cases := []struct {
		name, message string
		want          esp.Events
	}{
		{"two bounced recipients, diagnostic code when no status", `{"notificationType":"Bounce","mail":{"commonHeaders":{"messageId":"<` + send + `@x.example>"}},
			"bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"a@example.com","status":"5.1.1"},{"emailAddress":"b@example.com","diagnosticCode":"smtp; 550 5.1.10 no such user"}]}}`,
			esp.Events{Feedback: []channels.Feedback{fb(channels.HardBounce, "a@example.com", "5.1.1", 0), fb(channels.HardBounce, "b@example.com", "5.1.10", 1)}}},
		{"event publishing, Message-ID from the headers, undetermined bounce", `{"eventType":"Bounce","mail":{"headers":[{"name":"From","value":"x"},{"name":"message-id","value":"<` + send + `@x.example>"}]},
			"bounce":{"bounceType":"Undetermined","bouncedRecipients":[{"emailAddress":"a@example.com","status":"smtp; 450 busy"}]}}`,
			esp.Events{Feedback: []channels.Feedback{fb(channels.SoftBounce, "a@example.com", "", 0)}}},
		{"free text is not a code", `{"notificationType":"Bounce","mail":{"commonHeaders":{"messageId":"<` + send + `@x.example>"}},
			"bounce":{"bounceType":"Transient","bouncedRecipients":[{"emailAddress":"a@example.com","diagnosticCode":"mailbox of a@example.com full"}]}}`,
			esp.Events{Feedback: []channels.Feedback{fb(channels.SoftBounce, "a@example.com", "", 0)}}},
		{"a bare SMTP code is kept", `{"notificationType":"Bounce","mail":{"commonHeaders":{"messageId":"<` + send + `@x.example>"}},
			"bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"a@example.com","diagnosticCode":"550"}]}}`,
			esp.Events{Feedback: []channels.Feedback{fb(channels.HardBounce, "a@example.com", "550", 0)}}},
		{"complaint", `{"notificationType":"Complaint","mail":{"commonHeaders":{"messageId":"<` + send + `@x.example>"}},"complaint":{"complainedRecipients":[{"emailAddress":"a@example.com"}]}}`,
			esp.Events{Feedback: []channels.Feedback{fb(channels.Complaint, "a@example.com", "", 0)}}},
		{"delivery", `{"eventType":"Delivery","mail":{"commonHeaders":{"messageId":"<` + send + `@x.example>"}},"delivery":{"recipients":["a@example.com"]}}`,
			esp.Events{Feedback: []channels.Feedback{fb(channels.Delivered, "a@example.com", "", 0)}}},
		{"open", `{"eventType":"Open","mail":{}}`, esp.Events{}},
		{"not JSON", `You have chosen to subscribe`, esp.Events{Ignored: 1}},
		{"a number where an address goes", `{"eventType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":5}]}}`, esp.Events{Ignored: 1}},
	}
	for _, c := range cases {
		got, err := s.Parse(t.Context(), snsSign(t, snsNotification(c.message), "2"), now)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := esp.SNSMessage{Type: esp.SNSNotification, TopicARN: esptest.SESTopic, Events: c.want}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

// SNS asks to confirm a subscription: Parse hands over the SubscribeURL
// once signed, and never one off AWS; Confirm visits it.
func TestSNSSubscription(t *testing.T) {
	a := newAWS(t)
	s := newSNS(t, a)
	confirmation := func(typ, subscribeURL string) []byte {
		return snsSign(t, map[string]string{
			"Type": typ, "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b", "Token": "2336412f37fb687f5d51e6e241d09c805a",
			"TopicArn": esptest.SESTopic, "Message": "You have chosen to subscribe to the topic " + esptest.SESTopic + ".",
			"SubscribeURL": subscribeURL, "Timestamp": now.Format(time.RFC3339Nano),
		}, "1")
	}
	good := "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + esptest.SESTopic + "&Token=2336412f37fb687f5d51e6e241d09c805a"
	m, err := s.Parse(t.Context(), confirmation(esp.SNSSubscriptionConfirmation, good), now)
	if err != nil {
		t.Fatal(err)
	}
	want := esp.SNSMessage{Type: esp.SNSSubscriptionConfirmation, TopicARN: esptest.SESTopic, SubscribeURL: good}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("confirmation (-want +got):\n%s", diff)
	}
	if err := s.Confirm(t.Context(), m); err != nil {
		t.Errorf("Confirm: %v", err)
	}
	for _, bad := range []string{
		"",
		"http://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
		"https://evil.com/?Action=ConfirmSubscription&Token=x",
		"https://sns.amazonaws.com.evil.com/?Action=ConfirmSubscription&Token=x",
		"https://sns.eu-west-1.amazonaws.com:8443/?Action=ConfirmSubscription&Token=x",
		"https://user@sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=x",
	} {
		_, err := s.Parse(t.Context(), confirmation(esp.SNSSubscriptionConfirmation, bad), now)
		if diff := cmp.Diff(refusal{http.StatusForbidden, "SubscribeURL"}, refusalOf(t, err)); diff != "" {
			t.Errorf("SubscribeURL %s (-want +got):\n%s", bad, diff)
		}
		err = s.Confirm(t.Context(), esp.SNSMessage{Type: esp.SNSSubscriptionConfirmation, SubscribeURL: bad})
		if diff := cmp.Diff(refusal{http.StatusForbidden, "SubscribeURL"}, refusalOf(t, err)); diff != "" {
			t.Errorf("Confirm %s (-want +got):\n%s", bad, diff)
		}
	}
	// AWS refuses, or cannot be reached: 502, and the token is in no error.
	for _, u := range []string{
		"https://sns.eu-west-1.amazonaws.com/gone?Token=secret-token",
		"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=secret-token",
	} {
		err := s.Confirm(t.Context(), esp.SNSMessage{Type: esp.SNSSubscriptionConfirmation, SubscribeURL: u})
		if diff := cmp.Diff(refusal{http.StatusBadGateway, "SubscribeURL"}, refusalOf(t, err)); diff != "" {
			t.Errorf("Confirm %s (-want +got):\n%s", u, diff)
		}
		var e *esp.Error
		if errors.As(err, &e) && (strings.Contains(e.Error(), "secret-token") || e.Err != nil && strings.Contains(e.Err.Error(), "secret-token")) {
			t.Errorf("error quotes the token: %v / %v", err, e.Err)
		}
	}
	// A signed unsubscription is handed over, with nothing to do.
	m, err = s.Parse(t.Context(), confirmation(esp.SNSUnsubscribeConfirmation, good), now)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(esp.SNSMessage{Type: esp.SNSUnsubscribeConfirmation, TopicARN: esptest.SESTopic}, m); diff != "" {
		t.Errorf("unsubscription (-want +got):\n%s", diff)
	}

	var gets []string
	for _, u := range a.Requests() {
		if u != esptest.SNSCertURL {
			gets = append(gets, u)
		}
	}
	if diff := cmp.Diff([]string{good, "https://sns.eu-west-1.amazonaws.com/gone?Token=secret-token"}, gets); diff != "" {
		t.Errorf("GETs besides the certificate (-want +got):\n%s", diff)
	}
	if n := slices.Index(a.Requests(), esptest.SNSCertURL); n < 0 || slices.Contains(a.Requests()[n+1:], esptest.SNSCertURL) {
		t.Errorf("certificate fetched %v, want once (cached)", a.Requests())
	}
}

// A certificate that is not served, not a certificate, or not valid now
// refuses the message (403); AWS out of reach or failing answers 503, so
// that SNS retries.
func TestSNSCertificateChecks(t *testing.T) {
	a := newAWS(t)
	s := newSNS(t, a)
	expired := certPEM(keys().ses, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	notYet := certPEM(keys().ses, now.Add(time.Hour), now.Add(48*time.Hour))
	cases := []struct {
		name, path, body string
		want             refusal
	}{
		{"not a certificate", "/garbage.pem", "not a certificate", refusal{403, "Signature"}},
		{"a PEM key, no certificate", "/key.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", refusal{403, "Signature"}},
		{"a broken certificate", "/broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", refusal{403, "Signature"}},
		{"over 64 KiB", "/huge.pem", string(keys().sesPEM) + strings.Repeat("#", 64<<10), refusal{403, "Signature"}},
		{"expired", "/expired.pem", string(expired), refusal{403, "Signature"}},
		{"not yet valid", "/notyet.pem", string(notYet), refusal{403, "Signature"}},
		{"not found", "/404.pem", "404", refusal{403, "Signature"}},
		{"AWS failing", "/500.pem", "500", refusal{503, "SigningCertURL"}},
		{"AWS throttling", "/429.pem", "429", refusal{503, "SigningCertURL"}},
		{"another key's certificate", "/other.pem", string(certPEM(otherRSA(), now.Add(-time.Hour), now.Add(time.Hour))), refusal{403, "Signature"}},
		{"text before the certificate", "/text.pem", "# sns\n" + string(keys().sesPEM), refusal{}},
	}
	for _, c := range cases {
		a.Serve(c.path, c.body)
		m := snsNotification(sesMessage("Bounce", "", "x@example.org"))
		m["SigningCertURL"] = "https://sns.eu-west-1.amazonaws.com" + c.path
		_, err := s.Parse(t.Context(), snsSign(t, m, "2"), now)
		if diff := cmp.Diff(c.want, refusalOf(t, err)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
		if c.want.Status == 503 && !errors.Is(err, esp.ErrUnreachable) {
			t.Errorf("%s: %v does not wrap ErrUnreachable", c.name, err)
		}
	}
	// A host the network does not reach: the transport fails.
	m := snsNotification(sesMessage("Bounce", "", "x@example.org"))
	m["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-other.pem"
	_, err := s.Parse(t.Context(), snsSign(t, m, "2"), now)
	if diff := cmp.Diff(refusal{503, "SigningCertURL"}, refusalOf(t, err)); diff != "" || !errors.Is(err, esp.ErrUnreachable) {
		t.Errorf("AWS out of reach: %v (-want +got):\n%s", err, diff)
	}
	if strings.Contains(err.Error(), "SimpleNotificationService-other") {
		t.Errorf("error quotes the URL: %v", err)
	}
}

// The cache keeps a certificate 24 hours, then fetches it again; it keeps
// 16, the oldest going first; a clock gone back fetches again.
func TestCertCache(t *testing.T) {
	a := newAWS(t)
	c := esp.NewCertCache(a.Client())
	fetches := func(u string) int {
		n := 0
		for _, r := range a.Requests() {
			if r == u {
				n++
			}
		}
		return n
	}
	get := func(u string, at time.Time) {
		t.Helper()
		if _, err := c.Certificate(t.Context(), u, at); err != nil {
			t.Fatalf("%s at %v: %v", u, at, err)
		}
	}
	get(esptest.SNSCertURL, now)
	get(esptest.SNSCertURL, now.Add(24*time.Hour))
	if n := fetches(esptest.SNSCertURL); n != 1 {
		t.Errorf("%d fetches within 24 hours, want 1", n)
	}
	get(esptest.SNSCertURL, now.Add(24*time.Hour+time.Second))
	if n := fetches(esptest.SNSCertURL); n != 2 {
		t.Errorf("%d fetches after 24 hours, want 2", n)
	}
	get(esptest.SNSCertURL, now)
	if n := fetches(esptest.SNSCertURL); n != 3 {
		t.Errorf("%d fetches after the clock went back, want 3", n)
	}

	url := func(i int) string { return fmt.Sprintf("https://sns.us-west-2.amazonaws.com/cert-%d.pem", i) }
	for i := range 17 {
		a.Serve(fmt.Sprintf("/cert-%d.pem", i), string(keys().sesPEM))
	}
	for i := range 16 {
		get(url(i), now)
	}
	get(url(0), now)  // cached
	get(url(16), now) // evicts cert-0
	get(url(1), now)  // still cached
	get(url(0), now)  // fetched again
	got := map[string]int{}
	for _, i := range []int{0, 1, 16} {
		got[url(i)] = fetches(url(i))
	}
	want := map[string]int{url(0): 2, url(1): 1, url(16): 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fetches (-want +got):\n%s", diff)
	}

	if _, err := c.Certificate(t.Context(), "https://evil.com/cert.pem", now); err == nil {
		t.Errorf("a certificate off SNS was fetched")
	}
}

// Concurrent messages share the cache safely.
func TestCertCacheConcurrent(t *testing.T) {
	s := newSNS(t, newAWS(t))
	body := snsSign(t, snsNotification(sesMessage("Bounce", "", "a@example.com")), "2")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Parse(t.Context(), body, now); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// Errors quote no value of the request.
func TestSNSErrorsQuoteNothing(t *testing.T) {
	s := newSNS(t, newAWS(t))
	m := snsNotification(sesMessage("Bounce", "", "secret@example.org"))
	m["TopicArn"] = "arn:secret"
	_, err := s.Parse(t.Context(), marshal(t, m), now)
	b, _ := json.Marshal(err)
	if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(string(b), "secret") {
		t.Errorf("error %v", err)
	}
}

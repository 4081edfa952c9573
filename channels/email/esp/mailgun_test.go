package esp_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/esp"
	"github.com/missive-dev/missive/channels/email/esp/esptest"
)

// Every forged, stale or malformed Mailgun request is refused with the
// status the webhook answers and the field at fault.
func TestMailgunRefusals(t *testing.T) {
	m := newMailgun(t)
	ed := mailgunEventData("failed", "permanent", "<run-1~0123456789abcdef01234567@example.com>", "m0000@example.com")
	body := func(key string, at time.Time, token string) []byte { return mailgunBody(t, ed, key, at, token) }
	cases := []struct {
		name string
		body []byte
		want refusal
	}{
		{"unsigned", []byte(`{"event-data":{"event":"failed","severity":"permanent","recipient":"m0000@example.com"}}`), refusal{403, "signature"}},
		{"wrong key", body("another-key", now, "token-1"), refusal{403, "signature"}},
		{"signature not hex", []byte(`{"signature":{"timestamp":"1772366400","token":"t","signature":"zz"}}`), refusal{403, "signature"}},
		{"token over 512 bytes", body(esptest.MailgunKey, now, string(make([]byte, 513))), refusal{403, "signature"}},
		{"no token", body(esptest.MailgunKey, now, ""), refusal{403, "signature"}},
		{"stale", body(esptest.MailgunKey, now.Add(-6*time.Minute), "token-1"), refusal{403, "signature.timestamp"}},
		{"too far ahead", body(esptest.MailgunKey, now.Add(6*time.Minute), "token-1"), refusal{403, "signature.timestamp"}},
		{"timestamp not a number", func() []byte {
			return marshal(t, map[string]any{"signature": map[string]string{"timestamp": "now", "token": "t", "signature": mailgunSign(esptest.MailgunKey, "now", "t")}})
		}(), refusal{403, "signature.timestamp"}},
		{"not json", []byte("token=x"), refusal{400, "body"}},
		{"signed", body(esptest.MailgunKey, now, "token-1"), refusal{}},
	}
	for _, c := range cases {
		_, _, err := m.Parse(c.body, now)
		if diff := cmp.Diff(c.want, refusalOf(t, err)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	if diff := cmp.Diff(refusal{http.StatusForbidden, "signature.token"}, refusalOf(t, esp.MailgunTokenReused())); diff != "" {
		t.Errorf("MailgunTokenReused (-want +got):\n%s", diff)
	}
}

// A replayed request, or another event signed with a used token, gives
// the same token: the caller refuses it after the first.
func TestMailgunToken(t *testing.T) {
	m := newMailgun(t)
	first := mailgunBody(t, mailgunEventData("failed", "permanent", "", "replay@example.org"), esptest.MailgunKey, now, "replayed")
	other := mailgunBody(t, mailgunEventData("delivered", "", "", "replay@example.org"), esptest.MailgunKey, now, "replayed")
	var tokens []string
	for _, b := range [][]byte{first, first, other} {
		_, token, err := m.Parse(b, now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, token)
	}
	if diff := cmp.Diff([]string{"replayed", "replayed", "replayed"}, tokens); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}
	if esp.MailgunTokenTTL <= 5*time.Minute+5*time.Minute {
		t.Errorf("MailgunTokenTTL %v does not outlive a signature's freshness", esp.MailgunTokenTTL)
	}
}

// Freshness is five minutes back and five ahead, both ends included.
func TestMailgunFreshness(t *testing.T) {
	m := newMailgun(t)
	for at, ok := range map[time.Duration]bool{
		-5 * time.Minute: true, -5*time.Minute - time.Second: false,
		5 * time.Minute: true, 5*time.Minute + time.Second: false,
	} {
		_, _, err := m.Parse(mailgunBody(t, map[string]any{}, esptest.MailgunKey, now.Add(at), "token"), now)
		if (err == nil) != ok {
			t.Errorf("signed at %v: %v, want ok %v", at, err, ok)
		}
	}
}

// Each Mailgun event maps to one kind, or is ignored; the code comes from
// the enhanced code, the message, the description, then the SMTP code.
func TestMailgunEvents(t *testing.T) {
	m := newMailgun(t)
	fb := func(kind channels.FeedbackKind, code string) *channels.Feedback {
		return &channels.Feedback{Channel: channels.Email, Source: "mailgun", Address: "a@example.com", Kind: kind, Code: code, EventID: "id-1"}
	}
	cases := []struct {
		name, eventData string
		want            *channels.Feedback // nil: ignored
	}{
		{"delivered", `{"id":"id-1","event":"delivered","recipient":"a@example.com"}`, fb(channels.Delivered, "")},
		{"complained", `{"id":"id-1","event":"complained","recipient":"a@example.com"}`, fb(channels.Complaint, "")},
		{"permanent failure, enhanced code first", `{"id":"id-1","event":"failed","severity":"permanent","recipient":"a@example.com",
			"delivery-status":{"code":550,"enhanced-code":"5.1.2","message":"5.1.1 unknown","description":"5.1.3"}}`, fb(channels.HardBounce, "5.1.2")},
		{"temporary failure, code from the description", `{"id":"id-1","event":"failed","severity":"temporary","recipient":"a@example.com",
			"delivery-status":{"code":452,"message":"mailbox full","description":"4.2.2 over quota"}}`, fb(channels.SoftBounce, "4.2.2")},
		{"SMTP code last", `{"id":"id-1","event":"failed","severity":"permanent","recipient":"a@example.com",
			"delivery-status":{"code":550,"message":"no such user"}}`, fb(channels.HardBounce, "550")},
		{"a code in a string is not a code", `{"id":"id-1","event":"failed","severity":"permanent","recipient":"a@example.com",
			"delivery-status":{"code":"550"}}`, fb(channels.HardBounce, "")},
		{"send from the Message-ID", `{"id":"id-1","event":"delivered","recipient":"a@example.com","message":{"headers":{"message-id":"r~h@x"}}}`,
			func() *channels.Feedback { f := fb(channels.Delivered, ""); f.Send = "r~h"; return f }()},
		{"failed without a severity", `{"id":"id-1","event":"failed","recipient":"a@example.com"}`, nil},
		{"accepted", `{"id":"id-1","event":"accepted","recipient":"a@example.com"}`, nil},
		{"opened", `{"id":"id-1","event":"opened","recipient":"a@example.com"}`, nil},
		{"not an event", `"x"`, nil},
		{"a number for the Message-ID", `{"event":"delivered","message":{"headers":{"message-id":5}}}`, nil},
		{"no event data", `null`, nil},
	}
	for _, c := range cases {
		body := []byte(`{"signature":{"timestamp":"1772366400","token":"t","signature":"` + mailgunSign(esptest.MailgunKey, "1772366400", "t") + `"},"event-data":` + c.eventData + `}`)
		got, _, err := m.Parse(body, now)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		checkOneEvent(t, c.name, got, c.want)
	}
}

package esp_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/esp"
	"github.com/missive-dev/missive/channels/email/esp/esptest"
)

var (
	wellFormedError = regexp.MustCompile(`^esp: [A-Za-z.-]+ [a-zA-Z ,;]+$`)
	wellFormedCode  = regexp.MustCompile(`^([245]\.[0-9]{1,3}\.[0-9]{1,3}|[2-5][0-9][0-9])$`)
)

// checkError fails t unless err is an *esp.Error of one of statuses whose
// message is one of ours, quoting nothing.
func checkError(t *testing.T, err error, statuses ...int) {
	t.Helper()
	var e *esp.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *esp.Error", err, err)
	}
	ok := false
	for _, s := range statuses {
		ok = ok || e.Status == s
	}
	if !ok || !wellFormedError.MatchString(e.Error()) {
		t.Fatalf("error %d %q, want a status in %v and no value quoted", e.Status, e.Error(), statuses)
	}
}

// checkEvents fails t unless every Feedback is well formed.
func checkEvents(t *testing.T, source string, ev esp.Events) {
	t.Helper()
	if ev.Ignored < 0 {
		t.Fatalf("Ignored %d", ev.Ignored)
	}
	for _, f := range ev.Feedback {
		switch f.Kind {
		case channels.Delivered, channels.HardBounce, channels.SoftBounce, channels.Complaint, channels.Undelivered:
		default:
			t.Fatalf("Kind %q", f.Kind)
		}
		if f.Channel != channels.Email || f.Source != source || !f.At.IsZero() {
			t.Fatalf("Channel %q, Source %q, At %v", f.Channel, f.Source, f.At)
		}
		if a := string(f.Address); a != "" {
			p, err := mail.ParseAddress(a)
			if err != nil || p.Address != a || len(a) > 254 || strings.ContainsAny(a, " <>\r\n\t\x00") ||
				a[strings.LastIndexByte(a, '@'):] != strings.ToLower(a[strings.LastIndexByte(a, '@'):]) {
				t.Fatalf("Address %q is not a normal address", a)
			}
		}
		if f.Code != "" && !wellFormedCode.MatchString(f.Code) {
			t.Fatalf("Code %q", f.Code)
		}
		if f.Send != "" {
			if id, ok := esp.SendIDFromMessageID("<" + esp.MessageIDLocal(f.Send) + "@x>"); len(f.Send) < 300 && (!ok || id != f.Send) {
				t.Fatalf("Send %q does not round-trip", f.Send)
			}
		}
		if len(f.EventID) > 512 {
			t.Fatalf("EventID of %d bytes", len(f.EventID))
		}
	}
}

// FuzzSES fuzzes the SES notification inside a validly signed SNS
// message, and the SNS envelope itself.
func FuzzSES(f *testing.F) {
	for _, s := range esptest.FuzzSeeds(f) {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Add(string(snsSign(f, snsNotification(sesMessage("Bounce", "<a~b@c>", "c1@example.com")), "2")), false)
	f.Add(string(snsSign(f, map[string]string{"Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "t", "TopicArn": esptest.SESTopic,
		"Message": "m", "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=t", "Timestamp": now.Format(time.RFC3339Nano)}, "1")), false)
	s := newSNS(f, newAWS(f))
	f.Fuzz(func(t *testing.T, msg string, signed bool) {
		if signed {
			// JSON carries valid UTF-8 only: what is signed is what is read.
			msg = strings.ToValidUTF8(msg, "\uFFFD")
			m, err := s.Parse(t.Context(), snsSign(t, snsNotification(msg), "2"), now)
			if err != nil {
				t.Fatalf("signed notification refused: %v", err)
			}
			if m.Type != esp.SNSNotification || m.TopicARN != esptest.SESTopic || m.SubscribeURL != "" {
				t.Fatalf("%+v", m)
			}
			checkEvents(t, esp.SourceSES, m.Events)
			return
		}
		m, err := s.Parse(t.Context(), []byte(msg), now)
		if err != nil {
			checkError(t, err, http.StatusBadRequest, http.StatusForbidden, http.StatusServiceUnavailable)
			return
		}
		checkEvents(t, esp.SourceSES, m.Events)
	})
}

// FuzzSendGrid fuzzes a validly signed SendGrid body, and the signature
// headers of a body.
func FuzzSendGrid(f *testing.F) {
	for _, s := range esptest.FuzzSeeds(f) {
		f.Add(s, "1772366400", "MEUCIQ")
	}
	sg := newSendGrid(f)
	f.Fuzz(func(t *testing.T, body, ts, sig string) {
		ev, err := sg.Parse(sendgridHeaders(t, keys().sg, []byte(body), now), []byte(body), now)
		var raw []json.RawMessage
		if json.Unmarshal([]byte(body), &raw) != nil {
			checkError(t, err, http.StatusBadRequest)
		} else if err != nil {
			t.Fatalf("signed array refused: %v", err)
		} else if n := len(ev.Feedback) + ev.Ignored; n != len(raw) {
			t.Fatalf("%d events read of %d", n, len(raw))
		}
		checkEvents(t, esp.SourceSendGrid, ev)

		h := http.Header{}
		h.Set("X-Twilio-Email-Event-Webhook-Timestamp", ts)
		h.Set("X-Twilio-Email-Event-Webhook-Signature", sig)
		_, err = sg.Parse(h, []byte(body), now)
		checkError(t, err, http.StatusForbidden)
	})
}

// FuzzMailgun fuzzes the event data of a validly signed Mailgun body, and
// the whole body.
func FuzzMailgun(f *testing.F) {
	for _, s := range esptest.FuzzSeeds(f) {
		f.Add(s)
	}
	m := newMailgun(f)
	ts := strconv.FormatInt(now.Unix(), 10)
	f.Fuzz(func(t *testing.T, eventData string) {
		const token = "0123456789abcdef0123456789abcdef0123456789abcdef01"
		body := `{"signature":{"timestamp":"` + ts + `","token":"` + token + `","signature":"` + mailgunSign(esptest.MailgunKey, ts, token) + `"},"event-data":` + eventData + `}`
		ev, got, err := m.Parse([]byte(body), now)
		switch {
		case json.Valid([]byte(eventData)):
			if err != nil || got != token {
				t.Fatalf("signed body refused: %v, token %q", err, got)
			}
			if n := len(ev.Feedback) + ev.Ignored; n != 1 {
				t.Fatalf("%d events read of 1", n)
			}
		case err != nil:
			checkError(t, err, http.StatusBadRequest, http.StatusForbidden)
		}
		checkEvents(t, esp.SourceMailgun, ev)

		ev, got, err = m.Parse([]byte(eventData), now)
		if err != nil {
			checkError(t, err, http.StatusBadRequest, http.StatusForbidden)
		} else if got == "" || len(got) > 512 {
			t.Fatalf("token of %d bytes", len(got))
		}
		checkEvents(t, esp.SourceMailgun, ev)
	})
}

// FuzzPostmark fuzzes an authenticated Postmark body, and the credentials.
func FuzzPostmark(f *testing.F) {
	for _, s := range esptest.FuzzSeeds(f) {
		f.Add(s, "Basic cG9zdG1hcmstaG9vazpndWVzcw==")
	}
	p := newPostmark(f)
	good := postmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword)
	f.Fuzz(func(t *testing.T, body, authorization string) {
		ev, err := p.Parse(good, []byte(body))
		switch {
		case err != nil:
			checkError(t, err, http.StatusBadRequest)
		case !json.Valid([]byte(body)):
			t.Fatalf("a body that is not JSON read: %+v", ev)
		case len(ev.Feedback)+ev.Ignored != 1:
			t.Fatalf("%+v: not one record read", ev)
		}
		checkEvents(t, esp.SourcePostmark, ev)

		h := http.Header{"Authorization": {authorization}}
		if u, pw, ok := (&http.Request{Header: h}).BasicAuth(); ok && u == esptest.PostmarkUser && pw == esptest.PostmarkPassword {
			return
		}
		_, err = p.Parse(h, []byte(body))
		checkError(t, err, http.StatusUnauthorized)
	})
}

// FuzzSendIDFromMessageID fuzzes the Message-ID decoder, and the round
// trip of a send id through the encoder.
func FuzzSendIDFromMessageID(f *testing.F) {
	for _, s := range []string{
		"<run-1~0123456789abcdef01234567@example.com>", " <m-YXBpLW9yZGVycy14IHYxfjAxMjM@example.com> ", "<m-!!~x@x>",
		"<14c5d75ce93.dfd.64b469@ismtpd-555>", "<@example.com>", "a~b", "<m-YX5iDQo@x>", "api-orders-x v1~0123", "é~ü", "\x00~\x01",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if id, ok := esp.SendIDFromMessageID(s); ok {
			i := strings.LastIndexByte(id, '~')
			if i <= 0 || i == len(id)-1 || len(id) > 512 || strings.ContainsFunc(id, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				t.Fatalf("%q read as %q", s, id)
			}
		} else if id != "" {
			t.Fatalf("%q: %q without ok", s, id)
		}

		local := esp.MessageIDLocal(s)
		mid := "<" + local + "@example.com>"
		if strings.ContainsAny(local, "<>@ \t\r\n()[]\\,;:\"") {
			t.Fatalf("local part %q of %q is not an id-left", local, s)
		}
		i := strings.LastIndexByte(s, '~')
		shaped := i > 0 && i < len(s)-1 && !strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
		id, ok := esp.SendIDFromMessageID(mid)
		switch {
		case len(mid) > 512:
			if ok {
				t.Fatalf("a Message-ID of %d bytes read", len(mid))
			}
		case shaped != ok || (ok && id != s):
			t.Fatalf("send id %q: Message-ID %q reads %q %v", s, mid, id, ok)
		}
	})
}

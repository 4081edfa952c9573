package esp_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/esp"
	"github.com/missive-dev/missive/channels/email/esp/esptest"
)

// provider reads, as one provider posts it, one event of a kind (Bounce,
// SoftBounce, Complaint, Delivery) for mid ("" for none) and address.
type provider struct {
	name string
	read func(t *testing.T, kind, mid, address string) (esp.Events, error)
	// code and eventID are what the provider's event of kind carries.
	code    func(kind string) string
	eventID func(kind string) string
}

func providers(t *testing.T) []provider {
	a := newAWS(t)
	ses, sg, mg, pm := newSNS(t, a), newSendGrid(t), newMailgun(t), newPostmark(t)
	return []provider{
		{
			name: esp.SourceSES,
			read: func(t *testing.T, kind, mid, address string) (esp.Events, error) {
				m, err := ses.Parse(t.Context(), snsSign(t, snsNotification(sesMessage(kind, mid, address)), "2"), now)
				return m.Events, err
			},
			code: func(kind string) string {
				return map[string]string{"Bounce": "5.1.1", "SoftBounce": "5.1.1"}[kind]
			},
			eventID: func(string) string { return snsMessageID + "\x000" },
		},
		{
			name: esp.SourceSendGrid,
			read: func(t *testing.T, kind, mid, address string) (esp.Events, error) {
				body := sendgridEvents(t, esptest.SendGridEvent(kind, mid, address))
				return sg.Parse(sendgridHeaders(t, keys().sg, body, now), body, now)
			},
			code: func(kind string) string {
				return map[string]string{"Bounce": "5.1.1", "SoftBounce": "4.7.1"}[kind]
			},
			eventID: func(string) string { return "ev-0" },
		},
		{
			name: esp.SourceMailgun,
			read: func(t *testing.T, kind, mid, address string) (esp.Events, error) {
				ed := map[string]map[string]any{
					"Bounce":     mailgunEventData("failed", "permanent", mid, address),
					"SoftBounce": mailgunEventData("failed", "temporary", mid, address),
					"Complaint":  mailgunEventData("complained", "", mid, address),
					"Delivery":   mailgunEventData("delivered", "", mid, address),
				}[kind]
				ev, token, err := mg.Parse(mailgunBody(t, ed, esptest.MailgunKey, now, "token-"+kind), now)
				if err == nil && token != "token-"+kind {
					t.Errorf("token %q, want %q", token, "token-"+kind)
				}
				return ev, err
			},
			code: func(kind string) string {
				return map[string]string{"Bounce": "5.1.1", "SoftBounce": "5.1.1"}[kind]
			},
			eventID: func(string) string { return "mg-event-1" },
		},
		{
			name: esp.SourcePostmark,
			read: func(t *testing.T, kind, mid, address string) (esp.Events, error) {
				body := map[string][]byte{
					"Bounce":     postmarkRecord(t, "Bounce", "HardBounce", mid, address),
					"SoftBounce": postmarkRecord(t, "Bounce", "SoftBounce", mid, address),
					"Complaint":  postmarkRecord(t, "SpamComplaint", "SpamComplaint", mid, address),
					"Delivery":   postmarkRecord(t, "Delivery", "", mid, address),
				}[kind]
				return pm.Parse(postmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword), body)
			},
			code: func(kind string) string {
				if kind == "Delivery" {
					return ""
				}
				return "5.1.1"
			},
			eventID: func(kind string) string {
				switch kind {
				case "Delivery":
					return "Delivery\x00\x00" + postmarkMessageID
				case "Complaint":
					return "SpamComplaint\x004323372036854775807\x00" + postmarkMessageID
				}
				return "Bounce\x004323372036854775807\x00" + postmarkMessageID
			},
		},
	}
}

// Each provider's bounce, complaint and delivery name the send of our
// Message-ID, in either of its forms; without our Message-ID, the
// address says who.
func TestFeedback(t *testing.T) {
	sendA := "run-1~0123456789abcdef01234567"
	sendB := "api-orders v1~0123456789abcdef01234567" // not a dot-atom
	midA := "<" + esp.MessageIDLocal(sendA) + "@example.com>"
	midB := "<" + esp.MessageIDLocal(sendB) + "@example.com>"
	cases := []struct {
		name, kind, mid, address string
		want                     channels.Feedback
	}{
		{"bounce", "Bounce", midA, "m0000@example.com",
			channels.Feedback{Send: sendA, Address: "m0000@example.com", Kind: channels.HardBounce}},
		{"complaint, encoded send id", "Complaint", midB, "m0001@example.com",
			channels.Feedback{Send: sendB, Address: "m0001@example.com", Kind: channels.Complaint}},
		{"delivery", "Delivery", midA, "m0002@example.com",
			channels.Feedback{Send: sendA, Address: "m0002@example.com", Kind: channels.Delivered}},
		{"bounce by address, domain lower-cased", "Bounce", "", "M0003@Example.COM",
			channels.Feedback{Address: "M0003@example.com", Kind: channels.HardBounce}},
		{"soft bounce, Message-ID not ours", "SoftBounce", "<someone-else@elsewhere.example>", "stranger@example.org",
			channels.Feedback{Address: "stranger@example.org", Kind: channels.SoftBounce}},
	}
	for _, p := range providers(t) {
		t.Run(p.name, func(t *testing.T) {
			for _, c := range cases {
				ev, err := p.read(t, c.kind, c.mid, c.address)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				want := c.want
				want.Channel, want.Source, want.Code, want.EventID = channels.Email, p.name, p.code(c.kind), p.eventID(c.kind)
				if diff := cmp.Diff(esp.Events{Feedback: []channels.Feedback{want}}, ev); diff != "" {
					t.Errorf("%s (-want +got):\n%s", c.name, diff)
				}
			}
		})
	}
}

// A retried delivery of the very same request yields the same event ids,
// so that the caller applies it once.
func TestRetriedEventSameID(t *testing.T) {
	for _, p := range providers(t) {
		t.Run(p.name, func(t *testing.T) {
			first, err := p.read(t, "SoftBounce", "", "soft@example.org")
			if err != nil {
				t.Fatal(err)
			}
			again, err := p.read(t, "SoftBounce", "", "soft@example.org")
			if err != nil {
				t.Fatal(err)
			}
			if len(first.Feedback) != 1 || first.Feedback[0].EventID == "" {
				t.Fatalf("no event id: %+v", first)
			}
			if diff := cmp.Diff(first, again); diff != "" {
				t.Errorf("retry (-first +again):\n%s", diff)
			}
		})
	}
}

// Addresses that are not one valid address are dropped, the events kept:
// the send, when named, still learns of them.
func TestFeedbackDropsBadAddresses(t *testing.T) {
	for _, p := range providers(t) {
		t.Run(p.name, func(t *testing.T) {
			for _, a := range badAddresses {
				ev, err := p.read(t, "Bounce", "", a)
				if err != nil {
					t.Fatalf("%.40q: %v", a, err)
				}
				if len(ev.Feedback) != 1 || ev.Feedback[0].Address != "" {
					t.Errorf("%.40q: %+v, want one event without an address", a, ev)
				}
			}
		})
	}
}

var badAddresses = []string{
	"a@example.com\r\nBcc: b@example.com",
	"a@example.com\r\n",
	"<b>x</b>@example.com",
	"<img src=x>@example.com",
	`"><script>alert(1)</script>@example.com`,
	strings1MB + "@example.com",
	"Name <a@example.com>",
	"a@localhost",
	"",
}

var strings1MB = strings.Repeat("a", 1_000_000)

// A webhook mounted without settings is not mounted at all: each
// constructor refuses empty settings.
func TestConstructorsNeedSettings(t *testing.T) {
	cache := esp.NewCertCache(http.DefaultClient)
	errs := map[string]error{}
	_, errs["sns no topic"] = esp.NewSNS(nil, cache)
	_, errs["sns empty topic"] = esp.NewSNS([]string{""}, cache)
	_, errs["sns no cache"] = esp.NewSNS([]string{esptest.SESTopic}, nil)
	_, errs["sendgrid no key"] = esp.NewSendGrid(" ")
	_, errs["sendgrid not base64"] = esp.NewSendGrid("not a key!")
	_, errs["sendgrid not a key"] = esp.NewSendGrid("AAAA")
	_, errs["mailgun no key"] = esp.NewMailgun("")
	_, errs["postmark no user"] = esp.NewPostmark("", esptest.PostmarkPassword)
	_, errs["postmark no password"] = esp.NewPostmark(esptest.PostmarkUser, "")
	for name, err := range errs {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

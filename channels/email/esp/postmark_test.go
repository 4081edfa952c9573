package esp_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/esp/esptest"
)

// Missing or wrong credentials are refused with 401, before the body is
// read.
func TestPostmarkRefusals(t *testing.T) {
	p := newPostmark(t)
	body := postmarkRecord(t, "Bounce", "HardBounce", "<run-1~0123456789abcdef01234567@example.com>", "m0000@example.com")
	unauthorized := refusal{http.StatusUnauthorized, "Authorization"}
	cases := []struct {
		name   string
		header http.Header
		body   []byte
		want   refusal
	}{
		{"no auth", http.Header{}, body, unauthorized},
		{"wrong password", postmarkHeaders(esptest.PostmarkUser, "guess"), body, unauthorized},
		{"wrong user", postmarkHeaders("admin", esptest.PostmarkPassword), body, unauthorized},
		{"empty credentials", postmarkHeaders("", ""), body, unauthorized},
		{"password as a prefix", postmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword[:5]), body, unauthorized},
		{"not basic", http.Header{"Authorization": {"Bearer " + esptest.PostmarkPassword}}, body, unauthorized},
		{"not json", postmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword), []byte("<html>"), refusal{400, "body"}},
		{"an array", postmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword), []byte("[]"), refusal{400, "body"}},
		{"authorized", postmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword), body, refusal{}},
	}
	for _, c := range cases {
		_, err := p.Parse(c.header, c.body)
		if diff := cmp.Diff(c.want, refusalOf(t, err)); diff != "" {
			t.Errorf("%s: Parse (-want +got):\n%s", c.name, diff)
		}
		if c.want.Status == http.StatusUnauthorized {
			if diff := cmp.Diff(c.want, refusalOf(t, p.Authorize(c.header))); diff != "" {
				t.Errorf("%s: Authorize (-want +got):\n%s", c.name, diff)
			}
		}
	}
	if err := p.Authorize(postmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword)); err != nil {
		t.Errorf("Authorize: %v", err)
	}
}

// Each Postmark record maps to one kind, or is ignored; the Message-ID
// comes from the headers, else from the metadata.
func TestPostmarkRecords(t *testing.T) {
	p := newPostmark(t)
	fb := func(kind channels.FeedbackKind, send, id string) *channels.Feedback {
		return &channels.Feedback{Send: send, Channel: channels.Email, Source: "postmark", Address: "a@example.com", Kind: kind, EventID: id}
	}
	cases := []struct {
		name, body string
		want       *channels.Feedback // nil: ignored
	}{
		{"hard bounce", `{"RecordType":"Bounce","ID":42,"Type":"HardBounce","Email":"a@example.com","MessageID":"pm-1"}`, fb(channels.HardBounce, "", "Bounce\x0042\x00pm-1")},
		{"bad address", `{"RecordType":"Bounce","ID":42,"Type":"BadEmailAddress","Email":"a@example.com"}`, fb(channels.HardBounce, "", "Bounce\x0042\x00")},
		{"dns error", `{"RecordType":"Bounce","Type":"DnsError","Email":"a@example.com"}`, fb(channels.SoftBounce, "", "Bounce\x00\x00")},
		{"transient", `{"RecordType":"Bounce","Type":"Transient","Email":"a@example.com"}`, fb(channels.SoftBounce, "", "Bounce\x00\x00")},
		{"bounce said to be a complaint", `{"RecordType":"Bounce","Type":"SpamComplaint","Email":"a@example.com"}`, fb(channels.Complaint, "", "Bounce\x00\x00")},
		{"blocked", `{"RecordType":"Bounce","Type":"Blocked","Email":"a@example.com"}`, fb(channels.Undelivered, "", "Bounce\x00\x00")},
		{"DMARC", `{"RecordType":"Bounce","Type":"DMARCPolicy","Email":"a@example.com"}`, fb(channels.Undelivered, "", "Bounce\x00\x00")},
		{"complaint", `{"RecordType":"SpamComplaint","ID":"s1","Email":"a@example.com"}`, fb(channels.Complaint, "", "SpamComplaint\x00\"s1\"\x00")},
		{"delivery to Recipient", `{"RecordType":"Delivery","Recipient":"a@example.com","Headers":[{"Name":"message-id","Value":"<r~h@x>"}]}`, fb(channels.Delivered, "r~h", "Delivery\x00\x00")},
		{"Message-ID from the metadata", `{"RecordType":"Delivery","Recipient":"a@example.com","Metadata":{"MESSAGE-ID":"<r~h@x>"}}`, fb(channels.Delivered, "r~h", "Delivery\x00\x00")},
		{"an ID over 64 bytes", `{"RecordType":"Delivery","ID":"` + strings.Repeat("i", 64) + `","Recipient":"a@example.com"}`, fb(channels.Delivered, "", "Delivery\x00\x00")},
		{"auto-responder", `{"RecordType":"Bounce","Type":"AutoResponder","Email":"a@example.com"}`, nil},
		{"open", `{"RecordType":"Open","Recipient":"a@example.com"}`, nil},
		{"subscription change", `{"RecordType":"SubscriptionChange","Recipient":"a@example.com"}`, nil},
		{"null", `null`, nil},
	}
	for _, c := range cases {
		got, err := p.Parse(postmarkHeaders(esptest.PostmarkUser, esptest.PostmarkPassword), []byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		checkOneEvent(t, c.name, got, c.want)
	}
}

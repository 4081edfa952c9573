package twilioproto_test

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms/twilioproto"
)

// meanings is the table as this test expects it, code by code.
var meanings = map[int]twilioproto.Meaning{
	20003: {Text: "authentication failed", Kind: channels.Sender},
	20429: {Text: "too many concurrent requests", Kind: channels.Temporary},
	21211: {Text: "invalid To number", Kind: channels.Permanent, Feedback: channels.HardBounce},
	21212: {Text: "invalid From number", Kind: channels.Sender},
	21408: {Text: "sending to this region is not enabled", Kind: channels.Sender},
	21602: {Text: "body required", Kind: channels.Permanent},
	21603: {Text: "From or MessagingServiceSid required", Kind: channels.Sender},
	21604: {Text: "To required", Kind: channels.Permanent},
	21606: {Text: "From is not a sender of this account", Kind: channels.Sender},
	21610: {Text: "recipient opted out (STOP)", Kind: channels.Permanent, Feedback: channels.OptedOut},
	21612: {Text: "To and From cannot be routed", Kind: channels.Permanent},
	21614: {Text: "To is not a mobile number", Kind: channels.Permanent, Feedback: channels.HardBounce},
	21617: {Text: "body exceeds 1600 characters", Kind: channels.Permanent},
	30001: {Text: "sender queue overflow", Kind: channels.Temporary},
	30003: {Text: "handset unreachable", Kind: channels.Temporary, Feedback: channels.SoftBounce},
	30004: {Text: "message blocked", Kind: channels.Permanent},
	30005: {Text: "unknown handset", Kind: channels.Permanent, Feedback: channels.HardBounce},
	30006: {Text: "landline or unreachable carrier", Kind: channels.Permanent, Feedback: channels.HardBounce},
	30007: {Text: "filtered by the carrier", Kind: channels.Permanent, Feedback: channels.Undelivered},
}

func TestLookup(t *testing.T) {
	t.Parallel()
	for code, want := range meanings {
		got, ok := twilioproto.Lookup(code)
		if !ok {
			t.Errorf("Lookup(%d): not found", code)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Lookup(%d) (-want +got):\n%s", code, diff)
		}
	}
	for _, code := range []int{0, -1, 20500, 30008, 99999, 1000000} {
		if got, ok := twilioproto.Lookup(code); ok || got != (twilioproto.Meaning{}) {
			t.Errorf("Lookup(%d) = %+v, %v; want nothing", code, got, ok)
		}
	}
	// Every code the table knows is listed above: none is added without a
	// test saying what it means.
	for code := range 1000000 {
		if _, ok := twilioproto.Lookup(code); ok {
			if _, listed := meanings[code]; !listed {
				t.Errorf("Lookup(%d) knows a code this test does not list", code)
			}
		}
	}
}

func TestRecipient(t *testing.T) {
	t.Parallel()
	want := map[int]bool{21211: true, 21610: true, 21614: true, 30005: true, 30006: true}
	for code := range meanings {
		m, _ := twilioproto.Lookup(code)
		if got := m.Recipient(); got != want[code] {
			t.Errorf("Lookup(%d).Recipient() = %v, want %v", code, got, want[code])
		}
	}
}

type refusal struct {
	Kind     channels.ErrorKind
	Feedback channels.FeedbackKind
}

func TestRefusal(t *testing.T) {
	t.Parallel()
	perm := func(fb channels.FeedbackKind) refusal { return refusal{channels.Permanent, fb} }
	temp, sender := refusal{Kind: channels.Temporary}, refusal{Kind: channels.Sender}
	tests := []struct {
		status, code int
		want         refusal
	}{
		// Every code of the table as the API answers it (HTTP 400) and as a
		// status callback carries it (no HTTP status).
		{400, 20003, sender}, {401, 20003, sender}, {0, 20003, sender},
		{429, 20429, temp}, {0, 20429, temp},
		{400, 21211, perm(channels.HardBounce)}, {0, 21211, perm(channels.HardBounce)},
		{400, 21212, sender}, {0, 21212, sender},
		{400, 21408, sender}, {0, 21408, sender},
		{400, 21602, perm("")}, {0, 21602, perm("")},
		{400, 21603, sender}, {0, 21603, sender},
		{400, 21604, perm("")}, {0, 21604, perm("")},
		{400, 21606, sender}, {0, 21606, sender},
		{400, 21610, perm(channels.OptedOut)}, {0, 21610, perm(channels.OptedOut)},
		{400, 21612, perm("")}, {0, 21612, perm("")},
		{400, 21614, perm(channels.HardBounce)}, {0, 21614, perm(channels.HardBounce)},
		{400, 21617, perm("")}, {0, 21617, perm("")},
		{400, 30001, temp}, {0, 30001, temp},
		{400, 30003, temp}, {0, 30003, temp},
		{400, 30004, perm("")}, {0, 30004, perm("")},
		{400, 30005, perm(channels.HardBounce)}, {0, 30005, perm(channels.HardBounce)},
		{400, 30006, perm(channels.HardBounce)}, {0, 30006, perm(channels.HardBounce)},
		// Filtered content is permanent but says nothing of the number.
		{400, 30007, perm("")}, {0, 30007, perm("")},
		// HTTP status without a known code.
		{429, 0, temp}, {500, 20500, temp}, {502, 0, temp}, {503, 20503, temp},
		{401, 0, sender}, {404, 20404, perm("")}, {400, 0, perm("")},
		{0, 99999, perm("")}, {0, 0, temp}, {200, 0, temp}, {302, 21211, temp},
		// A recipient's code in a 5xx answer is a server failure, not news
		// about the recipient.
		{500, 21211, temp},
	}
	for _, tt := range tests {
		kind, fb := twilioproto.Refusal(tt.status, tt.code)
		if diff := cmp.Diff(tt.want, refusal{kind, fb}); diff != "" {
			t.Errorf("Refusal(%d, %d) (-want +got):\n%s", tt.status, tt.code, diff)
		}
	}
}

// TestRefusalMatchesLegacy holds Refusal to what channels/sms classified
// and what the dispatcher then recorded of a permanent refusal, for every
// five-digit code and the HTTP statuses Twilio answers with.
func TestRefusalMatchesLegacy(t *testing.T) {
	t.Parallel()
	statuses := []int{-1, 0, 200, 201, 302, 400, 401, 403, 404, 409, 429, 500, 502, 503}
	for code := range 100000 {
		for _, status := range statuses {
			kind, fb := twilioproto.Refusal(status, code)
			if want := legacyClassify(status, code); kind != want {
				t.Fatalf("Refusal(%d, %d) kind %v, channels/sms gave %v", status, code, kind, want)
			}
			var want channels.FeedbackKind
			if kind == channels.Permanent && code != 0 {
				want = legacyRefusalKind(strconv.Itoa(code))
			}
			if fb != want {
				t.Fatalf("Refusal(%d, %d) feedback %q, the dispatcher recorded %q", status, code, fb, want)
			}
		}
		m, _ := twilioproto.Lookup(code)
		if m.Recipient() != legacyRecipient(code) {
			t.Fatalf("Lookup(%d).Recipient() = %v, channels/sms said %v", code, m.Recipient(), legacyRecipient(code))
		}
	}
}

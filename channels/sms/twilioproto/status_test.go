package twilioproto_test

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms/twilioproto"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
)

const (
	sid = "SM0123456789abcdef0123456789abcdef"
	to  = "+33612345678"
)

func feedback(kind channels.FeedbackKind, code string) channels.Feedback {
	return channels.Feedback{Channel: channels.SMS, Address: to, Kind: kind, Code: code, Source: "twilio"}
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status, code string
		want         channels.Feedback // zero: nothing to record
	}{
		{"delivered", "", feedback(channels.Delivered, "")},
		{"read", "", feedback(channels.Delivered, "")},
		// A delivery has no error, whatever came with it.
		{"delivered", "30007", feedback(channels.Delivered, "")},

		{"undelivered", "30005", feedback(channels.HardBounce, "30005")},
		{"failed", "30006", feedback(channels.HardBounce, "30006")},
		{"failed", "21211", feedback(channels.HardBounce, "21211")},
		{"undelivered", "21614", feedback(channels.HardBounce, "21614")},
		{"undelivered", "21610", feedback(channels.OptedOut, "21610")},
		{"failed", "21610", feedback(channels.OptedOut, "21610")},
		{"undelivered", "30003", feedback(channels.SoftBounce, "30003")},
		// Not the recipient's fault: the send failed, the number is kept.
		{"undelivered", "30007", feedback(channels.Undelivered, "30007")},
		{"failed", "30008", feedback(channels.Undelivered, "30008")},
		{"failed", "21408", feedback(channels.Undelivered, "21408")},
		{"failed", "20003", feedback(channels.Undelivered, "20003")},
		{"failed", "30001", feedback(channels.Undelivered, "30001")},
		{"undelivered", "", feedback(channels.Undelivered, "")},
		{"failed", "", feedback(channels.Undelivered, "")},
		// Codes as Twilio may pad them.
		{"undelivered", "030003", feedback(channels.SoftBounce, "30003")},
		{"undelivered", "0", feedback(channels.Undelivered, "")},
		{"failed", "000000", feedback(channels.Undelivered, "")},

		// What Missive already holds, and statuses it does not know.
		{"accepted", "", channels.Feedback{}},
		{"queued", "", channels.Feedback{}},
		{"scheduled", "", channels.Feedback{}},
		{"sending", "", channels.Feedback{}},
		{"sent", "", channels.Feedback{}},
		{"partially_delivered", "", channels.Feedback{}},
		{"canceled", "", channels.Feedback{}},
		{"receiving", "", channels.Feedback{}},
		{"received", "", channels.Feedback{}},
		{"sent", "30005", channels.Feedback{}},
	}
	cases := make([]parseCase[twilioproto.StatusCallback], len(tests))
	for i, tt := range tests {
		cases[i] = parseCase[twilioproto.StatusCallback]{name: tt.status + "-" + tt.code, form: twiliotest.StatusForm(sid, to, tt.status, tt.code),
			want: twilioproto.StatusCallback{MessageSID: sid, MessageStatus: tt.status, Feedback: tt.want}}
	}
	checkParse(t, twilioproto.ParseStatus, cases)
}

func TestParseStatusEveryCode(t *testing.T) {
	t.Parallel()
	for code, m := range meanings {
		got, err := twilioproto.ParseStatus(twiliotest.StatusForm(sid, to, "undelivered", strconv.Itoa(code)))
		if err != nil {
			t.Fatal(err)
		}
		want := feedback(m.Feedback, strconv.Itoa(code))
		if m.Feedback == "" {
			want.Kind = channels.Undelivered
		}
		if diff := cmp.Diff(want, got.Feedback); diff != "" {
			t.Errorf("undelivered with %d (-want +got):\n%s", code, diff)
		}
	}
}

func TestParseStatusMessageSID(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"SM" + strings.Repeat("a", 32), "MM" + strings.Repeat("0", 32), sid} {
		if got, err := twilioproto.ParseStatus(twiliotest.StatusForm(s, to, "delivered", "")); err != nil || got.MessageSID != s {
			t.Errorf("MessageSid %q: %+v, %v", s, got, err)
		}
	}
}

// TestParseStatusInvalid: signed but malformed, the dispatcher answers 400
// naming the field.
func TestParseStatusInvalid(t *testing.T) {
	t.Parallel()
	valid := twiliotest.StatusForm(sid, to, "delivered", "")
	with := func(k string, v ...string) url.Values { return twiliotest.With(valid, k, v...) }
	without := func(k string) url.Values {
		f := with(k)
		delete(f, k)
		return f
	}
	badSID := &twilioproto.FieldError{Field: "MessageSid", Message: "is not a message SID"}
	badStatus := &twilioproto.FieldError{Field: "MessageStatus", Message: "is not a message status"}
	badCode := &twilioproto.FieldError{Field: "ErrorCode", Message: "is not a Twilio error code"}
	twice := func(field string) *twilioproto.FieldError {
		return &twilioproto.FieldError{Field: field, Message: "is given more than once"}
	}
	refused := func(name string, form url.Values, err *twilioproto.FieldError) parseCase[twilioproto.StatusCallback] {
		return parseCase[twilioproto.StatusCallback]{name: name, form: form, err: err}
	}
	checkParse(t, twilioproto.ParseStatus, []parseCase[twilioproto.StatusCallback]{
		refused("no MessageSid", without("MessageSid"), badSID),
		refused("empty MessageSid", with("MessageSid", ""), badSID),
		refused("upper-case sid", with("MessageSid", strings.ToUpper(sid)), badSID),
		refused("sid of a call", with("MessageSid", "CA"+sid[2:]), badSID),
		refused("sid with a key part", with("MessageSid", sid+":x"), badSID),
		refused("sid with a newline", with("MessageSid", sid+"\n"), badSID),
		refused("short sid", with("MessageSid", sid[:33]), badSID),
		refused("no MessageStatus", with("MessageStatus", ""), badStatus),
		refused("status with markup", with("MessageStatus", "<delivered>"), badStatus),
		refused("upper-case status", with("MessageStatus", "DELIVERED"), badStatus),
		refused("status too long", with("MessageStatus", strings.Repeat("a", 33)), badStatus),
		refused("error code not numeric", with("ErrorCode", "30005;DROP"), badCode),
		refused("error code too long", with("ErrorCode", strings.Repeat("3", 40)), badCode),
		refused("error code of seven digits", with("ErrorCode", "0030005"), badCode),
		refused("negative error code", with("ErrorCode", "-30005"), badCode),
		refused("signed error code", with("ErrorCode", "+30005"), badCode),
		// An invalid code is refused even with a status that records nothing.
		refused("error code with queued", func() url.Values { f := with("MessageStatus", "queued"); f.Set("ErrorCode", "x"); return f }(), badCode),
		// The first bad field is named.
		refused("everything wrong", url.Values{"MessageStatus": {"X"}, "ErrorCode": {"x"}}, badSID),
		refused("status and code wrong", func() url.Values { f := with("MessageStatus", "X"); f.Set("ErrorCode", "x"); return f }(), badStatus),
		// Twilio never sends a field twice (and a signature check refuses it).
		refused("status given twice", with("MessageStatus", "delivered", "undelivered"), twice("MessageStatus")),
		refused("sid given twice", with("MessageSid", sid, sid), twice("MessageSid")),
		refused("code given twice", with("ErrorCode", "30005", "21610"), twice("ErrorCode")),
		refused("To given twice", with("To", to, "+33698765432"), twice("To")),
	})
}

func TestParseStatusTo(t *testing.T) {
	t.Parallel()
	// To is passed on as Twilio sent it; only the dispatcher can tell a
	// valid number. Without it, Address is empty.
	f := twiliotest.StatusForm(sid, to, "undelivered", "30005")
	f.Set("To", " +33 6 12 34 56 78")
	if got, _ := twilioproto.ParseStatus(f); got.Feedback.Address != " +33 6 12 34 56 78" {
		t.Errorf("Address = %q", string(got.Feedback.Address))
	}
	f.Del("To")
	if got, _ := twilioproto.ParseStatus(f); got.Feedback.Address != "" || got.Feedback.Kind != channels.HardBounce {
		t.Errorf("without To: %+v", got.Feedback)
	}
}

// assertNoValue fails if msg quotes one of the form's values that is not
// also a word of Missive's own text.
func assertNoValue(t testing.TB, msg string, form url.Values) {
	t.Helper()
	for _, vs := range form {
		for _, v := range vs {
			if len(v) >= 4 && strings.Contains(msg, v) && !strings.Contains(fieldErrorTexts, v) {
				t.Errorf("error %q quotes a value of the form: %q", msg, v)
			}
		}
	}
}

// fieldErrorTexts are the words a *FieldError may say.
const fieldErrorTexts = "twilio: MessageSid MessageStatus ErrorCode From To Body " +
	"is not a message SID is not a message status is not a Twilio error code " +
	"is not a phone number in E.164 form is given more than once"

// FuzzStatusCallback holds ParseStatus to the dispatcher's reading of the
// form before this package, and checks that an error names a field and
// quotes nothing of the form.
func FuzzStatusCallback(f *testing.F) {
	for _, s := range twiliotest.StatusSeeds(sid, to) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return // the dispatcher answers 400 before
		}
		got, err := twilioproto.ParseStatus(form)
		twice := false
		for _, name := range []string{"MessageSid", "MessageStatus", "ErrorCode", "To"} {
			twice = twice || len(form[name]) > 1
		}
		if err != nil {
			var fe *twilioproto.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v, want a *FieldError", err, err)
			}
			if got != (twilioproto.StatusCallback{}) {
				t.Fatalf("callback %+v beside error %v", got, err)
			}
			if !strings.Contains(fieldErrorTexts, fe.Field) || !strings.Contains(fieldErrorTexts, fe.Message) {
				t.Fatalf("unexpected error %q", err)
			}
			assertNoValue(t, err.Error(), form)
		}
		if twice {
			// The dispatcher never parses such a form: its signature check
			// refuses it. ParseStatus refuses it too, naming the field
			// given twice or one checked before it.
			if err == nil {
				t.Fatalf("form with a field given twice taken: %+v", got)
			}
			return
		}

		want := legacyStatus(form)
		var gotField string
		if fe := (*twilioproto.FieldError)(nil); errors.As(err, &fe) {
			gotField = fe.Field
		}
		if gotField != want.BadField {
			t.Fatalf("bad field %q, the dispatcher named %q", gotField, want.BadField)
		}
		if err != nil {
			return
		}
		if got.MessageSID != want.SID {
			t.Fatalf("MessageSID %q, want %q", got.MessageSID, want.SID)
		}
		fb := got.Feedback
		if fb.Kind != want.Kind || fb.Code != want.Code || string(fb.Address) != want.To {
			t.Fatalf("feedback %+v, the dispatcher recorded %+v", fb, want)
		}
		if fb.Kind != "" && (fb.Channel != channels.SMS || fb.Source != "twilio" || fb.Send != "" || fb.EventID != "" || !fb.At.IsZero()) {
			t.Fatalf("feedback %+v", fb)
		}
		if fb.Kind == "" && fb != (channels.Feedback{}) {
			t.Fatalf("nothing to record, yet feedback %+v", fb)
		}
		if !twilioproto.ValidMessageSID(got.MessageSID) || got.MessageStatus != form.Get("MessageStatus") {
			t.Fatalf("callback %+v", got)
		}
	})
}

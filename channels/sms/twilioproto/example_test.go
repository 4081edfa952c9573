package twilioproto_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"

	"github.com/missive-dev/missive/channels/sms/twilioproto"
)

func ExampleParseStatus() {
	for _, form := range []url.Values{
		{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "MessageStatus": {"undelivered"}, "ErrorCode": {"30005"}, "To": {"+33612345678"}},
		{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "MessageStatus": {"failed"}, "ErrorCode": {"30007"}},
		{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "MessageStatus": {"sent"}},
		{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "MessageStatus": {"DELIVERED"}},
	} {
		cb, err := twilioproto.ParseStatus(form)
		var fe *twilioproto.FieldError
		switch {
		case errors.As(err, &fe):
			fmt.Println("400:", fe.Field, fe.Message)
		case cb.Feedback.Kind == "":
			fmt.Println(cb.MessageStatus, "- nothing to record")
		default:
			fb := cb.Feedback
			fmt.Println(cb.MessageStatus, "-", fb.Kind, fb.Code, fb.Source, fb.Address)
		}
	}
	// Output:
	// undelivered - hard_bounce 30005 twilio [redacted]
	// failed - undelivered 30007 twilio [redacted]
	// sent - nothing to record
	// 400: MessageStatus is not a message status
}

func ExampleRefusal() {
	for _, code := range []int{twilioproto.CodeOptedOut, twilioproto.CodeFiltered, twilioproto.CodeRegionNotEnabled} {
		kind, fb := twilioproto.Refusal(400, code)
		m, _ := twilioproto.Lookup(code)
		fmt.Printf("%d %s: %s %q\n", code, m.Text, kind, fb)
	}
	// Output:
	// 21610 recipient opted out (STOP): permanent "opted_out"
	// 30007 filtered by the carrier: permanent ""
	// 21408 sending to this region is not enabled: sender ""
}

func ExampleParseInbound() {
	form := url.Values{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "From": {"+33612345678"}, "Body": {"Stop."}}
	in, err := twilioproto.ParseInbound(form)
	if err != nil {
		fmt.Println(err)
		return
	}
	rec := httptest.NewRecorder()
	if in.Keyword == twilioproto.KeywordStop {
		twilioproto.WriteTwiML(rec, "You will get no more texts from Rive & Co. Reply START to come back.")
	}
	fmt.Println(in.Keyword, in.From)
	fmt.Println(rec.Body)
	// Output:
	// stop [redacted]
	// <?xml version="1.0" encoding="UTF-8"?><Response><Message>You will get no more texts from Rive &amp; Co. Reply START to come back.</Message></Response>
}

package twiliotest

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The other side of the webhooks: the requests Twilio makes to Missive,
// and a reader of the TwiML Missive answers with, so that the protocol
// package, the webhook handlers and the end-to-end tests post the same
// forms and hold the answers to the same rules.

// InboundForm is the form Twilio posts to the messaging webhook for the
// SMS sid from the number from to Missive's number.
func InboundForm(sid, from, body string) url.Values {
	return url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "SmsMessageSid": {sid},
		"AccountSid": {AccountSID}, "MessagingServiceSid": {"MG" + strings.Repeat("0", 32)},
		"From": {from}, "To": {"+33757000000"}, "Body": {body},
		"NumMedia": {"0"}, "NumSegments": {"1"}, "FromCountry": {"FR"}, "ApiVersion": {"2010-04-01"},
	}
}

// StatusForm is the status callback Twilio posts for the message sid sent
// to the number to; code "" leaves ErrorCode out, as Twilio does for
// messages that did not fail.
func StatusForm(sid, to, status, code string) url.Values {
	f := url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "MessageStatus": {status}, "SmsStatus": {status},
		"AccountSid": {AccountSID}, "From": {"+33757000000"}, "To": {to}, "ApiVersion": {"2010-04-01"},
	}
	if code != "" {
		f.Set("ErrorCode", code)
	}
	return f
}

// NewMessageSID returns a message SID no other test uses.
func NewMessageSID() string { return newSID("SM") }

// With returns a copy of form in which name holds values (none: the name
// is present without a value).
func With(form url.Values, name string, values ...string) url.Values {
	f := make(url.Values, len(form)+1)
	for k, vs := range form {
		f[k] = slices.Clone(vs)
	}
	f[name] = values
	return f
}

// Request is a form POST of body to target, carrying sig as
// X-Twilio-Signature unless sig is "". It panics if target is not a URL.
func Request(target, body, sig string) *http.Request {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		panic(fmt.Sprintf("twiliotest: %v", err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set("X-Twilio-Signature", sig)
	}
	return req
}

// SignedRequest is the request Twilio makes to a webhook: form, posted to
// target (where the test server listens) and signed with authToken for
// signedURL (the URL configured in Twilio, which a server behind a proxy
// does not see).
func SignedRequest(target, signedURL, authToken string, form url.Values) *http.Request {
	return Request(target, form.Encode(), Sign(authToken, signedURL, form))
}

// InboundSeeds are bodies for a fuzz target of the messaging webhook to
// start from: keywords from the number from, markup and bytes a reply
// must not carry, and forms Twilio never sends.
func InboundSeeds(from string) []string {
	sid := "SM" + strings.Repeat("f", 32)
	return []string{
		InboundForm("SM"+strings.Repeat("a", 32), from, "STOP").Encode(),
		InboundForm("SM"+strings.Repeat("b", 32), from, "start").Encode(),
		InboundForm("SM"+strings.Repeat("c", 32), "+33698765432", "HELP").Encode(),
		InboundForm("MM"+strings.Repeat("d", 32), from, "<b>STOP</b>\r\n").Encode(),
		InboundForm(sid, from, "</Message><Redirect>https://evil.example</Redirect>").Encode(),
		InboundForm(sid, from, "]]><!--").Encode(),
		InboundForm(sid, from, "a\x00b\xffc&#x0;").Encode(),
		"MessageSid=SM&From=%2B&Body=stop", "Body=%zz", "From=a&From=b", "a=1;b=2", "%", "&&&=", "\xff=\xfe",
		"MessageSid=SM" + strings.Repeat("e", 32) + "&From=" + url.QueryEscape(from) + "&Body=arr%C3%AAt",
		"MessageSid=" + sid + "&From=" + from + "&Body=STOP&Body=START",
	}
}

// StatusSeeds are bodies for a fuzz target of the status callback to
// start from: callbacks of the message sid sent to the number to, of
// messages Missive does not know, and forms Twilio never sends.
func StatusSeeds(sid, to string) []string {
	return []string{
		StatusForm(sid, to, "delivered", "").Encode(),
		StatusForm(sid, to, "undelivered", "30003").Encode(),
		StatusForm(sid, to, "undelivered", "30005").Encode(),
		StatusForm(sid, to, "failed", "21610").Encode(),
		StatusForm(sid, to, "undelivered", "30007").Encode(),
		StatusForm(sid, to, "sent", "").Encode(),
		StatusForm("SM"+strings.Repeat("a", 32), to, "delivered", "").Encode(),
		StatusForm("MM"+strings.Repeat("b", 32), to, "undelivered", "0").Encode(),
		"MessageSid=SM&MessageStatus=delivered", "ErrorCode=%zz", "MessageStatus=a&MessageStatus=b", "a=1;b=2", "%", "&&&=", "\xff=\xfe",
		"MessageSid=" + sid + "&MessageStatus=failed&ErrorCode=00000000000030005",
		"MessageSid=" + sid + "&MessageStatus=undelivered&ErrorCode=30005&To=%2B",
		"MessageSid=" + sid + "&MessageStatus=undelivered&ErrorCode=030005",
		"MessageSid=" + sid + "&MessageStatus=undelivered&ErrorCode=30005&ErrorCode=21610",
		"MessageSid=" + sid + "&MessageStatus=delivered&ErrorCode=21610",
	}
}

// ReadTwiML reads a webhook's TwiML answer as Twilio would act on it and
// returns the text of its <Message> and whether it has one. It returns an
// error for anything but well-formed XML holding one <Response> with at
// most one <Message> and no text outside it: markup from a request that
// leaked into the answer shows up here.
func ReadTwiML(out string) (msg string, ok bool, err error) {
	dec := xml.NewDecoder(strings.NewReader(out))
	var path []string
	var text strings.Builder
	responses := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", false, fmt.Errorf("TwiML is not XML: %w", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			path = append(path, tok.Name.Local)
			switch p := strings.Join(path, "/"); p {
			case "Response":
				responses++
			case "Response/Message":
				if ok {
					return "", false, errors.New("two messages")
				}
				ok = true
			default:
				return "", false, fmt.Errorf("unexpected element %s", p)
			}
		case xml.EndElement:
			path = path[:len(path)-1]
		case xml.CharData:
			if strings.Join(path, "/") != "Response/Message" {
				return "", false, errors.New("text outside Message")
			}
			text.Write(tok)
		case xml.ProcInst:
			if tok.Target != "xml" {
				return "", false, fmt.Errorf("processing instruction %s", tok.Target)
			}
		default:
			return "", false, fmt.Errorf("unexpected token %T", tok)
		}
	}
	if responses != 1 {
		return "", false, fmt.Errorf("%d Response elements", responses)
	}
	return text.String(), ok, nil
}

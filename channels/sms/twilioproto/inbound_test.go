package twilioproto_test

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels/sms/twilioproto"
)

func TestParseKeyword(t *testing.T) {
	t.Parallel()
	tests := map[string]twilioproto.Keyword{
		// Every keyword, in the cases people type it.
		"STOP": twilioproto.KeywordStop, "stop": twilioproto.KeywordStop, " Stop ": twilioproto.KeywordStop,
		"Stop.": twilioproto.KeywordStop, "stop!": twilioproto.KeywordStop, "STOP !!": twilioproto.KeywordStop,
		"\tstop\r\n": twilioproto.KeywordStop, "stopall": twilioproto.KeywordStop, "STOPALL": twilioproto.KeywordStop,
		"Unsubscribe": twilioproto.KeywordStop, "UNSUBSCRIBE": twilioproto.KeywordStop, "CANCEL": twilioproto.KeywordStop,
		"cancel": twilioproto.KeywordStop, "end": twilioproto.KeywordStop, "END": twilioproto.KeywordStop,
		"Quit": twilioproto.KeywordStop, "QUIT": twilioproto.KeywordStop, "ARRET": twilioproto.KeywordStop,
		"arret": twilioproto.KeywordStop, "arrêt": twilioproto.KeywordStop, "Arrêt.": twilioproto.KeywordStop,
		"ARRÊT": twilioproto.KeywordStop, "Arrêt !": twilioproto.KeywordStop,
		"START": twilioproto.KeywordStart, "start": twilioproto.KeywordStart, "Yes.": twilioproto.KeywordStart,
		"YES": twilioproto.KeywordStart, "UNSTOP": twilioproto.KeywordStart, "unstop": twilioproto.KeywordStart,
		"HELP": twilioproto.KeywordHelp, "help": twilioproto.KeywordHelp, "help?": twilioproto.KeywordHelp,
		" Info. ": twilioproto.KeywordHelp, "INFO": twilioproto.KeywordHelp, "info": twilioproto.KeywordHelp,
		// 32 bytes at most, spaces included.
		"STOP" + strings.Repeat(" ", 28): twilioproto.KeywordStop,
		"STOP" + strings.Repeat(" ", 29): twilioproto.KeywordNone,
		"STOP" + strings.Repeat(" ", 40): twilioproto.KeywordNone,
		// Not keywords.
		"": twilioproto.KeywordNone, "...": twilioproto.KeywordNone, "hello": twilioproto.KeywordNone,
		"S T O P": twilioproto.KeywordNone, "stop it": twilioproto.KeywordNone, "stop please": twilioproto.KeywordNone,
		"please stop": twilioproto.KeywordNone, ".stop": twilioproto.KeywordNone, "¡stop": twilioproto.KeywordNone,
		"stopp": twilioproto.KeywordNone, "STOPP": twilioproto.KeywordNone, "arrete": twilioproto.KeywordNone,
		"STARTED": twilioproto.KeywordNone, "HELPME": twilioproto.KeywordNone, "<b>STOP</b>": twilioproto.KeywordNone,
		"STOP\r\nX-Header: 1": twilioproto.KeywordNone, "stop\x00": twilioproto.KeywordNone,
		strings.Repeat("STOP ", 20): twilioproto.KeywordNone, "]]><!--": twilioproto.KeywordNone,
		"</Message><Redirect>https://evil.example</Redirect>": twilioproto.KeywordNone,
		"\xffSTOP": twilioproto.KeywordNone,
	}
	for body, want := range tests {
		if got := twilioproto.ParseKeyword(body); got != want {
			t.Errorf("ParseKeyword(%q) = %v, want %v", body, got, want)
		}
		if got, old := int(twilioproto.ParseKeyword(body)), legacyParseKeyword(body); got != old {
			t.Errorf("ParseKeyword(%q) = %d, the dispatcher's gave %d", body, got, old)
		}
	}
}

func TestKeywordString(t *testing.T) {
	t.Parallel()
	got := []string{}
	for _, k := range []twilioproto.Keyword{twilioproto.KeywordNone, twilioproto.KeywordStop, twilioproto.KeywordStart, twilioproto.KeywordHelp, 4, -1} {
		got = append(got, k.String())
	}
	if diff := cmp.Diff([]string{"none", "stop", "start", "help", "unknown", "unknown"}, got); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
}

// inboundForm is the form of an inbound SMS webhook, as Twilio posts it.
func inboundForm(sid, from, body string) url.Values {
	return url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "SmsMessageSid": {sid},
		"AccountSid": {account}, "MessagingServiceSid": {"MG" + strings.Repeat("0", 32)},
		"From": {from}, "To": {"+33757000000"}, "Body": {body},
		"NumMedia": {"0"}, "NumSegments": {"1"}, "FromCountry": {"FR"}, "ApiVersion": {"2010-04-01"},
	}
}

func TestParseInbound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		form url.Values
		want twilioproto.Inbound
	}{
		{"stop", inboundForm(sid, to, "STOP"), twilioproto.Inbound{MessageSID: sid, From: to, Keyword: twilioproto.KeywordStop}},
		{"start", inboundForm(sid, to, "Yes."), twilioproto.Inbound{MessageSID: sid, From: to, Keyword: twilioproto.KeywordStart}},
		{"help", inboundForm(sid, to, " Info. "), twilioproto.Inbound{MessageSID: sid, From: to, Keyword: twilioproto.KeywordHelp}},
		{"other text", inboundForm(sid, to, "stop please"), twilioproto.Inbound{MessageSID: sid, From: to}},
		{"no body", func() url.Values { f := inboundForm(sid, to, ""); f.Del("Body"); return f }(), twilioproto.Inbound{MessageSID: sid, From: to}},
		{"MMS", inboundForm("MM"+sid[2:], to, "stop"), twilioproto.Inbound{MessageSID: "MM" + sid[2:], From: to, Keyword: twilioproto.KeywordStop}},
		// The dispatcher normalizes and validates the number.
		{"From with spaces", inboundForm(sid, " +33 6 12 34 56 78 ", "stop"),
			twilioproto.Inbound{MessageSID: sid, From: "+33 6 12 34 56 78", Keyword: twilioproto.KeywordStop}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := twilioproto.ParseInbound(tt.form)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseInbound (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseInboundInvalid(t *testing.T) {
	t.Parallel()
	valid := inboundForm(sid, to, "STOP")
	with := func(k string, v ...string) url.Values {
		f := url.Values{}
		for name, vs := range valid {
			f[name] = slices.Clone(vs)
		}
		f[k] = v
		return f
	}
	badSID := &twilioproto.FieldError{Field: "MessageSid", Message: "is not a message SID"}
	badFrom := &twilioproto.FieldError{Field: "From", Message: "is not a phone number in E.164 form"}
	tests := []struct {
		name string
		form url.Values
		want *twilioproto.FieldError
	}{
		{"no MessageSid", with("MessageSid", ""), badSID},
		{"upper-case sid", with("MessageSid", strings.ToUpper(sid)), badSID},
		{"sid of a call", with("MessageSid", "CA"+strings.Repeat("a", 32)), badSID},
		{"sid with a key part", with("MessageSid", sid+":x"), badSID},
		{"no From", with("From", ""), badFrom},
		{"From only space", with("From", " \t"), badFrom},
		{"From not E.164", with("From", "0612345678"), badFrom},
		{"From too long", with("From", "+"+strings.Repeat("3", 32)), badFrom},
		{"From given twice", with("From", to, "+33698765432"), &twilioproto.FieldError{Field: "From", Message: "is given more than once"}},
		{"Body given twice", with("Body", "START", "STOP"), &twilioproto.FieldError{Field: "Body", Message: "is given more than once"}},
		{"sid wrong before From", url.Values{"From": {"x"}}, badSID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := twilioproto.ParseInbound(tt.form)
			var fe *twilioproto.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseInbound = %+v, %v; want a *FieldError", got, err)
			}
			if diff := cmp.Diff(tt.want, fe); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if got != (twilioproto.Inbound{}) {
				t.Errorf("message %+v beside an error", got)
			}
			assertNoValue(t, err.Error(), tt.form)
		})
	}
}

func TestWriteTwiML(t *testing.T) {
	t.Parallel()
	const decl = `<?xml version="1.0" encoding="UTF-8"?>`
	tests := []struct {
		msg, want string
	}{
		{"", decl + `<Response/>`},
		{"Texts from Missive. Reply STOP to opt out.", decl + `<Response><Message>Texts from Missive. Reply STOP to opt out.</Message></Response>`},
		{"SMS de Rive & <Co>. Répondez STOP", decl + `<Response><Message>SMS de Rive &amp; &lt;Co&gt;. Répondez STOP</Message></Response>`},
		{`"quoted" 'too'`, decl + `<Response><Message>&#34;quoted&#34; &#39;too&#39;</Message></Response>`},
		{"</Message><Redirect>https://evil.example</Redirect>", decl + `<Response><Message>&lt;/Message&gt;&lt;Redirect&gt;https://evil.example&lt;/Redirect&gt;</Message></Response>`},
		{"a\x00b\xffc\r\n", decl + "<Response><Message>a\uFFFDb\uFFFDc&#xD;&#xA;</Message></Response>"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		twilioproto.WriteTwiML(rec, tt.msg)
		res := rec.Result()
		if diff := cmp.Diff(tt.want, rec.Body.String()); diff != "" {
			t.Errorf("WriteTwiML(%q) (-want +got):\n%s", tt.msg, diff)
		}
		want := http.Header{
			"Content-Type":           {"text/xml; charset=utf-8"},
			"X-Content-Type-Options": {"nosniff"},
			"Cache-Control":          {"no-store"},
		}
		if diff := cmp.Diff(want, res.Header); diff != "" || res.StatusCode != http.StatusOK {
			t.Errorf("WriteTwiML(%q): status %d, headers (-want +got):\n%s", tt.msg, res.StatusCode, diff)
		}
	}
}

// twimlMessage decodes TwiML written by WriteTwiML and returns the text of
// its Message, failing on anything but <Response> holding at most one
// <Message>.
func twimlMessage(t *testing.T, out string) (msg string, ok bool) {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(out))
	var path []string
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("TwiML is not XML: %v: %q", err, out)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			path = append(path, tok.Name.Local)
			if p := strings.Join(path, "/"); p != "Response" && p != "Response/Message" {
				t.Fatalf("unexpected element %s: %q", p, out)
			}
			if tok.Name.Local == "Message" {
				if ok {
					t.Fatalf("two messages: %q", out)
				}
				ok = true
			}
		case xml.EndElement:
			path = path[:len(path)-1]
		case xml.CharData:
			if strings.Join(path, "/") != "Response/Message" {
				t.Fatalf("text outside Message: %q", out)
			}
			text.Write(tok)
		case xml.ProcInst:
			if tok.Target != "xml" {
				t.Fatalf("processing instruction %s: %q", tok.Target, out)
			}
		default:
			t.Fatalf("unexpected token %T: %q", tok, out)
		}
	}
	return text.String(), ok
}

// xmlSafe is s as WriteTwiML can carry it: bytes that are not UTF-8 and
// characters XML forbids become U+FFFD.
func xmlSafe(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		ok := r == 0x09 || r == 0x0A || r == 0x0D ||
			r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
		if (r == utf8.RuneError && size == 1) || !ok {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

// FuzzInbound checks that ParseInbound reads a form as the dispatcher did
// and that a reply echoing the body, markup and all, stays one <Message>
// in well-formed TwiML holding the body's text.
func FuzzInbound(f *testing.F) {
	for _, s := range []string{
		inboundForm("SM"+strings.Repeat("a", 32), to, "STOP").Encode(),
		inboundForm("SM"+strings.Repeat("b", 32), to, "start").Encode(),
		inboundForm("SM"+strings.Repeat("c", 32), "+33698765432", "HELP").Encode(),
		inboundForm("MM"+strings.Repeat("d", 32), to, "<b>STOP</b>\r\n").Encode(),
		inboundForm(sid, to, "</Message><Redirect>https://evil.example</Redirect>").Encode(),
		inboundForm(sid, to, "]]><!--").Encode(),
		inboundForm(sid, to, "a\x00b\xffc&#x0;").Encode(),
		"MessageSid=SM&From=%2B&Body=stop", "Body=%zz", "From=a&From=b", "a=1;b=2", "%", "&&&=", "\xff=\xfe",
		"MessageSid=SM" + strings.Repeat("e", 32) + "&From=%2B33612345678&Body=arr%C3%AAt",
		"MessageSid=" + sid + "&From=+33612345678&Body=STOP&Body=START",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		in, err := twilioproto.ParseInbound(form)
		if err != nil {
			var fe *twilioproto.FieldError
			if !errors.As(err, &fe) || !strings.Contains(fieldErrorTexts, fe.Field) || !strings.Contains(fieldErrorTexts, fe.Message) {
				t.Fatalf("unexpected error %T %q", err, err)
			}
			if in != (twilioproto.Inbound{}) {
				t.Fatalf("message %+v beside error %v", in, err)
			}
			assertNoValue(t, err.Error(), form)
		} else {
			from := strings.TrimSpace(form.Get("From"))
			if !twilioproto.ValidMessageSID(in.MessageSID) || in.MessageSID != form.Get("MessageSid") ||
				string(in.From) != from || !strings.HasPrefix(from, "+") || len(from) > 32 {
				t.Fatalf("message %+v from %v", in, form)
			}
			if int(in.Keyword) != legacyParseKeyword(form.Get("Body")) {
				t.Fatalf("keyword %v, the dispatcher's %d", in.Keyword, legacyParseKeyword(form.Get("Body")))
			}
			for _, name := range []string{"MessageSid", "From", "Body"} {
				if len(form[name]) > 1 {
					t.Fatalf("%s given twice, yet taken", name)
				}
			}
		}

		msg := form.Get("Body")
		rec := httptest.NewRecorder()
		twilioproto.WriteTwiML(rec, msg)
		got, ok := twimlMessage(t, rec.Body.String())
		if ok != (msg != "") {
			t.Fatalf("reply %q to %q: has a message: %v", rec.Body, msg, ok)
		}
		if got != xmlSafe(msg) {
			t.Fatalf("reply text %q, want %q", got, xmlSafe(msg))
		}
	})
}

// FuzzKeyword holds ParseKeyword to the dispatcher's parseKeyword, and
// checks what a keyword is: a short body whose word, upper-cased, is one of
// the list.
func FuzzKeyword(f *testing.F) {
	for _, s := range []string{
		"STOP", "stop", " Stop ", "Stop.", "stop!", "STOP !!", "\tstop\r\n", "stopall", "Unsubscribe", "CANCEL",
		"end", "Quit", "ARRET", "arrêt", "Arrêt.", "ARRÊT", "start", "Yes.", "UNSTOP", "help?", "info",
		"S T O P", "stop it", ".stop", "", "...", "stopp", "arrete", "STOP" + strings.Repeat(" ", 40),
		"ſtop", "quıt", "\u00a0STOP\u3000", "STOP\u2026", "STOP\x00", "\xffSTOP", "ARRE\u0302T",
	} {
		f.Add(s)
	}
	all := []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET", "ARRÊT", "START", "YES", "UNSTOP", "HELP", "INFO"}
	f.Fuzz(func(t *testing.T, body string) {
		got := twilioproto.ParseKeyword(body)
		if want := legacyParseKeyword(body); int(got) != want {
			t.Fatalf("ParseKeyword(%q) = %v, the dispatcher's gave %d", body, got, want)
		}
		if got < twilioproto.KeywordNone || got > twilioproto.KeywordHelp {
			t.Fatalf("ParseKeyword(%q) = %d", body, got)
		}
		if got == twilioproto.KeywordNone {
			return
		}
		if len(body) > 32 {
			t.Fatalf("ParseKeyword(%q) = %v for %d bytes", body, got, len(body))
		}
		word := strings.TrimRightFunc(strings.TrimSpace(body), func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSpace(r) })
		if !slices.Contains(all, strings.ToUpper(word)) {
			t.Fatalf("ParseKeyword(%q) = %v, but its word %q is no keyword", body, got, word)
		}
		// The keyword survives what people add around it.
		for _, variant := range []string{" " + body, body + "!", body + " .", strings.ToLower(body), strings.ToUpper(body)} {
			if len(variant) <= 32 && twilioproto.ParseKeyword(variant) != got {
				t.Fatalf("ParseKeyword(%q) = %v, ParseKeyword(%q) = %v", body, got, variant, twilioproto.ParseKeyword(variant))
			}
		}
	})
}

package twilioproto_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/sms/twilioproto"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
)

func TestParseKeyword(t *testing.T) {
	t.Parallel()
	tests := map[twilioproto.Keyword][]string{
		// Every keyword, in the cases people type it.
		twilioproto.KeywordStop: {
			"STOP", "stop", " Stop ", "Stop.", "stop!", "STOP !!", "\tstop\r\n", "stopall", "STOPALL",
			"Unsubscribe", "UNSUBSCRIBE", "CANCEL", "cancel", "end", "END", "Quit", "QUIT",
			"ARRET", "arret", "arrêt", "Arrêt.", "ARRÊT", "Arrêt !",
			// 32 bytes at most, spaces included.
			"STOP" + strings.Repeat(" ", 28),
		},
		twilioproto.KeywordStart: {"START", "start", "Yes.", "YES", "UNSTOP", "unstop"},
		twilioproto.KeywordHelp:  {"HELP", "help", "help?", " Info. ", "INFO", "info"},
		twilioproto.KeywordNone: {
			"STOP" + strings.Repeat(" ", 29), "STOP" + strings.Repeat(" ", 40),
			"", "...", "hello", "S T O P", "stop it", "stop please", "please stop", ".stop", "¡stop",
			"stopp", "STOPP", "arrete", "STARTED", "HELPME", "<b>STOP</b>", "STOP\r\nX-Header: 1", "stop\x00",
			strings.Repeat("STOP ", 20), "]]><!--", "</Message><Redirect>https://evil.example</Redirect>", "\xffSTOP",
		},
	}
	for want, bodies := range tests {
		for _, body := range bodies {
			if got := twilioproto.ParseKeyword(body); got != want {
				t.Errorf("ParseKeyword(%q) = %v, want %v", body, got, want)
			}
			if got, old := int(twilioproto.ParseKeyword(body)), legacyParseKeyword(body); got != old {
				t.Errorf("ParseKeyword(%q) = %d, the dispatcher's gave %d", body, got, old)
			}
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

// parseCase is a form and what a parser makes of it: want, or the error
// err beside a zero value.
type parseCase[T comparable] struct {
	name string
	form url.Values
	want T
	err  *twilioproto.FieldError
}

// checkParse runs parse on each case. A refused form must be refused with
// a *FieldError that quotes nothing of the form.
func checkParse[T comparable](t *testing.T, parse func(url.Values) (T, error), tests []parseCase[T]) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parse(tt.form)
			var fe *twilioproto.FieldError
			if err != nil && !errors.As(err, &fe) {
				t.Fatalf("error %T %v, want a *FieldError", err, err)
			}
			if diff := cmp.Diff(tt.err, fe); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if err != nil {
				assertNoValue(t, err.Error(), tt.form)
			}
		})
	}
}

func TestParseInbound(t *testing.T) {
	t.Parallel()
	in := func(sid, from string, kw twilioproto.Keyword) twilioproto.Inbound {
		return twilioproto.Inbound{MessageSID: sid, From: channels.Address(from), Keyword: kw}
	}
	valid := twiliotest.InboundForm(sid, to, "STOP")
	badSID := &twilioproto.FieldError{Field: "MessageSid", Message: "is not a message SID"}
	badFrom := &twilioproto.FieldError{Field: "From", Message: "is not a phone number in E.164 form"}
	checkParse(t, twilioproto.ParseInbound, []parseCase[twilioproto.Inbound]{
		{"stop", valid, in(sid, to, twilioproto.KeywordStop), nil},
		{"start", twiliotest.InboundForm(sid, to, "Yes."), in(sid, to, twilioproto.KeywordStart), nil},
		{"help", twiliotest.InboundForm(sid, to, " Info. "), in(sid, to, twilioproto.KeywordHelp), nil},
		{"other text", twiliotest.InboundForm(sid, to, "stop please"), in(sid, to, twilioproto.KeywordNone), nil},
		{"no body", func() url.Values { f := twiliotest.InboundForm(sid, to, ""); f.Del("Body"); return f }(), in(sid, to, twilioproto.KeywordNone), nil},
		{"MMS", twiliotest.InboundForm("MM"+sid[2:], to, "stop"), in("MM"+sid[2:], to, twilioproto.KeywordStop), nil},
		// The dispatcher normalizes and validates the number.
		{"From with spaces", twiliotest.InboundForm(sid, " +33 6 12 34 56 78 ", "stop"), in(sid, "+33 6 12 34 56 78", twilioproto.KeywordStop), nil},

		{"no MessageSid", twiliotest.With(valid, "MessageSid", ""), twilioproto.Inbound{}, badSID},
		{"upper-case sid", twiliotest.With(valid, "MessageSid", strings.ToUpper(sid)), twilioproto.Inbound{}, badSID},
		{"sid of a call", twiliotest.With(valid, "MessageSid", "CA"+strings.Repeat("a", 32)), twilioproto.Inbound{}, badSID},
		{"sid with a key part", twiliotest.With(valid, "MessageSid", sid+":x"), twilioproto.Inbound{}, badSID},
		{"no From", twiliotest.With(valid, "From", ""), twilioproto.Inbound{}, badFrom},
		{"From only space", twiliotest.With(valid, "From", " \t"), twilioproto.Inbound{}, badFrom},
		{"From not E.164", twiliotest.With(valid, "From", "0612345678"), twilioproto.Inbound{}, badFrom},
		{"From too long", twiliotest.With(valid, "From", "+"+strings.Repeat("3", 32)), twilioproto.Inbound{}, badFrom},
		{"From given twice", twiliotest.With(valid, "From", to, "+33698765432"), twilioproto.Inbound{},
			&twilioproto.FieldError{Field: "From", Message: "is given more than once"}},
		{"Body given twice", twiliotest.With(valid, "Body", "START", "STOP"), twilioproto.Inbound{},
			&twilioproto.FieldError{Field: "Body", Message: "is given more than once"}},
		{"sid wrong before From", url.Values{"From": {"x"}}, twilioproto.Inbound{}, badSID},
	})
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
	for _, s := range twiliotest.InboundSeeds(to) {
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
		got, ok, err := twiliotest.ReadTwiML(rec.Body.String())
		if err != nil {
			t.Fatalf("reply %q to %q: %v", rec.Body, msg, err)
		}
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

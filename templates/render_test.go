package templates

import (
	"errors"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/templates/golden"
)

var testNow = time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)

const testUnsub = "https://mail.example.com/u/AQJrMQ.sig"

func mustCompile(t testing.TB, tpl Template) *Compiled {
	t.Helper()
	c, err := Compile(tpl)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

func TestRenderEscaping(t *testing.T) {
	tests := []struct {
		name string
		html string
		attr string
		want string
	}{
		{
			name: "script in element",
			html: `<p>{{.Attr.v}}</p>`,
			attr: `<script>alert("x")</script>`,
			want: `<p>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</p>`,
		},
		{
			name: "quotes in attribute",
			html: `<a title="{{.Attr.v}}" href="https://example.com">x</a>`,
			attr: `" onmouseover="alert(1)' x='`,
			want: `<a title="&#34; onmouseover=&#34;alert(1)&#39; x=&#39;" href="https://example.com">x</a>`,
		},
		{
			name: "unquoted attribute",
			html: `<img alt={{.Attr.v}}>`,
			attr: `x onerror=alert(1)`,
			want: `<img alt=x&#32;onerror&#61;alert(1)>`,
		},
		{
			// A line break inside a quoted attribute is legal HTML and
			// cannot break out of the attribute; it never reaches a header.
			name: "CRLF in attribute",
			html: `<img alt="{{.Attr.v}}">`,
			attr: "a\r\nb\">",
			want: "<img alt=\"a\r\nb&#34;&gt;\">",
		},
		{
			name: "javascript URL filtered",
			html: `<a href="{{.Attr.v}}">x</a>`,
			attr: `javascript:alert(1)`,
			want: `<a href="#ZgotmplZ">x</a>`,
		},
		{
			name: "value in script",
			html: `<script>var n = {{.Attr.v}};</script>`,
			attr: `</script><script>alert(1)`,
			want: `<script>var n = "\u003c/script\u003e\u003cscript\u003ealert(1)";</script>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCompile(t, Template{Email: &Email{Subject: "s", HTML: tt.html}})
			r, err := c.Render(channels.Email, Data{Attr: map[string]string{"v": tt.attr}}, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, r.HTML); diff != "" {
				t.Errorf("HTML (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRenderFunctions(t *testing.T) {
	attr := map[string]string{"first": "jean-pierre", "city": "  Lyon ", "long": "Éléonore-Marie", "empty": " "}
	tests := []struct {
		src, want string
	}{
		{`{{upper .Attr.first}}`, "JEAN-PIERRE"},
		{`{{lower "ÉTÉ"}}`, "été"},
		{`{{title .Attr.first}} {{title "élodie de la tour"}}`, "Jean-Pierre Élodie De La Tour"},
		{`[{{trim .Attr.city}}]`, "[Lyon]"},
		{`{{default "ami" .Attr.first_name}}`, "ami"},
		{`{{default "ami" $.Attr.first_name}}`, "ami"},
		{`{{.Attr.first_name | default "ami"}}`, "ami"},
		{`{{.Attr.first_name | default "ami" | upper}}`, "AMI"},
		{`{{default "ami" .Attr.empty}}`, "ami"},
		{`{{default "ami" .Attr.first}}`, "jean-pierre"},
		{`{{truncate 3 .Attr.long}}|{{truncate 99 .Attr.long}}|{{truncate 0 .Attr.long}}`, "Élé|Éléonore-Marie|"},
		{`{{date "02/01/2006 15:04" .Now}}`, "14/03/2025 09:30"},
		{`{{if eq .Locale "fr"}}Bonjour{{else}}Hello{{end}}`, "Bonjour"},
		{`{{if and (gt (len .Attr.first) 3) (not false)}}long{{end}}`, "long"},
		{`{{index .Attr "city" | trim}}|{{index .Attr "nope"}}|`, "Lyon||"},
		{`{{printf "%s-%03d" .Topic 7}} {{print "a" 1}}`, "news-007 a1"},
		{`{{html "<b>"}} {{js "'"}} {{urlquery "a b&c"}}`, `&lt;b&gt; \' a+b%26c`},
		{`{{with .Contact}}{{.ID}}{{end}}`, "c-1"},
		{`{{$n := .Attr.first}}{{$n}}`, "jean-pierre"},
		{`{{/* a comment */}}ok`, "ok"},
	}
	d := Data{Contact: ContactData{ID: "c-1"}, Attr: attr, Topic: "news", Locale: "fr", Now: testNow}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			c := mustCompile(t, Template{SMS: &SMS{Body: tt.src}})
			r, err := c.Render(channels.SMS, d, RenderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, r.SMS); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	plain := Template{Email: &Email{Subject: "s", Text: "t"}}
	tests := []struct {
		name    string
		tpl     Template
		kind    channels.Kind
		opts    RenderOptions
		wantMsg string
		wantIs  error
	}{
		{
			name:    "missing variable in subject",
			tpl:     Template{Email: &Email{Subject: "Hi {{.Attr.first_nme}}", Text: "t"}},
			kind:    channels.Email,
			wantMsg: `email.subject: line 1: missing variable "first_nme"`,
		},
		{
			name:    "missing variable in html",
			tpl:     Template{Email: &Email{Subject: "s", HTML: "<p>\nHello\n{{.Attr.first_nme}}</p>"}},
			kind:    channels.Email,
			wantMsg: `email.html: line 3: missing variable "first_nme"`,
		},
		{
			name:    "missing variable in if",
			tpl:     Template{SMS: &SMS{Body: "{{if .Attr.vip}}VIP{{end}}"}},
			kind:    channels.SMS,
			wantMsg: `sms.body: line 1: missing variable "vip"`,
		},
		{
			name:    "unknown field",
			tpl:     Template{SMS: &SMS{Body: "a\n{{.Contactt.ID}}"}},
			kind:    channels.SMS,
			wantMsg: `sms.body: line 2: unknown field "Contactt"`,
		},
		{
			name:    "output too large",
			tpl:     Template{Email: &Email{Subject: "s", Text: "{{.Attr.big}}{{.Attr.big}}{{.Attr.big}}"}},
			kind:    channels.Email,
			wantMsg: "email.text: rendered output too large",
			wantIs:  ErrOutputTooLarge,
		},
		{
			name:    "html output too large",
			tpl:     Template{Email: &Email{Subject: "s", HTML: "<p>{{.Attr.big}}{{.Attr.big}}{{.Attr.big}}</p>"}},
			kind:    channels.Email,
			wantMsg: "email.html: rendered output too large",
			wantIs:  ErrOutputTooLarge,
		},
		{
			name:    "print amplification",
			tpl:     Template{SMS: &SMS{Body: "{{$b := .Attr.big}}{{print $b $b $b}}"}},
			kind:    channels.SMS,
			wantMsg: "sms.body: line 1: print: rendered output too large",
			wantIs:  ErrOutputTooLarge,
		},
		{
			name:    "printf amplification",
			tpl:     Template{SMS: &SMS{Body: `{{printf "%[1]s%[1]s%[1]s%[1]s%[1]s%[1]s%[1]s%[1]s%[1]s%[1]s%[1]s%[1]s" .Attr.big}}`}},
			kind:    channels.SMS,
			wantMsg: "sms.body: line 1: printf: rendered output too large",
			wantIs:  ErrOutputTooLarge,
		},
		{
			name:    "printf huge width",
			tpl:     Template{SMS: &SMS{Body: `{{printf "%0100000000d" 1}}`}},
			kind:    channels.SMS,
			wantMsg: "sms.body: line 1: printf: width or precision over 1000",
		},
		{
			name:    "printf star width",
			tpl:     Template{SMS: &SMS{Body: `{{printf "%*d" 100000000 1}}`}},
			kind:    channels.SMS,
			wantMsg: "sms.body: line 1: printf: * width or precision is not allowed",
		},
		{
			name:    "escaper expansion",
			tpl:     Template{SMS: &SMS{Body: `{{js .Attr.lt}}`}},
			kind:    channels.SMS,
			wantIs:  ErrOutputTooLarge,
			wantMsg: "sms.body: line 1: js: rendered output too large",
		},
		{
			name:    "subject with CRLF",
			tpl:     Template{Email: &Email{Subject: "Hi {{.Attr.crlf}}", Text: "t"}},
			kind:    channels.Email,
			wantMsg: "email.subject: header value contains a line break",
			wantIs:  ErrLineBreak,
		},
		{
			name:    "negative truncate",
			tpl:     Template{SMS: &SMS{Body: `{{truncate -1 "abc"}}`}},
			kind:    channels.SMS,
			wantMsg: "sms.body: line 1: truncate: negative length",
		},
		{
			name:    "date of a string",
			tpl:     Template{SMS: &SMS{Body: `{{date "2006" .Topic}}`}},
			kind:    channels.SMS,
			wantMsg: "sms.body: line 1: date: expected a time, got string",
		},
		{
			name:    "no sms part",
			tpl:     plain,
			kind:    channels.SMS,
			wantMsg: "templates: render sms: template has no part for this channel",
			wantIs:  ErrNoPart,
		},
		{
			name:    "marketing without unsubscribe URL",
			tpl:     plain,
			kind:    channels.Email,
			opts:    RenderOptions{Marketing: true},
			wantMsg: "options.unsubscribe_url: marketing email needs an absolute http(s) unsubscribe URL",
			wantIs:  ErrUnsubscribeURL,
		},
		{
			name:    "javascript unsubscribe URL",
			tpl:     plain,
			kind:    channels.Email,
			opts:    RenderOptions{Marketing: true, UnsubscribeURL: "javascript:alert(1)"},
			wantIs:  ErrUnsubscribeURL,
			wantMsg: "options.unsubscribe_url: marketing email needs an absolute http(s) unsubscribe URL",
		},
		{
			name:    "unsubscribe URL with CRLF",
			tpl:     plain,
			kind:    channels.Email,
			opts:    RenderOptions{Marketing: true, UnsubscribeURL: "https://x.example/u/a\r\nBcc: victim@example.com"},
			wantIs:  ErrLineBreak,
			wantMsg: "options.unsubscribe_url: header value contains a line break",
		},
		{
			name:    "mailto with CRLF",
			tpl:     plain,
			kind:    channels.Email,
			opts:    RenderOptions{Marketing: true, UnsubscribeURL: testUnsub, ListUnsubscribeMailto: "u@example.com\nBcc: x@example.com"},
			wantIs:  ErrLineBreak,
			wantMsg: "options.list_unsubscribe_mailto: header value contains a line break",
		},
		{
			name:    "list id with CRLF",
			tpl:     plain,
			kind:    channels.Email,
			opts:    RenderOptions{ListID: "news.example.com\r\nX-Evil: 1"},
			wantIs:  ErrLineBreak,
			wantMsg: "options.list_id: header value contains a line break",
		},
	}
	d := Data{Attr: map[string]string{"big": big, "lt": strings.Repeat("<", 50<<10), "crlf": "x\r\nBcc: victim@example.com"}, Topic: "news"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCompile(t, tt.tpl)
			_, err := c.Render(tt.kind, d, tt.opts)
			if err == nil {
				t.Fatal("Render succeeded, want an error")
			}
			if diff := cmp.Diff(tt.wantMsg, err.Error()); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
		})
	}
}

func TestMissingVariableErrorType(t *testing.T) {
	c := mustCompile(t, Template{Email: &Email{Subject: "{{.Attr.first_nme}}", Text: "t"}})
	_, err := c.Render(channels.Email, Data{}, RenderOptions{})
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %T is not a *FieldError", err)
	}
	want := &FieldError{Field: "email.subject", Line: 1, Err: &MissingVariableError{Name: "first_nme"}}
	if diff := cmp.Diff(want, fe); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCompileRejects(t *testing.T) {
	tests := []struct {
		name    string
		tpl     Template
		wantMsg string
		wantIs  error
	}{
		{"range", Template{SMS: &SMS{Body: "a\n{{range .Attr}}x{{end}}"}}, "sms.body: line 2: range is not allowed (templates have no loops)", ErrNotAllowed},
		{"define", Template{SMS: &SMS{Body: "a\n\n{{define \"x\"}}x{{end}}"}}, "sms.body: line 3: define is not allowed (one template per part)", ErrNotAllowed},
		{"define replacing the part", Template{SMS: &SMS{Body: `{{define "sms.body"}}x{{end}}`}}, "sms.body: line 1: define is not allowed (one template per part)", ErrNotAllowed},
		{"template", Template{SMS: &SMS{Body: `{{template "sms.body" .}}`}}, "sms.body: line 1: template is not allowed (one template per part)", ErrNotAllowed},
		{"block", Template{SMS: &SMS{Body: `{{block "x" .}}y{{end}}`}}, "sms.body: line 1: block is not allowed (one template per part)", ErrNotAllowed},
		{"call", Template{SMS: &SMS{Body: `{{call .Attr.f}}`}}, `sms.body: line 1: "call" is not allowed (not in the allowed functions)`, ErrNotAllowed},
		{"slice", Template{SMS: &SMS{Body: `{{slice .Topic 1}}`}}, `sms.body: line 1: "slice" is not allowed (not in the allowed functions)`, ErrNotAllowed},
		{"unknown function", Template{Email: &Email{Subject: "s", HTML: "<p>\n{{env \"HOME\"}}</p>"}}, `email.html: line 2: "env" is not allowed (not in the allowed functions)`, ErrNotAllowed},
		{"internal function", Template{SMS: &SMS{Body: `{{missiveAttrOrEmpty .Attr "x"}}`}}, `sms.body: line 1: "missiveAttrOrEmpty" is not allowed (not in the allowed functions)`, ErrNotAllowed},
		{"function in nested pipeline", Template{SMS: &SMS{Body: `{{if (call .X)}}{{end}}`}}, `sms.body: line 1: "call" is not allowed (not in the allowed functions)`, ErrNotAllowed},
		{"parse error", Template{Email: &Email{Subject: "ok", Text: "a\nb\n{{if .Topic}}"}}, "email.text: line 3: unexpected EOF", nil},
		{"html ambiguous context", Template{Email: &Email{Subject: "ok", HTML: `<a href="{{.UnsubscribeURL}}`}}, "", nil},
		{"source too large", Template{SMS: &SMS{Body: strings.Repeat("a", MaxSourceSize+1)}}, "sms.body: template source too large", ErrSourceTooLarge},
		{"empty", Template{}, "email: a template needs an email or an sms part", nil},
		{"no subject", Template{Email: &Email{HTML: "x"}}, "email.subject: required", ErrRequired},
		{"no body", Template{Email: &Email{Subject: "x"}}, "email.html: an email needs an html or a text part", nil},
		{"empty sms", Template{SMS: &SMS{Body: " "}}, "sms.body: required", ErrRequired},
		{"from with CRLF", Template{Email: &Email{Subject: "x", Text: "t", From: "a@example.com\r\nBcc: b@example.com"}}, "email.from: header value contains a line break", ErrLineBreak},
		{"bad from", Template{Email: &Email{Subject: "x", Text: "t", From: "not an address"}}, "email.from: not a valid address", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.tpl)
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FieldError", err)
			}
			if tt.wantMsg != "" {
				if diff := cmp.Diff(tt.wantMsg, err.Error()); diff != "" {
					t.Errorf("message (-want +got):\n%s", diff)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
		})
	}
}

func TestMarketingObligations(t *testing.T) {
	const prefs = "https://mail.example.com/preferences/AQJrMQ.sig"
	email := Template{Email: &Email{
		Subject: "Offre",
		HTML:    "<html><body><p>Hello</p></body></html>",
		Text:    "Hello",
		From:    "Missive <news@example.com>",
	}}
	linked := Template{Email: &Email{
		Subject: "Offre",
		HTML:    `<p>Hello <a href="{{.UnsubscribeURL}}">leave</a></p>`,
		Text:    "Hello\nleave: {{.UnsubscribeURL}}",
	}}
	sms := Template{SMS: &SMS{Body: "Promo -20% {{.Attr.code}}"}}
	hasStop := Template{SMS: &SMS{Body: "Promo. Reply STOP to opt out"}}
	stopped := Template{SMS: &SMS{Body: "Your parcel has STOPPED at the depot"}}

	oneClick := map[string]string{
		"List-Unsubscribe":      "<" + testUnsub + ">",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
	}
	// linkedOut is linked rendered as marketing with testUnsub, from the
	// options or from the data: the template already links it, so no
	// footer is added.
	linkedOut := Rendered{
		Kind: channels.Email, Subject: "Offre",
		HTML:    `<p>Hello <a href="` + testUnsub + `">leave</a></p>`,
		Text:    "Hello\nleave: " + testUnsub,
		Headers: oneClick,
	}
	tests := []struct {
		name string
		tpl  Template
		kind channels.Kind
		d    Data
		opts RenderOptions
		want Rendered
	}{
		{
			name: "marketing email english",
			tpl:  email,
			kind: channels.Email,
			opts: RenderOptions{Marketing: true, UnsubscribeURL: testUnsub},
			want: Rendered{
				Kind: channels.Email, From: "Missive <news@example.com>", Subject: "Offre",
				HTML:    "<html><body><p>Hello</p>" + `<p style="font-size:12px;line-height:18px;color:#6b7280;text-align:center;margin:24px 0 0"><a href="` + testUnsub + `" style="color:#6b7280">Unsubscribe</a></p>` + "\n</body></html>",
				Text:    "Hello\n\n-- \nUnsubscribe: " + testUnsub + "\n",
				Headers: oneClick,
			},
		},
		{
			name: "marketing email french with preferences, mailto and list id",
			tpl:  email,
			kind: channels.Email,
			d:    Data{Contact: ContactData{Locale: "fr-FR"}, PreferencesURL: prefs},
			opts: RenderOptions{Marketing: true, UnsubscribeURL: testUnsub, ListUnsubscribeMailto: "unsubscribe@example.com", ListID: "Lettre <lettre.example.com>"},
			want: Rendered{
				Kind: channels.Email, From: "Missive <news@example.com>", Subject: "Offre",
				HTML: "<html><body><p>Hello</p>" + `<p style="font-size:12px;line-height:18px;color:#6b7280;text-align:center;margin:24px 0 0"><a href="` + testUnsub + `" style="color:#6b7280">Se désabonner</a>` +
					` · <a href="` + prefs + `" style="color:#6b7280">Gérer mes préférences</a></p>` + "\n</body></html>",
				Text: "Hello\n\n-- \nSe désabonner : " + testUnsub + "\nGérer mes préférences : " + prefs + "\n",
				Headers: map[string]string{
					"List-Unsubscribe":      "<" + testUnsub + ">, <mailto:unsubscribe@example.com>",
					"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
					"List-Id":               "Lettre <lettre.example.com>",
				},
			},
		},
		{
			name: "marketing email already linking the URL",
			tpl:  linked,
			kind: channels.Email,
			opts: RenderOptions{Marketing: true, UnsubscribeURL: testUnsub},
			want: linkedOut,
		},
		{
			name: "unsubscribe URL from data",
			tpl:  linked,
			kind: channels.Email,
			d:    Data{UnsubscribeURL: testUnsub},
			opts: RenderOptions{Marketing: true},
			want: linkedOut,
		},
		{
			name: "transactional email",
			tpl:  email,
			kind: channels.Email,
			opts: RenderOptions{UnsubscribeURL: testUnsub, ListID: "orders.example.com"},
			want: Rendered{
				Kind: channels.Email, From: "Missive <news@example.com>", Subject: "Offre",
				HTML:    "<html><body><p>Hello</p></body></html>",
				Text:    "Hello",
				Headers: map[string]string{"List-Id": "<orders.example.com>"},
			},
		},
		{
			name: "marketing sms english",
			tpl:  sms,
			kind: channels.SMS,
			d:    Data{Attr: map[string]string{"code": "SPRING"}},
			opts: RenderOptions{Marketing: true},
			want: Rendered{Kind: channels.SMS, SMS: "Promo -20% SPRING\nSTOP: reply STOP to opt out", Segments: SegmentInfo{Encoding: "GSM-7", Units: 45, Parts: 1}},
		},
		{
			name: "marketing sms french",
			tpl:  sms,
			kind: channels.SMS,
			d:    Data{Attr: map[string]string{"code": "PRINTEMPS"}, Locale: "fr"},
			opts: RenderOptions{Marketing: true},
			want: Rendered{Kind: channels.SMS, SMS: "Promo -20% PRINTEMPS\nSTOP: répondez STOP pour ne plus recevoir de SMS", Segments: SegmentInfo{Encoding: "GSM-7", Units: 69, Parts: 1}},
		},
		{
			name: "marketing sms already saying STOP",
			tpl:  hasStop,
			kind: channels.SMS,
			opts: RenderOptions{Marketing: true},
			want: Rendered{Kind: channels.SMS, SMS: "Promo. Reply STOP to opt out", Segments: SegmentInfo{Encoding: "GSM-7", Units: 28, Parts: 1}},
		},
		{
			name: "STOPPED is not STOP",
			tpl:  stopped,
			kind: channels.SMS,
			opts: RenderOptions{Marketing: true},
			want: Rendered{Kind: channels.SMS, SMS: "Your parcel has STOPPED at the depot\nSTOP: reply STOP to opt out", Segments: SegmentInfo{Encoding: "GSM-7", Units: 64, Parts: 1}},
		},
		{
			name: "transactional sms",
			tpl:  sms,
			kind: channels.SMS,
			d:    Data{Attr: map[string]string{"code": "€"}},
			want: Rendered{Kind: channels.SMS, SMS: "Promo -20% €", Segments: SegmentInfo{Encoding: "GSM-7", Units: 13, Parts: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCompile(t, tt.tpl)
			got, err := c.Render(tt.kind, tt.d, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			for k, v := range got.Headers {
				if strings.ContainsAny(k+v, "\r\n") {
					t.Errorf("header %s has a line break", k)
				}
			}
		})
	}
}

func TestOptOutLinesAreGSM7(t *testing.T) {
	for _, line := range []string{OptOutEN, OptOutFR} {
		if got := Segments(line).Encoding; got != "GSM-7" {
			t.Errorf("Segments(%q).Encoding = %s, want GSM-7", line, got)
		}
	}
}

func TestPreview(t *testing.T) {
	c := mustCompile(t, Template{
		Email: &Email{Subject: "Bonjour {{.Attr.first_name}}", HTML: "<p>Bonjour</p>", Text: "Bonjour"},
		SMS:   &SMS{Body: "Bonjour {{default \"à toi\" .Attr.first_name}}"},
	})
	r, err := c.Preview(channels.Email, Data{Attr: map[string]string{"first_name": "Léa"}, Locale: "fr"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.HTML, PreviewUnsubscribeURL) || !strings.Contains(r.HTML, "Se désabonner") || r.Headers["List-Unsubscribe"] != "<"+PreviewUnsubscribeURL+">" {
		t.Errorf("preview lacks the unsubscribe footer or header: %+v", r)
	}
	r, err = c.Preview(channels.SMS, Data{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Bonjour à toi\n" + OptOutEN; r.SMS != want {
		t.Errorf("SMS = %q, want %q", r.SMS, want)
	}
	_, err = c.Preview(channels.Email, Data{})
	if got, want := err.Error(), `email.subject: line 1: missing variable "first_name"`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestRenderedMessage(t *testing.T) {
	c := mustCompile(t, Template{Email: &Email{Subject: "s", Text: "t", From: "a@example.com"}, SMS: &SMS{Body: "b"}})
	r, err := c.Render(channels.Email, Data{}, RenderOptions{Marketing: true, UnsubscribeURL: testUnsub})
	if err != nil {
		t.Fatal(err)
	}
	want := channels.Message{ID: "send-1", Channel: channels.Email, To: "x@example.com", From: "a@example.com", Subject: "s",
		Text: "t\n\n-- \nUnsubscribe: " + testUnsub + "\n", Headers: r.Headers}
	if diff := cmp.Diff(want, r.Message("send-1", "x@example.com")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	r, _ = c.Render(channels.SMS, Data{}, RenderOptions{})
	if diff := cmp.Diff(channels.Message{ID: "send-2", Channel: channels.SMS, To: "+33612345678", Body: "b"}, r.Message("send-2", "+33612345678")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !c.Has(channels.Email) || !c.Has(channels.SMS) || c.Has("fax") {
		t.Error("Has reports the wrong parts")
	}
}

// marketingEmail is a realistic marketing email of about 2 KB, used by the
// golden test and the benchmark.
var marketingEmail = Template{
	ID: "spring-sale", Version: 3,
	Email: &Email{
		From:    "Maison Exemple <news@example.com>",
		Subject: "{{default \"Bonjour\" .Attr.first_name | title}}, -20 % sur la collection de printemps",
		HTML: `<!doctype html>
<html lang="{{.Locale}}">
<head><meta charset="utf-8"><title>Collection de printemps</title></head>
<body style="margin:0;padding:0;background:#f5f5f4;font-family:Helvetica,Arial,sans-serif">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0">
<tr><td align="center" style="padding:24px">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="background:#ffffff;border-radius:8px">
<tr><td style="padding:32px">
<h1 style="font-size:24px;color:#111827">Bonjour {{default "à vous" .Attr.first_name | title}},</h1>
<p style="font-size:16px;line-height:24px;color:#374151">La collection de printemps arrive à {{.Attr.city}}.
Jusqu'au {{date "02/01/2006" .Now}}, profitez de -20 % avec le code <strong>{{upper .Attr.code}}</strong>.</p>
<p style="font-size:16px;line-height:24px;color:#374151">Votre boutique : {{.Attr.store}}.</p>
<p style="text-align:center;margin:32px 0">
<a href="https://shop.example.com/printemps?code={{.Attr.code}}&amp;utm_campaign={{.Campaign}}" style="background:#111827;color:#ffffff;padding:12px 24px;border-radius:6px;text-decoration:none">Découvrir la collection</a>
</p>
<p style="font-size:14px;line-height:20px;color:#6b7280">Offre valable une fois par client, dans la limite des stocks disponibles.
Les conditions complètes sont en ligne.</p>
{{if eq .Attr.tier "gold"}}<p style="font-size:14px;color:#92400e">Membre Gold : livraison offerte.</p>{{end}}
</td></tr>
</table>
<p style="font-size:12px;color:#9ca3af">Maison Exemple, 1 rue de l'Exemple, 75001 Paris.</p>
</td></tr>
</table>
</body>
</html>
`,
		Text: `Bonjour {{default "à vous" .Attr.first_name | title}},

La collection de printemps arrive à {{.Attr.city}}.
Jusqu'au {{date "02/01/2006" .Now}}, profitez de -20 % avec le code {{upper .Attr.code}}.
Votre boutique : {{.Attr.store}}.

Découvrir la collection : https://shop.example.com/printemps?code={{urlquery .Attr.code}}
{{if eq .Attr.tier "gold"}}
Membre Gold : livraison offerte.
{{end}}
Maison Exemple, 1 rue de l'Exemple, 75001 Paris.
`,
	},
	SMS: &SMS{Body: "{{default \"Bonjour\" .Attr.first_name | title}}, -20% sur le printemps avec le code {{upper .Attr.code}} jusqu'au {{date \"02/01\" .Now}} : https://ex.co/p"},
}

var marketingData = Data{
	Contact:        ContactData{ID: "c-42", Email: "lea@example.com", Phone: "+33612345678", Locale: "fr-FR", Timezone: "Europe/Paris"},
	Attr:           map[string]string{"first_name": "léa", "city": "Lyon <Part-Dieu>", "code": "printemps25", "store": `Lyon "Presqu'île"`, "tier": "gold"},
	Campaign:       "spring-2025",
	Topic:          "promotions",
	PreferencesURL: "https://mail.example.com/preferences/AQJrMQ.sig",
	Locale:         "fr",
	Now:            testNow,
}

var marketingOptions = RenderOptions{
	Marketing:             true,
	UnsubscribeURL:        testUnsub,
	ListUnsubscribeMailto: "mailto:unsubscribe@example.com",
	ListID:                "Promotions <promotions.example.com>",
}

func dump(r Rendered) string {
	var b strings.Builder
	keys := make([]string, 0, len(r.Headers))
	for k := range r.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if r.From != "" {
		b.WriteString("From: " + r.From + "\n")
	}
	if r.Subject != "" {
		b.WriteString("Subject: " + r.Subject + "\n")
	}
	for _, k := range keys {
		b.WriteString(k + ": " + r.Headers[k] + "\n")
	}
	if r.Kind == channels.SMS {
		b.WriteString("Segments: " + r.Segments.Encoding + " " + strconv.Itoa(r.Segments.Units) + " units, " + strconv.Itoa(r.Segments.Parts) + " part(s)\n")
		b.WriteString("\n" + r.SMS + "\n")
		return b.String()
	}
	b.WriteString("\n--- text/plain ---\n" + r.Text)
	b.WriteString("--- text/html ---\n" + r.HTML)
	return b.String()
}

func TestGolden(t *testing.T) {
	c := mustCompile(t, marketingEmail)
	r, err := c.Render(channels.Email, marketingData, marketingOptions)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "marketing_email.golden", dump(r))
	r, err = c.Render(channels.SMS, marketingData, RenderOptions{Marketing: true})
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "marketing_sms.golden", dump(r))
}

func TestConcurrentRender(t *testing.T) {
	c := mustCompile(t, marketingEmail)
	want, err := c.Render(channels.Email, marketingData, marketingOptions)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 8)
	for range 8 {
		go func() {
			for range 50 {
				got, err := c.Render(channels.Email, marketingData, marketingOptions)
				if err == nil && got.HTML != want.HTML {
					err = errors.New("concurrent render differs")
				}
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 8 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// linksTo finds an href to the URL as html/template writes it, quoted or
// not, escaped or not, and nothing else.
func TestLinksTo(t *testing.T) {
	t.Parallel()
	const u = "https://m.example/u?t=a&b=c"
	for _, tt := range []struct {
		html string
		want bool
	}{
		{`<a href="https://m.example/u?t=a&amp;b=c">x</a>`, true},
		{`<a href='https://m.example/u?t=a&b=c'>x</a>`, true},
		{`<a href=https://m.example/u?t=a&amp;b=c>x</a>`, true},
		{`<p>https://m.example/u?t=a&amp;b=c</p><a href="https://m.example/other">x</a>`, false},
		{`<a title="https://m.example/u?t=a&amp;b=c" href="https://m.example/u?t=a&amp;b=c">x</a>`, true},
		{`<a data-href="x" src="https://m.example/u?t=a&b=c">`, false},
		{``, false},
	} {
		if got := linksTo(tt.html, u); got != tt.want {
			t.Errorf("linksTo(%q) = %v, want %v", tt.html, got, tt.want)
		}
	}
}

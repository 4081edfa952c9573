package templates

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/missive-dev/missive/channels"
)

func FuzzCompileRender(f *testing.F) {
	for _, seed := range [][2]string{
		{"Hello {{.Attr.first_name}}", "Léa"},
		{`<a href="{{.UnsubscribeURL}}" title="{{.Attr.first_name}}">x</a>`, `"><script>`},
		{`{{default "ami" .Attr.first_name | title}} {{truncate 3 .Attr.x}}`, "\r\n"},
		{`{{if eq .Attr.first_name "a"}}{{upper .Attr.first_name}}{{else}}{{lower .Topic}}{{end}}`, "a"},
		{`{{printf "%[1]s%[1]s%[1]q" .Attr.first_name}}{{print . }}`, "€"},
		{`{{with .Contact}}{{.Email}}{{end}}{{date "Mon 2006" .Now}}`, ""},
		{`{{range .Attr}}{{end}}{{define "x"}}{{end}}{{template "x"}}`, ""},
		{`<script>var a = {{.Attr.first_name}};</script><style>p{color:{{.Attr.first_name}}}</style>`, "red;}</style>"},
		{`{{$x := .Attr.first_name}}{{js $x}}{{html $x}}{{urlquery $x}}{{len $x}}{{index .Attr "first_name"}}`, "<&>"},
		{`{{.Attr.missing}}`, ""},
		{`{{printf "%0999d" 1}}`, ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, src, attr string) {
		c, err := Compile(Template{
			Email: &Email{Subject: src, HTML: src, Text: src},
			SMS:   &SMS{Body: src},
		})
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Compile error %T is not a *FieldError: %v", err, err)
			}
			return
		}
		d := Data{
			Contact:  ContactData{ID: attr, Email: attr},
			Attr:     map[string]string{"first_name": attr, "x": attr},
			Campaign: attr, Topic: attr, Now: testNow,
		}
		for _, opts := range []RenderOptions{{}, {Marketing: true, UnsubscribeURL: testUnsub, ListID: "l.example.com"}} {
			for _, kind := range []channels.Kind{channels.Email, channels.SMS} {
				r, err := c.Render(kind, d, opts)
				if err != nil {
					continue
				}
				for _, part := range []string{r.Subject, r.HTML, r.Text, r.SMS} {
					if len(part) > MaxOutputSize {
						t.Fatalf("rendered part of %d bytes, over %d", len(part), MaxOutputSize)
					}
				}
				if kind == channels.Email && len(r.Subject) > 0 {
					for _, b := range []byte(r.Subject) {
						if b == '\r' || b == '\n' {
							t.Fatalf("subject with a line break: %q", r.Subject)
						}
					}
				}
				if opts.Marketing && kind == channels.SMS && !stopRe.MatchString(r.SMS) {
					t.Fatalf("marketing SMS without STOP: %q", r.SMS)
				}
				if opts.Marketing && kind == channels.Email {
					if r.Headers["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" {
						t.Fatalf("marketing email without one-click header: %v", r.Headers)
					}
					if r.HTML != "" && !linksTo(r.HTML, testUnsub) {
						t.Fatalf("marketing HTML without an unsubscribe link: %q", r.HTML)
					}
					if r.Text != "" && !strings.Contains(r.Text, testUnsub) {
						t.Fatalf("marketing text without the unsubscribe URL: %q", r.Text)
					}
				}
			}
		}
	})
}

func FuzzVerify(f *testing.F) {
	s, err := NewSigner(map[string][]byte{"k1": testKey(1), "k0": testKey(9)}, "k1")
	if err != nil {
		f.Fatal(err)
	}
	tok, _ := s.Sign(testClaims)
	f.Add(tok)
	f.Add(tok[:len(tok)-1])
	f.Add("AQJrMQRjLTQyBWVtYWls.AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("")
	f.Add(".")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(token)
		if err != nil {
			if err != ErrInvalidToken {
				t.Fatalf("error %v is not ErrInvalidToken", err)
			}
			return
		}
		// Only a token Sign produces can verify: anything else would be
		// a forgery or a second spelling of a valid token.
		again, err := s.Sign(c)
		if err != nil || again != token {
			t.Fatalf("Verify accepted %q for %+v, which Sign spells %q (%v)", token, c, again, err)
		}
	})
}

func FuzzSegments(f *testing.F) {
	for _, seed := range []string{"", "a", "€", "😀", "Été", "\xff", "a\r\n{}[]~\\|^\f"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		info := Segments(body)
		if body == "" {
			if info != (SegmentInfo{}) {
				t.Fatalf("empty body: %+v", info)
			}
			return
		}
		single, part := gsmSingle, gsmPart
		switch info.Encoding {
		case "GSM-7":
			n := 0
			for _, r := range body {
				n += gsmSeptets[r]
				if gsmSeptets[r] == 0 {
					t.Fatalf("GSM-7 body with non-GSM rune %q", r)
				}
			}
			if n != info.Units {
				t.Fatalf("units %d, want %d", info.Units, n)
			}
		case "UCS-2":
			single, part = ucs2Single, ucs2Part
			if n := len(utf16.Encode([]rune(body))); n != info.Units {
				t.Fatalf("units %d, want %d UTF-16 units", info.Units, n)
			}
		default:
			t.Fatalf("encoding %q", info.Encoding)
		}
		switch {
		case info.Units <= single:
			if info.Parts != 1 {
				t.Fatalf("%d units in %d parts, want 1", info.Units, info.Parts)
			}
		default:
			lo := (info.Units + part - 1) / part
			hi := (info.Units + part - 2) / (part - 1)
			if info.Parts < lo || info.Parts > hi {
				t.Fatalf("%d units in %d parts, want %d to %d", info.Units, info.Parts, lo, hi)
			}
		}
	})
}

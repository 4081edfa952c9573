package email_test

import (
	"bufio"
	"bytes"
	"mime"
	"net/textproto"
	"strings"
	"testing"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
)

// headerLines returns the raw header lines of a built message.
func headerLines(t *testing.T, m channels.Message) ([]string, textproto.MIMEHeader) {
	t.Helper()
	msg, err := email.Build(m, email.Defaults{From: "News <news@missive.example>"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	head, _, _ := bytes.Cut(buf.Bytes(), []byte("\r\n\r\n"))
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(head, "\r\n\r\n"...)))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("reading the header back: %v", err)
	}
	return strings.Split(string(head), "\r\n"), h
}

// A subject of any length and shape is written in lines of at most 78
// octets (RFC 5322 2.1.1: 998 at most, 78 recommended) and reads back as
// it was.
func TestBuildFoldsLongSubject(t *testing.T) {
	t.Parallel()
	word := strings.Repeat("x", 1000)
	for name, subject := range map[string]string{
		"one 1,000-octet word":      word,
		"a long word among others":  "Bonjour " + word + " et à bientôt",
		"a long ASCII word, spaced": "Hello " + strings.Repeat("ab", 60) + " and " + strings.Repeat("cd", 60),
		"a long non-ASCII word":     strings.Repeat("é", 600),
		"many short words":          strings.Repeat("news and offers ", 80),
		"a URL":                     "See https://shop.example/" + strings.Repeat("p", 90) + "?a=1",
	} {
		t.Run(name, func(t *testing.T) {
			lines, h := headerLines(t, channels.Message{ID: "r.c", To: "ada@example.org", Text: "t", Subject: subject})
			for _, l := range lines {
				if strings.HasPrefix(l, "Subject:") || strings.HasPrefix(l, " ") {
					if len(l) > 78 {
						t.Errorf("header line of %d octets: %.40q...", len(l), l)
					}
				}
			}
			got, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Join(strings.Fields(subject), " "); strings.Join(strings.Fields(got), " ") != want {
				t.Errorf("Subject reads back as %.60q..., want %.60q...", got, want)
			}
		})
	}
}

// An extra header whose value cannot be folded under 998 octets is
// refused rather than sent broken.
func TestBuildRefusesUnfoldableHeader(t *testing.T) {
	t.Parallel()
	m := channels.Message{ID: "r.c", To: "ada@example.org", Text: "t",
		Headers: map[string]string{"X-Campaign": strings.Repeat("z", 1000)}}
	_, err := email.Build(m, email.Defaults{From: "news@missive.example"})
	if err == nil || !strings.Contains(err.Error(), "X-Campaign") || strings.Contains(err.Error(), "zzz") {
		t.Fatalf("error = %v, want one naming the header, not its value", err)
	}
	// A long value that can be folded is kept.
	m.Headers = map[string]string{"X-Campaign": strings.Repeat("word ", 300)}
	lines, _ := headerLines(t, m)
	for _, l := range lines {
		if len(l) > 998 {
			t.Errorf("header line of %d octets", len(l))
		}
	}
}

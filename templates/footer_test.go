package templates

import (
	"regexp"
	"strings"
	"testing"
)

// bodyCloseRe is what lastBodyClose finds, said as a regular expression.
var bodyCloseRe = regexp.MustCompile(`(?i)</body\s*>`)

func lastBodyCloseRe(html string) int {
	locs := bodyCloseRe.FindAllStringIndex(html, -1)
	if len(locs) == 0 {
		return -1
	}
	return locs[len(locs)-1][0]
}

// FuzzLastBodyClose holds lastBodyClose to the regular expression it
// replaced.
func FuzzLastBodyClose(f *testing.F) {
	for _, s := range []string{"", "<p>x</p>", "<body><p>x</p></body>", "</BODY >\n</body\t\r\n>", "</bod", "</body", "</body x>",
		"</</body>", "</body></body >x", "</bOdY\f>", "</body\v>", "<</body>>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, html string) {
		if got, want := lastBodyClose(html), lastBodyCloseRe(html); got != want {
			t.Fatalf("lastBodyClose(%q) = %d, want %d", html, got, want)
		}
	})
}

// BenchmarkLastBodyClose compares the backward scan with the regular
// expression it replaced, on the same message.
func BenchmarkLastBodyClose(b *testing.B) {
	html := "<html><body>" + strings.Repeat("<p>Hello Ana, here is our news for this month, with a few words more.</p>\n", 30) + "</body></html>"
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			lastBodyClose(html)
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for b.Loop() {
			lastBodyCloseRe(html)
		}
	})
}

package page

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name, choice, locale, accept string
		want                         Lang
	}{
		// 1. An explicit choice wins, and must name one of ours exactly.
		{"choice", "en", "fr-FR", "fr", English},
		{"choice over header", "fr", "", "en", French},
		{"choice in capitals and spaces", " EN ", "fr", "", English},
		{"choice of another language ignored", "de", "en-GB", "", English},
		{"choice of a regional tag ignored", "fr-CA", "en", "", English},
		// 2. The contact's stored locale.
		{"locale fr-FR", "", "fr-FR", "", French},
		{"locale wins over header", "", "en-GB", "fr-FR,fr;q=0.9", English},
		{"locale with underscore", "", "en_US", "fr", English},
		{"locale with an unknown region", "", "en-ZZ", "fr", English},
		{"locale of another language: header", "", "de", "fr", French},
		{"garbage locale: header", "", "!!", "fr", French},
		// 3. Accept-Language, by weight, the first on equal weights.
		{"header names fr", "", "", "de-DE, fr;q=0.8, en;q=0.5", French},
		{"header weights", "", "", "en;q=0.4, fr-CA;q=0.6", French},
		{"header equal weights: first", "", "", "en-US, fr", English},
		{"header en", "", "", "en", English},
		{"header en-US then fr", "", "", "en-US,fr;q=0.5", English},
		{"header fr-CA then en", "", "", "fr-CA,en;q=0.9", French},
		{"header low weights still count", "", "", "de,en;q=0.2,fr;q=0.1", English},
		{"header q=0 is a refusal", "", "", "fr;q=0", English},
		{"header q=0 then a low weight", "", "", "en;q=0, fr;q=0.1", French},
		{"header unreadable weight counts as 1", "", "", "fr;q=x", French},
		{"header weight out of range counts as 1", "", "", "fr;q=0.5, en;q=7", English},
		{"header Q in capitals", "", "", "fr;Q=0.1, en;Q=0.2", English},
		{"header garbage entry skipped", "", "", "!!@@, fr;q=0.5", French},
		{"header language read by French speakers", "", "", "br", French},
		{"header case and spaces", "", "", "  EN-gb  ", English},
		// 4. Default: English, where the sign-up form used to say French.
		{"nothing", "", "", "", English},
		{"header of other languages", "", "", "de, it;q=0.5", English},
		{"header any", "", "", "*", English},
		{"header beyond the bytes read", "", "", strings.Repeat("de-DE, ", 100) + "fr", English},
		{"header beyond the entries read", "", "", strings.Repeat("de,", maxAcceptEntries) + "fr", English},
		{"header within the entries read", "", "", strings.Repeat("de,", maxAcceptEntries-1) + "fr", French},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Negotiate(tt.choice, tt.locale, tt.accept)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Negotiate(%q, %q, %q) (-want +got):\n%s", tt.choice, tt.locale, tt.accept, diff)
			}
		})
	}
}

func TestParseLang(t *testing.T) {
	got := map[string]Lang{}
	for _, s := range []string{"fr", "en", "FR", " en ", "fr-FR", "de", "", "e n"} {
		if l, ok := ParseLang(s); ok {
			got[s] = l
		}
	}
	want := map[string]Lang{"fr": French, "en": English, "FR": French, " en ": English}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseLang (-want +got):\n%s", diff)
	}
}

// FuzzNegotiate feeds the three inputs as a client and a contact record
// could: the answer is always one of ours, an explicit choice always wins
// and a stored locale of ours beats any header.
func FuzzNegotiate(f *testing.F) {
	f.Add("", "", "")
	f.Add("en", "fr-FR", "de-DE, fr;q=0.8, en;q=0.5")
	f.Add("", "en_GB", "en;q=x, fr;q=0")
	f.Add("FR", "!!", "*;q=0.5, br, en-Cyrl")
	f.Add("", "", "en;q=NaN, fr;q=1e400, de;q=-1, ;;;,,,")
	f.Add("", "zh-Hant-TW-u-nu-hanidec-x-private", "x-klingon, i-default, en-US-u-rg-gbzzzz")
	f.Fuzz(func(t *testing.T, choice, locale, accept string) {
		got := Negotiate(choice, locale, accept)
		if got != French && got != English {
			t.Fatalf("Negotiate(%q, %q, %q) = %q", choice, locale, accept, got)
		}
		if l, ok := ParseLang(choice); ok && got != l {
			t.Fatalf("Negotiate(%q, ...) = %q, not the explicit choice", choice, got)
		}
		for _, l := range langs {
			if got := Negotiate("", string(l), accept); got != l {
				t.Fatalf("Negotiate(\"\", %q, %q) = %q: the header beat the stored locale", l, accept, got)
			}
		}
		if again := Negotiate(choice, locale, accept); again != got {
			t.Fatalf("Negotiate is not deterministic: %q then %q", got, again)
		}
	})
}

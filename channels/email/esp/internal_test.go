package esp

import (
	"strings"
	"testing"
)

// validAddress keeps the dispatcher's normal form (NormalizeEmail) and
// drops what is not one address.
func TestValidAddress(t *testing.T) {
	for in, want := range map[string]string{
		"a@example.com":              "a@example.com",
		"A.B+tag@Example.COM":        "A.B+tag@example.com",
		`"quoted local"@example.com`: "", // a space
		`"quoted"@example.com`:       "", // not its own normal form
		"a@sub.EXAMPLE.co.uk":        "a@sub.example.co.uk",
		"<a@example.com>":            "", // not the bare address
		"a@example.com\r\n":          "",
		"a@example.com\x7f":          "",
		"a@example.com\x00":          "",
		" a@example.com":             "",
		"Name <a@example.com>":       "",
		"<b>x</b>@example.com":       "",
		"a@localhost":                "",
		"a@.example.com":             "",
		"a@example.com.":             "",
		"a@[192.0.2.1]":              "a@[192.0.2.1]",
		"a@b@example.com":            "",
		"a":                          "",
		"":                           "",
		"été@exemple.fr":             "été@exemple.fr",
		"a@EXEMPLE.É.fr":             "a@exemple.é.fr",
		strings.Repeat("a", 243) + "@example.com": "",
		strings.Repeat("a", 242) + "@example.com": strings.Repeat("a", 242) + "@example.com",
	} {
		if got := validAddress(in); got != want {
			t.Errorf("validAddress(%.60q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatusCode(t *testing.T) {
	for in, want := range map[string]string{
		"5.1.1":                              "5.1.1",
		"smtp; 550 5.1.1 user unknown":       "5.1.1",
		"4.2.2 over quota (4.2.1 also)":      "4.2.2",
		"5.1.1.1.1":                          "5.1.1",
		"x5.1.1":                             "",
		"6.1.1":                              "",
		"550":                                "550",
		"250":                                "250",
		"650":                                "",
		"5500":                               "",
		"55a":                                "",
		"mailbox of a@example.com full":      "",
		strings.Repeat("x", 1000) + " 5.1.1": "",
		strings.Repeat("x", 990) + " 5.1.1":  "5.1.1",
		"":                                   "",
	} {
		if got := statusCode(in); got != want {
			t.Errorf("statusCode(%.60q) = %q, want %q", in, got, want)
		}
	}
}

func TestBoundedID(t *testing.T) {
	for _, c := range []struct {
		parts []string
		want  string
	}{
		{[]string{"a"}, "a"},
		{[]string{"a", "0"}, "a\x000"},
		{[]string{"", ""}, ""},
		{[]string{""}, ""},
		{[]string{strings.Repeat("e", 512)}, strings.Repeat("e", 512)},
		{[]string{strings.Repeat("e", 511), "0"}, ""},
	} {
		if got := boundedID(c.parts...); got != c.want {
			t.Errorf("boundedID(%.40q) = %.40q, want %.40q", c.parts, got, c.want)
		}
	}
}

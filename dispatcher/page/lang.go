package page

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/text/language"
)

// A Lang is a language the pages are written in.
type Lang string

const (
	French  Lang = "fr"
	English Lang = "en"
)

// Default is the language of a page when nothing names one we write in:
// English. It reaches only a reader whose browser asked for neither French
// nor English (a German or Italian reader, who more likely reads English
// as a second language than French) and clients that name no language
// (link scanners, scripts). Every French signal (an explicit choice, a
// stored fr locale, fr anywhere in Accept-Language) still gives French.
// It is what the preference centre did; the sign-up form, which used to
// fall back to French, now agrees with it.
const Default = English

// langs are the languages of the catalogue, in the matcher's order.
var langs = []Lang{English, French}

var matcher = language.NewMatcher([]language.Tag{language.English, language.French})

const (
	// maxAcceptLanguage bounds the bytes of an Accept-Language header
	// that are read; browsers send well under 200.
	maxAcceptLanguage = 512
	// maxAcceptEntries bounds the languages read from one header.
	maxAcceptEntries = 20
	// maxTag bounds the tags parsed whole; of a longer one only the
	// language is read.
	maxTag = 64
)

// ParseLang returns the language that s names exactly ("fr" or "en", in
// any case, around spaces), and false for anything else. It reads explicit
// choices: the values our own links and forms carry.
func ParseLang(s string) (Lang, bool) {
	switch l := Lang(strings.ToLower(strings.TrimSpace(s))); l {
	case French, English:
		return l, true
	}
	return "", false
}

// Negotiate picks the language of a page from, in order:
//
//  1. choice, an explicit choice (a lang or locale value of our own links
//     and forms), when ParseLang accepts it;
//  2. locale, the contact's stored language tag (fr-FR, en-GB);
//  3. acceptLanguage, the request's Accept-Language header, by weight, the
//     first listed on equal weights;
//  4. Default.
//
// Tags are matched by golang.org/x/text/language, so fr-CA gives French,
// en-GB English, and a language whose readers usually read one of ours
// (Breton, Occitan: French) that one. A header entry weighted q=0 is a
// refusal and is skipped; a weight that cannot be read counts as 1, since
// the language itself is still legible.
func Negotiate(choice, locale, acceptLanguage string) Lang {
	if l, ok := ParseLang(choice); ok {
		return l
	}
	if t, ok := parseTag(locale); ok {
		if l, ok := match(t); ok {
			return l
		}
	}
	if l, ok := match(parseAcceptLanguage(acceptLanguage)...); ok {
		return l
	}
	return Default
}

// match returns the language of ours that the matcher finds for the
// desired tags, in their order of preference.
func match(desired ...language.Tag) (Lang, bool) {
	if len(desired) == 0 {
		return "", false
	}
	_, i, conf := matcher.Match(desired...)
	if conf == language.No {
		return "", false
	}
	return langs[i], true
}

// parseTag reads a language tag. A tag with a subtag the parser does not
// know (en-ZZ) still gives its language.
func parseTag(s string) (language.Tag, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return language.Tag{}, false
	}
	if len(s) <= maxTag {
		if t, err := language.Parse(s); err == nil {
			return t, true
		}
	}
	// The language subtag: 2 to 8 letters before the first separator.
	base := s[:min(len(s), 9)]
	if i := strings.IndexAny(base, "-_"); i >= 0 {
		base = base[:i]
	}
	if len(base) > 8 {
		return language.Tag{}, false
	}
	b, err := language.ParseBase(base)
	if err != nil {
		return language.Tag{}, false
	}
	t, err := language.Compose(b)
	return t, err == nil
}

// parseAcceptLanguage returns the languages of an Accept-Language header,
// the most wanted first. Unlike language.ParseAcceptLanguage, it keeps the
// readable entries of a header that has unreadable ones.
func parseAcceptLanguage(h string) []language.Tag {
	if len(h) > maxAcceptLanguage {
		h = h[:maxAcceptLanguage]
	}
	type weighted struct {
		tag language.Tag
		q   float64
	}
	var ws []weighted
	for part := range strings.SplitSeq(h, ",") {
		if len(ws) == maxAcceptEntries {
			break
		}
		name, params, _ := strings.Cut(part, ";")
		t, ok := parseTag(name)
		if !ok {
			continue
		}
		if q := weight(params); q > 0 {
			ws = append(ws, weighted{t, q})
		}
	}
	slices.SortStableFunc(ws, func(a, b weighted) int { return cmp.Compare(b.q, a.q) })
	tags := make([]language.Tag, len(ws))
	for i, w := range ws {
		tags[i] = w.tag
	}
	return tags
}

// weight returns the q parameter of an Accept-Language entry, 1 when it
// is absent or unreadable.
func weight(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(q >= 0 && q <= 1) {
			return 1
		}
		return q
	}
	return 1
}

// other is the second language of a bilingual page that leads with l.
func (l Lang) other() Lang {
	if l.orDefault() == English {
		return French
	}
	return English
}

// orDefault is l, or Default when l is not one of ours.
func (l Lang) orDefault() Lang {
	switch l {
	case French, English:
		return l
	}
	return Default
}

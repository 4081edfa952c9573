package page

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// An Entry is one string in each language. Formats take fmt verbs; the
// English ones index their arguments when the word order differs.
type Entry struct {
	FR string `json:"fr"`
	EN string `json:"en"`
}

// In returns the entry in l; a language not ours reads as Default.
func (e Entry) In(l Lang) string {
	if l.orDefault() == English {
		return e.EN
	}
	return e.FR
}

// A Catalogue holds the strings of a set of pages by key. It is written
// as a JSON object of key to {"fr": ..., "en": ...}, so that the words
// sit apart from the code and a translator can read them in one place.
type Catalogue map[string]Entry

// ParseCatalogue reads a catalogue. It returns an error if data is not a
// JSON object of entries, if a key is given twice (which a Go map literal
// would refuse to compile) or if an entry lacks a language.
func ParseCatalogue(data []byte) (Catalogue, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("page: a catalogue is a JSON object")
	}
	c := Catalogue{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("page: catalogue: %w", err)
		}
		key := t.(string) // an object's keys are strings
		if _, dup := c[key]; dup {
			return nil, fmt.Errorf("page: catalogue: %q is given twice", key)
		}
		var e Entry
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("page: catalogue: %q: %w", key, err)
		}
		if strings.TrimSpace(e.FR) == "" || strings.TrimSpace(e.EN) == "" {
			return nil, fmt.Errorf("page: catalogue: %q lacks a language", key)
		}
		c[key] = e
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("page: catalogue: %w", err)
	}
	return c, nil
}

// MustCatalogue is ParseCatalogue for an embedded file: it panics on an
// error, which any test of the package then shows.
func MustCatalogue(data []byte) Catalogue {
	c, err := ParseCatalogue(data)
	if err != nil {
		panic(err)
	}
	return c
}

// catalogue holds every string the pages show, from catalogue.json. Keys
// are dotted by page; "msg.<MessageKey>.title" and ".text" are the
// informative pages, and "channel.", "state.", "source.", "reason." and
// "problem." are looked up with a value from the caller (a value without
// an entry is shown as is). In the one-click unsubscribe's texts, %[1]s is
// the channel's messages and %[2]s the topic; form.wording is the consent
// text (FormWording): the id it is stored under derives from it.
//
//go:embed catalogue.json
var catalogueJSON []byte

var catalogue = MustCatalogue(catalogueJSON)

// localizer is an argument that has words of its own in each language
// (a Problem, a channel's messages).
type localizer interface{ localize(Lang) string }

// text returns the message key in l, formatted with args when there are
// any; a missing key gives the key itself (a test keeps every key the
// package uses in the catalogue).
func text(l Lang, key string, args ...any) string {
	e, ok := catalogue[key]
	if !ok {
		return key
	}
	if len(args) == 0 {
		return e.In(l)
	}
	loc := make([]any, len(args))
	for i, a := range args {
		if w, ok := a.(localizer); ok {
			a = w.localize(l)
		}
		loc[i] = a
	}
	return fmt.Sprintf(e.In(l), loc...)
}

// word returns the catalogue's word for value under prefix, or value
// itself when there is none (a source or reason added since).
func word(l Lang, prefix, value string) string {
	if e, ok := catalogue[prefix+value]; ok {
		return e.In(l)
	}
	return value
}

// tmplText is text for templates: a missing key fails the page, so that
// the key test and the golden files catch it.
func tmplText(l Lang, key string, args ...any) (string, error) {
	if _, ok := catalogue[key]; !ok {
		return "", fmt.Errorf("page: no message %q", key)
	}
	return text(l, key, args...), nil
}

package console

import (
	_ "embed"
	"fmt"

	"github.com/missive-dev/missive/dispatcher/page"
)

// catalogue holds every string the console shows, from catalogue.json,
// keyed by page or by kind of value: "state.", "runstate.", "reason.",
// "counter.", "feedback.", "channel.", "role.", "field." are looked up
// with a value (tr), which is shown as is when it has no entry.
//
//go:embed catalogue.json
var catalogueJSON []byte

var catalogue = page.MustCatalogue(catalogueJSON)

// text returns the catalogue's string key in l, formatted with args. An
// unknown key is an error, so that a template naming one fails its test.
func text(l page.Lang, key string, args ...any) (string, error) {
	e, ok := catalogue[key]
	if !ok {
		return "", fmt.Errorf("console: no string %q", key)
	}
	s := e.In(l)
	if len(args) > 0 {
		s = fmt.Sprintf(s, args...)
	}
	return s, nil
}

// label returns the catalogue's name of a value (prefix + value), or the
// value itself.
func label(l page.Lang, prefix string, value any) string {
	v := fmt.Sprint(value)
	if s, err := text(l, prefix+v); err == nil {
		return s
	}
	return v
}

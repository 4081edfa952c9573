package console

import (
	"regexp"
	"slices"
	"testing"
)

// TestCatalogueFormats checks that each string takes the same fmt verbs,
// in the same order, in French and in English (the catalogue's loader
// already refuses an entry without both languages).
func TestCatalogueFormats(t *testing.T) {
	verbs := regexp.MustCompile(`%(\[\d+\])?[sd]`)
	if len(catalogue) == 0 {
		t.Fatal("the catalogue is empty")
	}
	for k, e := range catalogue {
		if fr, en := verbs.FindAllString(e.FR, -1), verbs.FindAllString(e.EN, -1); !slices.Equal(fr, en) {
			t.Errorf("%s: fr takes %q, en %q", k, fr, en)
		}
	}
}

package bounce_test

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"
)

func multiReader(head string, body []byte) io.Reader {
	return io.MultiReader(strings.NewReader(head), bytes.NewReader(body))
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }

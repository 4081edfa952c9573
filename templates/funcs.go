package templates

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
)

// The restricted language allows these functions and no others:
//
//	upper s          s in upper case (Unicode).
//	lower s          s in lower case (Unicode).
//	title s          the first letter of each word in title case, the rest
//	                 left alone; words are separated by spaces and hyphens
//	                 ("jean-pierre dupont" -> "Jean-Pierre Dupont").
//	trim s           s without leading and trailing white space.
//	default d v      v, or d when v is missing, nil or blank:
//	                 {{default "ami" .Attr.first_name}}. A missing attribute
//	                 given to default is not an error.
//	truncate n s     the first n runes of s (no ellipsis: it would not be
//	                 GSM-7 in an SMS).
//	date layout t    t (a time.Time, such as .Now) formatted with a Go
//	                 layout: {{date "02/01/2006" .Now}}. The time is not
//	                 converted: pass it in the zone you want shown.
//	eq ne lt le gt ge and or not len index
//	                 the text/template builtins, unchanged.
//	print printf     fmt.Sprint and fmt.Sprintf, with guards: no * width,
//	                 widths and precisions up to 1000, output bounded.
//	html js urlquery the text/template escapers, output bounded.
//
// call, slice, println, range, template, define and block are rejected at
// compile time. No function reads the environment, a file, the network or
// the clock.
var allowedFuncs = map[string]struct{}{
	"upper": {}, "lower": {}, "title": {}, "trim": {}, "default": {}, "truncate": {}, "date": {},
	"eq": {}, "ne": {}, "lt": {}, "le": {}, "gt": {}, "ge": {}, "and": {}, "or": {}, "not": {},
	"len": {}, "index": {}, "print": {}, "printf": {}, "html": {}, "js": {}, "urlquery": {},
}

// attrOrEmptyName is the function rewriteDefaults inserts. It is not in
// allowedFuncs, so a template cannot call it by name.
const attrOrEmptyName = "missiveAttrOrEmpty"

// dataOrEmptyName is the function rewriteDefaults inserts for a path into
// a send's data; like attrOrEmptyName, a template cannot call it.
const dataOrEmptyName = "missiveDataOrEmpty"

// dataOrEmpty follows keys down nested objects of m and returns what it
// finds, or nil when a key is missing or a value on the way is not an
// object.
func dataOrEmpty(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok = o[k]; !ok {
			return nil
		}
	}
	return v
}

var funcs = texttemplate.FuncMap{
	"upper":         func(v any) (string, error) { return mapString(v, strings.ToUpper) },
	"lower":         func(v any) (string, error) { return mapString(v, strings.ToLower) },
	"title":         func(v any) (string, error) { return mapString(v, title) },
	"trim":          func(v any) (string, error) { return mapString(v, strings.TrimSpace) },
	"default":       defaultValue,
	"truncate":      truncate,
	"date":          date,
	"print":         safePrint,
	"printf":        safePrintf,
	"html":          escaper(texttemplate.HTMLEscapeString),
	"js":            escaper(texttemplate.JSEscapeString),
	"urlquery":      escaper(func(s string) string { return texttemplate.URLQueryEscaper(s) }),
	attrOrEmptyName: func(m map[string]string, k string) string { return m[k] },
	dataOrEmptyName: dataOrEmpty,
}

func toString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case htmltemplate.HTML:
		return string(v)
	case nil:
		return ""
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

func checkSize(s string) (string, error) {
	if len(s) > MaxOutputSize {
		return "", ErrOutputTooLarge
	}
	return s, nil
}

func mapString(v any, f func(string) string) (string, error) {
	s := toString(v)
	if len(s) > MaxOutputSize {
		return "", ErrOutputTooLarge
	}
	return checkSize(f(s))
}

func title(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	start := true
	for _, r := range s {
		if start {
			b.WriteRune(unicode.ToTitle(r))
		} else {
			b.WriteRune(r)
		}
		start = unicode.IsSpace(r) || r == '-'
	}
	return b.String()
}

func defaultValue(d, v any) any {
	switch x := v.(type) {
	case nil:
		return d
	case string:
		if strings.TrimSpace(x) == "" {
			return d
		}
	}
	return v
}

func truncate(n int, v any) (string, error) {
	if n < 0 {
		return "", errors.New("negative length")
	}
	s := toString(v)
	i := 0
	for pos := range s {
		if i == n {
			return checkSize(s[:pos])
		}
		i++
	}
	return checkSize(s)
}

func date(layout string, t any) (string, error) {
	var tm time.Time
	switch v := t.(type) {
	case time.Time:
		tm = v
	case *time.Time:
		if v == nil {
			return "", errors.New("nil time")
		}
		tm = *v
	default:
		return "", fmt.Errorf("expected a time, got %T", t)
	}
	if len(layout) > 256 {
		return "", errors.New("layout too long")
	}
	return tm.Format(layout), nil
}

// argsLen is an upper bound of the printed length of args.
func argsLen(args []any) (total, longest int) {
	for _, a := range args {
		n := len(toString(a))
		if n > MaxOutputSize {
			n = MaxOutputSize + 1
		}
		total += n
		longest = max(longest, n)
	}
	return total, longest
}

func safePrint(args ...any) (string, error) {
	if total, _ := argsLen(args); total+len(args) > MaxOutputSize {
		return "", ErrOutputTooLarge
	}
	return checkSize(fmt.Sprint(args...))
}

const maxWidth = 1000

// safePrintf formats like fmt.Sprintf but refuses formats whose output could
// be much larger than the source and the data: a width given as an
// argument (*), a width or precision over maxWidth, or an estimate over
// MaxOutputSize ("%[1]s%[1]s..." repeats one argument).
func safePrintf(format string, args ...any) (string, error) {
	verbs, widest := 0, 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		num, inIndex := 0, false
	spec:
		for ; i < len(format); i++ {
			c := format[i]
			switch {
			case c == '*':
				return "", errors.New("* width or precision is not allowed")
			case c == '[':
				inIndex = true
			case c == ']':
				inIndex = false
				num = 0
			case c >= '0' && c <= '9':
				if !inIndex {
					num = num*10 + int(c-'0')
					if num > maxWidth {
						return "", fmt.Errorf("width or precision over %d", maxWidth)
					}
					widest = max(widest, num)
				}
			case c == '.':
				num = 0
			case c == '+' || c == '-' || c == '#' || c == ' ':
			default:
				break spec
			}
		}
		verbs++
	}
	_, longest := argsLen(args)
	// %q and %x can print a byte as up to 6 bytes.
	if len(format)+verbs*(6*longest+widest+32) > MaxOutputSize*4 {
		return "", ErrOutputTooLarge
	}
	return checkSize(fmt.Sprintf(format, args...))
}

func escaper(f func(string) string) func(args ...any) (string, error) {
	return func(args ...any) (string, error) {
		if total, _ := argsLen(args); total > MaxOutputSize {
			return "", ErrOutputTooLarge
		}
		var s string
		if len(args) == 1 {
			s = toString(args[0])
		} else {
			s = fmt.Sprint(args...)
		}
		return checkSize(f(s))
	}
}

package page

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"html/template"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template/parse"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// verbRe finds the fmt verbs of a message.
var verbRe = regexp.MustCompile(`%(\[(\d+)\])?[sd]`)

// args returns sample arguments for the fmt verbs of a message: an int
// for %d, a string for %s.
func args(s string) []any {
	var out []any
	for i, m := range verbRe.FindAllStringSubmatch(s, -1) {
		k := i + 1
		if m[2] != "" {
			k, _ = strconv.Atoi(m[2])
		}
		for len(out) < k {
			out = append(out, nil)
		}
		out[k-1] = "x"
		if strings.HasSuffix(m[0], "d") {
			out[k-1] = 7
		}
	}
	return out
}

func TestCatalogueHasBothLanguages(t *testing.T) {
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range catalogue {
			if !yield(k) {
				return
			}
		}
	}) {
		e := catalogue[k]
		if strings.TrimSpace(e.FR) == "" || strings.TrimSpace(e.EN) == "" {
			t.Errorf("%s: fr %q, en %q: a language is missing", k, e.FR, e.EN)
			continue
		}
		af, ae := args(e.FR), args(e.EN)
		if diff := cmp.Diff(af, ae); diff != "" {
			t.Errorf("%s: fr and en take other arguments (-fr +en):\n%s", k, diff)
		}
		for _, s := range []string{e.FR, e.EN} {
			if a := args(s); len(a) > 0 && strings.Contains(fmt.Sprintf(s, a...), "%!") {
				t.Errorf("%s: %q is not a valid format", k, s)
			}
		}
	}
}

// templateKeys returns the keys the templates ask t for. A key must be a
// literal, so that this test sees it.
func templateKeys(t *testing.T) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	var walk func(name string, n parse.Node)
	walk = func(name string, n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(name, c)
				}
			}
		case *parse.ActionNode:
			walk(name, n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(name, c)
				}
			}
		case *parse.CommandNode:
			if id, ok := n.Args[0].(*parse.IdentifierNode); ok && id.Ident == "t" {
				var s *parse.StringNode
				if len(n.Args) >= 3 {
					s, _ = n.Args[2].(*parse.StringNode)
				}
				if s == nil {
					t.Errorf("%s: t is called with a key that is not a literal: %s", name, n)
				} else {
					keys[s.Text] = true
				}
			}
			for _, a := range n.Args {
				walk(name, a)
			}
		case *parse.IfNode:
			walk(name, &n.BranchNode)
		case *parse.RangeNode:
			walk(name, &n.BranchNode)
		case *parse.WithNode:
			walk(name, &n.BranchNode)
		case *parse.BranchNode:
			walk(name, n.Pipe)
			walk(name, n.List)
			walk(name, n.ElseList)
		case *parse.TemplateNode:
			walk(name, n.Pipe)
		}
	}
	for _, set := range []*template.Template{messageTmpl, formTmpl, preferencesTmpl} {
		for _, tm := range set.Templates() {
			if tm.Tree != nil {
				walk(tm.Name(), tm.Tree.Root)
			}
		}
	}
	return keys
}

// goKeys returns the literal keys the package's Go code looks up, and the
// values of its MessageKey and Problem constants.
func goKeys(t *testing.T) (literal map[string]bool, consts map[string][]string) {
	t.Helper()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	literal, consts = map[string]bool{}, map[string][]string{}
	lookups := map[string]bool{"text": true, "tmplText": true, "button": true, "bilingual": true, "newLedger": true}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && lookups[id.Name] {
					for _, a := range n.Args {
						if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							s, _ := strconv.Unquote(lit.Value)
							literal[s] = true
						}
					}
				}
			case *ast.ValueSpec:
				if typ, ok := n.Type.(*ast.Ident); ok {
					for _, v := range n.Values {
						if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							s, _ := strconv.Unquote(lit.Value)
							consts[typ.Name] = append(consts[typ.Name], s)
						}
					}
				}
			}
			return true
		})
	}
	if len(literal) == 0 || len(consts["MessageKey"]) == 0 || len(consts["Problem"]) == 0 {
		t.Fatalf("found no keys: literal %v, constants %v", literal, consts)
	}
	return literal, consts
}

// TestEveryKeyUsedExists checks the keys the templates and the code use
// against the catalogue, and the other way: a catalogue entry nothing can
// ask for is a dead string.
func TestEveryKeyUsedExists(t *testing.T) {
	used := templateKeys(t)
	literal, consts := goKeys(t)
	for k := range literal {
		used[k] = true
	}
	for _, m := range consts["MessageKey"] {
		used["msg."+m+".title"], used["msg."+m+".text"] = true, true
	}
	for _, p := range consts["Problem"] {
		used["problem."+p] = true
	}
	for _, k := range channels.Kinds {
		used["channel."+string(k)], used["channel."+string(k)+".plural"] = true, true
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range used {
			if !yield(k) {
				return
			}
		}
	}) {
		if _, ok := catalogue[k]; !ok {
			t.Errorf("%q is used but not in the catalogue", k)
		}
	}
	// Words of the ledger's vocabulary come from the caller's data; the
	// pace's, from the pace form's values, each of which needs its word.
	vocabulary := []string{"state.", "source.", "reason.", "freq.", "day.", "pref.kind."}
	var pace []string
	for _, f := range dispatcher.Frequencies {
		pace = append(pace, "freq."+f)
	}
	for _, d := range Weekdays {
		pace = append(pace, "day."+d)
	}
	for _, k := range []string{dispatcher.PreferencePause, dispatcher.PreferenceFrequency, dispatcher.PreferenceHours} {
		pace = append(pace, "pref.kind."+k)
	}
	for _, k := range pace {
		if _, ok := catalogue[k]; !ok {
			t.Errorf("%q is used but not in the catalogue", k)
		}
	}
	for k := range catalogue {
		if !used[k] && !slices.ContainsFunc(vocabulary, func(p string) bool { return strings.HasPrefix(k, p) }) {
			t.Errorf("%q is in the catalogue but nothing uses it", k)
		}
	}
}

func TestParseCatalogue(t *testing.T) {
	got, err := ParseCatalogue([]byte(`{"a": {"fr": "un", "en": "one"}, "b.c": {"fr": "« %s »", "en": "“%s” <b>"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Catalogue{"a": {FR: "un", EN: "one"}, "b.c": {FR: "« %s »", EN: "“%s” <b>"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got["a"].In(French) != "un" || got["a"].In(English) != "one" || got["a"].In("de") != "one" {
		t.Errorf("In: %q", got["a"])
	}
	for _, tc := range []struct{ name, data, want string }{
		{"not an object", `[]`, "a JSON object"},
		{"twice", `{"a": {"fr": "un", "en": "one"}, "a": {"fr": "un", "en": "one"}}`, `"a" is given twice`},
		{"no English", `{"a": {"fr": "un"}}`, `"a" lacks a language`},
		{"blank French", `{"a": {"fr": " ", "en": "one"}}`, `"a" lacks a language`},
		{"other language", `{"a": {"fr": "un", "en": "one", "de": "eins"}}`, `unknown field "de"`},
		{"not an entry", `{"a": "one"}`, `"a"`},
		{"cut short", `{"a": {"fr": "un", "en": "one"}`, "EOF"},
	} {
		if _, err := ParseCatalogue([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

package templates

import (
	"errors"
	htmltemplate "html/template"
	"io"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	texttemplate "text/template"
	"text/template/parse"
)

// Limits of the restricted language.
const (
	// MaxSourceSize is the longest accepted source of one part.
	MaxSourceSize = 64 << 10
	// MaxOutputSize is the longest rendered part, footer included. Every
	// string a template function returns is held to the same bound, so no
	// single action can allocate more than a small multiple of it.
	MaxOutputSize = 256 << 10
)

// Email is the email side of a template. Subject, HTML and Text are
// templates; From is a plain address ("Name <addr>"), empty for the channel
// default. At least one of HTML and Text is needed.
type Email struct {
	Subject string `json:"subject"`
	HTML    string `json:"html,omitempty"`
	Text    string `json:"text,omitempty"`
	From    string `json:"from,omitempty"`
}

// SMS is the SMS side of a template.
type SMS struct {
	Body string `json:"body"`
}

// Template is a versioned message template for one or both channels.
type Template struct {
	ID      string `json:"id"`
	Version int    `json:"version"`
	Email   *Email `json:"email,omitempty"`
	SMS     *SMS   `json:"sms,omitempty"`
}

// Field names used in errors.
const (
	FieldSubject = "email.subject"
	FieldHTML    = "email.html"
	FieldText    = "email.text"
	FieldFrom    = "email.from"
	FieldSMS     = "sms.body"
)

// Compiled is a parsed and checked template. It is immutable and safe for
// concurrent use: compile once, render for every recipient.
type Compiled struct {
	ID      string
	Version int
	from    string

	subject *texttemplate.Template
	html    *htmltemplate.Template // nil when the email has no HTML part
	text    *texttemplate.Template // nil when the email has no text part
	sms     *texttemplate.Template

	// The length of the last HTML and text output, so that the next
	// render allocates its buffer once instead of growing it.
	htmlSize, textSize atomic.Int64
}

// Compile parses and checks every part of t once. Subject, text and SMS body
// are text/template templates; the HTML part is an html/template template,
// so values are escaped for the context they land in (element, attribute,
// URL, script). Every error is a *FieldError naming the part and, when
// known, the line. Compile returns an error wrapping ErrSourceTooLarge,
// ErrNotAllowed, ErrRequired or ErrLineBreak, or a parse error.
func Compile(t Template) (*Compiled, error) {
	c := &Compiled{ID: t.ID, Version: t.Version}
	if t.Email == nil && t.SMS == nil {
		return nil, &FieldError{Field: "email", Err: errors.New("a template needs an email or an sms part")}
	}
	if e := t.Email; e != nil {
		if strings.TrimSpace(e.Subject) == "" {
			return nil, &FieldError{Field: FieldSubject, Err: ErrRequired}
		}
		if strings.TrimSpace(e.HTML) == "" && strings.TrimSpace(e.Text) == "" {
			return nil, &FieldError{Field: FieldHTML, Err: errors.New("an email needs an html or a text part")}
		}
		if e.From != "" {
			if strings.ContainsAny(e.From, "\r\n") {
				return nil, &FieldError{Field: FieldFrom, Err: ErrLineBreak}
			}
			if _, err := mail.ParseAddress(e.From); err != nil {
				return nil, &FieldError{Field: FieldFrom, Err: errors.New("not a valid address")}
			}
			c.from = e.From
		}
		var err error
		if c.subject, err = compileText(FieldSubject, e.Subject); err != nil {
			return nil, err
		}
		if strings.TrimSpace(e.HTML) != "" {
			if c.html, err = compileHTML(FieldHTML, e.HTML); err != nil {
				return nil, err
			}
		}
		if strings.TrimSpace(e.Text) != "" {
			if c.text, err = compileText(FieldText, e.Text); err != nil {
				return nil, err
			}
		}
	}
	if s := t.SMS; s != nil {
		if strings.TrimSpace(s.Body) == "" {
			return nil, &FieldError{Field: FieldSMS, Err: ErrRequired}
		}
		var err error
		if c.sms, err = compileText(FieldSMS, s.Body); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func compileText(field, src string) (*texttemplate.Template, error) {
	tree, err := parseRestricted(field, src)
	if err != nil {
		return nil, err
	}
	t, err := texttemplate.New(field).Funcs(funcs).Option("missingkey=error").AddParseTree(field, tree)
	if err != nil {
		return nil, &FieldError{Field: field, Err: err}
	}
	return t, nil
}

func compileHTML(field, src string) (*htmltemplate.Template, error) {
	tree, err := parseRestricted(field, src)
	if err != nil {
		return nil, err
	}
	t, err := htmltemplate.New(field).Funcs(htmltemplate.FuncMap(funcs)).Option("missingkey=error").AddParseTree(field, tree)
	if err != nil {
		return nil, &FieldError{Field: field, Err: err}
	}
	// html/template escapes the tree on first execution. Do it now, so that
	// an ambiguous context (an unclosed attribute, a value in a tag name)
	// is a compile error and not a failure at send time. The writer fails
	// on the first byte, so nothing is actually rendered.
	err = t.Execute(failWriter{}, Data{})
	var he *htmltemplate.Error
	if errors.As(err, &he) {
		return nil, &FieldError{Field: field, Line: he.Line, Err: &templateError{msg: he.Description, err: he}}
	}
	return t, nil
}

type failWriter struct{}

var errStop = errors.New("stop")

func (failWriter) Write([]byte) (int, error) { return 0, errStop }

var parseErrRe = regexp.MustCompile(`(?s)^template: [^:]*:(\d+): (.*)$`)

// parseRestricted parses src into one tree and rejects what the restricted
// language leaves out. Without range there are no loops and without
// template/define/block there is no recursion, so executing a template
// visits each node at most once: rendering time is bounded by the size of
// the source (and of the data it prints).
func parseRestricted(field, src string) (*parse.Tree, error) {
	if len(src) > MaxSourceSize {
		return nil, &FieldError{Field: field, Err: ErrSourceTooLarge}
	}
	tree := parse.New(field)
	// Functions are checked below, with a clearer message than the parser's
	// "function not defined", and builtins such as call are rejected too.
	tree.Mode = parse.SkipFuncCheck
	set := map[string]*parse.Tree{}
	if _, err := tree.Parse(src, "", "", set); err != nil {
		fe := &FieldError{Field: field, Err: err}
		if m := parseErrRe.FindStringSubmatch(err.Error()); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Err = &templateError{msg: m[2], err: err}
		}
		return nil, fe
	}
	if err := check(field, src, tree.Root); err != nil {
		return nil, err
	}
	// A {{define}} adds a tree to the set, or replaces the main tree when
	// the main text is empty and the names match.
	for name, t := range set {
		if name != field || t != tree {
			return nil, &FieldError{Field: field, Line: lineOf(src, defineOffset(src)), Err: &NotAllowedError{What: "define", Why: "one template per part"}}
		}
	}
	rewriteDefaults(tree.Root)
	return tree, nil
}

var defineRe = regexp.MustCompile(`\{\{-?\s*define\b`)

// defineOffset finds the first define or block action for the error line.
func defineOffset(src string) int {
	if m := defineRe.FindStringIndex(src); m != nil {
		return m[0]
	}
	return -1
}

func lineOf(src string, pos int) int {
	if pos < 0 || pos > len(src) {
		return 0
	}
	return 1 + strings.Count(src[:pos], "\n")
}

// walkTree calls visit on n and, while visit returns true, on its
// descendants, parents first: visit may rewrite a node's children before
// they are walked.
func walkTree(n parse.Node, visit func(parse.Node) bool) {
	if !visit(n) {
		return
	}
	for _, c := range children(n) {
		walkTree(c, visit)
	}
}

// children returns the child nodes of the node kinds templates may hold.
func children(n parse.Node) []parse.Node {
	var out []parse.Node
	add := func(c parse.Node, present bool) {
		if present {
			out = append(out, c)
		}
	}
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			add(c, true)
		}
	case *parse.ActionNode:
		add(n.Pipe, n.Pipe != nil)
	case *parse.IfNode:
		add(n.Pipe, n.Pipe != nil)
		add(n.List, n.List != nil)
		add(n.ElseList, n.ElseList != nil)
	case *parse.WithNode:
		add(n.Pipe, n.Pipe != nil)
		add(n.List, n.List != nil)
		add(n.ElseList, n.ElseList != nil)
	case *parse.PipeNode:
		for _, v := range n.Decl {
			add(v, true)
		}
		for _, c := range n.Cmds {
			add(c, true)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			add(a, true)
		}
	case *parse.ChainNode:
		add(n.Node, n.Node != nil)
	}
	return out
}

// check walks the tree and rejects loops, template calls and functions
// outside allowedFuncs.
func check(field, src string, n parse.Node) error {
	var err error
	fail := func(n parse.Node, e *NotAllowedError) {
		if err == nil {
			err = &FieldError{Field: field, Line: lineOf(src, int(n.Position())), Err: e}
		}
	}
	walkTree(n, func(n parse.Node) bool {
		switch n := n.(type) {
		case *parse.RangeNode:
			fail(n, &NotAllowedError{What: "range", Why: "templates have no loops"})
		case *parse.TemplateNode:
			what := "template"
			if p := int(n.Position()); p >= 0 && p <= len(src) && strings.HasSuffix(strings.TrimRight(src[:p], " \t\r\n"), "block") {
				what = "block"
			}
			fail(n, &NotAllowedError{What: what, Why: "one template per part"})
		case *parse.BreakNode, *parse.ContinueNode:
			fail(n, &NotAllowedError{What: "break/continue"})
		case *parse.IdentifierNode:
			if _, ok := allowedFuncs[n.Ident]; !ok {
				fail(n, &NotAllowedError{What: strconv.Quote(n.Ident), Why: "not in the allowed functions"})
			}
		case *parse.ListNode, *parse.ActionNode, *parse.IfNode, *parse.WithNode, *parse.PipeNode,
			*parse.CommandNode, *parse.ChainNode,
			*parse.TextNode, *parse.CommentNode, *parse.FieldNode, *parse.VariableNode,
			*parse.DotNode, *parse.NilNode, *parse.BoolNode, *parse.NumberNode, *parse.StringNode:
		default:
			fail(n, &NotAllowedError{What: "construct " + strconv.Quote(n.String())})
		}
		return err == nil
	})
	return err
}

// rewriteDefaults lets default see a missing attribute as empty. With
// missingkey=error, {{default "ami" .Attr.first_name}} would fail before
// default runs; each .Attr.key (or $.Attr.key) that is an argument of
// default, or piped into it, becomes (attrOrEmpty .Attr "key"), and each
// .Data.a.b... (or $.Data...) becomes (dataOrEmpty .Data "a" "b" ...).
// Everywhere else a missing attribute or data key stays an error.
func rewriteDefaults(root parse.Node) {
	walkTree(root, func(n parse.Node) bool {
		switch n := n.(type) {
		case *parse.PipeNode:
			for i, c := range n.Cmds {
				if i+1 < len(n.Cmds) && isDefault(n.Cmds[i+1]) && len(c.Args) == 1 {
					c.Args[0] = optionalAttr(c.Args[0])
				}
			}
		case *parse.CommandNode:
			if isDefault(n) {
				for i := 1; i < len(n.Args); i++ {
					n.Args[i] = optionalAttr(n.Args[i])
				}
			}
		}
		return true
	})
}

func isDefault(c *parse.CommandNode) bool {
	if len(c.Args) == 0 {
		return false
	}
	id, ok := c.Args[0].(*parse.IdentifierNode)
	return ok && id.Ident == "default"
}

// optionalAttr returns (attrOrEmpty .Attr "key") for .Attr.key and
// $.Attr.key, and n itself otherwise.
func optionalAttr(n parse.Node) parse.Node {
	var m parse.Node
	var key string
	switch f := n.(type) {
	case *parse.FieldNode:
		if len(f.Ident) >= 2 && f.Ident[0] == "Data" {
			return optionalData(n, &parse.FieldNode{NodeType: parse.NodeField, Pos: f.Pos, Ident: []string{"Data"}}, f.Ident[1:])
		}
		if len(f.Ident) != 2 || f.Ident[0] != "Attr" {
			return n
		}
		m, key = &parse.FieldNode{NodeType: parse.NodeField, Pos: f.Pos, Ident: []string{"Attr"}}, f.Ident[1]
	case *parse.VariableNode:
		if len(f.Ident) >= 3 && f.Ident[0] == "$" && f.Ident[1] == "Data" {
			return optionalData(n, &parse.VariableNode{NodeType: parse.NodeVariable, Pos: f.Pos, Ident: []string{"$", "Data"}}, f.Ident[2:])
		}
		if len(f.Ident) != 3 || f.Ident[0] != "$" || f.Ident[1] != "Attr" {
			return n
		}
		m, key = &parse.VariableNode{NodeType: parse.NodeVariable, Pos: f.Pos, Ident: []string{"$", "Attr"}}, f.Ident[2]
	default:
		return n
	}
	pos := n.Position()
	return &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{{
		NodeType: parse.NodeCommand, Pos: pos,
		Args: []parse.Node{
			parse.NewIdentifier(attrOrEmptyName).SetPos(pos),
			m,
			&parse.StringNode{NodeType: parse.NodeString, Pos: pos, Quoted: strconv.Quote(key), Text: key},
		},
	}}}
}

// optionalData returns (dataOrEmpty m "k1" "k2" ...) for n, the path
// keys under m (.Data or $.Data).
func optionalData(n, m parse.Node, keys []string) parse.Node {
	pos := n.Position()
	args := []parse.Node{parse.NewIdentifier(dataOrEmptyName).SetPos(pos), m}
	for _, k := range keys {
		args = append(args, &parse.StringNode{NodeType: parse.NodeString, Pos: pos, Quoted: strconv.Quote(k), Text: k})
	}
	return &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{{
		NodeType: parse.NodeCommand, Pos: pos, Args: args,
	}}}
}

// limitWriter collects output and fails once it would exceed max bytes;
// text/template stops executing at the first failed write.
type limitWriter struct {
	b   strings.Builder
	max int
}

// newLimitWriter returns a limitWriter of at most limit bytes whose
// buffer holds size (a hint: the last output's length) without growing.
func newLimitWriter(limit int, size int64) *limitWriter {
	w := &limitWriter{max: limit}
	if size > 0 {
		w.b.Grow(int(min(size, int64(limit))) + footerRoom)
	}
	return w
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.max {
		return 0, ErrOutputTooLarge
	}
	return w.b.Write(p)
}

var _ io.Writer = (*limitWriter)(nil)

package templates

import (
	"cmp"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	texttemplate "text/template"
	"time"

	"github.com/missive-dev/missive/channels"
)

// ContactData is what a template may print about its recipient.
type ContactData struct {
	ID       string `json:"id"`
	Email    string `json:"email,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Locale   string `json:"locale,omitempty"`
	Timezone string `json:"timezone,omitempty"`
}

// Data is the dot of every template part:
//
//	{{.Attr.first_name}} {{.Contact.Email}} {{.Campaign}} {{.Topic}}
//	{{.UnsubscribeURL}} {{.PreferencesURL}} {{.Locale}} {{date "2006" .Now}}
//	{{.Data.order.number}}
//
// Referring to an attribute the contact does not have, or to a key the
// send's data does not have, is an error (a *MissingVariableError); use
// default or index for optional ones. Now is the only clock a template
// sees: the caller sets it.
type Data struct {
	Contact        ContactData       `json:"contact"`
	Attr           map[string]string `json:"attr,omitempty"`
	Campaign       string            `json:"campaign,omitempty"`
	Topic          string            `json:"topic,omitempty"`
	UnsubscribeURL string            `json:"unsubscribe_url,omitempty"`
	PreferencesURL string            `json:"preferences_url,omitempty"`
	Locale         string            `json:"locale,omitempty"`
	Now            time.Time         `json:"now"`
	// Data is what the one send was triggered with (POST /v1/sends
	// "data"): a JSON object, nested objects as map[string]any, numbers
	// as json.Number.
	Data map[string]any `json:"data,omitempty"`
}

// RenderOptions carries the obligations of the message's topic.
type RenderOptions struct {
	// Marketing marks a marketing topic. A marketing email gets an
	// unsubscribe footer (unless the HTML already links UnsubscribeURL) and
	// the RFC 8058 List-Unsubscribe and List-Unsubscribe-Post headers; a
	// marketing SMS gets a STOP line (unless it already says STOP).
	Marketing bool
	// UnsubscribeURL is the one-click URL (see UnsubscribeURL): https, or
	// http for development. It also fills Data.UnsubscribeURL. Required
	// for marketing email; Data.UnsubscribeURL is used when empty.
	UnsubscribeURL string
	// ListUnsubscribeMailto, optional, is added to List-Unsubscribe as
	// <mailto:...>. "unsubscribe@example.com" and "mailto:..." both work.
	ListUnsubscribeMailto string
	// ListID, optional, is the List-Id header: "Newsletter
	// <newsletter.example.com>" or "newsletter.example.com".
	ListID string
	// Locale picks the language of the footer and the STOP line (French
	// when it starts with "fr", English otherwise). Empty means
	// Data.Locale, then Data.Contact.Locale.
	Locale string
}

// SegmentInfo describes how an SMS body travels; see Segments.
type SegmentInfo struct {
	// Encoding is "GSM-7" or "UCS-2" ("" for an empty body).
	Encoding string `json:"encoding"`
	// Units is the length in septets (GSM-7) or UTF-16 code units (UCS-2).
	Units int `json:"units"`
	// Parts is the number of SMS segments billed.
	Parts int `json:"parts"`
}

// Rendered is one message rendered for one recipient on one channel.
type Rendered struct {
	Kind    channels.Kind
	From    string
	Subject string
	HTML    string
	Text    string
	SMS     string
	// Headers are the extra email headers (List-Unsubscribe,
	// List-Unsubscribe-Post, List-Id); nil when there are none. No value
	// contains CR or LF.
	Headers  map[string]string
	Segments SegmentInfo
}

// Message returns the channels.Message for r, to be sent as send id to to.
func (r Rendered) Message(id string, to channels.Address) channels.Message {
	m := channels.Message{ID: id, Channel: r.Kind, To: to, From: r.From}
	if r.Kind == channels.SMS {
		m.Body = r.SMS
		return m
	}
	m.Subject, m.HTML, m.Text, m.Headers = r.Subject, r.HTML, r.Text, r.Headers
	return m
}

// Has reports whether the template has a part for channel k.
func (c *Compiled) Has(k channels.Kind) bool {
	switch k {
	case channels.Email:
		return c.subject != nil
	case channels.SMS:
		return c.sms != nil
	}
	return false
}

// Placeholders used by Preview when the data has no links.
const (
	PreviewUnsubscribeURL = "https://missive.invalid/u/preview"
	PreviewPreferencesURL = "https://missive.invalid/preferences/preview"
)

// Preview renders like Render for a marketing topic, with placeholder links
// where d has none, so that a marketer sees the footer or STOP line the
// recipient will see. Errors are *FieldError values whose message suits
// the API: `email.html: line 3: missing variable "first_nme"`.
func (c *Compiled) Preview(kind channels.Kind, d Data) (Rendered, error) {
	d.UnsubscribeURL = cmp.Or(d.UnsubscribeURL, PreviewUnsubscribeURL)
	d.PreferencesURL = cmp.Or(d.PreferencesURL, PreviewPreferencesURL)
	return c.Render(kind, d, RenderOptions{Marketing: true})
}

// Render renders the part of the template for kind with data d.
//
// It returns ErrNoPart (wrapped) when the template has no such part, and a
// *FieldError for everything else: a missing variable
// (*MissingVariableError), an output over MaxOutputSize (ErrOutputTooLarge),
// a rendered subject with a line break (ErrLineBreak), a marketing email
// without a valid unsubscribe URL (ErrUnsubscribeURL), an invalid
// List-* option.
func (c *Compiled) Render(kind channels.Kind, d Data, opts RenderOptions) (Rendered, error) {
	d.Locale = cmp.Or(opts.Locale, d.Locale, d.Contact.Locale)
	d.UnsubscribeURL = cmp.Or(opts.UnsubscribeURL, d.UnsubscribeURL)
	fr := isFrench(d.Locale)
	r := Rendered{Kind: kind}
	switch kind {
	case channels.Email:
		if c.subject == nil {
			return Rendered{}, fmt.Errorf("templates: render email: %w", ErrNoPart)
		}
		r.From = c.from
		if opts.Marketing {
			if err := checkHTTPURL(d.UnsubscribeURL); err != nil {
				return Rendered{}, &FieldError{Field: "options.unsubscribe_url", Err: err}
			}
		}
		var err error
		if r.Subject, err = execText(c.subject, FieldSubject, d, MaxOutputSize, nil); err != nil {
			return Rendered{}, err
		}
		if strings.ContainsAny(r.Subject, "\r\n") {
			return Rendered{}, &FieldError{Field: FieldSubject, Err: ErrLineBreak}
		}
		if c.html != nil {
			if r.HTML, err = execHTML(c.html, FieldHTML, d, &c.htmlSize); err != nil {
				return Rendered{}, err
			}
		}
		if c.text != nil {
			if r.Text, err = execText(c.text, FieldText, d, MaxOutputSize, &c.textSize); err != nil {
				return Rendered{}, err
			}
		}
		if r.Headers, err = headers(opts, d.UnsubscribeURL); err != nil {
			return Rendered{}, err
		}
		if opts.Marketing {
			prefs := d.PreferencesURL
			if checkHTTPURL(prefs) != nil {
				prefs = ""
			}
			if r.HTML != "" && !linksTo(r.HTML, d.UnsubscribeURL) {
				r.HTML = insertFooter(r.HTML, htmlFooter(d.UnsubscribeURL, prefs, fr))
			}
			if r.Text != "" && !strings.Contains(r.Text, d.UnsubscribeURL) {
				r.Text = textFooter(r.Text, d.UnsubscribeURL, prefs, fr)
			}
			if len(r.HTML) > MaxOutputSize {
				return Rendered{}, &FieldError{Field: FieldHTML, Err: ErrOutputTooLarge}
			}
			if len(r.Text) > MaxOutputSize {
				return Rendered{}, &FieldError{Field: FieldText, Err: ErrOutputTooLarge}
			}
		}
	case channels.SMS:
		if c.sms == nil {
			return Rendered{}, fmt.Errorf("templates: render sms: %w", ErrNoPart)
		}
		var err error
		if r.SMS, err = execText(c.sms, FieldSMS, d, MaxOutputSize, nil); err != nil {
			return Rendered{}, err
		}
		if opts.Marketing && !stopRe.MatchString(r.SMS) {
			r.SMS = strings.TrimRight(r.SMS, " \n") + "\n" + optOutLine(fr)
			if len(r.SMS) > MaxOutputSize {
				return Rendered{}, &FieldError{Field: FieldSMS, Err: ErrOutputTooLarge}
			}
		}
		r.Segments = Segments(r.SMS)
	default:
		return Rendered{}, fmt.Errorf("templates: render: unknown channel %q", string(kind))
	}
	return r, nil
}

func isFrench(locale string) bool {
	return len(locale) >= 2 && strings.EqualFold(locale[:2], "fr")
}

// Opt-out lines for marketing SMS. Both are GSM-7 only, so they never force
// a message into UCS-2 by themselves.
const (
	OptOutEN = "STOP: reply STOP to opt out"
	OptOutFR = "STOP: répondez STOP pour ne plus recevoir de SMS"
)

func optOutLine(fr bool) string {
	if fr {
		return OptOutFR
	}
	return OptOutEN
}

var stopRe = regexp.MustCompile(`\bSTOP\b`)

// execText renders t, at most limit bytes. size, when not nil, holds the
// length of the part's last output and is set to this one's.
func execText(t *texttemplate.Template, field string, d Data, limit int, size *atomic.Int64) (string, error) {
	w := newLimitWriter(limit, load(size))
	if err := t.Execute(w, d); err != nil {
		return "", execError(field, err)
	}
	store(size, w.b.Len())
	return w.b.String(), nil
}

// execHTML is execText for the HTML part.
func execHTML(t *htmltemplate.Template, field string, d Data, size *atomic.Int64) (string, error) {
	w := newLimitWriter(MaxOutputSize, load(size))
	if err := t.Execute(w, d); err != nil {
		return "", execError(field, err)
	}
	store(size, w.b.Len())
	return w.b.String(), nil
}

func load(size *atomic.Int64) int64 {
	if size == nil {
		return 0
	}
	return size.Load()
}

func store(size *atomic.Int64, n int) {
	if size != nil {
		size.Store(int64(n))
	}
}

var (
	execLocRe      = regexp.MustCompile(`(?s)^template: [^:]*:(\d+):\d+: executing "[^"]*" at <.*?>: (.*)$`)
	missingKeyRe   = regexp.MustCompile(`^map has no entry for key ("(?:[^"\\]|\\.)*")$`)
	unknownFieldRe = regexp.MustCompile(`^can't evaluate field (\S+) in type`)
)

// execError turns an execution error into a *FieldError with a message fit
// for a marketer.
func execError(field string, err error) error {
	if errors.Is(err, ErrOutputTooLarge) {
		var ee texttemplate.ExecError
		if !errors.As(err, &ee) {
			// A failed write is returned bare, without position.
			return &FieldError{Field: field, Err: ErrOutputTooLarge}
		}
	}
	var he *htmltemplate.Error
	if errors.As(err, &he) {
		return &FieldError{Field: field, Line: he.Line, Err: &templateError{msg: he.Description, err: he}}
	}
	fe := &FieldError{Field: field, Err: err}
	var ee texttemplate.ExecError
	if !errors.As(err, &ee) {
		return fe
	}
	m := execLocRe.FindStringSubmatch(ee.Err.Error())
	if m == nil {
		return fe
	}
	fe.Line, _ = strconv.Atoi(m[1])
	msg := m[2]
	if k := missingKeyRe.FindStringSubmatch(msg); k != nil {
		name, uerr := strconv.Unquote(k[1])
		if uerr == nil {
			fe.Err = &MissingVariableError{Name: name}
			return fe
		}
	}
	if f := unknownFieldRe.FindStringSubmatch(msg); f != nil {
		msg = fmt.Sprintf("unknown field %q", f[1])
	}
	msg = strings.TrimPrefix(msg, "error calling ")
	fe.Err = &templateError{msg: msg, err: ee.Err}
	return fe
}

// checkHTTPURL accepts an absolute http or https URL that can sit between
// angle brackets in a header.
func checkHTTPURL(s string) error {
	if strings.ContainsAny(s, "\r\n") {
		return ErrLineBreak
	}
	if s == "" || strings.ContainsAny(s, "<>, \t\"") {
		return ErrUnsubscribeURL
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ErrUnsubscribeURL
	}
	return nil
}

// headers returns the List-* headers for opts: List-Unsubscribe and
// List-Unsubscribe-Post (RFC 8058) for marketing, List-Id when given.
// Transactional mail gets no List-Unsubscribe: it belongs to no list one
// could leave.
func headers(opts RenderOptions, unsub string) (map[string]string, error) {
	h := map[string]string{}
	if opts.Marketing {
		v := "<" + unsub + ">"
		if m := opts.ListUnsubscribeMailto; m != "" {
			if strings.ContainsAny(m, "\r\n") {
				return nil, &FieldError{Field: "options.list_unsubscribe_mailto", Err: ErrLineBreak}
			}
			addr := strings.TrimPrefix(m, "mailto:")
			if addr == "" || !strings.Contains(addr, "@") || strings.ContainsAny(addr, "<>, \t\"") {
				return nil, &FieldError{Field: "options.list_unsubscribe_mailto", Err: errors.New("not a valid mailto address")}
			}
			v += ", <mailto:" + addr + ">"
		}
		h["List-Unsubscribe"] = v
		h["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
	}
	if id := opts.ListID; id != "" {
		if strings.ContainsAny(id, "\r\n") {
			return nil, &FieldError{Field: "options.list_id", Err: ErrLineBreak}
		}
		if !strings.Contains(id, "<") {
			id = "<" + id + ">"
		}
		h["List-Id"] = id
	}
	if len(h) == 0 {
		return nil, nil
	}
	return h, nil
}

// linksTo reports whether html has an href to u, as html/template writes it.
func linksTo(html, u string) bool {
	forms := []string{htmltemplate.HTMLEscapeString(u)}
	if forms[0] != u {
		forms = append(forms, u)
	}
	for _, f := range forms {
		for i := 0; ; {
			j := strings.Index(html[i:], f)
			if j < 0 {
				break
			}
			before := html[:i+j]
			if q := len(before) - 1; q >= 0 && (before[q] == '"' || before[q] == '\'') {
				before = before[:q]
			}
			if strings.HasSuffix(before, "href=") {
				return true
			}
			i += j + 1
		}
	}
	return false
}

func htmlFooter(unsub, prefs string, fr bool) string {
	label, manage := "Unsubscribe", "Manage preferences"
	if fr {
		label, manage = "Se désabonner", "Gérer mes préférences"
	}
	const p, a, style = `<p style="font-size:12px;line-height:18px;color:#6b7280;text-align:center;margin:24px 0 0">`, `<a href="`, `" style="color:#6b7280">`
	if prefs == "" {
		return p + a + htmltemplate.HTMLEscapeString(unsub) + style + label + "</a></p>\n"
	}
	return p + a + htmltemplate.HTMLEscapeString(unsub) + style + label + "</a> · " + a + htmltemplate.HTMLEscapeString(prefs) + style + manage + "</a></p>\n"
}

// footerRoom is what a render buffer holds beyond its hint: the
// unsubscribe footer's length, give or take.
const footerRoom = 512

// insertFooter puts footer before the last </body>, or at the end.
func insertFooter(html, footer string) string {
	i := lastBodyClose(html)
	if i < 0 {
		if !strings.HasSuffix(html, "\n") {
			html += "\n"
		}
		return html + footer
	}
	return html[:i] + footer + html[i:]
}

// lastBodyClose returns where the last closing body tag starts (</body>,
// in any case, spaces allowed before the >), or -1. It looks backwards
// from the end, where the tag is, instead of matching the whole message.
func lastBodyClose(html string) int {
	for end := len(html); ; {
		i := strings.LastIndex(html[:end], "</")
		if i < 0 {
			return -1
		}
		if rest := html[i+2:]; len(rest) >= 4 && strings.EqualFold(rest[:4], "body") {
			rest = strings.TrimLeft(rest[4:], "\t\n\f\r ")
			if rest != "" && rest[0] == '>' {
				return i
			}
		}
		end = i
	}
}

func textFooter(text, unsub, prefs string, fr bool) string {
	label, manage := "Unsubscribe: ", "Manage preferences: "
	if fr {
		label, manage = "Se désabonner : ", "Gérer mes préférences : "
	}
	text = strings.TrimRight(text, " \n")
	var b strings.Builder
	b.Grow(len(text) + len("\n\n-- \n") + len(label) + len(unsub) + len(manage) + len(prefs) + 2)
	b.WriteString(text)
	b.WriteString("\n\n-- \n")
	b.WriteString(label)
	b.WriteString(unsub)
	b.WriteString("\n")
	if prefs != "" {
		b.WriteString(manage)
		b.WriteString(prefs)
		b.WriteString("\n")
	}
	return b.String()
}

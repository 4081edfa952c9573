package bounce

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// MaxSize is the largest mail Parse reads: 10 MiB.
const MaxSize = 10 << 20

var (
	// ErrTooLarge is returned by Parse for a mail over MaxSize.
	ErrTooLarge = errors.New("bounce: mail too large")
	// ErrMalformed is returned by Parse for input that is not a mail: no
	// header at all.
	ErrMalformed = errors.New("bounce: not a mail")
)

// Limits on the MIME tree, so that a hostile mail cannot make Parse work
// hard: nesting depth and number of parts looked at.
const (
	maxDepth = 8
	maxParts = 200
)

// Parse reads one mail, headers and body, of at most MaxSize bytes, and
// says what it reports. A mail that is none of a DSN, an ARF report or an
// auto-reply is a Report of KindUnknown, not an error. Parse returns
// ErrTooLarge for a larger mail, ErrMalformed for input without a header,
// and the reader's error when reading fails. Errors never quote the mail.
func Parse(r io.Reader) (*Report, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("bounce: read: %w", err)
	}
	if len(data) > MaxSize {
		return nil, ErrTooLarge
	}
	h, body := splitMessage(data)
	if len(h) == 0 {
		return nil, ErrMalformed
	}
	return parse(h, body, 0), nil
}

func parse(h textproto.MIMEHeader, body []byte, depth int) *Report {
	m := &mail{top: h, depth: depth}
	m.walk(h, body, 0, false)
	return m.report()
}

// mail collects the parts of interest found while walking the MIME tree.
type mail struct {
	top      textproto.MIMEHeader
	parts    int
	reportTy string   // report-type of the first multipart/report
	dsn      [][]byte // message/delivery-status and global-delivery-status bodies
	feedback [][]byte // message/feedback-report bodies
	orig     textproto.MIMEHeader
	origRaw  []byte // a returned message, when whole
	depth    int    // how many bounces this one is nested in
	text     []string
}

// walk visits a part. inOriginal is true below a returned message, whose
// text is the message we sent, not the report.
func (m *mail) walk(h textproto.MIMEHeader, body []byte, depth int, inOriginal bool) {
	m.parts++
	if depth > maxDepth || m.parts > maxParts {
		return
	}
	ct, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		ct, params = "text/plain", nil
		if v := strings.ToLower(h.Get("Content-Type")); v != "" {
			// Keep the type of a header with broken parameters.
			ct = strings.TrimSpace(strings.SplitN(v, ";", 2)[0])
			params = looseParams(v)
		}
	}
	switch {
	case strings.HasPrefix(ct, "multipart/"):
		if ct == "multipart/report" && m.reportTy == "" {
			m.reportTy = strings.ToLower(params["report-type"])
		}
		boundary := params["boundary"]
		if boundary == "" {
			m.addText(h, body, inOriginal)
			return
		}
		mr := multipart.NewReader(bytes.NewReader(body), boundary)
		first := true
		for m.parts <= maxParts {
			p, err := mr.NextPart()
			if err != nil && first {
				// Some MTAs announce one boundary and use another: try the
				// first delimiter line of the body.
				if b := guessBoundary(body); b != "" && b != boundary {
					boundary = b
					mr = multipart.NewReader(bytes.NewReader(body), b)
					p, err = mr.NextPart()
				}
			}
			if err != nil {
				if first {
					m.addText(h, body, inOriginal)
				}
				return
			}
			first = false
			pb, err := io.ReadAll(p)
			if err != nil && len(pb) == 0 {
				return
			}
			m.walk(textproto.MIMEHeader(p.Header), pb, depth+1, inOriginal)
		}
	case inOriginal:
		return
	case ct == "message/delivery-status", ct == "message/global-delivery-status":
		m.dsn = append(m.dsn, decode(h, body))
	case ct == "message/feedback-report":
		m.feedback = append(m.feedback, decode(h, body))
	case ct == "message/rfc822", ct == "message/global":
		raw := decode(h, body)
		oh, ob := splitMessage(raw)
		if m.orig == nil && len(oh) > 0 {
			m.orig, m.origRaw = oh, raw
		}
		// A returned message may itself be a multipart; its text is ours.
		m.walk(oh, ob, depth+1, true)
	case ct == "text/rfc822-headers", ct == "message/rfc822-headers", ct == "message/global-headers":
		if oh, _ := splitMessage(decode(h, body)); m.orig == nil && len(oh) > 0 {
			m.orig = oh
		}
	case strings.HasPrefix(ct, "text/"), ct == "":
		m.addText(h, body, inOriginal)
	}
}

func (m *mail) addText(h textproto.MIMEHeader, body []byte, inOriginal bool) {
	if inOriginal || len(m.text) >= 20 {
		return
	}
	b := decode(h, body)
	if strings.Contains(strings.ToLower(h.Get("Content-Type")), "html") {
		b = stripTags(b)
	}
	m.text = append(m.text, string(b))
}

// report decides what the mail is.
func (m *mail) report() *Report {
	r := &Report{Kind: KindUnknown}
	if m.orig != nil {
		r.MessageID = messageID(m.orig.Get("Message-Id"))
	}
	switch {
	case m.reportTy == "feedback-report" || len(m.feedback) > 0:
		m.arf(r)
		return r
	case len(m.dsn) == 0 && m.isJMRP():
		m.jmrp(r)
		return r
	case len(m.dsn) == 0 && isUnsubscribeRequest(m.top):
		// Before the auto-reply test: some providers mark these as
		// auto-replies.
		m.optOut(r)
		return r
	case len(m.dsn) > 0:
		for _, d := range m.dsn {
			parseDSN(d, r)
		}
		if len(r.Recipients) > 0 {
			r.Kind = KindDSN
			return r
		}
	}
	if isAutoReply(m.top) && !looksLikeBounce(m.top, m.text) {
		r.Kind = KindAutoReply
		r.Recipients = nil
		if r.MessageID == "" {
			r.MessageID = messageID(m.top.Get("In-Reply-To"))
		}
		return r
	}
	bounce := m.reportTy == "delivery-status" || len(m.dsn) > 0 || looksLikeBounce(m.top, m.text)
	if bounce {
		if m.origRaw != nil && m.depth == 0 {
			// A bounce returned inside a bounce: the inner one says more.
			oh, ob := splitMessage(m.origRaw)
			if looksLikeBounce(oh, nil) {
				if in := parse(oh, ob, m.depth+1); in.Kind == KindDSN {
					return in
				}
			}
		}
		// Some MTAs write the DSN fields into the text part.
		for _, t := range m.text {
			if strings.Contains(strings.ToLower(t), "final-recipient:") {
				parseDSN([]byte(notice(t)), r)
			}
		}
		if len(r.Recipients) == 0 {
			textBounce(m, r)
		}
		if len(r.Recipients) > 0 {
			r.Kind = KindDSN
			return r
		}
		return r
	}
	if isAutoReply(m.top) || subjectAutoReply(m.top) {
		r.Kind = KindAutoReply
		r.Recipients = nil
		if r.MessageID == "" {
			r.MessageID = messageID(m.top.Get("In-Reply-To"))
		}
	}
	return r
}

// arf reads an RFC 5965 feedback report.
func (m *mail) arf(r *Report) {
	r.Kind = KindARF
	var fh textproto.MIMEHeader
	if len(m.feedback) > 0 {
		fh, _ = parseHeader(m.feedback[0])
	}
	if fh != nil {
		r.FeedbackType = strings.ToLower(firstWord(fh.Get("Feedback-Type")))
		r.OriginalRecipient = bareAddress(fh.Get("Original-Rcpt-To"))
		r.ReportingMTA = mtaName(fh.Get("Reporting-Mta"))
	}
	if r.OriginalRecipient == "" && m.orig != nil {
		// Microsoft's JMRP in ARF names the address only here.
		r.OriginalRecipient = bareAddress(m.orig.Get("X-Hmxmroriginalrecipient"))
	}
	m.complainant(r)
}

// complainant ends the reading of an ARF or JMRP complaint: its one
// Recipient is the address the report named, else the To of the returned
// message; an opt-out report is an unsubscribe request, not a complaint.
func (m *mail) complainant(r *Report) {
	if r.OriginalRecipient == "" && m.orig != nil {
		r.OriginalRecipient = firstAddress(m.orig.Get("To"))
	}
	r.OriginalRecipient = unredacted(r.OriginalRecipient)
	class := ClassComplaint
	if r.FeedbackType == "opt-out" {
		class = ClassUnsubscribe // RFC 5965: a request to unsubscribe
	}
	r.Recipients = []Recipient{{Address: r.OriginalRecipient, Class: class}}
}

// isJMRP tells whether the mail is a complaint of Microsoft's Junk Mail
// Reporting Program (Outlook.com, Hotmail) in its own format, not ARF: a
// mail from staff@hotmail.com, or one returning a message that bears the
// X-HmXmrOriginalRecipient header Outlook.com adds on delivery, which
// only a copy of a delivered message carries.
func (m *mail) isJMRP() bool {
	if m.orig != nil && m.orig.Get("X-Hmxmroriginalrecipient") != "" {
		return true
	}
	return strings.EqualFold(bareAddress(m.top.Get("From")), "staff@hotmail.com") &&
		strings.HasPrefix(strings.ToLower(subject(m.top)), "complaint about message")
}

// jmrp reads a JMRP complaint: the complaining address is the
// X-HmXmrOriginalRecipient of the returned message.
func (m *mail) jmrp(r *Report) {
	r.Kind = KindARF
	r.FeedbackType = "abuse"
	for _, h := range []textproto.MIMEHeader{m.orig, m.top} {
		if h != nil && r.OriginalRecipient == "" {
			r.OriginalRecipient = bareAddress(h.Get("X-Hmxmroriginalrecipient"))
		}
	}
	m.complainant(r)
}

// isUnsubscribeRequest tells whether the mail is a recipient's request to
// leave, sent by their mailbox provider to a List-Unsubscribe mailto:
// address (RFC 2369): Apple Mail marks it X-Apple-Unsubscribe: true, the
// others send the subject "unsubscribe".
func isUnsubscribeRequest(h textproto.MIMEHeader) bool {
	if strings.EqualFold(strings.TrimSpace(h.Get("X-Apple-Unsubscribe")), "true") {
		return true
	}
	subj := strings.ToLower(strings.TrimSpace(subject(h)))
	rest, ok := strings.CutPrefix(subj, "unsubscribe")
	return ok && (rest == "" || rest[0] == ' ' || rest[0] == ':')
}

// optOut reads an unsubscribe request: the recipient is its sender,
// FeedbackType "opt-out", class unsubscribe: the person leaves the list,
// which is not a spam report.
func (m *mail) optOut(r *Report) {
	r.Kind = KindARF
	r.FeedbackType = "opt-out"
	r.OriginalRecipient = unredacted(bareAddress(m.top.Get("From")))
	if !isAddress(r.OriginalRecipient) {
		r.OriginalRecipient = ""
	}
	r.Recipients = []Recipient{{Address: r.OriginalRecipient, Class: ClassUnsubscribe}}
}

// unredacted returns "" for an address a feedback loop redacted (Yahoo
// and AOL write "redacted" in place of the recipient), else a.
func unredacted(a string) string {
	if strings.Contains(strings.ToLower(a), "redacted") {
		return ""
	}
	return a
}

// parseDSN reads the fields of a message/delivery-status body: a block of
// per-message fields, then one block per recipient.
func parseDSN(b []byte, r *Report) {
	for _, block := range splitBlocks(b) {
		f, _ := parseHeader(block)
		if f == nil {
			continue
		}
		if v := f.Get("Reporting-Mta"); v != "" && r.ReportingMTA == "" {
			r.ReportingMTA = mtaName(v)
		}
		final, orig := bareAddress(typed(f.Get("Final-Recipient"))), bareAddress(typed(f.Get("Original-Recipient")))
		if final == "" && orig == "" {
			continue
		}
		if len(r.Recipients) >= MaxRecipients {
			return
		}
		addr := orig
		if !isAddress(orig) {
			addr = final
		}
		diag := oneLine(typed(f.Get("Diagnostic-Code")))
		action := strings.ToLower(firstWord(f.Get("Action")))
		status := statusCode(firstWord(f.Get("Status")))
		if status == "" || strings.HasSuffix(status, ".0.0") {
			// A generic status: the remote reply or its words may say more.
			if s := findStatus(diag); s != "" && (status == "" || s[0] == status[0]) {
				status = s
			} else if s := phraseStatus(diag); s != "" {
				if status != "" {
					s = status[:1] + s[1:]
				}
				status = s
			}
		}
		if sub := strings.Index(status, "."); sub > 0 && strings.HasSuffix(status, ".0") && !strings.HasSuffix(status, ".0.0") {
			// "5.2.0 Over quota": the words give the detail.
			if ps := phraseStatus(diag); ps != "" && ps[1:strings.LastIndexByte(ps, '.')] == status[1:strings.LastIndexByte(status, '.')] {
				status = status[:1] + ps[1:]
			}
		}
		if status == "" {
			switch action {
			case "failed":
				status = "5.0.0"
			case "delayed":
				status = "4.0.0"
			}
		}
		if !validAction(action) {
			switch {
			case strings.HasPrefix(status, "5."):
				action = "failed"
			case strings.HasPrefix(status, "4."):
				action = "delayed"
			case strings.HasPrefix(status, "2."):
				action = "delivered"
			default:
				action = "failed"
			}
		}
		r.Recipients = append(r.Recipients, Recipient{
			Address:    addr,
			Action:     action,
			Status:     status,
			Class:      classify(action, status, diag),
			Diagnostic: diag,
		})
	}
}

func validAction(a string) bool {
	switch a {
	case "failed", "delayed", "delivered", "relayed", "expanded":
		return true
	}
	return false
}

// splitMessage splits a mail into its header and body. The header is
// read leniently: a line that is not a field ends it only when it is
// blank; other broken lines are skipped.
func splitMessage(data []byte) (textproto.MIMEHeader, []byte) {
	return parseHeader(data)
}

// parseHeader reads header fields up to the first blank line and returns
// them with the rest. Field names are canonical (textproto).
func parseHeader(data []byte) (textproto.MIMEHeader, []byte) {
	h := textproto.MIMEHeader{}
	// Skip leading blank lines (a part after its boundary, a DSN block).
	for len(data) > 0 && (data[0] == '\n' || data[0] == '\r') {
		data = data[1:]
	}
	var key string
	var val strings.Builder
	flush := func() {
		if key != "" {
			h.Add(key, strings.TrimSpace(val.String()))
		}
		key = ""
		val.Reset()
	}
	rest := data
	for len(rest) > 0 {
		line := rest
		next := []byte(nil)
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, next = rest[:i], rest[i+1:]
		}
		line = bytes.TrimRight(line, "\r")
		rest = next
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			return h, rest
		}
		if line[0] == ' ' || line[0] == '\t' {
			if key != "" && val.Len() < 64<<10 {
				val.WriteByte(' ')
				val.Write(bytes.TrimSpace(line))
			}
			continue
		}
		flush()
		i := bytes.IndexByte(line, ':')
		if i <= 0 || bytes.ContainsAny(line[:i], " \t") {
			if len(h) == 0 && i < 0 {
				// Not a header at all: the data is a body.
				return nil, data
			}
			continue
		}
		key = textproto.CanonicalMIMEHeaderKey(string(line[:i]))
		val.Write(line[i+1:])
	}
	flush()
	return h, nil
}

// splitBlocks splits a delivery-status body at blank lines.
func splitBlocks(b []byte) [][]byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	var out [][]byte
	var cur []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, line...)
		cur = append(cur, '\n')
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// decode undoes a base64 transfer encoding (multipart already undoes
// quoted-printable). Undecodable data is returned as is.
func decode(h textproto.MIMEHeader, body []byte) []byte {
	if !strings.EqualFold(strings.TrimSpace(h.Get("Content-Transfer-Encoding")), "base64") {
		return body
	}
	clean := bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, body)
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	if err != nil && n == 0 {
		return body
	}
	return out[:n]
}

// looseParams reads name=value pairs from a Content-Type that
// mime.ParseMediaType refuses.
func looseParams(v string) map[string]string {
	out := map[string]string{}
	for _, p := range strings.Split(v, ";")[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(val), `"`)
	}
	return out
}

// typed drops the type of a DSN field, "rfc822; a@b" → "a@b",
// "smtp; 550 ..." → "550 ...".
func typed(v string) string {
	if t, rest, ok := strings.Cut(v, ";"); ok && !strings.ContainsAny(t, " @<") {
		return strings.TrimSpace(rest)
	}
	return strings.TrimSpace(v)
}

func mtaName(v string) string { return oneLine(typed(v)) }

func firstWord(v string) string {
	f := strings.Fields(v)
	if len(f) == 0 {
		return ""
	}
	return strings.Trim(f[0], "(),;")
}

// messageID strips the angle brackets of a Message-ID.
func messageID(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	return firstWord(v)
}

// bareAddress returns the address in "<a@b>", "a@b" or "Name <a@b>".
func bareAddress(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
	}
	v = strings.Trim(firstWord(v), "<>\"'")
	if strings.HasPrefix(v, "@") {
		// An RFC 821 source route, "@relay:user@host".
		if i := strings.IndexByte(v, ':'); i >= 0 {
			v = v[i+1:]
		}
	}
	return v
}

// guessBoundary returns the boundary of the first delimiter line, "--b".
func guessBoundary(body []byte) string {
	for _, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimRight(line, "\r \t")
		if len(line) > 2 && line[0] == '-' && line[1] == '-' && len(line) <= 72 {
			return string(line[2:])
		}
	}
	return ""
}

// firstAddress returns the first address of an address list header.
func firstAddress(v string) string {
	if a := addrRE.FindString(v); a != "" {
		return a
	}
	return ""
}

func isAddress(s string) bool {
	i := strings.LastIndexByte(s, '@')
	return i > 0 && i < len(s)-1
}

// oneLine puts s on one line of at most maxDiagnostic bytes, cut at a
// character boundary.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= maxDiagnostic {
		return s
	}
	cut := maxDiagnostic
	for cut > 0 && !runeStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func runeStart(b byte) bool { return b&0xC0 != 0x80 }

// stripTags removes HTML tags, leaving text good enough for phrase search.
func stripTags(b []byte) []byte {
	out := make([]byte, 0, len(b))
	in := false
	for _, c := range b {
		switch {
		case c == '<':
			in = true
			out = append(out, ' ')
		case c == '>':
			in = false
		case !in:
			out = append(out, c)
		}
	}
	return bytes.ReplaceAll(out, []byte("&nbsp;"), []byte(" "))
}

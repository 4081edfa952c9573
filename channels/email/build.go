package email

import (
	"cmp"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email/esp"
)

// Defaults fill in what a Message leaves empty.
type Defaults struct {
	// From is used when Message.From is empty.
	From string
	// ReturnPath is used when Message.ReturnPath is empty; when both are
	// empty the envelope sender is the From address.
	ReturnPath string
	// MessageIDDomain is the right-hand side of the Message-ID; when empty,
	// the domain of the From address.
	MessageIDDomain string
}

// reservedHeaders are written by Build from the Message fields: Headers may
// not override them.
var reservedHeaders = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true, "Subject": true,
	"Date": true, "Message-Id": true, "Mime-Version": true, "Content-Type": true,
	"Content-Transfer-Encoding": true, "Return-Path": true, "Sender": true,
	// A signature is added by the Sender or the outbox, never by a template.
	"Dkim-Signature": true,
}

// Build turns m into a go-mail message: From, To, Subject, Date,
// Message-ID <esp.MessageIDLocal(m.ID)@domain>, the text and HTML parts
// (multipart/alternative when both are set), m.Headers verbatim, and the
// envelope sender.
//
// It returns an error, which never contains an address, when m has no ID,
// no recipient, no body, an address that does not parse, or a header whose
// name is reserved or invalid or whose value contains CR or LF.
func Build(m channels.Message, d Defaults) (*mail.Msg, error) {
	if m.ID == "" {
		return nil, errors.New("email: message ID is empty")
	}
	if m.To == "" {
		return nil, errors.New("email: recipient is empty")
	}
	to, err := parseAddress(string(m.To), false)
	if err != nil {
		return nil, fmt.Errorf("email: recipient: %w", err)
	}
	fromRaw := m.From
	if fromRaw == "" {
		fromRaw = d.From
	}
	if fromRaw == "" {
		return nil, errors.New("email: sender is empty and no default From is set")
	}
	from, err := parseAddress(fromRaw, true)
	if err != nil {
		return nil, fmt.Errorf("email: sender: %w", err)
	}
	var envelope *netmail.Address
	if rp := cmp.Or(m.ReturnPath, d.ReturnPath); rp != "" {
		if envelope, err = parseAddress(rp, false); err != nil {
			return nil, fmt.Errorf("email: return path: %w", err)
		}
	}
	if m.Text == "" && m.HTML == "" {
		return nil, errors.New("email: message has neither text nor HTML body")
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, errors.New("email: subject contains CR or LF")
	}
	domain := d.MessageIDDomain
	if domain == "" {
		domain = from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	}

	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	msg.FromMailAddress(from)
	msg.ToMailAddress(to)
	if envelope != nil {
		msg.EnvelopeFromMailAddress(envelope)
	}
	msg.Subject(subjectValue(m.Subject))
	msg.SetDateWithValue(time.Now())
	msg.SetMessageIDWithValue(esp.MessageIDLocal(m.ID) + "@" + domain)
	for name, value := range m.Headers {
		if err := setHeader(msg, name, value); err != nil {
			return nil, err
		}
	}
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	case m.Text != "":
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
	default:
		msg.SetBodyString(mail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// parseAddress parses one address. Its errors never quote the input.
func parseAddress(s string, allowName bool) (*netmail.Address, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("address contains CR or LF")
	}
	a, err := netmail.ParseAddress(s)
	if err != nil {
		return nil, errors.New("address is not valid")
	}
	if !allowName {
		a.Name = ""
	}
	return a, nil
}

// setHeader sets an extra header. ASCII values are written verbatim (a
// List-Unsubscribe URL must not be re-encoded); others are RFC 2047 encoded.
func setHeader(msg *mail.Msg, name, value string) error {
	if name == "" {
		return errors.New("email: header name is empty")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			// The name is not personal data; %q keeps a CR visible.
			return fmt.Errorf("email: header name %q is not valid", name)
		}
	}
	key := textproto.CanonicalMIMEHeaderKey(name)
	if reservedHeaders[key] {
		return fmt.Errorf("email: header %s is set from the message fields", key)
	}
	if strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("email: header %s: value contains CR or LF", key)
	}
	if strings.ContainsRune(value, 0) {
		return fmt.Errorf("email: header %s: value contains NUL", key)
	}
	if isASCII(value) {
		// Written as is, folded nowhere: a word that does not fit a line
		// of 998 octets would make the message invalid (RFC 5322 2.1.1).
		if longestWord(value) > maxLine-len(key)-len(": ") {
			return fmt.Errorf("email: header %s: a word of the value is longer than a header line may be (998 octets)", key)
		}
		msg.SetGenHeaderPreformatted(mail.Header(key), fold(key, value))
	} else {
		msg.SetGenHeader(mail.Header(key), value)
	}
	return nil
}

// Header line lengths (RFC 5322 2.1.1): a line must not pass maxLine
// octets and should not pass foldAt. go-mail folds a header at spaces
// only, so a word that does not fit a folded line is encoded.
const (
	maxLine = 998
	foldAt  = 78
	// maxPlainWord is the longest word a folded line holds: the line's
	// leading space and the longest field name written before a value.
	maxPlainWord = foldAt - len(" ") - len("Subject: ")
)

// subjectValue returns the Subject as Build hands it to go-mail, which
// RFC 2047 encodes a non-ASCII subject in encoded-words short enough to
// fold, but leaves an ASCII one as is: an ASCII subject with a word too
// long to fold on a line of foldAt octets (a 1,000-character attribute, a
// long URL) is encoded here, whole, in encoded-words of at most 75
// octets, which read back as the same text.
func subjectValue(s string) string {
	if !isASCII(s) || longestWord(s) <= maxPlainWord {
		return s
	}
	return qWords(s)
}

// longestWord is the length of the longest run of s without a space or
// tab: where a line cannot be folded.
func longestWord(s string) int {
	longest := 0
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' }) {
		longest = max(longest, len(w))
	}
	return longest
}

// qWords encodes s as RFC 2047 "Q" encoded-words in UTF-8, each of at
// most 75 octets (6.1), separated by spaces, which a reader drops
// between encoded-words (6.2). A character is never split between words.
func qWords(s string) string {
	const head, tail, maxWord = "=?utf-8?q?", "?=", 75
	var words []string
	var cur strings.Builder
	for _, r := range s {
		var enc strings.Builder
		for _, b := range []byte(string(r)) {
			switch {
			case b == ' ':
				enc.WriteByte('_')
			case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', strings.IndexByte("!*+-/", b) >= 0:
				enc.WriteByte(b)
			default:
				fmt.Fprintf(&enc, "=%02X", b)
			}
		}
		if len(head)+cur.Len()+enc.Len()+len(tail) > maxWord {
			words = append(words, head+cur.String()+tail)
			cur.Reset()
		}
		cur.WriteString(enc.String())
	}
	if cur.Len() > 0 {
		words = append(words, head+cur.String()+tail)
	}
	return strings.Join(words, " ")
}

// fold folds a preformatted header value at spaces so that its lines
// keep to foldAt octets where its words allow; go-mail writes such values
// as they are. A short value is returned unchanged.
func fold(key, value string) string {
	line := len(key) + len(": ")
	if line+len(value) <= foldAt {
		return value
	}
	var b strings.Builder
	for i, w := range strings.Split(value, " ") {
		if i > 0 {
			// Never a line of white space alone (RFC 5322 3.2.2).
			if w != "" && line+len(" ")+len(w) > foldAt {
				b.WriteString("\r\n")
				line = 0
			}
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

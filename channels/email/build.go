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
	msg.Subject(m.Subject)
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
		msg.SetGenHeaderPreformatted(mail.Header(key), value)
	} else {
		msg.SetGenHeader(mail.Header(key), value)
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

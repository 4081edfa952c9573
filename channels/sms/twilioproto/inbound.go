package twilioproto

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/missive-dev/missive/channels"
)

// Keyword is what an inbound SMS asks for.
type Keyword int

const (
	// KeywordNone: the message is not a keyword; nothing to do.
	KeywordNone Keyword = iota
	// KeywordStop opts out: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT,
	// ARRET (or ARRÊT).
	KeywordStop
	// KeywordStart opts back in: START, YES, UNSTOP.
	KeywordStart
	// KeywordHelp asks who is writing: HELP, INFO.
	KeywordHelp
)

// String returns "none", "stop", "start" or "help", for logs.
func (k Keyword) String() string {
	switch k {
	case KeywordNone:
		return "none"
	case KeywordStop:
		return "stop"
	case KeywordStart:
		return "start"
	case KeywordHelp:
		return "help"
	}
	return "unknown"
}

// keywords are the keywords Twilio and carriers honour, upper case. ARRÊT
// is listed as typed: ToUpper keeps the accent.
var keywords = map[string]Keyword{
	"STOP": KeywordStop, "STOPALL": KeywordStop, "UNSUBSCRIBE": KeywordStop, "CANCEL": KeywordStop,
	"END": KeywordStop, "QUIT": KeywordStop, "ARRET": KeywordStop, "ARRÊT": KeywordStop,
	"START": KeywordStart, "YES": KeywordStart, "UNSTOP": KeywordStart,
	"HELP": KeywordHelp, "INFO": KeywordHelp,
}

// maxKeywordBody is the longest body, in bytes, that can be a keyword; a
// longer one is a message, not a command.
const maxKeywordBody = 32

// ParseKeyword finds the keyword of an SMS body: the whole body, leading
// and trailing space and trailing punctuation ("Stop.", "stop!") ignored,
// in any case. "Stop sending" and "S T O P" are not keywords, as for
// Twilio, and neither is a body longer than 32 bytes.
func ParseKeyword(body string) Keyword {
	if len(body) > maxKeywordBody {
		return KeywordNone
	}
	w := strings.TrimRightFunc(strings.TrimSpace(body), func(r rune) bool {
		return unicode.IsPunct(r) || unicode.IsSpace(r)
	})
	return keywords[strings.ToUpper(w)]
}

// Inbound is an SMS someone sent to one of Missive's numbers, as far as
// Missive reads it: its body is reduced to its keyword and not kept.
type Inbound struct {
	// MessageSID is the message's SID: the same message posted again (a
	// retry of Twilio's) has the same one.
	MessageSID string
	// From is the sender's number as Twilio sent it, space trimmed. It
	// starts with "+" and is at most 32 bytes; normalize and validate it
	// before use.
	From channels.Address
	// Keyword is the body's keyword, KeywordNone when it is none.
	Keyword Keyword
}

// ParseInbound reads the form of an inbound message webhook. Call it once
// the request's signature is checked.
//
// It returns a *FieldError when MessageSid is not a message SID, when From
// does not start with "+" or is longer than 32 bytes (space trimmed), or
// when one of MessageSid, From and Body is given more than once; the
// fields are checked in that order.
func ParseInbound(form url.Values) (Inbound, error) {
	sid, err := messageSID(form)
	if err != nil {
		return Inbound{}, err
	}
	from, err := validField(form, "From", func(from string) bool {
		from = strings.TrimSpace(from)
		return strings.HasPrefix(from, "+") && len(from) <= 32
	}, "is not a phone number in E.164 form")
	if err != nil {
		return Inbound{}, err
	}
	body, err := field(form, "Body")
	if err != nil {
		return Inbound{}, err
	}
	return Inbound{MessageSID: sid, From: channels.Address(strings.TrimSpace(from)), Keyword: ParseKeyword(body)}, nil
}

// WriteTwiML answers a Twilio webhook with 200 and TwiML holding one reply
// message, which Twilio sends back as an SMS, or none when msg is empty.
// msg is XML-escaped; characters XML cannot carry become U+FFFD.
func WriteTwiML(w http.ResponseWriter, msg string) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	if msg == "" {
		b.WriteString("<Response/>")
	} else {
		b.WriteString("<Response><Message>")
		xml.EscapeText(&b, []byte(msg))
		b.WriteString("</Message></Response>")
	}
	h := w.Header()
	h.Set("Content-Type", "text/xml; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// The status is sent: a failed write is the client's broken connection,
	// and Twilio will retry.
	_, _ = w.Write([]byte(b.String()))
}

package bounce

import (
	"mime"
	"net/textproto"
	"regexp"
	"slices"
	"strings"
)

// This file reads bounces that are not RFC 3464 reports: the text that
// Exim, qmail, Yahoo, Gmail, Exchange, older Sendmail and others write.

var addrRE = regexp.MustCompile(`[A-Za-z0-9!#$%&'*+/=?^_` + "`" + `{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_` + "`" + `{|}~-]+)*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+`)

// statusRE finds an RFC 3463 enhanced status code; findStatus checks
// what surrounds it, so that IP addresses and versions do not match.
var statusRE = regexp.MustCompile(`[245]\.\d{1,3}\.\d{1,3}`)

// replyRE finds a bare SMTP reply code where a server's reply starts.
var replyRE = regexp.MustCompile(`(?i)(?:^|said:|\n|<<<|\(|:)\s*([45][0-5][0-9])[ -]`)

// daemons are local parts of the addresses that send bounces.
var daemons = []string{"mailer-daemon", "postmaster", "mail-daemon", "maildelivery", "mailerdaemon", "double-bounce", "nobody"}

var bounceSubjects = []string{
	"undeliver", "delivery status notification", "failure notice", "returned mail",
	"delivery failure", "delivery failed", "mail delivery", "undelivered", "non-delivery",
	"nondeliver", "not delivered", "could not be delivered", "delivery notification",
	"returning message", "mail system error", "delivery problem", "warning: could not send",
	"message not delivered", "rejected", "bounce", "permanent error", "delivery has failed",
}

var bounceBody = []string{
	"could not be delivered", "was not delivered", "permanent error", "failed permanently",
	"delivery to the following recipient", "undeliverable", "qmail-send program",
	"unable to deliver", "delivery has failed", "following address(es) failed",
	"could not deliver", "delivery failed", "not be delivered", "failed to deliver",
	"returned to sender", "mail delivery failed", "fatal errors", "delivery status notification",
	"couldn't be delivered", "wasn't delivered", "rejected your message", "delivery to the following recipients failed",
}

// looksLikeBounce tells whether a mail that is not a structured report is
// a bounce all the same.
func looksLikeBounce(h textproto.MIMEHeader, text []string) bool {
	if h.Get("X-Failed-Recipients") != "" {
		return true
	}
	from := strings.ToLower(h.Get("From"))
	if containsAny(from, daemons) || strings.Contains(from, "mail delivery") ||
		containsAny(strings.ToLower(subject(h)), bounceSubjects) {
		return true
	}
	for _, t := range text {
		if containsAny(strings.ToLower(notice(t)), bounceBody) {
			return true
		}
	}
	return false
}

// isAutoReply tells whether the header marks an RFC 3834 auto-reply.
func isAutoReply(h textproto.MIMEHeader) bool {
	as := strings.ToLower(h.Get("Auto-Submitted"))
	prec := strings.ToLower(h.Get("Precedence"))
	return strings.HasPrefix(as, "auto-replied") ||
		h.Get("X-Autoreply") != "" || h.Get("X-Autorespond") != "" || h.Get("X-Autoresponder") != "" ||
		strings.Contains(prec, "auto_reply") || strings.Contains(prec, "auto-reply")
}

var autoReplySubjects = []string{
	"out of office", "out of the office", "automatic reply", "auto reply", "auto-reply", "autoreply",
	"auto:", "away from", "on vacation", "vacation reply", "abwesenheit", "réponse automatique",
	"absence", "away until", "autosvar", "respuesta automática",
}

func subjectAutoReply(h textproto.MIMEHeader) bool {
	return containsAny(strings.ToLower(subject(h)), autoReplySubjects)
}

func subject(h textproto.MIMEHeader) string {
	s := h.Get("Subject")
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// notice returns the report's own words: the text before the copy of the
// returned message.
func notice(t string) string {
	pos := 0
	for pos < len(t) {
		end := strings.IndexByte(t[pos:], '\n')
		line := t[pos:]
		if end >= 0 {
			line = t[pos : pos+end]
		}
		if isCopyStart(line) {
			return t[:pos]
		}
		if end < 0 {
			break
		}
		pos += end + 1
	}
	return t
}

// copyMarks, in a line that starts with a rule of -, = or _, announce the
// copy of the returned message.
var copyMarks = []string{
	"copy of", "original message", "unsent message", "returned message", "message header",
	"message text", "rfc822", "original mail", "below this line", "headers of", "message follows",
}

func isCopyStart(line string) bool {
	l := strings.ToLower(strings.TrimSpace(line))
	if strings.HasPrefix(l, "original message headers") || strings.HasPrefix(l, "return-path:") ||
		strings.HasPrefix(l, "received: from") || strings.HasPrefix(l, "content-type: message/rfc822") {
		return true
	}
	if len(l) < 2 || strings.IndexByte("-=_*", l[0]) < 0 || strings.IndexByte("-=_*", l[1]) < 0 {
		return false
	}
	return containsAny(l, copyMarks)
}

// skipLine reports lines whose addresses are not failed recipients:
// senders, message ids, SMTP transcripts of MAIL FROM.
func skipLine(l string) bool {
	l = strings.ToLower(strings.TrimSpace(l))
	for _, p := range []string{"from:", "reply-to:", "sender:", "return-path:", "received:", "message-id:", "in-reply-to:", "references:", "envelope-from", "x-", "by ", "id "} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return strings.Contains(l, "mail from") || strings.Contains(l, "message-id") || strings.Contains(l, "envelope-from")
}

// textBounce finds the failed recipients and their status in the text of
// a non-RFC bounce.
func textBounce(m *mail, r *Report) {
	var notes []string
	for _, t := range m.text {
		notes = append(notes, notice(t))
	}
	text := strings.Join(notes, "\n")
	lower := asciiLower(text) // same length as text: its offsets are text's

	own := map[string]bool{}
	for _, k := range []string{"From", "To", "Reply-To", "Sender", "Return-Path", "Delivered-To", "X-Apparently-To", "Cc"} {
		for _, v := range m.top.Values(k) {
			for _, a := range addrRE.FindAllString(v, -1) {
				own[strings.ToLower(a)] = true
			}
		}
	}

	var addrs []string
	seen := map[string]bool{}
	add := func(a string) {
		la := strings.ToLower(a)
		if seen[la] || len(addrs) >= MaxRecipients {
			return
		}
		seen[la] = true
		addrs = append(addrs, a)
	}
	if v := m.top.Get("X-Failed-Recipients"); v != "" {
		for _, a := range addrRE.FindAllString(v, -1) {
			add(a)
		}
	}
	if len(addrs) == 0 {
		for _, line := range strings.Split(text, "\n") {
			if skipLine(line) {
				continue
			}
			for _, a := range addrRE.FindAllString(line, -1) {
				la := strings.ToLower(a)
				local := la[:strings.LastIndexByte(la, '@')]
				if own[la] || isDaemon(local) {
					continue
				}
				add(a)
			}
		}
	}
	if len(addrs) == 0 {
		// The notice names nobody: the To of the returned message.
		oh := m.orig
		if oh == nil {
			oh = inlineHeader(m.text)
		}
		if oh != nil {
			for _, a := range addrRE.FindAllString(oh.Get("To"), -1) {
				if !own[strings.ToLower(a)] {
					add(a)
				}
			}
		}
	}
	if len(addrs) == 0 {
		return
	}

	// Each recipient's own text runs from the line of its first mention to
	// the first mention of the next one.
	type span struct{ start, end int }
	spans := make([]span, len(addrs))
	for i, a := range addrs {
		p := strings.Index(lower, strings.ToLower(a))
		if p < 0 {
			spans[i] = span{-1, -1}
			continue
		}
		spans[i].start = strings.LastIndexByte(lower[:p], '\n') + 1
	}
	for i := range spans {
		if spans[i].start < 0 {
			continue
		}
		spans[i].end = len(text)
		for j := range spans {
			if spans[j].start > spans[i].start && spans[j].start < spans[i].end {
				spans[i].end = spans[j].start
			}
		}
	}
	whole := defaultStatus(text)
	for i, a := range addrs {
		own := ""
		if spans[i].start >= 0 {
			own = text[spans[i].start:spans[i].end]
		}
		status, diag := "", ""
		if own != "" {
			status, diag = textStatus(own), diagnosticLine(own)
		}
		if status == "" {
			status = whole
		}
		if diag == "" {
			diag = diagnosticLine(text)
		}
		action := "failed"
		if strings.HasPrefix(status, "4.") && isDelayNotice(lower) {
			action = "delayed"
		}
		class := classify(action, status, own+" "+diag)
		r.Recipients = append(r.Recipients, Recipient{Address: a, Action: action, Status: status, Class: class, Diagnostic: diag})
	}
	if r.MessageID == "" {
		r.MessageID = inlineMessageID(m.text)
	}
}

// asciiLower lowers ASCII letters only, so that offsets in the result are
// offsets in s (strings.ToLower may change the length of invalid UTF-8).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func isDaemon(local string) bool { return slices.Contains(daemons, local) }

func isDelayNotice(lower string) bool {
	return containsAny(lower, []string{"will continue trying", "will retry", "still trying", "has been delayed", "delivery delayed", "not yet been delivered", "is delayed", "warning: message"})
}

// textStatus is the status said in s: an enhanced code, else a reply code
// with the words next to it, else words alone.
func textStatus(s string) string {
	if st := findStatus(s); st != "" {
		return st
	}
	p := phraseStatus(s)
	if m := replyRE.FindStringSubmatch(s); m != nil {
		c := m[1][:1]
		if p != "" {
			return c + p[1:]
		}
		return c + ".0.0"
	}
	return p
}

// defaultStatus is the status of a recipient whose own text says
// nothing: what the whole notice says, then its general tone.
func defaultStatus(text string) string {
	if s := textStatus(text); s != "" {
		return s
	}
	l := strings.ToLower(text)
	switch {
	case containsAny(l, []string{"permanent error", "failed permanently", "permanent failure", "fatal error", "permanently"}):
		return "5.0.0"
	case containsAny(l, []string{"temporary", "will retry", "will continue trying", "delayed"}):
		return "4.0.0"
	}
	return ""
}

// diagnosticLine picks the line that best explains a failure: the first
// with a status or reply code, else the first with a known phrase.
func diagnosticLine(s string) string {
	lines := strings.Split(s, "\n")
	for _, l := range lines {
		if findStatus(l) != "" || replyRE.MatchString(l) {
			return oneLine(l)
		}
	}
	for _, l := range lines {
		if phraseStatus(l) != "" {
			return oneLine(l)
		}
	}
	return ""
}

// findStatus returns the first enhanced status code in s that stands on
// its own (not part of an IP address or a version number).
func findStatus(s string) string {
	for _, loc := range statusRE.FindAllStringIndex(s, -1) {
		a, b := loc[0], loc[1]
		if a > 0 && (isDigit(s[a-1]) || s[a-1] == '.' || isLetter(s[a-1])) {
			continue
		}
		if b < len(s) && (isDigit(s[b]) || isLetter(s[b]) || (s[b] == '.' && b+1 < len(s) && isDigit(s[b+1]))) {
			continue
		}
		if st := statusCode(s[a:b]); st != "" {
			return st
		}
	}
	return ""
}

// statusCode validates an RFC 3463 status "c.sss.ddd".
func statusCode(s string) string {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || strings.IndexByte("245", parts[0][0]) < 0 {
		return ""
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 {
			return ""
		}
		for i := 0; i < len(p); i++ {
			if !isDigit(p[i]) {
				return ""
			}
		}
	}
	return s
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// phrases map the words of common replies to a status, first match wins.
var phrases = []struct {
	status string
	words  []string
}{
	{"4.2.2", []string{"mailbox full", "mailbox is full", "quota exceeded", "over quota", "exceeded storage", "exceeds storage", "insufficient storage", "exceed the quota", "exceeded the quota", "mailbox size limit", "storage limit", "quota exceed", "mailbox has exceeded", "mailbox exceeded"}},
	{"5.3.4", []string{"message too large", "message is too large", "message size exceeds", "message too big", "size limit", "exceeds the maximum size", "message length exceeds"}},
	{"5.1.1", unknownUser},
	{"5.1.2", []string{"host not found", "domain not found", "no such domain", "host unknown", "unrouteable address", "name service error", "domain does not exist", "host or domain name not found", "no mx"}},
	{"5.2.1", []string{"account disabled", "mailbox disabled", "account has been disabled", "account is disabled", "mailbox inactive", "account inactive", "account is inactive", "suspended"}},
	{"5.7.1", []string{"spam", "blocked", "blacklist", "blocklist", "denied", "rejected for policy", "policy", "not authorized", "unauthorized", "dmarc", "spf", "reputation"}},
	{"4.0.0", []string{"temporarily deferred", "try again later", "temporary failure", "temporarily rejected", "greylist", "temporarily unavailable", "try later", "deferred"}},
}

var unknownUser = []string{
	"user unknown", "unknown user", "no such user", "no such mailbox", "mailbox unavailable",
	"does not exist", "doesn't exist", "unknown recipient", "recipient unknown", "invalid recipient",
	"unknown address", "address unknown", "mailbox not found", "no mailbox", "no such recipient",
	"user not found", "recipient not found", "not a valid mailbox", "invalid mailbox", "no such account",
	"address rejected: user", "unknown local part", "addressee unknown", "not our customer",
	"mailbox unknown", "user doesn't have", "address not found", "unknown or illegal alias",
	"no longer available", "invalid address", "bad address", "not listed in",
}

// phraseStatus maps the words of s to a status, "" when none is known.
func phraseStatus(s string) string {
	l := strings.ToLower(s)
	for _, p := range phrases {
		if containsAny(l, p.words) {
			return p.status
		}
	}
	return ""
}

// blamesSender tells whether a failure text says that our envelope
// sender, not the recipient, was refused.
func blamesSender(s string) bool {
	l := strings.ToLower(s)
	return !saysUnknownUser(l) && containsAny(l, []string{"sender rejected", "sender address rejected", "sender denied", "sender refused"})
}

func saysUnknownUser(s string) bool {
	return containsAny(strings.ToLower(s), unknownUser)
}

// containsAny tells whether s contains one of words.
func containsAny(s string, words []string) bool {
	return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(s, w) })
}

// inlineMessageID finds the Message-ID of a message copied inline after
// the notice of a text bounce.
func inlineMessageID(text []string) string {
	for _, t := range text {
		for _, line := range strings.Split(t[len(notice(t)):], "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && strings.EqualFold(k, "Message-Id") {
				if id := messageID(v); id != "" {
					return id
				}
			}
		}
	}
	return ""
}

// inlineHeader reads the header of a message copied inline after the
// notice of a text bounce, nil when there is none.
func inlineHeader(text []string) textproto.MIMEHeader {
	for _, t := range text {
		rest := strings.TrimLeft(t[len(notice(t)):], "\r\n")
		// Skip the rule line that announces the copy.
		if l, after, ok := strings.Cut(rest, "\n"); ok && isCopyStart(l) && !strings.Contains(l, ":") {
			rest = after
		}
		if h, _ := parseHeader([]byte(rest)); len(h) > 0 && (h.Get("To") != "" || h.Get("Message-Id") != "") {
			return h
		}
	}
	return nil
}

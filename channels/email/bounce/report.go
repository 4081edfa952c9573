package bounce

import (
	"strings"
)

// Report kinds.
const (
	KindDSN       = "dsn"       // a delivery status notification, RFC 3464 or an MTA's own text
	KindARF       = "arf"       // a complaint: RFC 5965 feedback report, Microsoft JMRP, or an unsubscribe request (FeedbackType opt-out)
	KindAutoReply = "autoreply" // an RFC 3834 auto-reply (out of office): not a bounce
	KindUnknown   = "unknown"   // none of the above
)

// Recipient classes. A delivered, relayed or expanded recipient of a
// success DSN has an empty Class.
const (
	ClassHard        = "hard"        // the address does not work: suppress it
	ClassSoft        = "soft"        // may work later: suppress only when repeated
	ClassDelay       = "delay"       // delivery is still being tried (Action: delayed)
	ClassComplaint   = "complaint"   // the recipient reported the message as spam
	ClassUnsubscribe = "unsubscribe" // the recipient asked to get no more (an unsubscribe mail)
)

// MaxRecipients is the most recipients a Report holds; a report naming
// more is cut.
const MaxRecipients = 100

// maxDiagnostic is the length limit of Recipient.Diagnostic, in bytes.
const maxDiagnostic = 500

// Report is what a bounce, complaint or auto-reply says.
type Report struct {
	// Kind is KindDSN, KindARF, KindAutoReply or KindUnknown.
	Kind string
	// Recipients are the recipients the report is about: one per
	// per-recipient block of a DSN, the failed addresses of a non-RFC
	// bounce, the one complaining recipient of an ARF report. Empty for
	// auto-replies and unknown mails.
	Recipients []Recipient
	// FeedbackType is the ARF Feedback-Type (abuse, fraud, virus, other,
	// not-spam...), lower case; "abuse" for a JMRP complaint, "opt-out"
	// for an unsubscribe request.
	FeedbackType string
	// MessageID is the Message-ID of the original message, the one we
	// sent, without angle brackets, when the report returns it or its
	// headers (for an auto-reply: its In-Reply-To).
	MessageID string
	// OriginalRecipient is, for an ARF report, the Original-Rcpt-To or
	// else the To of the original message.
	OriginalRecipient string
	// ReportingMTA is the DSN or ARF Reporting-MTA, without its "dns;"
	// type.
	ReportingMTA string
}

// Recipient is the outcome for one recipient.
type Recipient struct {
	// Address is the recipient's address: the DSN Original-Recipient,
	// the address we gave (Final-Recipient when there is no valid
	// Original-Recipient, as after an alias it names another box), the
	// failed address of a non-RFC bounce, the complaining address of an
	// ARF report (may be empty when the report redacts it).
	Address string
	// Action is failed, delayed, delivered, relayed or expanded; empty
	// for complaints.
	Action string
	// Status is the RFC 3463 enhanced status, "5.1.1", given by the
	// report or derived from its text; empty when nothing says.
	Status string
	// Class is ClassHard, ClassSoft, ClassDelay or ClassComplaint (empty
	// for delivered, relayed and expanded).
	Class string
	// Diagnostic is the remote server's reply or the report's own words,
	// on one line, at most 500 bytes.
	Diagnostic string
}

// LocalVERP returns the token of a VERP envelope recipient
// "<prefix>+<token>@<domain>". The prefix is matched without regard to
// case; the token keeps its case. The domain is not checked. ok is false
// when rcpt has another form or the token is empty, longer than 256 bytes,
// or holds a character outside printable ASCII or one of `"(),:;<>@[\]`.
func LocalVERP(rcpt, prefix string) (token string, ok bool) {
	rcpt = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(rcpt), "<"), ">")
	at := strings.LastIndexByte(rcpt, '@')
	if at < 0 || prefix == "" {
		return "", false
	}
	local := rcpt[:at]
	if len(local) <= len(prefix)+1 || !strings.EqualFold(local[:len(prefix)], prefix) || local[len(prefix)] != '+' {
		return "", false
	}
	token = local[len(prefix)+1:]
	if len(token) > 256 {
		return "", false
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),:;<>@[\]`, c) >= 0 {
			return "", false
		}
	}
	return token, true
}

// classify returns the Class of a recipient from its action, status and
// diagnostic text.
//
// The policy, for suppression:
//   - Action delayed: delay, whatever the status.
//   - delivered, relayed, expanded: no class.
//   - 4.x.x: soft.
//   - 5.2.2 (mailbox full), 5.2.3 and 5.3.4 (message too big): soft. The
//     address works; this message or this moment did not.
//   - 5.7.x (policy, spam, reputation blocks): soft, unless the text says
//     that the user or address is unknown, which some receivers report
//     under 5.7.1. A block says something about us, not about the address:
//     suppressing on it would drop good addresses after one bad day.
//   - 5.1.7, 5.1.8, and 5.1.x whose text says the sender was refused:
//     soft, for the same reason.
//   - other 5.x.x: hard.
//   - no status: soft. A failure nothing explains counts as soft; repeated
//     soft bounces still suppress.
func classify(action, status, text string) string {
	switch action {
	case "delayed":
		return ClassDelay
	case "delivered", "relayed", "expanded":
		return ""
	}
	switch {
	case strings.HasPrefix(status, "4."):
		return ClassSoft
	case status == "5.2.2", status == "5.2.3", status == "5.3.4":
		return ClassSoft
	case status == "5.1.7", status == "5.1.8", strings.HasPrefix(status, "5.1.") && blamesSender(text):
		return ClassSoft
	case strings.HasPrefix(status, "5.7."):
		if saysUnknownUser(text) {
			return ClassHard
		}
		return ClassSoft
	case strings.HasPrefix(status, "5."):
		return ClassHard
	}
	return ClassSoft
}

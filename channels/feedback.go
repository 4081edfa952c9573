package channels

import "time"

// FeedbackKind is what a provider reported about a message after it left.
// Every intake (DSN and ARF mails, the email providers' webhooks, Twilio's
// status callbacks) speaks this one vocabulary; dispatcher decides what
// each kind does to the send, the suppression list and the run.
type FeedbackKind string

const (
	// Delivered: the recipient's server or handset took it.
	Delivered FeedbackKind = "delivered"
	// HardBounce: the address does not exist or will never take mail
	// (SMTP 5.x.x in a DSN, Twilio 30005/30006/21211/21614).
	HardBounce FeedbackKind = "hard_bounce"
	// SoftBounce: a temporary refusal the provider gave up on (mailbox
	// full, 4.x.x after retries, Twilio 30003).
	SoftBounce FeedbackKind = "soft_bounce"
	// Complaint: the recipient marked it as spam (ARF report, ESP event).
	Complaint FeedbackKind = "complaint"
	// OptedOut: the carrier says the number replied STOP (Twilio 21610).
	OptedOut FeedbackKind = "opted_out"
	// Unsubscribed: the recipient asked their mailbox provider to
	// unsubscribe them (an unsubscribe mail, Apple's button): they leave
	// the message's topic; it is not a spam report.
	Unsubscribed FeedbackKind = "unsubscribed"
	// Undelivered: the provider failed it for a reason that is not the
	// recipient's (filtered by a carrier, 30007...).
	Undelivered FeedbackKind = "undelivered"
)

// Feedback is one piece of news from a provider about a message: a DSN or
// ARF report, an email provider's webhook event, a Twilio status callback.
type Feedback struct {
	// Send is the send id, when the feedback names it (VERP, Message-ID,
	// a provider id Missive recorded). Empty: Channel and Address say who.
	Send    string
	Channel Kind
	// Address is the recipient's address or number; it is only hashed.
	Address Address
	Kind    FeedbackKind
	// Code is the provider's code: an enhanced status ("5.1.1") or a
	// Twilio error code ("30005").
	Code string
	// Source names the intake: dsn, arf, ses, sendgrid, mailgun, postmark,
	// twilio.
	Source string
	// EventID is the provider's id of the event, when it gives one, so that
	// a redelivered webhook is applied once. Empty: none.
	EventID string
	At      time.Time
}

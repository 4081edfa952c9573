// Package bounce reads what comes back after Missive sends an email:
// delivery status notifications, complaints and auto-replies, and runs the
// SMTP server that receives them on the VERP bounce domain.
//
// Parse turns one mail into a Report:
//
//   - RFC 3464 reports (multipart/report; report-type=delivery-status, with
//     message/delivery-status or message/global-delivery-status): one
//     Recipient per per-recipient block, Status from the report, refined
//     by the Diagnostic-Code when the report only says x.0.0;
//   - the text bounces of MTAs that do not write RFC 3464 (Exim, qmail,
//     Yahoo, Gmail, Exchange, old Sendmail...): the failed addresses come
//     from X-Failed-Recipients or from the notice before the returned
//     copy, the status from an enhanced code next to each address, else
//     from an SMTP reply code and common phrases ("user unknown" → 5.1.1,
//     "mailbox full" → 4.2.2, "message too large" → 5.3.4...);
//   - RFC 5965 complaints (report-type=feedback-report): Kind "arf", one
//     Recipient of class "complaint" (of class "unsubscribe" for
//     Feedback-Type opt-out); Yahoo's and AOL's redacted
//     recipient is left empty (the VERP token says whose it is);
//   - Microsoft JMRP complaints (Outlook.com, Hotmail) in their own
//     format, the returned message with X-HmXmrOriginalRecipient: Kind
//     "arf", FeedbackType "abuse";
//   - unsubscribe requests that mailbox providers send to a
//     List-Unsubscribe mailto: address (Apple Mail's X-Apple-Unsubscribe,
//     the subject "unsubscribe"), even when marked as auto-replies: Kind
//     "arf", FeedbackType "opt-out", the sender as the recipient, of class
//     "unsubscribe";
//   - RFC 3834 auto-replies (Auto-Submitted: auto-replied, X-Autoreply,
//     Precedence: auto_reply, "Out of Office" subjects): Kind
//     "autoreply", no recipients.
//
// MessageID is the Message-ID of the message we sent, taken from the
// returned message or its headers: with the VERP token it ties a report to
// its send.
//
// Class is the suppression policy in one word: hard (suppress), soft
// (suppress when repeated), delay, complaint, unsubscribe (the person
// leaves the list; not a spam report). 5.x.x is hard except 5.2.2
// (mailbox full), 5.2.3 and 5.3.4 (our message too big), 5.1.7, 5.1.8 and
// "sender rejected" (our sender refused) and 5.7.x (policy, spam and
// reputation blocks), which are soft: they say something about the
// message or about us, not about the address. A 5.7.x whose text says the
// user is unknown is hard. A failure without any status is soft.
//
// Over the 136 real samples in testdata/samples (Sisimai's set-of-emails),
// 131 yield at least one recipient (TestCorpus); the others name nobody
// or are not bounces.
//
// The Listener is an SMTP server (go-smtp) for the bounce domain. It
// accepts any MAIL FROM, the null sender first of all, and only
// RCPT TO:<prefix+token@domain>; anything else gets 550 5.7.1, so it is no
// relay and, never sending mail itself, causes no backscatter. With
// CheckToken set, a recipient whose VERP MAC does not verify is refused at
// RCPT too, so a forged report is never read. It keeps at most
// MaxSessions sessions open (16; one more is answered 421 4.3.2 and
// closed), takes at most 10 recipients and MaxSize bytes per message
// (2 MiB; more gets 552 5.3.4), parses the message straight from the
// bounded SMTP reader, and calls Handle once per token. A Handle error answers 451 4.3.0 so that the sending MTA
// retries; a report that cannot be parsed is accepted and dropped, since
// refusing it would bounce a bounce. Logs carry kinds and counts, never
// an address, a token or message content.
//
//	l, err := bounce.Listen(bounce.ListenerConfig{
//		Addr:   ":2525",
//		Domain: "bounce.example.com", // MX of the VERP return path
//		Handle: func(ctx context.Context, sendID string, r *bounce.Report) error {
//			for _, rc := range r.Recipients {
//				if err := feedback.Record(ctx, sendID, r.Kind, rc.Class, rc.Status); err != nil {
//					return err // 451: the MTA retries
//				}
//			}
//			return nil
//		},
//	})
//	if err != nil {
//		return err
//	}
//	defer l.Close()
package bounce

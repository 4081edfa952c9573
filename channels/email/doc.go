// Package email sends Missive's email through an SMTP relay with go-mail.
//
// A Sender keeps Config.Connections SMTP connections open and hands each to
// one goroutine at a time, so many workers can call Send concurrently while
// the relay sees a few long-lived sessions. Send classifies every failure as
// a *channels.Error:
//
//   - Permanent: a 5xx reply (Code is the enhanced status, "5.1.1", or the
//     reply code, "550"), or a message that cannot be built. Do not retry.
//   - Temporary: a 4xx reply, a connection, TLS or timeout failure before the
//     message data was complete, a cancelled context. Retry later.
//   - Ambiguous: the connection failed after the end of the data and before
//     the reply: the relay may have queued the message. Do not resend blindly.
//
// Errors never contain an address or the body: go-mail's errors and relays'
// replies quote the recipient, so only the step and the codes are kept.
//
// Build is the message layout shared with channels/outbox.
//
//	sender, err := email.New(email.Config{
//		URL:  "smtp://user:pass@smtp.example.com:587", // STARTTLS when offered
//		From: "Missive News <news@example.com>",
//	})
//	if err != nil {
//		return err
//	}
//	defer sender.Close()
//	res, err := sender.Send(ctx, channels.Message{
//		ID: sendID, Channel: channels.Email, To: addr,
//		Subject: "Spring news", Text: text, HTML: html,
//		Headers: map[string]string{
//			"List-Unsubscribe":      "<https://example.com/u/TOKEN>",
//			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
//		},
//	})
//	switch channels.KindOf(err) {
//	case channels.Permanent: // suppress the address
//	case channels.Temporary: // retry with backoff
//	case channels.Ambiguous: // record, do not resend
//	}
//	_ = res.ProviderID // the Message-ID, "<sendID@example.com>"
//
// Package smtptest runs a real SMTP server for tests of this package and of
// its callers.
package email

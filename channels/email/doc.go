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
//   - Sender: the relay refuses our envelope sender (5xx to MAIL FROM) or
//     credentials, or the DKIM key fails to sign. No message can go until
//     an operator acts.
//
// SendBatch (channels.BatchChannel) sends several messages over one
// connection, in order, after one call to the batch's Claim, and returns
// an Outcome each. Where the relay offers PIPELINING (RFC 2920) their
// commands are pipelined: the data of one message leaves with the MAIL
// FROM, RCPT TO and DATA of the next, and a message costs one round trip
// instead of four (two for Send alone); without it each command waits for
// its reply. A refused recipient fails its message only; a refused sender
// fails the rest of the batch, unsent. When the connection is lost, the
// message whose data had ended is Ambiguous, and those after it, which
// never left, go over a new connection (Temporary when none can be had).
// BenchmarkSendBatch compares the two.
//
//	out := sender.SendBatch(ctx, channels.Batch{
//		Messages: msgs,
//		Claim: func(ctx context.Context, idx []int) []error {
//			return claimSends(ctx, idx) // nil for each message that may go
//		},
//	})
//	for i, o := range out {
//		record(msgs[i].ID, o.Result.ProviderID, channels.KindOf(o.Err))
//	}
//
// Errors never contain an address or the body: go-mail's errors and relays'
// replies quote the recipient, so only the step and the codes are kept.
//
// Build is the message layout shared with channels/outbox.
//
// With Config.DKIM set, every message is signed (RFC 6376, relaxed/relaxed,
// SHA-256) with an RSA key of 2048 bits or more or an Ed25519 key, and the
// DKIM-Signature field comes first in what the relay receives. h= lists
// From, To, Subject, Date, Message-ID, MIME-Version, Content-Type, List-Id,
// List-Unsubscribe and List-Unsubscribe-Post when present, as RFC 8058
// one-click unsubscribe requires. Publish the public key at
// <Selector>._domainkey.<Domain>. Without it (the default) nothing is
// signed and the relay may sign instead. One RSA-2048 signature costs about
// 0.8 ms of CPU, an Ed25519 one about 0.05 ms (BenchmarkDKIMSignature);
// large senders should prefer Ed25519 where receivers accept it, or sign
// with both.
//
//	key, err := email.ParseDKIMKey(pemBytes) // PKCS#1 or PKCS#8, RSA or Ed25519
//	if err != nil {
//		return err
//	}
//	cfg.DKIM = &email.DKIM{Domain: "example.com", Selector: "missive1", PrivateKey: key}
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

// Package esp reads the webhooks of the email service providers Missive
// sends through, Amazon SES (via SNS), SendGrid, Mailgun and Postmark, and
// owns the Message-ID that ties their events to a send.
//
// Its one job is the providers' protocols: from a request's raw parts (the
// body, the headers, the time now) a reader authenticates the request as
// its provider does (SNS certificate signatures, SendGrid's ECDSA and
// Mailgun's HMAC signatures, freshness windows, Postmark's basic auth) and
// turns its events into channels.Feedback, with addresses normalised and
// codes reduced to a status. It routes nothing and stores nothing: the
// caller reads the body, answers, takes each Mailgun token and each
// Feedback.EventID once, and records the feedback. The only I/O is SNS's:
// CertCache fetches signing certificates, SNS.Confirm a subscription,
// through the caller's *http.Client.
//
// A refused request is an *Error whose Status is the HTTP status to
// answer (400 malformed, 401 Postmark credentials, 403 forged, stale or off
// the rules, 502 and 503 for SNS to retry) and whose Field names the part
// at fault. Errors never hold an address, a token or a body.
//
// MessageIDLocal writes the left part of a Message-ID from a send id;
// SendIDFromMessageID reads it back from a provider's event.
//
//	mg, err := esp.NewMailgun(signingKey)
//	if err != nil {
//		return err // not configured: do not serve the webhook
//	}
//	// in the handler:
//	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
//	...
//	ev, token, err := mg.Parse(body, time.Now())
//	var e *esp.Error
//	if errors.As(err, &e) {
//		writeError(w, e.Status, e.Field, e.Message)
//		return
//	}
//	if !claimOnce(ctx, "mailgun-token", token, esp.MailgunTokenTTL) {
//		e = esp.MailgunTokenReused()
//		writeError(w, e.Status, e.Field, e.Message)
//		return
//	}
//	for _, f := range ev.Feedback {
//		record(ctx, f) // once per f.EventID
//	}
package esp

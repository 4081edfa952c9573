// Package sms delivers Missive's text messages through Twilio's Programmable
// Messaging API, using the official twilio-go client.
//
// A Sender implements channels.Channel. It sends from a phone number in E.164
// or through a Messaging Service (a sender "MG…"), asks Twilio to report
// delivery to an optional status callback URL, and classifies every failure
// into a *channels.Error:
//
//   - Temporary: HTTP 429 or error 20429 (too many concurrent requests: the
//     message was never processed), HTTP 5xx, errors 30001 (queue overflow)
//     and 30003 (handset unreachable), and network errors before the
//     request was written. RetryIn carries Retry-After when Twilio sends it.
//   - Permanent: any other 4xx, with Code set to the Twilio error code, for
//     example "21211" (invalid To), "21614" (not a mobile number) or "21610"
//     (the recipient replied STOP). The wrapped *APIError tells whether the
//     failure concerns the recipient (APIError.Recipient), so that callers
//     suppress an address only when the address is at fault and not, say,
//     after a wrong auth token (20003). Feedback says what the refusal
//     tells of the recipient (HardBounce for 21211, 21614, 30005, 30006;
//     OptedOut for 21610; empty otherwise), so that a caller needs no
//     table of Twilio's codes.
//   - Sender: the account or the sender is refused (20003 authentication,
//     21212, 21603, 21606, 21408 region not enabled, HTTP 401). Retry once
//     an operator has acted; never blame the recipient.
//   - Ambiguous: the request left but no answer came back (timeout, context
//     cancelled, connection reset while waiting). Twilio may have queued the
//     message; retrying could send it twice.
//
// What each Twilio error code means lives in one table, in package
// channels/sms/twilioproto, which the dispatcher's webhooks (status
// callbacks, inbound STOP, signatures) read too without importing
// twilio-go.
//
// Errors never contain the phone number, the body or the auth token: Twilio's
// own error messages can quote the number, so they are replaced by Missive's
// text.
//
// twilio-go builds https://api.twilio.com URLs itself and does not take a
// context. The Sender gives it an HTTP client whose transport binds each
// request to the caller's context (cancellation and deadline abort the call)
// and, when Config.APIURL is set, rewrites scheme and host, so that the same
// code talks to a regional edge or to the twiliotest double.
//
// Example:
//
//	s, err := sms.New(sms.Config{
//		AccountSID: os.Getenv("TWILIO_ACCOUNT_SID"),
//		AuthToken:  os.Getenv("TWILIO_AUTH_TOKEN"),
//		From:       os.Getenv("MISSIVE_SMS_FROM"),
//	})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	res, err := s.Send(ctx, channels.Message{To: "+33612345678", Body: "Hello. STOP au 36xxx"})
//	switch channels.KindOf(err) {
//	case 0:
//		log.Print("queued as ", res.ProviderID)
//	case channels.Permanent:
//		// do not retry; suppress the number if errors.As(err, &apiErr) && apiErr.Recipient()
//	default:
//		// retry later
//	}
package sms

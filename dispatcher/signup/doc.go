// Package signup runs double opt-in (GDPR Art. 7(1), CNIL practice): a
// sign-up from a public form leaves a pending record for 48 hours and
// sends a confirmation, through the one send path, with a link (email) or
// a YES reply (SMS); the confirmation grants the chosen marketing topics
// once, with the form, wording and confirmation in the ledger's evidence.
//
// A sign-up comes from a public, unauthenticated form that bots attack.
// Nothing is granted until the person confirms from the address they
// gave: by the link of the confirmation email, or by replying YES to the
// confirmation SMS (ConfirmSMSOptIn, called by the Twilio inbound
// webhook).
//
// What the request leaves behind until then is a pending record,
// P:pending:<sha256 of the token>, kept 48 hours; the consent ledger gets
// its Granted events, with the evidence, only at confirmation. An address
// that is no contact yet is held, sealed, by a provisional record kept as
// long (the confirmation is sent to it), which neither segments nor
// lookups by address find: no campaign reaches an unconfirmed address.
// The contact is made when the sign-up is confirmed, or the consents go
// to the contact that holds the address by then.
//
// Confirmations are limited per mailbox (3 an hour): sub-addresses
// (name+tag@) and, at providers that ignore them, dots reach one inbox
// and share its limit (Mailbox).
//
// The answer to POST /subscribe is the same, in status, body and time,
// whether the address is known, unknown, already subscribed, suppressed
// or over its own limit, so that the form cannot be used to find out who
// is on the list.
//
// Delivery of the confirmation. The confirmation is a send like any
// other, through the one send path (sendConfirmation): the gate (a
// suppressed address gets nothing; quiet hours do not hold back a message
// the person has just asked for), a send record in a run of the
// "signup" pseudo-campaign, the queue, the claim before the provider call
// and its one policy for ambiguous outcomes, the provider's rate limit,
// feedback on a refusal. Its text, with the link, is rendered at send time
// from the pending record (confirmationData): the send record names the
// pending sign-up by h, the queue holds ids only, and the token is
// HMAC(key, nonce), so neither the queue nor Redis holds anything that
// opens the link.
//
//	s, err := signup.New(signup.Config{Store: st, Pipeline: p, Limiter: lim, Secret: secret})
//	err = s.Submit(ctx, &signup.Input{Topics: []string{"newsletter"}, Channel: channels.Email, Address: addr}, ipHash, ua)
package signup

// Package signup runs double opt-in (GDPR Art. 7(1), CNIL practice): a
// sign-up from a public form leaves a pending record for 48 hours and
// sends a confirmation, through the one send path, with a link (email) or
// a YES reply (SMS); the confirmation grants the chosen marketing topics
// once, with the form, wording and confirmation in the ledger's evidence.
// A sign-up never tells whether the address was known, suppressed or over
// its limit.
//
//	s, err := signup.New(signup.Config{Store: st, Pipeline: p, Limiter: lim, Secret: secret})
//	err = s.Submit(ctx, &signup.Input{Topics: []string{"newsletter"}, Channel: channels.Email, Address: addr}, ipHash, ua)
package signup

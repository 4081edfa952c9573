// Package feedback decides what provider feedback means: a delivery
// report, a bounce, a complaint, a carrier's opt-out, from any intake
// (DSN and ARF mails, email providers' webhooks, Twilio status callbacks,
// a refusal at send time), all in the one channels.Feedback vocabulary.
// A send's state moves forward only, the suppression list and the consent
// ledger follow the Policy, the run's feedback counters and the analytics
// of its run and topic (under the provider group recorded with the send)
// move once per send and kind, and a run whose bounce or complaint rate passes the policy
// pauses its campaign. It also makes and reads VERP return paths, which
// tie a bounce to its send.
//
//	h, err := feedback.New(feedback.Config{Store: st, Consent: cm, Runs: p, Secret: secret})
//	err = h.RecordDelivery(ctx, channels.Feedback{Send: id, Kind: channels.HardBounce, Source: "ses"})
package feedback

// Package gate decides, before any message leaves, whether it may go and
// when: the checks of the design, in order, one reason each: an address
// usable on the channel, suppression, consent for a marketing topic and
// the recipient's pause (paused_by_recipient), frequency caps (the
// operator's, capped, and the pace the recipient chose per topic,
// recipient_frequency), quiet hours in the recipient's zone (and, for a
// marketing topic, the days and hours they prefer, inside the quiet
// hours). Rate limits apply later, at send time. It reads what it needs through a small Loader (the
// store) and reserves caps through a Reserver (throttle.Caps).
//
//	g := gate.New(gate.Config{Loader: st, Caps: caps, Quiet: calendars})
//	decisions, err := g.Decide(ctx, time.Now(), gate.Job{Run: run, Campaign: c, Topic: t}, contacts)
package gate

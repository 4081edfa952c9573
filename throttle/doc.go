// Package throttle holds the limits in time that every Missive message goes
// through, shared by all workers through Redis:
//
//   - frequency caps per contact and channel (optionally per topic, or for
//     marketing sends only) over rolling windows: [Caps], configured with
//     [ParseCapRules], plus the caps a contact chose, passed with each
//     request ([CapRequest].Rules) and told apart by [Caps.ReserveEach];
//   - quiet hours in the recipient's time zone, with weekday windows and
//     holidays: [Calendar], [ParseCalendar], [DefaultSMSCalendar] (the
//     French practice for marketing SMS) and [AlwaysOpen]; [NextOpenAll]
//     finds the first minute several calendars share (a recipient's
//     preferred hours inside the quiet hours);
//   - rate limits (provider, campaign) with the generic cell rate algorithm:
//     [Limiter], [ParseRate], and [LimitError] to hand a throttled task back
//     to its queue, since throttling is not a failure.
//
// Time is injected: calls that depend on it take now (caps) or the instant
// to decide for (calendars). Rate limits are the exception: they run on the
// Redis server's clock, the one clock all workers share.
//
// A worker deciding a batch of sends:
//
//	caps := throttle.NewCaps(rdb, "missive", rules) // rules from ParseCapRules("email:marketing:2/7d, sms:1/24h")
//	ok, err := caps.ReserveMany(ctx, now, reqs)     // one round trip for the batch
//	...
//	sms := throttle.DefaultSMSCalendar(now.Year(), now.Year()+1)
//	if at := sms.NextOpen(now, recipientLoc); !at.Equal(now) {
//		// defer the send until at (plus jitter)
//	}
//	...
//	n, wait, err := limiter.Reserve(ctx, "twilio", rate, len(batch), 2*time.Second)
//	// n == 0: return &throttle.LimitError{RetryIn: wait}; else sleep wait,
//	// send batch[:n] and reserve again for the rest: no polling
//
// Cap keys carry a hash tag per contact ({contact}), so each contact's
// script stays on one Redis Cluster slot.
package throttle

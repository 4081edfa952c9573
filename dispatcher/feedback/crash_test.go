package feedback_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
	"github.com/missive-dev/missive/dispatcher/feedback"
	"github.com/missive-dev/missive/dispatcher/testkit"
	"github.com/missive-dev/missive/throttle/redistest"
)

// A bounce whose handler died once it had claimed the report, before it
// applied it, is applied by the provider's retry: the claim of a report
// being applied is a short lease, not the mark of one applied.
func TestReportClaimedBeforeACrashIsAppliedByTheRetry(t *testing.T) {
	t.Parallel()
	b, send := setupSent(t, channels.Email)
	ctx := context.Background()
	h, err := feedback.New(feedback.Config{Store: b.st, Consent: consent.New(b.st, b.clock.Now), Runs: b.runs,
		Secret: secret, BounceDomain: bounceDomain, Now: b.clock.Now, Logger: slog.New(slog.DiscardHandler),
		ClaimLease: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	crash := redistest.CrashAfter(b.r.Client, redistest.Write("set", b.st.Key("fb", send, string(channels.HardBounce))))
	ev := channels.Feedback{Send: send, Kind: channels.HardBounce, Code: "5.1.1", Source: "ses"}
	if err := h.RecordDelivery(ctx, ev); err == nil {
		t.Fatal("the first try, its process dead, did not fail")
	}
	crash.Revive(t)

	// The provider retries until the report is taken.
	testkit.WaitFor(t, "the retry to apply the bounce", 5*time.Second, func() bool {
		return h.RecordDelivery(ctx, ev) == nil
	})
	mustRecord(t, h, ev) // a duplicate: changes nothing
	got := b.outcome(t, send)
	if got.State != dispatcher.StateBounced || got.Suppression == nil || got.Suppression.Reason != dispatcher.SuppressBounce ||
		got.Feedback[feedback.FeedbackHardBounces] != 1 {
		t.Errorf("after the retry: %+v; want bounced, suppressed for bounce, counted once", got)
	}
}

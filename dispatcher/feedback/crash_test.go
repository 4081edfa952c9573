package feedback_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/consent"
	"github.com/missive-dev/missive/dispatcher/feedback"
	"github.com/missive-dev/missive/dispatcher/testkit"
)

// diesAfter lets the first SET NX of key through and then fails its reply
// and every command after it until it is revived: the process died right
// after it took the claim, and wrote nothing more (not even a release).
type diesAfter struct {
	key         string
	armed, dead atomic.Bool
}

var errDead = errors.New("connection reset")

func (h *diesAfter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *diesAfter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		err := next(ctx, cmd)
		if args := cmd.Args(); err == nil && cmd.Name() == "set" && len(args) > 1 && args[1] == h.key && h.armed.CompareAndSwap(true, false) {
			h.dead.Store(true)
			return errDead
		}
		return err
	}
}

func (h *diesAfter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		return next(ctx, cmds)
	}
}

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
	hook := &diesAfter{key: b.st.Key("fb", send, string(channels.HardBounce))}
	hook.armed.Store(true)
	b.r.Client.AddHook(hook)
	ev := channels.Feedback{Send: send, Kind: channels.HardBounce, Code: "5.1.1", Source: "ses"}
	if err := h.RecordDelivery(ctx, ev); err == nil {
		t.Fatal("the first try, its process dead, did not fail")
	}
	hook.dead.Store(false)

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

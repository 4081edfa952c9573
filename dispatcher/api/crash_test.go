package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels/email/esp/esptest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/testkit"
)

// diesAfterClaim lets the first SET NX of a key holding part through,
// then fails its reply and every command after it until revived: the
// process died right after it took the claim, and wrote nothing more (not
// even the claim's release).
type diesAfterClaim struct {
	part        string
	armed, dead atomic.Bool
}

var errDead = errors.New("connection reset")

func (h *diesAfterClaim) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *diesAfterClaim) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		err := next(ctx, cmd)
		args := cmd.Args()
		if err == nil && cmd.Name() == "set" && len(args) > 1 && strings.Contains(fmt.Sprint(args[1]), h.part) && h.armed.CompareAndSwap(true, false) {
			h.dead.Store(true)
			return errDead
		}
		return err
	}
}

func (h *diesAfterClaim) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		return next(ctx, cmds)
	}
}

// An email provider's bounce whose handler died once it had claimed the
// event (or Mailgun's token) is applied by the provider's retry: a claim
// is a short lease until the event is recorded, not the mark of one
// recorded.
func TestESPEventClaimedBeforeACrashIsAppliedByTheRetry(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ provider, claim string }{
		{"sendgrid", ":esp:sendgrid:event:"},
		{"mailgun", ":esp:mailgun:event:"},
		{"mailgun", ":mailgun:token:"},
	} {
		t.Run(tt.provider+" "+tt.claim, func(t *testing.T) {
			t.Parallel()
			aws := newAWS(t)
			b := setup(t, withESP(aws), withConfig(func(c *app.Config) { c.FeedbackClaimLease = 100 * time.Millisecond }))
			h := &espHarness{b: b, aws: aws, mids: map[string]string{}, srv: b.srv}
			var body []byte
			var hdr http.Header
			switch tt.provider {
			case "sendgrid":
				body = sendgridEvents(t, esptest.SendGridEvent("Bounce", "", "gone@example.org"))
				hdr = sendgridHeaders(t, body, time.Now())
			case "mailgun":
				body = esptest.MailgunBody(t, mailgunEventData("failed", "permanent", "", "gone@example.org"), esptest.MailgunKey, time.Now(), newToken(t))
				hdr = http.Header{"Content-Type": {"application/json"}}
			}
			hook := &diesAfterClaim{part: tt.claim}
			hook.armed.Store(true)
			b.redis.Client.AddHook(hook)
			if r := h.post(t, tt.provider, body, hdr); r.status < 500 {
				t.Fatalf("first delivery, its process dead after the claim: %d %s", r.status, r.body)
			}
			hook.dead.Store(false)
			if hook.armed.Load() {
				t.Fatal("the claim was never taken")
			}

			// The provider retries the same request until it is taken.
			testkit.WaitFor(t, "the retry to be recorded", 5*time.Second, func() bool {
				return h.post(t, tt.provider, body, hdr).status == http.StatusOK
			})
			if got := h.suppression(t, "gone@example.org"); got != dispatcher.SuppressBounce {
				t.Errorf("suppression after the retry %q, want %q", got, dispatcher.SuppressBounce)
			}
		})
	}
}

// diesAfterWriteTo lets the first pipeline or transaction that writes
// (HSET) to key through, then fails its reply and every command after it
// until revived: the process died right after that write.
type diesAfterWriteTo struct {
	key         string
	armed, dead atomic.Bool
}

func (h *diesAfterWriteTo) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *diesAfterWriteTo) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		return next(ctx, cmd)
	}
}

func (h *diesAfterWriteTo) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		err := next(ctx, cmds)
		writes := slices.ContainsFunc(cmds, func(c redis.Cmder) bool {
			args := c.Args()
			return c.Name() == "hset" && len(args) > 1 && args[1] == h.key
		})
		if err == nil && writes && h.armed.CompareAndSwap(true, false) {
			h.dead.Store(true)
			return errDead
		}
		return err
	}
}

// A run whose starter died once it had recorded the firing on its
// campaign, before it enqueued the plan, is planned all the same: the
// scheduler will not fire that time again, and the reconciler enqueues
// the plan of a run still waiting for one.
func TestRunStartDiedBeforeItsPlanIsPlanned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	seedMailing(t, b, 3)
	hook := &diesAfterWriteTo{key: b.d.Store.Key("campaigns")}
	hook.armed.Store(true)
	b.redis.Client.AddHook(hook)
	fire := time.Now()
	if _, err := b.d.Pipeline.StartRun(ctx, "mailing", fire); err == nil {
		t.Fatal("StartRun, its process dead after the campaign's update: no error")
	}
	hook.dead.Store(false)
	if hook.armed.Load() {
		t.Fatal("the campaign was never updated")
	}
	c, err := b.d.Store.Campaign(ctx, "mailing")
	must(t, err)
	if !c.LastFire.Equal(fire.Truncate(time.Second)) && !c.LastFire.Equal(fire) {
		t.Fatalf("campaign's last fire %v, want %v: the test proves nothing", c.LastFire, fire)
	}

	b.startWorker(t)
	if _, err := b.d.Pipeline.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	b.waitRun(t, c.LastRun, 20*time.Second)
	assertEachOnce(t, b, 3)
}

// diesAfterCmd lets the first command that match accepts through, then
// fails its reply and every command after it until revived: the process
// died right after that command.
type diesAfterCmd struct {
	match       func(redis.Cmder) bool
	armed, dead atomic.Bool
}

func (h *diesAfterCmd) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *diesAfterCmd) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		err := next(ctx, cmd)
		if err == nil && h.match(cmd) && h.armed.CompareAndSwap(true, false) {
			h.dead.Store(true)
			return errDead
		}
		return err
	}
}

func (h *diesAfterCmd) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.dead.Load() {
			return errDead
		}
		return next(ctx, cmds)
	}
}

// A webhook event whose hand-over to the queue died half way, once it was
// read from the outbox or once its task was enqueued, is delivered, once.
func TestWebhookHandOverDiedIsDeliveredOnce(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		match func(b *testBundle, cmd redis.Cmder) bool
	}{
		{"after reading the outbox", func(b *testBundle, cmd redis.Cmder) bool {
			args := cmd.Args()
			return cmd.Name() != "lpush" && len(args) > 1 && args[1] == b.d.Store.Key("wh", "outbox")
		}},
		{"after enqueueing its task", func(b *testBundle, cmd redis.Cmder) bool {
			return strings.HasPrefix(cmd.Name(), "eval") && strings.Contains(fmt.Sprint(cmd.Args()), "asynq:{"+b.d.Pipeline.Queue("webhook")+"}:")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, withBasics())
			ctx := context.Background()
			must(t, b.d.Store.UpsertContact(ctx, &dispatcher.Contact{ID: "ana", Email: "ana.webhook@example.com"}, "Europe/Paris"))
			rc := newReceiver(t)
			rc.register(t, b, fmt.Sprintf(`{"url":%q,"events":["consent.changed"]}`, rc.srv.URL+"/hooks"))
			if res := b.api.do("POST", "/v1/contacts/ana/consents", consentBody("granted")); res.status != http.StatusCreated {
				t.Fatalf("consent: %d %s", res.status, res.body)
			}
			hook := &diesAfterCmd{match: func(cmd redis.Cmder) bool { return tt.match(b, cmd) }}
			hook.armed.Store(true)
			b.redis.Client.AddHook(hook)
			_ = b.d.Pipeline.HandOverWebhooks(ctx) // the process dies in it
			hook.dead.Store(false)
			if hook.armed.Load() {
				t.Fatal("the hand-over never got there: the test proves nothing")
			}

			b.startWorker(t)
			waitFor(t, "the event delivered", 20*time.Second, func() bool { return len(rc.events()) >= 1 })
			waitFor(t, "the outbox empty", 20*time.Second, func() bool {
				n, err := b.redis.Client.LLen(ctx, b.d.Store.Key("wh", "outbox")).Result()
				return err == nil && n == 0
			})
			if got := rc.events(); len(got) != 1 || got[0].Data["state"] != "granted" {
				t.Errorf("events delivered %+v, want the one consent change", got)
			}
		})
	}
}

// A pause, resume or cancel of a campaign whose process died once it had
// changed the campaign reaches the campaign's runs all the same, when
// asked again: a campaign never says cancelled (or paused) while its run
// goes on sending, nor running while its run stays paused.
func TestCampaignActionDiedAfterTheCampaignReachesItsRuns(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		action, before, want string
	}{
		{"pause", "", dispatcher.RunPaused},
		{"resume", "pause", dispatcher.RunSending},
		{"cancel", "", dispatcher.RunCancelled},
	} {
		t.Run(tt.action, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			seedMailing(t, b, 3)
			run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
			must(t, err)
			if tt.before != "" {
				_, err := b.d.Pipeline.SetCampaignState(ctx, "mailing", tt.before)
				must(t, err)
			}
			hook := &diesAfterWriteTo{key: b.d.Store.Key("campaigns")}
			hook.armed.Store(true)
			b.redis.Client.AddHook(hook)
			if _, err := b.d.Pipeline.SetCampaignState(ctx, "mailing", tt.action); err == nil {
				t.Fatal("the action, its process dead after the campaign's update: no error")
			}
			hook.dead.Store(false)
			if hook.armed.Load() {
				t.Fatal("the campaign was never updated: the test proves nothing")
			}

			// Asked again: done, or refused as done already.
			if _, err := b.d.Pipeline.SetCampaignState(ctx, "mailing", tt.action); err != nil && !dispatcher.IsCode(err, dispatcher.CodeConflict) {
				t.Fatal(err)
			}
			r, err := b.d.Store.Run(ctx, run)
			must(t, err)
			if r.State != tt.want {
				t.Errorf("run %s after the %s, asked twice: %s, want %s", run, tt.action, r.State, tt.want)
			}
		})
	}
}

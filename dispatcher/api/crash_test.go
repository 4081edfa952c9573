package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/missive-dev/missive/channels/email/esp/esptest"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/testkit"
	"github.com/missive-dev/missive/throttle/redistest"
)

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
			crash := redistest.CrashAfter(b.redis.Client, redistest.Write("set", tt.claim))
			if r := h.post(t, tt.provider, body, hdr); r.status < 500 {
				t.Fatalf("first delivery, its process dead after the claim: %d %s", r.status, r.body)
			}
			crash.Revive(t)

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

// A run whose starter died once it had recorded the firing on its
// campaign, before it enqueued the plan, is planned all the same: the
// scheduler will not fire that time again, and the reconciler enqueues
// the plan of a run still waiting for one.
func TestRunStartDiedBeforeItsPlanIsPlanned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	seedMailing(t, b, 3)
	crash := redistest.CrashAfter(b.redis.Client, redistest.Write("hset", b.d.Store.Key("campaigns")))
	fire := time.Now()
	if _, err := b.d.Pipeline.StartRun(ctx, "mailing", fire); err == nil {
		t.Fatal("StartRun, its process dead after the campaign's update: no error")
	}
	crash.Revive(t)
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
			crash := redistest.CrashAfter(b.redis.Client, func(cmd redis.Cmder) bool { return tt.match(b, cmd) })
			_ = b.d.Pipeline.HandOverWebhooks(ctx) // the process dies in it
			crash.Revive(t)

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
			crash := redistest.CrashAfter(b.redis.Client, redistest.Write("hset", b.d.Store.Key("campaigns")))
			if _, err := b.d.Pipeline.SetCampaignState(ctx, "mailing", tt.action); err == nil {
				t.Fatal("the action, its process dead after the campaign's update: no error")
			}
			crash.Revive(t)

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

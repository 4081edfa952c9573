package api

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/feedback"
)

func TestRecordDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *app.Config) { c.Feedback = feedback.Policy{MinSample: 1000} }))
	ctx := context.Background()
	run := runMailing(t, b, 5)
	id := func(i int) string { return dispatcher.SendID(run, fmt.Sprintf("m%04d", i), channels.Email) }
	state := func(i int) string {
		s, err := b.d.Store.Send(ctx, id(i))
		must(t, err)
		return s.State
	}
	record := func(ev channels.Feedback) {
		t.Helper()
		must(t, b.d.Feedback.RecordDelivery(ctx, ev))
	}
	record(channels.Feedback{Send: id(0), Kind: channels.Delivered, Source: "ses"})
	record(channels.Feedback{Send: id(1), Kind: channels.HardBounce, Code: "5.1.1", Source: "dsn"})
	record(channels.Feedback{Send: id(1), Kind: channels.HardBounce, Code: "5.1.1", Source: "dsn"}) // resent report
	record(channels.Feedback{Send: id(1), Kind: channels.Delivered, Source: "ses"})                 // out of order
	record(channels.Feedback{Send: id(2), Kind: channels.Complaint, Source: "arf"})
	for i := range 3 {
		record(channels.Feedback{Channel: channels.Email, Address: "m0003@example.com", Kind: channels.SoftBounce, Code: "4.2.2", Source: "dsn",
			At: time.Now().Add(time.Duration(i) * time.Minute)})
	}
	if got := []string{state(0), state(1), state(2)}; got[0] != dispatcher.StateDelivered || got[1] != dispatcher.StateBounced || got[2] != dispatcher.StateSent {
		t.Errorf("states %v, want delivered, bounced, sent", got)
	}
	for addr, want := range map[string]string{"m0001@example.com": dispatcher.SuppressBounce, "m0002@example.com": dispatcher.SuppressComplaint, "m0003@example.com": dispatcher.SuppressBounce} {
		sup, err := b.d.Store.Suppression(ctx, channels.Email, addr)
		if err != nil || sup.Reason != want {
			t.Errorf("%s: suppression %+v %v, want %s", addr, sup, err, want)
		}
		if addr == "m0003@example.com" && (sup == nil || sup.Until.IsZero()) {
			t.Errorf("soft bounces suppressed for good, want for a time")
		}
	}
	if cs, _ := b.d.Store.Consents(ctx, "m0002"); cs["email/newsletter"] != dispatcher.Withdrawn {
		t.Errorf("a complaint left marketing consent: %v", cs)
	}
	r, err := b.d.Store.Run(ctx, run)
	must(t, err)
	want := map[string]int64{feedback.FeedbackDelivered: 1, feedback.FeedbackHardBounces: 1, feedback.FeedbackComplaints: 1}
	for k, v := range want {
		if r.Feedback[k] != v {
			t.Errorf("feedback %s = %d, want %d (%v)", k, r.Feedback[k], v, r.Feedback)
		}
	}
	if !r.Balanced || r.Counters["delivered"] != 1 || r.Counters["bounced"] != 1 || r.Counters["sent"] != 3 {
		t.Errorf("counters %v", r.Counters)
	}
	if err := b.d.Feedback.RecordDelivery(ctx, channels.Feedback{Send: run + "~000000000000000000000000", Kind: channels.HardBounce}); err != feedback.ErrUnknownSend {
		t.Errorf("unknown send: %v, want ErrUnknownSend", err)
	}
}

// A run whose bounce rate passes the policy pauses its campaign and says why.
func TestBounceRatePausesTheRun(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *app.Config) { c.Feedback = feedback.Policy{MinSample: 10, MaxBounceRate: 0.2} }))
	ctx := context.Background()
	seedMailing(t, b, 10)
	_, err := b.d.Pipeline.ScheduleCampaign(ctx, "mailing", dispatcher.Schedule{Cron: "0 10 * * *", TZ: "Europe/Paris"})
	must(t, err)
	b.startWorker(t)
	run, err := b.d.Pipeline.StartRun(ctx, "mailing", time.Now())
	must(t, err)
	b.waitRun(t, run, 20*time.Second)
	must(t, b.d.Store.Redis.HSet(ctx, b.d.Store.RunKey(run), "state", dispatcher.RunSending).Err())
	c, _ := b.d.Store.Campaign(ctx, "mailing")
	c.State = dispatcher.Running
	must(t, b.d.Store.PutCampaign(ctx, c))
	for i := range 3 {
		must(t, b.d.Feedback.RecordDelivery(ctx, channels.Feedback{Send: dispatcher.SendID(run, fmt.Sprintf("m%04d", i), channels.Email), Kind: channels.HardBounce, Source: "dsn"}))
	}
	c, _ = b.d.Store.Campaign(ctx, "mailing")
	reason, _ := b.d.Store.RunField(ctx, run, "paused_reason")
	if c.State != dispatcher.Paused || reason != "bounce rate 30.0% passed 20.0%" {
		t.Errorf("campaign %s, reason %q; want paused by a 30%% bounce rate", c.State, reason)
	}
}

func TestVERPBounceLeadsBackToItsSend(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *app.Config) { c.BounceDomain = "bounce.shop.example" }))
	ctx := context.Background()
	run := runMailing(t, b, 2)
	var token string
	for _, m := range b.smtp.Messages() {
		local, domain, _ := strings.Cut(m.From, "@")
		if domain != "bounce.shop.example" || !strings.HasPrefix(local, "bounces+") || len(local) > 64 {
			t.Fatalf("envelope sender %q is not a VERP address of the bounce domain", m.From)
		}
		if m.To[0] == "m0001@example.com" {
			token = strings.TrimPrefix(local, "bounces+")
		}
	}
	send := dispatcher.SendID(run, "m0001", channels.Email)

	// A forged MAC, a token for another send, garbage: nothing changes.
	for _, forged := range []string{send + ".0000000000000000", strings.Replace(token, "m", "n", 1), "", "no-mac", token + "x"} {
		if err := b.d.Feedback.HandleBounce(ctx, forged, "dsn", []feedback.BounceRecipient{{Class: "hard", Status: "5.1.1"}}); err == nil {
			t.Errorf("forged token %q accepted", forged)
		}
	}
	if _, err := b.d.Store.Suppression(ctx, channels.Email, "m0001@example.com"); err == nil {
		t.Fatal("a forged report suppressed the address")
	}

	must(t, b.d.Feedback.HandleBounce(ctx, token, "dsn", []feedback.BounceRecipient{{Class: "delay", Status: "4.4.7"}, {Class: "hard", Status: "5.1.1"}}))
	s, err := b.d.Store.Send(ctx, send)
	must(t, err)
	if s.State != dispatcher.StateBounced || s.ErrorCode != "5.1.1" {
		t.Errorf("send %s/%s after the bounce, want bounced with 5.1.1", s.State, s.ErrorCode)
	}
	if sup, err := b.d.Store.Suppression(ctx, channels.Email, "m0001@example.com"); err != nil || sup.Reason != dispatcher.SuppressBounce {
		t.Errorf("suppression %+v %v", sup, err)
	}
}

// A send id too long for a local part travels as its hash, mapped back
// through Redis.
func TestVERPLongSendID(t *testing.T) {
	t.Parallel()
	b := setup(t, withConfig(func(c *app.Config) { c.BounceDomain = "b.example" }))
	ctx := context.Background()
	send := dispatcher.SendID("a-very-long-campaign-identifier-for-the-spring-sale-"+strings.Repeat("x", 10)+"-toxgxx", "c1", channels.Email)
	rp, err := b.d.Feedback.ReturnPath(ctx, send)
	must(t, err)
	local, _, _ := strings.Cut(rp, "@")
	if len(local) > 64 {
		t.Fatalf("local part of %d octets", len(local))
	}
	got, err := b.d.Feedback.SendForVERP(ctx, strings.TrimPrefix(local, "bounces+"))
	if err != nil || got != send {
		t.Errorf("sendForVERP = %q, %v; want %q", got, err, send)
	}
}

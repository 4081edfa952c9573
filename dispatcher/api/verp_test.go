package api

import (
	"context"
	"strings"
	"testing"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/app"
	"github.com/missive-dev/missive/dispatcher/feedback"
)

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

package api

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// A sign-up by phone: the number gets an SMS asking for YES, nothing is
// granted until the YES comes back through the signed Twilio webhook, then
// the ledger holds the consent with its wording version and evidence.
func TestSignupBySMSConfirmedWithYes(t *testing.T) {
	t.Parallel()
	h := twilioSetup(t)
	h.b.startWorker(t)
	ctx := context.Background()
	const phone = "+33611223344"
	form := url.Values{"topics": {"newsletter"}, "phone": {phone}, "wording": {"sms-v2"}, "locale": {"fr"}}
	resp, err := h.srv.Client().Post(h.srv.URL+"/subscribe", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("subscribe answered %d", resp.StatusCode)
	}
	msgs, err := h.b.twilio.Wait(1, 10*time.Second)
	must(t, err)
	if msgs[0].To != phone || !strings.Contains(msgs[0].Body, "YES") {
		t.Fatalf("confirmation SMS to %q: %q", msgs[0].To, msgs[0].Body)
	}
	id, err := h.b.d.Store.ContactIDByAddress(ctx, channels.SMS, phone)
	must(t, err)
	if cs, _ := h.b.d.Store.Consents(ctx, id); cs["sms/newsletter"] == dispatcher.Granted {
		t.Fatal("consent granted before the YES")
	}
	h.sms(t, phone, "yes")
	cs, err := h.b.d.Store.Consents(ctx, id)
	must(t, err)
	if cs["sms/newsletter"] != dispatcher.Granted {
		t.Fatalf("consents after YES: %v", cs)
	}
	ledger, err := h.b.d.Store.ConsentLedger(ctx, id)
	must(t, err)
	last := ledger[len(ledger)-1]
	if last.Source != "signup" || last.Evidence["wording"] != "sms-v2" || last.Evidence["confirmed_via"] != "sms-yes" || last.Evidence["message_sid"] == "" {
		t.Errorf("ledger entry %+v", last)
	}
}

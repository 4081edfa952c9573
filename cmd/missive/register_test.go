package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/privacy"
	"github.com/missive-dev/missive/throttle/redistest"
)

// missive register builds the record of processing from the local
// configuration and the topics in a real Redis, with no server running.
func TestRegisterCommand(t *testing.T) {
	r := redistest.New(t)
	secret := "register-secret-register-secret-reg"
	d := newDispatcher(t, r, secret, "")
	for _, tp := range []dispatcher.Topic{
		{ID: "newsletter", Kind: dispatcher.Marketing, Description: "Monthly news"},
		{ID: "orders", Kind: dispatcher.Transactional},
	} {
		if err := d.Store.PutTopic(context.Background(), &tp); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"MISSIVE_REDIS_URL":   r.URL,
		"MISSIVE_PREFIX":      r.Prefix,
		"MISSIVE_SECRET":      secret,
		"MISSIVE_DATA_KEYS":   "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"MISSIVE_API_KEYS":    "ops:ops-secret-0123456789",
		"MISSIVE_SENDER_NAME": "Shop",
		"MISSIVE_SMTP_URL":    "smtp://user:relay-password@relay.shop.example:587",
		"MISSIVE_EMAIL_FROM":  "Shop <news@shop.example>",
	}
	run := func(args ...string) (int, string, string) {
		var out, errs bytes.Buffer
		code := Main(context.Background(), append([]string{"register"}, args...), func(k string) string { return env[k] }, &out, &errs)
		return code, out.String(), errs.String()
	}

	code, out, errs := run("--format", "json")
	if code != 0 {
		t.Fatalf("register --format json: exit %d: %s", code, errs)
	}
	var reg privacy.Register
	if err := json.Unmarshal([]byte(out), &reg); err != nil {
		t.Fatalf("not JSON: %v: %s", err, out)
	}
	if reg.Controller.Name != "Shop" {
		t.Errorf("controller %q, want MISSIVE_SENDER_NAME", reg.Controller.Name)
	}
	want := []privacy.Purpose{
		{Topic: "newsletter", Name: "newsletter", Description: "Monthly news", Kind: dispatcher.Marketing, LegalBasis: "consent", Article: "Art. 6(1)(a)"},
		{Topic: "orders", Name: "orders", Kind: dispatcher.Transactional, LegalBasis: "contract", Article: "Art. 6(1)(b)"},
	}
	if diff := cmp.Diff(want, reg.Purposes); diff != "" {
		t.Errorf("purposes (-want +got):\n%s", diff)
	}
	// SMS has no provider here, so it goes to the outbox.
	wantRecipients := []privacy.Recipient{{Name: "SMTP relay (relay.shop.example)", Role: "processor"}, {Name: "outbox (development)", Role: "processor"}}
	if diff := cmp.Diff(wantRecipients, reg.Recipients); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
	if strings.Contains(out+errs, "relay-password") {
		t.Error("the register shows the SMTP password")
	}

	code, out, errs = run()
	if code != 0 {
		t.Fatalf("register: exit %d: %s", code, errs)
	}
	for _, s := range []string{"# Record of processing activities (GDPR Art. 30)", "| newsletter | newsletter | marketing | consent, Art. 6(1)(a) | Monthly news |",
		"- SMTP relay (relay.shop.example) (processor)", "| send records and feedback events | 90 days |"} {
		if !strings.Contains(out, s) {
			t.Errorf("Markdown lacks %q:\n%s", s, out)
		}
	}

	if code, _, errs := run("--format", "pdf"); code == 0 || !strings.Contains(errs, "--format") {
		t.Errorf("--format pdf: exit %d, stderr %q", code, errs)
	}
	env["MISSIVE_SECRET"] = "short"
	if code, _, errs := run(); code == 0 || !strings.Contains(errs, "MISSIVE_SECRET") {
		t.Errorf("short secret: exit %d, stderr %q", code, errs)
	}
}

func TestProcessors(t *testing.T) {
	tests := []struct {
		c    config
		want []string
	}{
		{config{}, []string{"outbox (development)"}},
		{config{SMTPURL: "smtps://u:p@mail.example:465", TwilioSID: "AC1"}, []string{"SMTP relay (mail.example)", "Twilio"}},
		{config{TwilioSID: "AC1"}, []string{"Twilio", "outbox (development)"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.c.processors()); diff != "" {
			t.Errorf("processors of %+v (-want +got):\n%s", tt.c, diff)
		}
	}
}

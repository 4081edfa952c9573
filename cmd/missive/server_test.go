package main

import (
	"errors"
	"net/smtp"
	"net/textproto"
	"testing"

	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
)

// A report to a VERP address with a forged MAC is refused at RCPT, before
// its data is read.
func TestBounceListenerRefusesForgedVERPAtRcpt(t *testing.T) {
	_, bounceAddr := startMainWith(t, smtptest.New(t), twiliotest.NewServer(t), map[string]string{
		"MISSIVE_BOUNCE_DOMAIN":    "bounce.shop.example",
		"MISSIVE_BOUNCE_SMTP_ADDR": "127.0.0.1:0",
	})
	c, err := smtp.Dial(bounceAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(""); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("bounces+r1~c1~email.0123456789abcdef@bounce.shop.example")
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 550 {
		t.Fatalf("RCPT with a forged MAC: %v, want 550", err)
	}
}

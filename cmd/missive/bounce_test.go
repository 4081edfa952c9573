package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/smtp"
	"slices"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels/email/smtptest"
	"github.com/missive-dev/missive/channels/sms/twiliotest"
)

func TestBounceInspect(t *testing.T) {
	var out, errs bytes.Buffer
	code := Main(context.Background(), []string{"bounce", "inspect", "../../channels/email/bounce/testdata/samples/lhost-postfix-01.eml"},
		func(string) string { return "" }, &out, &errs)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var got struct {
		Kind       string
		Recipients []struct{ Address, Action, Status, Class string }
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Kind != "dsn" || len(got.Recipients) != 1 || got.Recipients[0].Class != "hard" || got.Recipients[0].Status != "5.1.1" {
		t.Errorf("parse: %s", out.String())
	}
}

// dsn is a delivery status notification for rcpt, sent back to the VERP
// address verp.
func dsn(verp, rcpt, status string) string {
	return fmt.Sprintf("From: MAILER-DAEMON@mx.example.net\r\nTo: %s\r\nSubject: Undelivered Mail Returned to Sender\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"+
		"--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n"+
		"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"+
		"Final-Recipient: rfc822; %s\r\nOriginal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n"+
		"Diagnostic-Code: smtp; 550 %s user unknown\r\n--B--\r\n", verp, rcpt, rcpt, status, status)
}

// arf is a complaint report about a message to rcpt.
func arf(verp, rcpt string) string {
	return fmt.Sprintf("From: fbl@isp.example\r\nTo: %s\r\nSubject: Abuse report\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n"+
		"--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"+
		"--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: %s\r\n\r\n"+
		"--F\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@shop.example\r\nTo: %s\r\nSubject: News\r\n--F--\r\n", verp, rcpt, rcpt)
}

// A campaign sends through an SMTP server that refuses some recipients;
// then bounces and a complaint arrive at the bounce listener. The
// suppression list and counters end as expected, and the next campaign
// skips those addresses.
func TestBounceLoopEndToEnd(t *testing.T) {
	relay := smtptest.New(t)
	relay.Reject("gone@shop.example", 550, "5.1.1", "no such user")
	base, bounceAddr := startMainWith(t, relay, twiliotest.NewServer(t), map[string]string{
		"MISSIVE_BOUNCE_DOMAIN":    "bounce.shop.example",
		"MISSIVE_BOUNCE_SMTP_ADDR": "127.0.0.1:0",
	})
	c := client{t: t, base: base}
	c.do("PUT", "/v1/topics/news", map[string]any{"kind": "marketing"}, 200)
	c.do("PUT", "/v1/templates/mail", map[string]any{"email": map[string]any{"subject": "News", "text": "News"}}, 200)
	c.do("PUT", "/v1/segments/all", map[string]any{}, 200)
	people := []string{"ok1", "ok2", "gone", "late", "angry"}
	for _, p := range people {
		c.do("PUT", "/v1/contacts/"+p, map[string]any{"email": p + "@shop.example"}, 200)
		c.do("POST", "/v1/contacts/"+p+"/consents", map[string]any{"channel": "email", "topic": "news", "state": "granted"}, 201)
	}
	c.do("POST", "/v1/campaigns", map[string]any{"id": "first", "topic": "news", "segment": "all", "channels": []string{"email"},
		"templates": map[string]string{"email": "mail"}}, 201)
	run := c.do("POST", "/v1/campaigns/first/start", nil, 202)["run"].(string)
	msgs := relay.Wait(4, 20*time.Second)
	verp := map[string]string{}
	for _, m := range msgs {
		verp[m.To[0]] = m.From
	}
	// "gone" was refused at send time (550 5.1.1: one hard bounce). A DSN
	// for "late" (accepted, then bounced by the next hop: the second) and a
	// complaint from "angry", both to their VERP addresses.
	for _, mail := range []struct{ rcpt, body string }{
		{verp["late@shop.example"], dsn(verp["late@shop.example"], "late@shop.example", "5.1.1")},
		{verp["angry@shop.example"], arf(verp["angry@shop.example"], "angry@shop.example")},
	} {
		if err := smtp.SendMail(bounceAddr, nil, "", []string{mail.rcpt}, []byte(mail.body)); err != nil {
			t.Fatalf("bounce listener refused a report: %v", err)
		}
	}
	// Relaying through the listener is refused.
	if err := smtp.SendMail(bounceAddr, nil, "x@evil.example", []string{"victim@elsewhere.example"}, []byte("Subject: hi\r\n\r\nhi\r\n")); err == nil {
		t.Error("the bounce listener relays mail")
	}
	stats := c.waitRun(run, 10*time.Second, func(stats map[string]any) bool {
		fb, _ := stats["feedback"].(map[string]any)
		return fb["bounced_hard"] == 2.0 && fb["complained"] == 1.0
	})
	fb := stats["feedback"].(map[string]any)
	counters := stats["counters"].(map[string]any)
	if fb["bounced_hard"] != 2.0 || fb["complained"] != 1.0 || counters["failed"] != 1.0 || counters["bounced"] != 1.0 || counters["sent"] != 3.0 {
		t.Errorf("run: counters %v, feedback %v", counters, fb)
	}
	for addr, want := range map[string]string{"gone@shop.example": "bounce", "late@shop.example": "bounce", "angry@shop.example": "complaint"} {
		got := c.do("POST", "/v1/suppressions/lookup", map[string]any{"channel": "email", "address": addr}, 200)
		if got["reason"] != want {
			t.Errorf("%s: suppression %v, want %s", addr, got, want)
		}
	}
	c.do("POST", "/v1/suppressions/lookup", map[string]any{"channel": "email", "address": "ok1@shop.example"}, 404)

	// The next campaign skips the three.
	c.do("POST", "/v1/campaigns", map[string]any{"id": "second", "topic": "news", "segment": "all", "channels": []string{"email"},
		"templates": map[string]string{"email": "mail"}}, 201)
	run2 := c.do("POST", "/v1/campaigns/second/start", nil, 202)["run"].(string)
	stats = c.waitRun(run2, 20*time.Second, completed)
	counters = stats["counters"].(map[string]any)
	if counters["sent"] != 2.0 || counters["suppressed_bounce"] != 2.0 || counters["suppressed_complaint"] != 1.0 {
		t.Errorf("second run: %v", counters)
	}
	var second []string
	for _, m := range relay.Messages()[len(msgs):] {
		second = append(second, m.To...)
	}
	slices.Sort(second)
	if !slices.Equal(second, []string{"ok1@shop.example", "ok2@shop.example"}) {
		t.Errorf("second campaign went to %v", second)
	}
}

package smtptest

import (
	"context"
	"net/smtp"
	"testing"
	"time"
)

func TestStartWithoutATest(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := time.Now()
	if err := smtp.SendMail(s.Addr(), nil, "a@example.com", []string{"b@example.com"}, []byte("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Await(context.Background(), 1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].At.Before(before) || s.Len() != 1 {
		t.Errorf("got %d messages (Len %d), the first at %v, want 1 after %v", len(msgs), s.Len(), msgs[0].At, before)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Await(ctx, 2, time.Minute); err == nil {
		t.Error("Await for a second message with a cancelled context: no error")
	}
}

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

func TestWithoutDataKeepsTheSize(t *testing.T) {
	s, err := Start(WithoutData())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body := []byte("Subject: hi\r\n\r\nhello\r\n")
	if err := smtp.SendMail(s.Addr(), nil, "a@example.com", []string{"b@example.com"}, body); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Await(context.Background(), 1, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m := msgs[0]; m.Data != nil || m.Size < len(body) || len(m.To) != 1 {
		t.Errorf("got %d bytes of data, size %d, to %v: want no data, a size of %d or more, one recipient", len(m.Data), m.Size, m.To, len(body))
	}
}

package smtptest

import (
	"context"
	"errors"
	"net/smtp"
	"net/textproto"
	"strings"
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

func TestWithoutPipelining(t *testing.T) {
	for _, tc := range []struct {
		opts []Option
		want bool
	}{{nil, true}, {[]Option{WithoutPipelining()}, false}} {
		s, err := Start(tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		c, err := smtp.Dial(s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Hello("localhost"); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.Extension("PIPELINING"); got != tc.want {
			t.Errorf("%d options: PIPELINING offered %v, want %v", len(tc.opts), got, tc.want)
		}
		if ok, _ := c.Extension("8BITMIME"); !ok {
			t.Error("8BITMIME is not offered: the EHLO reply lost more than PIPELINING")
		}
		_ = c.Quit()
		s.Close()
	}
	if _, err := Start(WithoutPipelining(), WithStartTLS()); err == nil {
		t.Error("WithoutPipelining with TLS: no error")
	}
}

// A MAIL FROM inside an open transaction is refused, as Postfix does.
func TestNestedMail(t *testing.T) {
	s := New(t)
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.com"); err != nil {
		t.Fatal(err)
	}
	var te *textproto.Error
	if err := c.Mail("a@example.com"); !errors.As(err, &te) || te.Code != 503 || !strings.HasPrefix(te.Msg, "5.5.1 ") {
		t.Errorf("nested MAIL FROM: %v, want 503 5.5.1", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.com"); err != nil {
		t.Errorf("MAIL FROM after RSET: %v", err)
	}
}

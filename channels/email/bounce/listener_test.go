package bounce_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/goleak"

	"github.com/missive-dev/missive/channels/email/bounce"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const domain = "bounce.missive.example"

type call struct {
	token string
	rep   *bounce.Report
}

type testBundle struct {
	l    *bounce.Listener
	logs *bytes.Buffer

	mu    sync.Mutex
	calls []call
	fail  error
}

func setup(t *testing.T, cfg bounce.ListenerConfig) *testBundle {
	t.Helper()
	tb := &testBundle{logs: &bytes.Buffer{}}
	cfg.Addr = "127.0.0.1:0"
	cfg.Domain = domain
	cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: tb.logs, mu: &tb.mu}, nil))
	cfg.Handle = func(_ context.Context, token string, r *bounce.Report) error {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		if tb.fail != nil {
			return tb.fail
		}
		tb.calls = append(tb.calls, call{token, r})
		return nil
	}
	l, err := bounce.Listen(cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	tb.l = l
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		// Logs never hold an address, a token or content.
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, leak := range []string{"@", "send-", "kijitora", "Nyaa"} {
			if strings.Contains(tb.logs.String(), leak) {
				t.Errorf("logs contain %q:\n%s", leak, tb.logs)
			}
		}
	})
	return tb
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (tb *testBundle) Calls() []call {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]call(nil), tb.calls...)
}

func dial(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Hello("mta.example.org"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	return c
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// send runs MAIL, RCPT... and DATA; it returns the first SMTP error.
func send(c *smtp.Client, from string, to []string, data []byte) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Close()
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestListenerAcceptsVERP(t *testing.T) {
	tb := setup(t, bounce.ListenerConfig{})
	c := dial(t, tb.l.Addr())
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered")
	}
	// The null sender, a VERP recipient with the domain in another case.
	err := send(c, "", []string{"bounces+send-1@BOUNCE.Missive.Example"}, sample(t, "lhost-postfix-02.eml"))
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	calls := tb.Calls()
	if len(calls) != 1 || calls[0].token != "send-1" {
		t.Fatalf("calls = %+v, want one for send-1", calls)
	}
	if rep := calls[0].rep; rep.Kind != "dsn" || len(rep.Recipients) != 2 || rep.Recipients[1].Status != "5.1.1" {
		t.Errorf("report = %+v", rep)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("QUIT: %v", err)
	}
}

func TestListenerRefusesOtherRecipients(t *testing.T) {
	tb := setup(t, bounce.ListenerConfig{Prefix: "b"})
	c := dial(t, tb.l.Addr())
	if err := c.Mail("mta@example.org", nil); err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{
		"postmaster@" + domain,         // no such mailbox
		"bounces+send-1@" + domain,     // another prefix
		"b+send-1@example.org",         // relaying to an external domain
		"b+send-1@" + domain + ".evil", // look-alike domain
		"b+@" + domain,                 // empty token
	} {
		err := c.Rcpt(rcpt, nil)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
			t.Errorf("RCPT %s: %v, want 550 5.7.1", rcpt, err)
		}
	}
	if err := c.Rcpt("B+send-2@"+domain, nil); err != nil {
		t.Errorf("RCPT with prefix in upper case: %v", err)
	}
	if len(tb.Calls()) != 0 {
		t.Error("Handle called")
	}
}

func TestListenerHandleErrorIs451(t *testing.T) {
	tb := setup(t, bounce.ListenerConfig{})
	tb.mu.Lock()
	tb.fail = errors.New("store down")
	tb.mu.Unlock()
	c := dial(t, tb.l.Addr())
	err := send(c, "", []string{"bounces+send-1@" + domain}, sample(t, "arf-02.eml"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) {
		t.Fatalf("DATA: %v, want 451 4.3.0", err)
	}
	// The sender retries on the same session once the store is back.
	tb.mu.Lock()
	tb.fail = nil
	tb.mu.Unlock()
	if err := send(c, "", []string{"bounces+send-1@" + domain}, sample(t, "arf-02.eml")); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if calls := tb.Calls(); len(calls) != 1 || calls[0].rep.Kind != "arf" || calls[0].rep.FeedbackType != "abuse" {
		t.Errorf("calls = %+v", calls)
	}
}

func TestListenerOversize(t *testing.T) {
	tb := setup(t, bounce.ListenerConfig{MaxSize: 4096})
	c := dial(t, tb.l.Addr())
	data := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef\r\n"), 1000)...)
	err := send(c, "", []string{"bounces+send-1@" + domain}, data)
	if code(err) != 552 {
		t.Fatalf("DATA: %v, want 552", err)
	}
	if len(tb.Calls()) != 0 {
		t.Error("Handle called")
	}
	// The session is still usable.
	if err := c.Noop(); err != nil {
		t.Errorf("NOOP after 552: %v", err)
	}
}

func TestListenerMaxRecipients(t *testing.T) {
	tb := setup(t, bounce.ListenerConfig{})
	c := dial(t, tb.l.Addr())
	if err := c.Mail("", nil); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := c.Rcpt(fmt.Sprintf("bounces+send-%d@%s", i, domain), nil); err != nil {
			t.Fatalf("RCPT %d: %v", i, err)
		}
	}
	if err := c.Rcpt("bounces+send-10@"+domain, nil); code(err) != 452 {
		t.Fatalf("11th RCPT: %v, want 452", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(sample(t, "lhost-qmail-02.eml"))
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	calls := tb.Calls()
	if len(calls) != 10 {
		t.Fatalf("%d Handle calls, want 10 (one per token)", len(calls))
	}
	for i, c := range calls {
		if c.token != fmt.Sprintf("send-%d", i) || c.rep.Kind != "dsn" {
			t.Errorf("call %d: %s %s", i, c.token, c.rep.Kind)
		}
	}
}

func TestListenerMalformedAccepted(t *testing.T) {
	tb := setup(t, bounce.ListenerConfig{})
	c := dial(t, tb.l.Addr())
	// No header at all: accepted (250) and dropped, so nothing loops.
	if err := send(c, "", []string{"bounces+send-1@" + domain}, []byte("\r\n\r\nNyaa\r\n")); err != nil {
		t.Fatalf("DATA: %v, want 250", err)
	}
	if len(tb.Calls()) != 0 {
		t.Error("Handle called for a malformed report")
	}
	tb.mu.Lock()
	logged := strings.Contains(tb.logs.String(), "error_kind=malformed")
	tb.mu.Unlock()
	if !logged {
		t.Error("error kind not logged")
	}
}

func TestListenConfig(t *testing.T) {
	h := func(context.Context, string, *bounce.Report) error { return nil }
	for name, cfg := range map[string]bounce.ListenerConfig{
		"no addr":    {Domain: domain, Handle: h},
		"no domain":  {Addr: "127.0.0.1:0", Handle: h},
		"no handle":  {Addr: "127.0.0.1:0", Domain: domain},
		"bad prefix": {Addr: "127.0.0.1:0", Domain: domain, Prefix: "a+b", Handle: h},
	} {
		if l, err := bounce.Listen(cfg); err == nil {
			_ = l.Close()
			t.Errorf("%s: no error", name)
		}
	}
}

func TestListenerCloseCancelsHandle(t *testing.T) {
	started := make(chan struct{})
	l, err := bounce.Listen(bounce.ListenerConfig{
		Addr: "127.0.0.1:0", Domain: domain, Logger: slog.New(slog.DiscardHandler),
		Handle: func(ctx context.Context, _ string, _ *bounce.Report) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, l.Addr())
	data := sample(t, "rfc3834-01.eml")
	done := make(chan error, 1)
	go func() { done <- send(c, "", []string{"bounces+x@" + domain}, data) }()
	<-started
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("message acknowledged although Handle was cancelled")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client still waiting after Close")
	}
}

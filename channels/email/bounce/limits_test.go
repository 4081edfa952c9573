package bounce_test

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/missive-dev/missive/channels/email/bounce"
)

func TestListenerChecksVERPAtRcpt(t *testing.T) {
	var checked atomic.Int32
	tb := setup(t, bounce.ListenerConfig{CheckToken: func(token string) bool {
		checked.Add(1)
		return token == "send-1.good"
	}})
	c := dial(t, tb.l.Addr())
	if err := c.Mail("", nil); err != nil {
		t.Fatal(err)
	}
	err := c.Rcpt("bounces+send-1.forged@"+domain, nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Fatalf("RCPT with a forged MAC: %v, want 550 5.7.1", err)
	}
	// With no recipient left, DATA is refused: not one byte is read.
	if _, err := c.Data(); code(err)/100 != 5 {
		t.Errorf("DATA without a valid recipient: %v, want a refusal", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "", []string{"bounces+send-1.good@" + domain}, sample(t, "arf-01.eml")); err != nil {
		t.Fatalf("good token: %v", err)
	}
	if calls := tb.Calls(); len(calls) != 1 || calls[0].token != "send-1.good" {
		t.Errorf("calls = %+v, want one for the good token", calls)
	}
	if n := checked.Load(); n != 2 {
		t.Errorf("CheckToken called %d times, want 2", n)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if !strings.Contains(tb.logs.String(), "reason=mac") {
		t.Errorf("refusal not logged with its reason:\n%s", tb.logs)
	}
}

// greeting reads the first reply line of a new connection to addr.
func greeting(t *testing.T, addr string) (string, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return line, conn
}

func TestListenerCapsSessions(t *testing.T) {
	tb := setup(t, bounce.ListenerConfig{MaxSessions: 2})
	var held []net.Conn
	for i := range 2 {
		line, conn := greeting(t, tb.l.Addr())
		if !strings.HasPrefix(line, "220 ") {
			t.Fatalf("session %d: greeting %q, want 220", i, line)
		}
		held = append(held, conn)
	}
	line, _ := greeting(t, tb.l.Addr())
	if !strings.HasPrefix(line, "421 4.3.2 ") {
		t.Fatalf("third session: %q, want 421 4.3.2", line)
	}
	// A closed session frees its slot.
	_ = held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		line, conn := greeting(t, tb.l.Addr())
		_ = conn.Close()
		if strings.HasPrefix(line, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot freed after a session closed: %q", line)
		}
	}
}

func TestListenerDefaultMaxSize(t *testing.T) {
	tb := setup(t, bounce.ListenerConfig{})
	c := dial(t, tb.l.Addr())
	// 3 MiB: a bounce never needs that much; 16 sessions of it would.
	data := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte(strings.Repeat("x", 62)+"\r\n"), 3<<20/64)...)
	if err := send(c, "", []string{"bounces+send-1@" + domain}, data); code(err) != 552 {
		t.Fatalf("DATA of 3 MiB: %v, want 552", err)
	}
	if len(tb.Calls()) != 0 {
		t.Error("Handle called")
	}
	// The session stays usable for a report of a sane size.
	if err := send(c, "", []string{"bounces+send-1@" + domain}, sample(t, "lhost-postfix-02.eml")); err != nil {
		t.Fatalf("DATA after 552: %v", err)
	}
}

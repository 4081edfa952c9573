package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"

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

// startHTTP starts "missive serve" with extra settings and returns the
// address of its HTTP server.
func startHTTP(t *testing.T, extra map[string]string) string {
	t.Helper()
	base, _ := startMainWith(t, smtptest.New(t), twiliotest.NewServer(t), extra)
	return strings.TrimPrefix(base, "http://")
}

// A request whose body never arrives does not hold its connection: the
// server closes it once the read timeout passes.
func TestHTTPBodyReadTimeout(t *testing.T) {
	addr := startHTTP(t, map[string]string{"MISSIVE_HTTP_READ_TIMEOUT": "500ms"})
	for _, req := range []string{
		"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
		"POST /v1/sends HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + apiKey + "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
		"POST /webhooks/twilio/status HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nA=",
		// A header that never ends.
		"GET /healthz HTTP/1.1\r\nHost: x\r\n",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		// Waits for the server to give up; the deadline only ends a test
		// that would otherwise hang.
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err = io.Copy(io.Discard, conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: connection still open after 20 s", strings.SplitN(req, " HTTP", 2)[0])
		}
		_ = conn.Close()
	}
}

// Past MISSIVE_HTTP_MAX_CONNS, a new connection is answered 503 at once;
// a freed slot serves again.
func TestHTTPConnectionCap(t *testing.T) {
	addr := startHTTP(t, map[string]string{"MISSIVE_HTTP_MAX_CONNS": "3"})
	var held []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Each one holds a slot with a header that has not ended.
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\n"); err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
	}
	get := func() (*http.Response, error) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { _ = conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return nil, err
		}
		return http.ReadResponse(bufio.NewReader(conn), nil)
	}
	resp, err := get()
	if err != nil {
		t.Fatalf("connection past the cap: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"unavailable"`) {
		t.Fatalf("connection past the cap: %d %q %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	_ = held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := get()
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot freed after a connection closed: %v", err)
		}
	}
}

// The sign-up limit counts clients behind MISSIVE_TRUSTED_PROXIES, not the
// proxy.
func TestHTTPTrustedProxies(t *testing.T) {
	addr := startHTTP(t, map[string]string{"MISSIVE_TRUSTED_PROXIES": "127.0.0.0/8, ::1"})
	for i := range 8 {
		req, _ := http.NewRequest("POST", "http://"+addr+"/subscribe", strings.NewReader(`{"topics":["none"]}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("client %d behind the proxy limited: the limit counts the proxy", i)
		}
	}
}

func TestHTTPSettingsErrors(t *testing.T) {
	for env, want := range map[string]string{
		"MISSIVE_HTTP_READ_TIMEOUT":  "MISSIVE_HTTP_READ_TIMEOUT",
		"MISSIVE_HTTP_WRITE_TIMEOUT": "MISSIVE_HTTP_WRITE_TIMEOUT",
		"MISSIVE_HTTP_MAX_CONNS":     "MISSIVE_HTTP_MAX_CONNS",
		"MISSIVE_TRUSTED_PROXIES":    "MISSIVE_TRUSTED_PROXIES (--trusted-proxies): entry 2",
		"MISSIVE_CLIENT_IP_HEADER":   "MISSIVE_CLIENT_IP_HEADER",
	} {
		value := map[string]string{"MISSIVE_TRUSTED_PROXIES": "10.0.0.0/8, 10.0.0.0/99"}[env]
		if value == "" {
			value = "zero"
		}
		c, err := parseConfig("serve", nil, func(k string) string {
			if k == env {
				return value
			}
			return ""
		}, io.Discard, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.validate(true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%s: %v, want an error naming %s", env, value, err, want)
		}
	}
}

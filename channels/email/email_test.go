package email_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
	"github.com/missive-dev/missive/channels/email/smtptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	rcpt     = "ada.lovelace@example.org"
	sender   = "Missive News <news@missive.example>"
	bounceTo = "bounces+send-1@bounce.missive.example"
	unsubURL = "<https://missive.example/u/tok3n-AbC_123?x=1&y=2>"
)

func message(id string) channels.Message {
	return channels.Message{
		ID:      id,
		Channel: channels.Email,
		To:      rcpt,
		Subject: "Spring news — été",
		Text:    "Hello Ada,\r\nour spring news.",
		HTML:    "<p>Hello Ada,</p><p>our spring news.</p>",
		Headers: map[string]string{
			"List-Unsubscribe":      unsubURL,
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
			"List-Id":               "Newsletter <newsletter.missive.example>",
		},
	}
}

type testBundle struct {
	srv    *smtptest.Server
	sender *email.Sender
}

func setup(t testing.TB, cfg email.Config, opts ...smtptest.Option) *testBundle {
	t.Helper()
	srv := smtptest.New(t, opts...)
	if cfg.URL == "" {
		cfg.URL = srv.URL()
	}
	if cfg.From == "" {
		cfg.From = sender
	}
	if cfg.TLSConfig == nil {
		cfg.TLSConfig = srv.ClientTLSConfig()
	}
	cfg.Timeout = cmpOr(cfg.Timeout, 5*time.Second)
	s, err := email.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &testBundle{srv: srv, sender: s}
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

func TestSendContent(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{ReturnPath: bounceTo})
	res, err := b.sender.Send(context.Background(), message("run-7.contact-42.email"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if want := "<run-7.contact-42.email@missive.example>"; res.ProviderID != want {
		t.Errorf("ProviderID = %q, want %q", res.ProviderID, want)
	}
	got := b.srv.Wait(1, 5*time.Second)[0]
	if diff := cmp.Diff([]string{rcpt}, got.To); diff != "" {
		t.Errorf("RCPT TO (-want +got):\n%s", diff)
	}
	if got.From != bounceTo {
		t.Errorf("MAIL FROM = %q, want the return path %q", got.From, bounceTo)
	}

	msg, err := netmail.ReadMessage(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
	headers := map[string]string{
		"From":                  msg.Header.Get("From"),
		"To":                    msg.Header.Get("To"),
		"Subject":               subject,
		"Message-Id":            msg.Header.Get("Message-Id"),
		"List-Unsubscribe":      msg.Header.Get("List-Unsubscribe"),
		"List-Unsubscribe-Post": msg.Header.Get("List-Unsubscribe-Post"),
		"List-Id":               msg.Header.Get("List-Id"),
	}
	want := map[string]string{
		"From":                  `"Missive News" <news@missive.example>`,
		"To":                    "<" + rcpt + ">",
		"Subject":               "Spring news — été",
		"Message-Id":            res.ProviderID,
		"List-Unsubscribe":      unsubURL,
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"List-Id":               "Newsletter <newsletter.missive.example>",
	}
	if diff := cmp.Diff(want, headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	for _, h := range []string{"User-Agent", "X-Mailer", "Return-Path"} {
		if v := msg.Header.Get(h); v != "" {
			t.Errorf("unexpected header %s: %q", h, v)
		}
	}
	// The raw header line is verbatim: no folding, no encoding.
	if !bytes.Contains(got.Data, []byte("\r\nList-Unsubscribe: "+unsubURL+"\r\n")) {
		t.Errorf("List-Unsubscribe not verbatim in:\n%s", got.Data)
	}

	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("NextPart: %v", err)
		}
		body, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ct] = string(body)
	}
	wantParts := map[string]string{
		"text/plain": "Hello Ada,\r\nour spring news.",
		"text/html":  "<p>Hello Ada,</p><p>our spring news.</p>",
	}
	if diff := cmp.Diff(wantParts, parts); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
}

func TestSendSinglePart(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{MessageIDDomain: "mid.missive.example"})
	for i, m := range []channels.Message{
		{ID: "text", To: rcpt, Subject: "t", Text: "only text", From: "solo@missive.example"},
		{ID: "html", To: rcpt, Subject: "h", HTML: "<b>only html</b>"},
	} {
		if _, err := b.sender.Send(context.Background(), m); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	got := b.srv.Wait(2, 5*time.Second)
	wantCT := []string{"text/plain", "text/html"}
	wantFrom := []string{"solo@missive.example", "news@missive.example"}
	for i, r := range got {
		msg, err := netmail.ReadMessage(bytes.NewReader(r.Data))
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if ct != wantCT[i] {
			t.Errorf("message %d: Content-Type %q, want %q", i, ct, wantCT[i])
		}
		if r.From != wantFrom[i] {
			t.Errorf("message %d: envelope sender %q, want the From address %q", i, r.From, wantFrom[i])
		}
		if id := msg.Header.Get("Message-Id"); !strings.HasSuffix(id, "@mid.missive.example>") {
			t.Errorf("message %d: Message-Id %q does not use MessageIDDomain", i, id)
		}
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{}, smtptest.WithStartTLS(), smtptest.WithAuth("missive", "s3cret-pass"))
	if _, err := b.sender.Send(context.Background(), message("auth-ok")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := b.srv.Wait(1, 5*time.Second)[0]
	if got.User != "missive" || !got.TLS {
		t.Errorf("session user %q TLS %v, want missive over TLS", got.User, got.TLS)
	}

	// The same server with the wrong password: 535 5.7.8 refuses the
	// sender, not the recipient.
	wrong := strings.Replace(b.srv.URL(), "s3cret-pass", "wrong-pass", 1)
	s, err := email.New(email.Config{URL: wrong, From: sender, TLSConfig: b.srv.ClientTLSConfig(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Send(context.Background(), message("auth-bad"))
	assertError(t, err, channels.Sender, "5.7.8")
	if strings.Contains(err.Error(), "wrong-pass") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestTLSModes(t *testing.T) {
	t.Parallel()
	t.Run("required and offered", func(t *testing.T) {
		t.Parallel()
		b := setup(t, email.Config{}, smtptest.WithStartTLS())
		if !strings.Contains(b.srv.URL(), "tls=required") {
			t.Fatalf("URL %q does not require TLS", b.srv.URL())
		}
		if _, err := b.sender.Send(context.Background(), message("tls-required")); err != nil {
			t.Fatal(err)
		}
		if got := b.srv.Wait(1, 5*time.Second)[0]; !got.TLS {
			t.Error("message was not sent over TLS")
		}
	})
	t.Run("opportunistic and offered", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.New(t, smtptest.WithStartTLS())
		b := setup(t, email.Config{URL: "smtp://" + srv.Addr(), TLSConfig: srv.ClientTLSConfig()})
		b.srv = srv
		if _, err := b.sender.Send(context.Background(), message("tls-opportunistic")); err != nil {
			t.Fatal(err)
		}
		if got := srv.Wait(1, 5*time.Second)[0]; !got.TLS {
			t.Error("STARTTLS was offered but not used")
		}
	})
	t.Run("opportunistic and not offered", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.New(t)
		b := setup(t, email.Config{URL: "smtp://" + srv.Addr()})
		if _, err := b.sender.Send(context.Background(), message("tls-absent")); err != nil {
			t.Fatal(err)
		}
		if got := srv.Wait(1, 5*time.Second)[0]; got.TLS {
			t.Error("TLS reported without STARTTLS")
		}
	})
	t.Run("required and not offered", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.New(t)
		b := setup(t, email.Config{URL: "smtp://" + srv.Addr() + "?tls=required"})
		_, err := b.sender.Send(context.Background(), message("tls-missing"))
		assertError(t, err, channels.Temporary, "")
		if n := len(srv.Messages()); n != 0 {
			t.Errorf("%d messages sent in clear text", n)
		}
	})
	t.Run("implicit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, email.Config{}, smtptest.WithImplicitTLS(), smtptest.WithAuth("u", "p"))
		if !strings.HasPrefix(b.srv.URL(), "smtps://") {
			t.Fatalf("URL %q", b.srv.URL())
		}
		if _, err := b.sender.Send(context.Background(), message("tls-implicit")); err != nil {
			t.Fatal(err)
		}
		if got := b.srv.Wait(1, 5*time.Second)[0]; !got.TLS || got.User != "u" {
			t.Errorf("TLS %v user %q, want TLS and u", got.TLS, got.User)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		srv := smtptest.New(t, smtptest.WithStartTLS())
		s, err := email.New(email.Config{URL: srv.URL(), From: sender, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = s.Send(context.Background(), message("tls-untrusted"))
		assertError(t, err, channels.Temporary, "")
	})
}

func TestConnectionReuse(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{Connections: 2})
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			m := message(fmt.Sprintf("reuse-%d", i))
			m.To = channels.Address(fmt.Sprintf("r%d@example.org", i))
			if _, err := b.sender.Send(context.Background(), m); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := b.srv.Wait(n, 10*time.Second)
	if len(got) != n {
		t.Errorf("%d messages received, want %d", len(got), n)
	}
	if c := b.srv.Connections(); c > 2 || c == 0 {
		t.Errorf("%d connections for %d messages, want 1 or 2", c, n)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.To[0]] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct recipients, want %d", len(seen), n)
	}
}

func TestReconnect(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{Connections: 1})
	ctx := context.Background()
	if _, err := b.sender.Send(ctx, message("before")); err != nil {
		t.Fatal(err)
	}
	b.srv.Wait(1, 5*time.Second)
	b.srv.CloseConnections() // as a relay does with an idle client
	if _, err := b.sender.Send(ctx, message("after")); err != nil {
		t.Fatalf("Send after the relay closed the idle connection: %v", err)
	}
	b.srv.Wait(2, 5*time.Second)
	checkConnections(t, b.srv, 2)
}

func TestErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{Connections: 1})
	tests := []struct {
		name     string
		to       string
		prepare  func(to string)
		wantKind channels.ErrorKind
		wantCode string
		wantFb   channels.FeedbackKind
	}{
		{
			name:     "unknown mailbox",
			to:       "gone.user@example.org",
			prepare:  func(to string) { b.srv.Reject(to, 550, "5.1.1", "<"+to+">: Recipient address rejected: User unknown") },
			wantKind: channels.Permanent, wantCode: "5.1.1", wantFb: channels.HardBounce,
		},
		{
			name:     "mailbox full",
			to:       "full.user@example.org",
			prepare:  func(to string) { b.srv.Reject(to, 552, "5.2.2", "<"+to+">: mailbox full") },
			wantKind: channels.Permanent, wantCode: "5.2.2", wantFb: channels.SoftBounce,
		},
		{
			name:     "our sender refused",
			to:       "picky.user@example.org",
			prepare:  func(to string) { b.srv.Reject(to, 550, "5.1.8", "<"+to+">: sender domain unknown") },
			wantKind: channels.Permanent, wantCode: "5.1.8",
		},
		{
			name:     "greylisted",
			to:       "grey.user@example.org",
			prepare:  func(to string) { b.srv.Reject(to, 451, "4.7.1", "<"+to+">: Recipient address rejected: greylisted") },
			wantKind: channels.Temporary, wantCode: "4.7.1",
		},
		{
			name:     "no enhanced code",
			to:       "plain.reject@example.org",
			prepare:  func(to string) { b.srv.Reject(to, 554, "", "rejected "+to) },
			wantKind: channels.Permanent, wantCode: "5.0.0", // go-smtp always sends an enhanced code
		},
		{
			name:     "dropped after data",
			to:       "drop.user@example.org",
			prepare:  func(to string) { b.srv.DropAfterData(to) },
			wantKind: channels.Ambiguous,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.prepare(tt.to)
			m := message("err-" + strings.ReplaceAll(tt.name, " ", "-"))
			m.To = channels.Address(tt.to)
			_, err := b.sender.Send(context.Background(), m)
			assertError(t, err, tt.wantKind, tt.wantCode)
			var ce *channels.Error
			if errors.As(err, &ce) && ce.Feedback != tt.wantFb {
				t.Errorf("Feedback %q, want %q", ce.Feedback, tt.wantFb)
			}
			assertClean(t, err, tt.to, m)
			// The sender recovers: the next message goes through.
			if _, err := b.sender.Send(context.Background(), message("after-"+m.ID)); err != nil {
				t.Errorf("Send after %s: %v", tt.name, err)
			}
		})
	}
	// Rejections keep the connection, a drop costs one.
	checkConnections(t, b.srv, 2)
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	srv := smtptest.New(t)
	addr := srv.Addr()
	srv.Close() // nothing listens there now
	s, err := email.New(email.Config{URL: "smtp://" + addr, From: sender, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Send(context.Background(), message("refused"))
	assertError(t, err, channels.Temporary, "")
	assertClean(t, err, rcpt, message("refused"))
}

func TestContextCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.sender.Send(ctx, message("cancelled"))
	assertError(t, err, channels.Temporary, "")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not wrap context.Canceled", err)
	}
	if n := len(b.srv.Messages()); n != 0 {
		t.Errorf("%d messages sent with a cancelled context", n)
	}
}

func TestInvalidMessages(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{})
	tests := map[string]func(m *channels.Message){
		"CRLF in header value": func(m *channels.Message) { m.Headers["X-Campaign"] = "a\r\nBcc: " + rcpt },
		"LF in header name":    func(m *channels.Message) { m.Headers["X-A\nBcc"] = "x" },
		"reserved header":      func(m *channels.Message) { m.Headers["bcc"] = rcpt },
		"invalid recipient":    func(m *channels.Message) { m.To = "ada.lovelace@@example.org" },
		"empty recipient":      func(m *channels.Message) { m.To = "" },
		"invalid sender":       func(m *channels.Message) { m.From = "ada.lovelace@example.org>" },
		"no body":              func(m *channels.Message) { m.Text, m.HTML = "", "" },
		"no id":                func(m *channels.Message) { m.ID = "" },
		"sms message":          func(m *channels.Message) { m.Channel = channels.SMS },
		"CRLF in subject":      func(m *channels.Message) { m.Subject = "hi\r\nBcc: " + rcpt },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			m := message("invalid")
			m.Headers = map[string]string{"List-Id": "x"}
			mutate(&m)
			_, err := b.sender.Send(context.Background(), m)
			assertError(t, err, channels.Permanent, "")
			assertClean(t, err, rcpt, m)
			assertClean(t, err, "ada.lovelace@@example.org", m)
		})
	}
	if n := b.srv.Connections(); n != 0 {
		t.Errorf("invalid messages opened %d connections", n)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	b := setup(t, email.Config{})
	if _, err := b.sender.Send(context.Background(), message("one")); err != nil {
		t.Fatal(err)
	}
	if err := b.sender.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.sender.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.sender.Send(context.Background(), message("two")); !errors.Is(err, email.ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  email.Config
		want string
	}{
		{email.Config{}, "email: MISSIVE_SMTP_URL: is empty"},
		{email.Config{URL: "smtp://h", From: "not an address"}, "email: MISSIVE_EMAIL_FROM: address is not valid"},
		{email.Config{URL: "smtp://h", Connections: -1}, "email: Connections must not be negative"},
	}
	for _, tt := range tests {
		_, err := email.New(tt.cfg)
		if err == nil || err.Error() != tt.want {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

// assertError checks the kind and code of a *channels.Error.
func assertError(t *testing.T, err error, kind channels.ErrorKind, code string) {
	t.Helper()
	var ce *channels.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *channels.Error", err, err)
	}
	if ce.Kind != kind || ce.Code != code {
		t.Errorf("error %q: kind %v code %q, want %v %q", err, ce.Kind, ce.Code, kind, code)
	}
	if channels.KindOf(err) != kind {
		t.Errorf("KindOf = %v, want %v", channels.KindOf(err), kind)
	}
}

// assertClean checks that err shows no address and no body.
func assertClean(t *testing.T, err error, addr string, m channels.Message) {
	t.Helper()
	s := err.Error()
	local, _, _ := strings.Cut(addr, "@")
	for _, secret := range []string{addr, local, m.Text, m.HTML, m.Subject} {
		if secret != "" && strings.Contains(s, secret) {
			t.Errorf("error %q contains %q", s, secret)
		}
	}
}

package email_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/channels/email"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		want    email.Endpoint
		wantErr string
	}{
		{url: "smtp://relay.example.com", want: email.Endpoint{Host: "relay.example.com", Port: 587, TLS: email.TLSOpportunistic}},
		{url: "smtp://u:p%40ss@relay.example.com:2525?tls=required", want: email.Endpoint{Host: "relay.example.com", Port: 2525, TLS: email.TLSRequired, Username: "u", Password: "p@ss"}},
		{url: "smtp://relay.example.com:25?tls=none", want: email.Endpoint{Host: "relay.example.com", Port: 25, TLS: email.TLSNone}},
		{url: "smtps://u:hunter2@relay.example.com", want: email.Endpoint{Host: "relay.example.com", Port: 465, TLS: email.TLSImplicit, Username: "u", Password: "hunter2"}},
		{url: "smtp://[::1]:25", want: email.Endpoint{Host: "::1", Port: 25, TLS: email.TLSOpportunistic}},
		{url: "", wantErr: "email: MISSIVE_SMTP_URL: is empty"},
		{url: "http://u:hunter2@relay.example.com", wantErr: "email: MISSIVE_SMTP_URL: scheme must be smtp or smtps"},
		{url: "smtp://u:hunter2@:25", wantErr: "email: MISSIVE_SMTP_URL: host is missing"},
		{url: "smtp://u:hunter2@relay.example.com:99999", wantErr: "email: MISSIVE_SMTP_URL: port must be a number from 1 to 65535"},
		{url: "smtp://u:hunter2@relay.example.com:x", wantErr: "email: MISSIVE_SMTP_URL: is not a valid URL (check the port, and percent-encode special characters in the user name and password)"},
		{url: "smtp://u:hunter2@relay.example.com?tls=maybe", wantErr: "email: MISSIVE_SMTP_URL: tls must be opportunistic, required or none"},
		{url: "smtp://u:hunter2@relay.example.com?pool=3", wantErr: `email: MISSIVE_SMTP_URL: unknown parameter "pool" (only tls is known)`},
		{url: "smtps://u:hunter2@relay.example.com?tls=none", wantErr: "email: MISSIVE_SMTP_URL: tls must be required (or absent) with smtps"},
		{url: "smtp://u:hunter2@relay.example.com/x", wantErr: "email: MISSIVE_SMTP_URL: must not have a path"},
		{url: "smtp://:hunter2@relay.example.com", wantErr: "email: MISSIVE_SMTP_URL: user name is empty while a password is set"},
	}
	for _, tt := range tests {
		got, err := email.ParseURL(tt.url)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseURL(%q) error = %v, want %q", tt.url, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.url, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseURL(%q) (-want +got):\n%s", tt.url, diff)
		}
		if got.Password != "" && strings.Contains(got.String(), got.Password) {
			t.Errorf("String() %q shows the password", got.String())
		}
	}
}

func TestBuild(t *testing.T) {
	t.Parallel()
	base := channels.Message{ID: "run-1.c-2", To: "ada@example.org", Text: "t"}
	tests := []struct {
		name      string
		mutate    func(*channels.Message)
		defaults  email.Defaults
		wantID    string
		wantFrom  string
		wantEnvFr string
		wantErr   string
	}{
		{name: "defaults", defaults: email.Defaults{From: "News <news@missive.example>"},
			wantID: "<run-1.c-2@missive.example>", wantFrom: `"News" <news@missive.example>`, wantEnvFr: "news@missive.example"},
		{name: "message sender and return path wins", defaults: email.Defaults{From: "news@missive.example", ReturnPath: "b@missive.example"},
			mutate: func(m *channels.Message) { m.From = "shop@shop.example"; m.ReturnPath = "bounce+1@bounce.example" },
			wantID: "<run-1.c-2@shop.example>", wantFrom: "<shop@shop.example>", wantEnvFr: "bounce+1@bounce.example"},
		{name: "default return path", defaults: email.Defaults{From: "news@missive.example", ReturnPath: "b@missive.example", MessageIDDomain: "id.example"},
			wantID: "<run-1.c-2@id.example>", wantFrom: "<news@missive.example>", wantEnvFr: "b@missive.example"},
		{name: "id that is not a dot-atom", defaults: email.Defaults{From: "news@missive.example"},
			mutate: func(m *channels.Message) { m.ID = "run 1:c<2>" },
			wantID: "<m-cnVuIDE6YzwyPg@missive.example>", wantFrom: "<news@missive.example>", wantEnvFr: "news@missive.example"},
		{name: "no sender", wantErr: "email: sender is empty and no default From is set"},
		{name: "CR in header", defaults: email.Defaults{From: "n@m.example"},
			mutate:  func(m *channels.Message) { m.Headers = map[string]string{"list-id": "a\rb"} },
			wantErr: "email: header List-Id: value contains CR or LF"},
		{name: "colon in header name", defaults: email.Defaults{From: "n@m.example"},
			mutate:  func(m *channels.Message) { m.Headers = map[string]string{"X:Y": "a"} },
			wantErr: `email: header name "X:Y" is not valid`},
		{name: "reserved header", defaults: email.Defaults{From: "n@m.example"},
			mutate:  func(m *channels.Message) { m.Headers = map[string]string{"message-id": "<x@y>"} },
			wantErr: "email: header Message-Id is set from the message fields"},
		{name: "invalid recipient", defaults: email.Defaults{From: "n@m.example"},
			mutate:  func(m *channels.Message) { m.To = "ada@example.org, eve@example.org" },
			wantErr: "email: recipient: address is not valid"},
		{name: "CRLF in recipient", defaults: email.Defaults{From: "n@m.example"},
			mutate:  func(m *channels.Message) { m.To = "ada@example.org\r\nBcc: eve@example.org" },
			wantErr: "email: recipient: address contains CR or LF"},
		{name: "invalid return path", defaults: email.Defaults{From: "n@m.example"},
			mutate:  func(m *channels.Message) { m.ReturnPath = "bounce" },
			wantErr: "email: return path: address is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base
			if tt.mutate != nil {
				tt.mutate(&m)
			}
			msg, err := email.Build(m, tt.defaults)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			env, _ := msg.GetSender(false)
			got := []string{msg.GetMessageID(), msg.GetFromString()[0], strings.Trim(env, "<>"), msg.GetToString()[0]}
			want := []string{tt.wantID, tt.wantFrom, tt.wantEnvFr, "<ada@example.org>"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			var buf bytes.Buffer
			if _, err := msg.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(buf.Bytes(), []byte("EnvelopeFrom")) {
				t.Error("envelope sender leaked into the headers")
			}
		})
	}
}

func FuzzBuildHeaders(f *testing.F) {
	f.Add("List-Id", "News <news.example>")
	f.Add("X-A", "a\r\nBcc: eve@example.org")
	f.Fuzz(func(t *testing.T, name, value string) {
		m := channels.Message{ID: "f", To: "ada@example.org", Text: "t", Headers: map[string]string{name: value}}
		msg, err := email.Build(m, email.Defaults{From: "n@m.example"})
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := msg.WriteTo(&buf); err != nil {
			return
		}
		head, _, _ := bytes.Cut(buf.Bytes(), []byte("\r\n\r\n"))
		for _, line := range bytes.Split(head, []byte("\r\n")) {
			if bytes.HasPrefix(bytes.ToLower(line), []byte("bcc:")) {
				t.Fatalf("header injection: %q", line)
			}
		}
	})
}

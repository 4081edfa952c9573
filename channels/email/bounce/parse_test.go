package bounce_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/missive-dev/missive/channels/email/bounce"
)

// rcpt is the part of a Recipient the sample table asserts.
type rcpt struct {
	Address, Action, Status, Class string
}

// sampleTest is what TestParseSamples wants of one sample.
type sampleTest struct {
	file      string
	kind      string
	messageID string // "" when not asserted
	want      []rcpt
}

// readSampleTests reads testdata/samples.want; its head describes its
// lines.
func readSampleTests(t *testing.T) []sampleTest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "samples.want"))
	if err != nil {
		t.Fatal(err)
	}
	var tests []sampleTest
	for i, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		for j, f := range fields {
			if f == "-" {
				fields[j] = ""
			}
		}
		indented := strings.HasPrefix(line, "\t")
		switch {
		case !indented && (len(fields) == 2 || len(fields) == 3):
			tt := sampleTest{file: fields[0], kind: fields[1]}
			if len(fields) == 3 {
				tt.messageID = fields[2]
			}
			tests = append(tests, tt)
		case indented && len(fields) == 4 && len(tests) > 0:
			tt := &tests[len(tests)-1]
			tt.want = append(tt.want, rcpt{fields[0], fields[1], fields[2], fields[3]})
		default:
			t.Fatalf("samples.want:%d: %q is neither a sample nor one of its recipients", i+1, line)
		}
	}
	if len(tests) == 0 {
		t.Fatal("samples.want names no sample")
	}
	return tests
}

func TestParseSamples(t *testing.T) {
	for _, tt := range readSampleTests(t) {
		t.Run(tt.file, func(t *testing.T) {
			rep := parseFile(t, tt.file)
			var got []rcpt
			for _, r := range rep.Recipients {
				got = append(got, rcpt{r.Address, r.Action, r.Status, r.Class})
				if len(r.Diagnostic) > 500 || strings.ContainsAny(r.Diagnostic, "\r\n") {
					t.Errorf("Diagnostic not one line of at most 500 bytes: %q", r.Diagnostic)
				}
			}
			if rep.Kind != tt.kind {
				t.Errorf("Kind = %q, want %q", rep.Kind, tt.kind)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("recipients (-want +got):\n%s", diff)
			}
			if tt.messageID != "" && rep.MessageID != tt.messageID {
				t.Errorf("MessageID = %q, want %q", rep.MessageID, tt.messageID)
			}
		})
	}
}

// Every field of a complaint and of a bounce, as parsed from real ones.
func TestParseFields(t *testing.T) {
	for _, tt := range []struct {
		file string
		want *bounce.Report
	}{
		{"arf-02.eml", &bounce.Report{
			Kind:              "arf",
			FeedbackType:      "abuse",
			MessageID:         "000000000000000000000000.smtp@example.com",
			OriginalRecipient: "this-local-part-does-not-exist-on-yahoo@yahoo.com",
			Recipients:        []bounce.Recipient{{Address: "this-local-part-does-not-exist-on-yahoo@yahoo.com", Class: "complaint"}},
		}},
		{"lhost-receivingses-01.eml", &bounce.Report{
			Kind:         "dsn",
			MessageID:    "DCB08CC1-D236-48E2-9A8D-2492DACE50E2@example.co.jp",
			ReportingMTA: "inbound-smtp.us-west-2.amazonaws.com",
			Recipients: []bounce.Recipient{{
				Address: "userunknown@neko.example.jp", Action: "failed", Status: "5.1.1", Class: "hard",
				Diagnostic: "550 5.1.1 Mailbox does not exist",
			}},
		}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, parseFile(t, tt.file)); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}

// A DSN we build the way Missive's relay would return it, with a delayed
// and a delivered recipient and a message/global-delivery-status part.
func TestParseDelayedAndGlobal(t *testing.T) {
	const msg = "From: MAILER-DAEMON@relay.example\r\n" +
		"To: bounces+send-1@bounce.missive.example\r\n" +
		"Subject: Delayed Mail (still being retried)\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nYour message is delayed.\r\n" +
		"--b1\r\nContent-Type: message/global-delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; relay.example\r\n\r\n" +
		"Final-Recipient: rfc822; ada@example.org\r\nAction: delayed\r\nStatus: 4.4.1\r\n" +
		"Diagnostic-Code: smtp; 421 4.4.1 connection timed out\r\n\r\n" +
		"Final-Recipient: rfc822; grace@example.org\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n" +
		"--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <send-1@missive.example>\r\nTo: ada@example.org\r\n\r\n" +
		"--b1--\r\n"
	rep, err := bounce.Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	want := &bounce.Report{
		Kind: "dsn", MessageID: "send-1@missive.example", ReportingMTA: "relay.example",
		Recipients: []bounce.Recipient{
			{Address: "ada@example.org", Action: "delayed", Status: "4.4.1", Class: "delay", Diagnostic: "421 4.4.1 connection timed out"},
			{Address: "grace@example.org", Action: "delivered", Status: "2.0.0"},
		},
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

func TestParseLimits(t *testing.T) {
	big := bytes.Repeat([]byte("x"), bounce.MaxSize+1)
	if _, err := bounce.Parse(multiReader("Subject: x\r\n\r\n", big)); !errors.Is(err, bounce.ErrTooLarge) {
		t.Errorf("over MaxSize: err = %v, want ErrTooLarge", err)
	}
	if _, err := bounce.Parse(strings.NewReader("")); !errors.Is(err, bounce.ErrMalformed) {
		t.Errorf("empty: err = %v, want ErrMalformed", err)
	}
	// A long diagnostic is cut to one line of 500 bytes.
	long := strings.Repeat("é", 400)
	rep := parseFailed(t, "5.1.1", "550\r\n "+long)
	if d := rep.Recipients[0].Diagnostic; len(d) > 500 || !strings.HasPrefix(d, "550 é") || !utf8Valid(d) {
		t.Errorf("Diagnostic: %d bytes, valid %v", len(d), utf8Valid(d))
	}
}

func TestClassPolicy(t *testing.T) {
	tests := []struct{ status, diag, want string }{
		{"5.1.1", "550 5.1.1 user unknown", "hard"},
		{"5.2.2", "552 5.2.2 mailbox full", "soft"},
		{"5.3.4", "552 5.3.4 message too large", "soft"},
		{"5.7.1", "550 5.7.1 message rejected as spam", "soft"},
		{"5.7.1", "550 5.7.1 recipient address rejected: user unknown", "hard"},
		{"4.2.2", "452 4.2.2 over quota", "soft"},
		{"5.4.4", "550 5.4.4 host not found", "hard"},
	}
	for _, tt := range tests {
		if got := parseFailed(t, tt.status, tt.diag).Recipients[0].Class; got != tt.want {
			t.Errorf("%s %q: Class = %q, want %q", tt.status, tt.diag, got, tt.want)
		}
	}
}

func TestLocalVERP(t *testing.T) {
	tests := []struct {
		rcpt, prefix, token string
		ok                  bool
	}{
		{"bounces+send-1@bounce.example", "bounces", "send-1", true},
		{"<Bounces+AbC_9.x=y@bounce.example>", "bounces", "AbC_9.x=y", true},
		{"BOUNCES+tok@b.example", "bounces", "tok", true},
		{"bounces+a+b@b.example", "bounces", "a+b", true},
		{"bounces@b.example", "bounces", "", false},
		{"bounces+@b.example", "bounces", "", false},
		{"bouncesx+tok@b.example", "bounces", "", false},
		{"other+tok@b.example", "bounces", "", false},
		{"bounces+tok", "bounces", "", false},
		{"bounces+to k@b.example", "bounces", "", false},
		{"bounces+" + strings.Repeat("a", 257) + "@b.example", "bounces", "", false},
	}
	for _, tt := range tests {
		token, ok := bounce.LocalVERP(tt.rcpt, tt.prefix)
		if token != tt.token || ok != tt.ok {
			t.Errorf("LocalVERP(%q) = %q, %v; want %q, %v", tt.rcpt, token, ok, tt.token, tt.ok)
		}
	}
}

// parseFailed parses a DSN that reports one failed recipient with status
// and diagnostic (which may be folded over several lines).
func parseFailed(t testing.TB, status, diagnostic string) *bounce.Report {
	t.Helper()
	msg := "From: MAILER-DAEMON@x.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n" +
		"Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: " + status + "\r\nDiagnostic-Code: smtp; " + diagnostic + "\r\n\r\n--b--\r\n"
	rep, err := bounce.Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return rep
}

func parseFile(t testing.TB, name string) *bounce.Report {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := bounce.Parse(f)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return rep
}

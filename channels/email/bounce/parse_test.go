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

// The expectations come from reading each sample. Where a sample gives no
// usable status the comment says what the class is derived from.
var sampleTests = []struct {
	file      string
	kind      string
	messageID string // "" when not asserted
	want      []rcpt
}{
	// Postfix, RFC 3464.
	{"lhost-postfix-01.eml", "dsn", "", []rcpt{
		// Original-Recipient (the address we gave) wins over the local
		// Final-Recipient the alias led to.
		{"kijitora@example.org", "failed", "5.1.1", "hard"}}},
	{"lhost-postfix-02.eml", "dsn", "", []rcpt{
		{"filtered@example.co.jp", "failed", "5.2.1", "hard"},
		{"userunknown@example.co.jp", "failed", "5.1.1", "hard"}}},
	// Postfix with a boundary in the header that the body does not use.
	{"rhost-google-02.eml", "dsn", "", []rcpt{{"neko-nyaan@example.org", "failed", "5.1.1", "hard"}}},
	// Exim, text only, X-Failed-Recipients.
	{"lhost-exim-01.eml", "dsn", "", []rcpt{
		// 550 5.7.0 "use the smtp server of your ISP": a block of our
		// sender, soft by policy.
		{"kijitora@example.ed.jp", "failed", "5.7.0", "soft"}}},
	{"lhost-exim-02.eml", "dsn", "", []rcpt{
		{"kijitora@example.jp", "failed", "5.1.1", "hard"},
		{"sabatora@example.jp", "failed", "5.2.1", "hard"}}},
	// Exchange 2003 (text: "Unknown Recipient", no code → 5.1.1 by phrase), 2007.
	{"lhost-exchange2003-02.eml", "dsn", "", []rcpt{
		{"kijitora@example.co.jp", "failed", "5.1.1", "hard"},
		{"mikeneko@example.co.jp", "failed", "5.1.1", "hard"}}},
	{"lhost-exchange2007-01.eml", "dsn", "", []rcpt{{"mikeneko@example.co.jp", "failed", "5.1.1", "hard"}}},
	{"lhost-exchange2007-02.eml", "dsn", "", []rcpt{{"kijitora@example.edu", "failed", "5.2.2", "soft"}}},
	// Office 365 / Outlook.
	{"lhost-office365-01.eml", "dsn", "FFFFFFFF.EEEEEEEE@example.ed.jp", []rcpt{{"kijitora@example.com", "failed", "5.1.10", "hard"}}},
	{"lhost-office365-02.eml", "dsn", "c302b7e8-9b97-40ef-90eb-313cc6c25133@NYAAAAN.example.org", []rcpt{
		{"kijitora@example.onmicrosoft.com", "failed", "5.1.1", "hard"}}},
	{"lhost-outlook-01.eml", "dsn", "", []rcpt{{"kijitora@example.jp", "failed", "5.2.2", "soft"}}},
	{"rhost-microsoft-01.eml", "dsn", "", []rcpt{
		// 5.7.606 banned sending IP: our reputation, soft.
		{"kijitora@example.com", "failed", "5.7.606", "soft"}}},
	// Gmail: "Delivery to the following recipient failed permanently".
	{"lhost-gmail-01.eml", "dsn", "D992C2C3-F175-4C4D-97E2-53A90E4E5BF5@gmail.com", []rcpt{
		{"userunknown@example.jp", "failed", "5.1.1", "hard"}}},
	{"rhost-google-01.eml", "dsn", "", []rcpt{{"shironeko@example.ne.jp", "failed", "5.2.1", "hard"}}},
	// Yahoo: "Sorry, we were unable to deliver your message".
	{"lhost-yahoo-01.eml", "dsn", "6AE6249A-E7A8-4980-862C-F499F6B8E7C5@y.example.co.jp", []rcpt{
		{"kijitora@example.org", "failed", "5.1.1", "hard"}}},
	{"lhost-yahoo-02.eml", "dsn", "", []rcpt{{"kijitora@example.ed.jp", "failed", "5.2.2", "soft"}}},
	{"rhost-yahooinc-02.eml", "dsn", "", []rcpt{{"kijitora@y.example.ca", "failed", "4.7.0", "soft"}}},
	// qmail: "Hi. This is the qmail-send program".
	{"lhost-qmail-01.eml", "dsn", "", []rcpt{
		// "550 Unknown user ... (#5.5.0)": qmail's own code is kept.
		{"kijitora@example.ne.jp", "failed", "5.5.0", "hard"}}},
	{"lhost-qmail-02.eml", "dsn", "", []rcpt{
		{"userunknown@example.jp", "failed", "5.1.1", "hard"},
		{"filtered@example.jp", "failed", "5.2.1", "hard"}}},
	// Sendmail, RFC 3464, and V5 Sendmail text.
	{"lhost-sendmail-01.eml", "dsn", "E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org", []rcpt{
		{"userunknown@bouncehammer.jp", "failed", "5.1.1", "hard"}}},
	{"lhost-sendmail-02.eml", "dsn", "", []rcpt{
		{"userunknown@example.org", "failed", "5.1.1", "hard"},
		{"filtered@example.com", "failed", "5.2.1", "hard"}}},
	{"lhost-v5sendmail-01.eml", "dsn", "", []rcpt{
		// "421 ... Deferred: Connection timed out", given up after 4 days:
		// a reply code only, so 4.0.0, soft. The recipient is the To of
		// the copy that follows the notice.
		{"kijitora@example.com", "failed", "4.0.0", "soft"}}},
	{"lhost-v5sendmail-02.eml", "dsn", "", []rcpt{
		// "550 Host unknown": 5.1.2 from the phrase and the reply code.
		{"kijitora@neko.example.org", "failed", "5.1.2", "hard"}}},
	// Amazon SES, sending and receiving.
	{"lhost-amazonses-01.eml", "dsn", "", []rcpt{
		// Status 5.1.0 refined by "Unknown address".
		{"shironeko@example.co.jp", "failed", "5.1.1", "hard"}}},
	{"lhost-amazonses-02.eml", "dsn", "", []rcpt{
		{"this-local-part-does-not-exist-on-the-server@docomo.ne.jp", "failed", "5.3.0", "hard"}}},
	{"lhost-receivingses-01.eml", "dsn", "DCB08CC1-D236-48E2-9A8D-2492DACE50E2@example.co.jp", []rcpt{
		{"userunknown@neko.example.jp", "failed", "5.1.1", "hard"}}},
	{"rhost-spectrum-01.eml", "dsn", "", []rcpt{
		// 5.1.0 "<...@amazonses.com> sender rejected": our sender, soft.
		{"theusername@charter.net", "failed", "5.1.0", "soft"}}},
	// Others.
	{"rfc3464-01.eml", "dsn", "", []rcpt{{"userunknown@bouncehammer.jp", "failed", "5.1.1", "hard"}}},
	{"lhost-courier-02.eml", "dsn", "", []rcpt{{"kijitora@example.jp", "failed", "5.1.1", "hard"}}},
	{"lhost-messagingserver-02.eml", "dsn", "", []rcpt{
		// 5.2.0 "Over quota": the words give 5.2.2.
		{"kijitora@example.net", "failed", "5.2.2", "soft"}}},
	{"lhost-opensmtpd-02.eml", "dsn", "", []rcpt{
		{"mailboxfull@example.jp", "failed", "5.2.2", "soft"},
		{"userunknown@example.jp", "failed", "5.1.1", "hard"}}},
	{"lhost-zoho-02.eml", "dsn", "", []rcpt{
		{"mikeneko@example.co.jp", "failed", "5.2.1", "hard"},
		{"sabineko@example.co.jp", "failed", "5.2.2", "soft"}}},
	{"lhost-biglobe-01.eml", "dsn", "", []rcpt{
		// No code: "recipient's mailbox exceeded the local limit" → 4.2.2;
		// the recipient is the To of the returned message.
		{"postmaster@mxr.biglobe.ne.jp", "failed", "4.2.2", "soft"}}},
	{"lhost-x5-01.eml", "dsn", "", []rcpt{
		// A bounce returned inside a bounce: the inner DSN is read.
		{"kijitora@neko.example.org", "failed", "5.1.1", "hard"}}},
	{"lhost-amazonworkmail-02.eml", "dsn", "", []rcpt{
		// DSN fields written into the text part.
		{"sabineko@example.jp", "failed", "5.2.1", "hard"}}},
	{"lhost-googlegroups-01.eml", "dsn", "", []rcpt{
		// Google Groups says nothing of a code or a known phrase: soft.
		{"libsisimai@googlegroups.com", "failed", "", "soft"}}},
	{"rhost-cloudflare-01.eml", "dsn", "", []rcpt{{"kijitora-neko@example.com", "failed", "4.3.0", "soft"}}},
	// ARF complaints.
	// The feedback loop redacted the recipient: no address, the VERP
	// token says whose complaint it is.
	{"arf-01.eml", "arf", "", []rcpt{{"", "", "", "complaint"}}},
	{"arf-02.eml", "arf", "000000000000000000000000.smtp@example.com", []rcpt{
		{"this-local-part-does-not-exist-on-yahoo@yahoo.com", "", "", "complaint"}}},
	// Auto-replies: not bounces.
	{"rfc3834-01.eml", "autoreply", "", nil},
	{"rfc3834-02.eml", "autoreply", "", nil},
	// A mailing list's "you are not a member": neither.
	{"lhost-fml-02.eml", "unknown", "", nil},
}

func TestParseSamples(t *testing.T) {
	for _, tt := range sampleTests {
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

func TestParseARFFields(t *testing.T) {
	rep := parseFile(t, "arf-02.eml")
	want := &bounce.Report{
		Kind:              "arf",
		FeedbackType:      "abuse",
		MessageID:         "000000000000000000000000.smtp@example.com",
		OriginalRecipient: "this-local-part-does-not-exist-on-yahoo@yahoo.com",
		Recipients:        []bounce.Recipient{{Address: "this-local-part-does-not-exist-on-yahoo@yahoo.com", Class: "complaint"}},
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

func TestParseDSNFields(t *testing.T) {
	rep := parseFile(t, "lhost-receivingses-01.eml")
	want := &bounce.Report{
		Kind:         "dsn",
		MessageID:    "DCB08CC1-D236-48E2-9A8D-2492DACE50E2@example.co.jp",
		ReportingMTA: "inbound-smtp.us-west-2.amazonaws.com",
		Recipients: []bounce.Recipient{{
			Address: "userunknown@neko.example.jp", Action: "failed", Status: "5.1.1", Class: "hard",
			Diagnostic: "550 5.1.1 Mailbox does not exist",
		}},
	}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
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

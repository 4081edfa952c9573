package bounce_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/missive-dev/missive/channels/email/bounce"
)

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "samples", "*.eml"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte("Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: a@b.c\r\n--x--"))
	// Invalid UTF-8 before the failed address: ToLower would move offsets.
	f.Add([]byte("From: MAILER-DAEMON@x.example\r\nSubject: failure notice\r\n\r\n\xff\xfe\xff\xff\xffA\xff <KIJITORA@example.org>:\r\n550 5.1.1 user unknown\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		rep, err := bounce.Parse(bytes.NewReader(data))
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("Parse took %v on %d bytes", took, len(data))
		}
		if err != nil {
			return
		}
		if len(rep.Recipients) > bounce.MaxRecipients {
			t.Errorf("%d recipients", len(rep.Recipients))
		}
		switch rep.Kind {
		case bounce.KindDSN, bounce.KindARF, bounce.KindAutoReply, bounce.KindUnknown:
		default:
			t.Errorf("Kind %q", rep.Kind)
		}
		for _, r := range rep.Recipients {
			if len(r.Diagnostic) > 500 || bytes.ContainsAny([]byte(r.Diagnostic), "\r\n") {
				t.Errorf("Diagnostic %q", r.Diagnostic)
			}
		}
	})
}

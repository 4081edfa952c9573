package bounce_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/channels/email/bounce"
)

// The complaint formats of the large mailbox providers, from samples
// written for these tests (testdata/complaints/README.md).
func TestComplaintFormats(t *testing.T) {
	t.Parallel()
	type want struct {
		Kind, FeedbackType, OriginalRecipient, MessageID string
		Recipients                                       []bounce.Recipient
	}
	complaint := func(addr string) []bounce.Recipient {
		return []bounce.Recipient{{Address: addr, Class: bounce.ClassComplaint}}
	}
	unsubscribe := func(addr string) []bounce.Recipient {
		return []bounce.Recipient{{Address: addr, Class: bounce.ClassUnsubscribe}}
	}
	tests := []struct {
		file string
		want want
	}{
		// Outlook.com / Hotmail JMRP: not ARF, the address in X-HmXmrOriginalRecipient.
		{"jmrp-01.eml", want{"arf", "abuse", "kijitora@hotmail.example", "r1~c1~email@shop.example", complaint("kijitora@hotmail.example")}},
		// JMRP in ARF without Original-Rcpt-To, the To of the copy useless.
		{"jmrp-02.eml", want{"arf", "abuse", "mikeneko@outlook.example", "r1~c2~email@shop.example", complaint("mikeneko@outlook.example")}},
		// Yahoo / AOL: the recipient is redacted; the VERP token says who.
		{"yahoo-01.eml", want{"arf", "abuse", "", "r1~c3~email@shop.example", complaint("")}},
		// Apple Mail's unsubscribe request: the sender is the recipient.
		{"apple-01.eml", want{"arf", "opt-out", "sabatora@icloud.example", "", unsubscribe("sabatora@icloud.example")}},
		// An ARF report of Feedback-Type opt-out: an unsubscribe, not a spam report.
		{"arf-optout-01.eml", want{"arf", "opt-out", "hachiware@mailbox.example", "r1~c4~email@shop.example", unsubscribe("hachiware@mailbox.example")}},
		// A plain unsubscribe request, though marked as an auto-reply.
		{"unsubscribe-01.eml", want{"arf", "opt-out", "shironeko@mail.example", "", unsubscribe("shironeko@mail.example")}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "complaints", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := bounce.Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			got := want{rep.Kind, rep.FeedbackType, rep.OriginalRecipient, rep.MessageID, rep.Recipients}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

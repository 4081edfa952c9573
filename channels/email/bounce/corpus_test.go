package bounce_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/missive-dev/missive/channels/email/bounce"
)

// corpusFloor is the least number of the 136 samples that must yield at
// least one recipient. 131 do today; the five that do not are the two
// auto-replies, a mailing list's "not a member" notice and two Verizon /
// Apache James notices that name no address at all.
const corpusFloor = 131

// TestCorpus parses every sample and logs how many are classified with a
// recipient.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "samples", "*.eml"))
	if err != nil || len(files) != 136 {
		t.Fatalf("want 136 samples, got %d (%v)", len(files), err)
	}
	withRcpt := 0
	kinds := map[string]int{}
	for _, f := range files {
		name := filepath.Base(f)
		rep := parseFile(t, name)
		kinds[rep.Kind]++
		if len(rep.Recipients) > 0 {
			withRcpt++
		}
		switch {
		case strings.HasPrefix(name, "arf-") && rep.Kind != bounce.KindARF,
			strings.HasPrefix(name, "rfc3834-") && rep.Kind != bounce.KindAutoReply,
			strings.HasPrefix(name, "lhost-") || strings.HasPrefix(name, "rhost-") || strings.HasPrefix(name, "rfc3464-"):
			if rep.Kind == bounce.KindARF || rep.Kind == bounce.KindAutoReply {
				t.Errorf("%s: Kind = %q", name, rep.Kind)
			}
		}
		for _, r := range rep.Recipients {
			if r.Class == "" && rep.Kind != bounce.KindDSN {
				t.Errorf("%s: recipient without class", name)
			}
			if r.Address != "" && !strings.Contains(r.Address, "@") {
				t.Errorf("%s: address without @", name)
			}
		}
	}
	t.Logf("%d of %d samples classified with at least one recipient; kinds %v", withRcpt, len(files), kinds)
	if withRcpt < corpusFloor {
		t.Errorf("%d samples with a recipient, want at least %d", withRcpt, corpusFloor)
	}
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		parseFile(b, "lhost-postfix-02.eml")
	}
}

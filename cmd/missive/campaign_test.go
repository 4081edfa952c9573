package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/dispatcher"
)

// A run's status lists every outcome, so that the column adds up to what
// was planned, and says so when it does not.
func TestPrintRun(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		run  runStats
		want string
	}{
		{"under way", runStats{Run: dispatcher.Run{ID: "r1", State: dispatcher.RunSending, FireAt: at,
			Counters: map[string]int64{"planned": 50000, "sent": 4668, "queued": 30000, "deferred": 15000, "sending": 32,
				"no_consent": 300, "suppressed_bounce": 0, "capped": 0, "reached_before": 0, "failed": 0}},
			Decisions: map[string]int64{"queued": 34700, "deferred": 15000, "no_consent": 300}},
			`run r1: sending, fired 2026-12-01T10:00:00Z
  queued     30000
  deferred   15000
  sending       32
  sent        4668
  no_consent   300
  = total    50000 of 50000 planned, balanced
gate decided: deferred 15000, no_consent 300, queued 34700
`},
		{"short", runStats{Run: dispatcher.Run{ID: "r2", State: dispatcher.RunPaused, FireAt: at, PausedReason: "complaint rate 0.5% over 0.3%",
			Counters: map[string]int64{"planned": 10, "sent": 4, "delivered": 3}, Feedback: map[string]int64{"complained": 2}}},
			`run r2: paused, fired 2026-12-01T10:00:00Z
paused itself: complaint rate 0.5% over 0.3%
  sent       4
  delivered  3
  = total    7 of 10 planned, NOT balanced: 3 unaccounted
feedback: complained 2
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			printRun(&b, tt.run)
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("printRun (-want +got):\n%s", diff)
			}
		})
	}
}

package schedule

import (
	"testing"
	"time"

	"github.com/missive-dev/missive/dispatcher"
)

// A cron fires from when it was set on: a campaign created days before
// and scheduled after today's time waits for tomorrow's.
func TestDueFromWhenScheduled(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)
	c := &dispatcher.Campaign{State: dispatcher.Scheduled, Schedule: &dispatcher.Schedule{Cron: "0 10 * * *"},
		CreatedAt: now.AddDate(0, 0, -10), ScheduledAt: now.Add(-time.Minute)}
	if got := due(c, now); len(got) != 0 {
		t.Errorf("fired %v, for a time before the schedule was set", got)
	}
	tomorrow := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	if got := due(c, tomorrow); len(got) != 1 || !got[0].Equal(tomorrow) {
		t.Errorf("due %v at %s, want that time", got, tomorrow)
	}
}

package throttle_test

import (
	"testing"
	"time"

	"github.com/missive-dev/missive/throttle"
)

// NextOpenAll finds the first minute two calendars share, across a
// change of the clocks, and none when they share none.
func TestNextOpenAll(t *testing.T) {
	t.Parallel()
	paris := mustLoad(t, "Europe/Paris")
	operator := mustCalendar(t, "mon-sat 08:00-20:00")
	evenings := mustCalendar(t, "mon-fri 18:00-24:00")
	sundays := mustCalendar(t, "sun 10:00-12:00")
	tests := []struct {
		name string
		now  time.Time
		cals []throttle.Calendar
		want time.Time
	}{
		{"inside both", time.Date(2026, 11, 24, 18, 30, 0, 0, paris), []throttle.Calendar{operator, evenings}, time.Date(2026, 11, 24, 18, 30, 0, 0, paris)},
		{"morning waits for the evening", time.Date(2026, 11, 24, 9, 0, 0, 0, paris), []throttle.Calendar{operator, evenings}, time.Date(2026, 11, 24, 18, 0, 0, 0, paris)},
		{"after 20:00 waits for the next evening", time.Date(2026, 11, 24, 20, 0, 0, 0, paris), []throttle.Calendar{operator, evenings}, time.Date(2026, 11, 25, 18, 0, 0, 0, paris)},
		// Clocks go back on Sunday 25 October 2026: Monday 18:00 is 17:00 UTC, not 16:00.
		{"Saturday evening waits for Monday, across the change", time.Date(2026, 10, 24, 19, 0, 0, 0, paris), []throttle.Calendar{operator, evenings}, time.Date(2026, 10, 26, 17, 0, 0, 0, time.UTC)},
		{"no shared minute", time.Date(2026, 11, 24, 9, 0, 0, 0, paris), []throttle.Calendar{operator, sundays}, time.Time{}},
	}
	for _, tt := range tests {
		got := throttle.NextOpenAll(tt.now, paris, tt.cals...)
		if !got.Equal(tt.want) {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

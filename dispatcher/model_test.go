package dispatcher

import (
	"testing"
	"time"
)

func TestScheduleValidation(t *testing.T) {
	tests := []struct {
		s     Schedule
		field string
	}{
		{Schedule{}, "schedule"},
		{Schedule{At: time.Now(), Cron: "* * * * *"}, "schedule"},
		{Schedule{Cron: "not a cron"}, "schedule.cron"},
		{Schedule{Cron: "0 10 * * 1", TZ: "Mars/Olympus"}, "schedule.tz"},
		{Schedule{At: time.Now(), LocalTime: "25:00"}, "schedule.local_time"},
	}
	for _, tt := range tests {
		err := tt.s.Validate()
		e, ok := err.(*Error)
		if !ok || e.Field != tt.field {
			t.Errorf("validate(%+v) = %v, want an error on %s", tt.s, err, tt.field)
		}
	}
	if err := (&Schedule{Cron: "0 10 * * 1-5", TZ: "Europe/Paris", LocalTime: "10:00"}).Validate(); err != nil {
		t.Errorf("valid schedule refused: %v", err)
	}
}

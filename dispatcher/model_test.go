package dispatcher

import (
	"errors"
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

// Every stable code maps to its status in one place; a plain error is
// internal and says nothing of itself.
func TestHTTPStatus(t *testing.T) {
	for code, want := range map[string]int{CodeInvalid: 422, CodeIdempotency: 422, CodeNotFound: 404, CodeConflict: 409,
		CodeUnauthorized: 401, CodeForbidden: 403, CodeTooLarge: 413, CodeMethod: 405, CodeMediaType: 415,
		CodeRateLimited: 429, CodeUpstream: 502, CodeUnavailable: 503, CodeInternal: 500, "unknown": 500} {
		if got, _ := HTTPStatus(&Error{Code: code}); got != want {
			t.Errorf("%s: %d, want %d", code, got, want)
		}
	}
	if got, _ := HTTPStatus(&Error{Code: CodeInvalid, Status: 400}); got != 400 {
		t.Errorf("a protocol's own status: %d, want 400", got)
	}
	if got, e := HTTPStatus(errors.New("secret detail")); got != 500 || e.Message != "internal error" {
		t.Errorf("plain error: %d %+v", got, e)
	}
}

package dispatcher

import (
	"encoding/json"
	"testing"
	"time"
)

func TestWaitEnd(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, paris) }
	for _, tc := range []struct {
		name  string
		w     Wait
		since time.Time
		want  time.Time
	}{
		{"day 2 at 09:00, begun later in the day", Wait{Days: 2, At: "09:00"}, at(2026, 3, 26, 10, 0), at(2026, 3, 28, 9, 0)},
		{"calendar days across spring forward", Wait{Days: 5, At: "09:00"}, at(2026, 3, 28, 9, 0), at(2026, 4, 2, 9, 0)},
		{"calendar days keep the clock time", Wait{Days: 1}, at(2026, 3, 28, 10, 0), at(2026, 3, 29, 10, 0)},
		{"calendar days across fall back", Wait{Days: 1}, at(2026, 10, 24, 10, 0), at(2026, 10, 25, 10, 0)},
		{"a duration is hours", Wait{Duration: "24h"}, at(2026, 3, 28, 10, 0), at(2026, 3, 29, 11, 0)},
		{"at alone: the next one", Wait{At: "09:00"}, at(2026, 3, 28, 10, 0), at(2026, 3, 29, 9, 0)},
		{"at alone: today's if to come", Wait{At: "09:00"}, at(2026, 3, 28, 8, 0), at(2026, 3, 28, 9, 0)},
		{"a time that spring forward skips", Wait{At: "02:30"}, at(2026, 3, 29, 1, 0), at(2026, 3, 29, 3, 30)},
		{"days and a duration, then at", Wait{Days: 1, Duration: "2h", At: "09:00"}, at(2026, 3, 28, 10, 0), at(2026, 3, 30, 9, 0)},
	} {
		if got := tc.w.End(tc.since, paris); !got.Equal(tc.want) {
			t.Errorf("%s: End = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestSequenceValidate(t *testing.T) {
	send := SequenceStep{Send: &StepSend{Channel: "email", Template: "welcome"}}
	for _, tc := range []struct {
		name  string
		s     Sequence
		field string
	}{
		{"ok", Sequence{ID: "welcome", Topic: "news", Steps: []SequenceStep{send}}, ""},
		{"bad id", Sequence{ID: "Welcome!", Topic: "news", Steps: []SequenceStep{send}}, "id"},
		{"no topic", Sequence{ID: "w", Steps: []SequenceStep{send}}, "topic"},
		{"no send", Sequence{ID: "w", Topic: "news", Steps: []SequenceStep{{Wait: &Wait{Days: 1}}}}, "steps"},
		{"too many", Sequence{ID: "w", Topic: "news", Steps: make([]SequenceStep, 33)}, "steps"},
		{"empty wait", Sequence{ID: "w", Topic: "news", Steps: []SequenceStep{{Wait: &Wait{}}, send}}, "steps[0].wait"},
		{"long wait", Sequence{ID: "w", Topic: "news", Steps: []SequenceStep{{Wait: &Wait{Duration: "9000h"}}, send}}, "steps[0].wait.duration"},
		{"same fallback", Sequence{ID: "w", Topic: "news", Steps: []SequenceStep{{Send: &StepSend{Channel: "sms", Template: "t", Fallback: "sms"}}}}, "steps[0].send.fallback"},
		{"stop tags twice", Sequence{ID: "w", Topic: "news", StopTags: []string{"a", "a"}, Steps: []SequenceStep{send}}, "stop_tags"},
	} {
		err := tc.s.Validate()
		var field string
		if e, ok := err.(*Error); ok {
			field = e.Field
		} else if err != nil {
			field = err.Error()
		}
		if field != tc.field {
			t.Errorf("%s: %v, want field %q", tc.name, err, tc.field)
		}
	}
}

// FuzzSequence feeds sequences as a client writes them to Validate and,
// when they pass, computes every wait's end: nothing panics, and a wait
// never ends before it began.
func FuzzSequence(f *testing.F) {
	f.Add(`{"id": "welcome", "topic": "news", "steps": [{"send": {"channel": "email", "template": "w"}}, {"wait": {"days": 2, "at": "09:00"}}]}`)
	f.Add(`{"id": "w", "topic": "n", "trigger": {"tag": "vip"}, "stop_tags": ["x"], "steps": [{"wait": {"duration": "-1h"}}]}`)
	f.Add(`{"id": "w", "topic": "n", "steps": [{"wait": {"at": "24:00", "days": 400}}, {"send": {"channel": "sms", "template": "t", "fallback": "email"}}]}`)
	since := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, in string) {
		var s Sequence
		if json.Unmarshal([]byte(in), &s) != nil || s.Validate() != nil {
			return
		}
		for _, name := range []string{"Europe/Paris", "America/Sao_Paulo", "Pacific/Chatham"} {
			loc, _ := time.LoadLocation(name)
			for _, st := range s.Steps {
				if st.Wait != nil && st.Wait.End(since, loc).Before(since) {
					t.Fatalf("wait %+v ends before it began", *st.Wait)
				}
			}
		}
	})
}

package throttle_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/missive-dev/missive/throttle"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustCalendar(t testing.TB, s string) throttle.Calendar {
	t.Helper()
	c, err := throttle.ParseCalendar(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNextOpen(t *testing.T) {
	t.Parallel()
	paris := mustLoad(t, "Europe/Paris")
	newYork := mustLoad(t, "America/New_York")
	tokyo := mustLoad(t, "Asia/Tokyo")
	losAngeles := mustLoad(t, "America/Los_Angeles")
	sms := throttle.DefaultSMSCalendar(2026, 2027)
	nightly := mustCalendar(t, "daily 02:30-05:00")
	early := mustCalendar(t, "daily 02:00-02:45")
	tcpa := mustCalendar(t, "daily 08:00-21:00")
	split := mustCalendar(t, "mon-fri 08:00-12:00,14:00-21:00; sat 10:00-18:00")
	late := mustCalendar(t, "daily 01:30-01:45")
	at := func(loc *time.Location, y int, m time.Month, d, hh, mm, ss int) time.Time {
		return time.Date(y, m, d, hh, mm, ss, 0, loc)
	}
	utc := func(y int, m time.Month, d, hh, mm int) time.Time { return time.Date(y, m, d, hh, mm, 0, 0, time.UTC) }

	tests := []struct {
		name string
		cal  throttle.Calendar
		loc  *time.Location
		t    time.Time
		want time.Time
	}{
		{"inside", sms, paris, at(paris, 2026, 3, 3, 10, 0, 0), at(paris, 2026, 3, 3, 10, 0, 0)},
		{"before opening", sms, paris, at(paris, 2026, 3, 3, 7, 59, 30), at(paris, 2026, 3, 3, 8, 0, 0)},
		{"exactly at start", sms, paris, at(paris, 2026, 3, 3, 8, 0, 0), at(paris, 2026, 3, 3, 8, 0, 0)},
		{"last instant", sms, paris, at(paris, 2026, 3, 3, 19, 59, 59).Add(999 * time.Millisecond), at(paris, 2026, 3, 3, 19, 59, 59).Add(999 * time.Millisecond)},
		{"exactly at end", sms, paris, at(paris, 2026, 3, 3, 20, 0, 0), at(paris, 2026, 3, 4, 8, 0, 0)},
		{"Sunday to Monday", sms, paris, at(paris, 2026, 3, 8, 12, 0, 0), at(paris, 2026, 3, 9, 8, 0, 0)},
		{"Saturday 20:00 to Monday", sms, paris, at(paris, 2026, 3, 7, 20, 0, 0), at(paris, 2026, 3, 9, 8, 0, 0)},
		{"1 May", sms, paris, at(paris, 2026, 5, 1, 10, 0, 0), at(paris, 2026, 5, 2, 8, 0, 0)},
		{"Ascension", sms, paris, at(paris, 2026, 5, 13, 21, 0, 0), at(paris, 2026, 5, 15, 8, 0, 0)},
		{"Sunday then Whit Monday", sms, paris, at(paris, 2026, 5, 23, 20, 0, 0), at(paris, 2026, 5, 26, 8, 0, 0)},
		{"New Year across years", sms, paris, at(paris, 2026, 12, 31, 21, 0, 0), at(paris, 2027, 1, 2, 8, 0, 0)},
		{"time given in another zone", sms, paris, utc(2026, 3, 3, 6, 59), at(paris, 2026, 3, 3, 8, 0, 0)},
		{"between two windows", split, paris, at(paris, 2026, 3, 3, 12, 0, 0), at(paris, 2026, 3, 3, 14, 0, 0)},
		{"Friday night to Saturday", split, paris, at(paris, 2026, 3, 6, 21, 0, 0), at(paris, 2026, 3, 7, 10, 0, 0)},

		// Europe/Paris, 2026-03-29: 02:00 CET becomes 03:00 CEST.
		{"Paris spring: window in the gap opens at 03:00", nightly, paris, at(paris, 2026, 3, 29, 1, 0, 0), utc(2026, 3, 29, 1, 0)},
		{"Paris spring: window wholly in the gap", early, paris, at(paris, 2026, 3, 29, 1, 0, 0), utc(2026, 3, 30, 0, 0)},
		{"Paris spring: next morning", tcpa, paris, at(paris, 2026, 3, 28, 21, 0, 0), utc(2026, 3, 29, 6, 0)},
		// Europe/Paris, 2026-10-25: 03:00 CEST becomes 02:00 CET.
		{"Paris autumn: first 02:30", nightly, paris, at(paris, 2026, 10, 25, 0, 0, 0), utc(2026, 10, 25, 0, 30)},
		{"Paris autumn: inside the first hour", nightly, paris, utc(2026, 10, 25, 0, 40), utc(2026, 10, 25, 0, 40)},
		{"Paris autumn: the repeated hour opens again", early, paris, utc(2026, 10, 25, 0, 50), utc(2026, 10, 25, 1, 0)},
		{"Paris autumn: next morning", tcpa, paris, at(paris, 2026, 10, 24, 21, 0, 0), utc(2026, 10, 25, 7, 0)},
		// America/New_York, 2026-03-08: 02:00 EST becomes 03:00 EDT.
		{"New York spring: window in the gap", nightly, newYork, utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 7, 0)},
		{"New York spring: TCPA next morning", tcpa, newYork, at(newYork, 2026, 3, 7, 21, 0, 0), utc(2026, 3, 8, 12, 0)},
		// America/New_York, 2026-11-01: 02:00 EDT becomes 01:00 EST.
		{"New York autumn: first 01:30", late, newYork, utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 5, 30)},
		{"New York autumn: second 01:30", late, newYork, utc(2026, 11, 1, 5, 50), utc(2026, 11, 1, 6, 30)},
		{"New York autumn: inside the second", late, newYork, utc(2026, 11, 1, 6, 40), utc(2026, 11, 1, 6, 40)},
		{"New York autumn: TCPA next morning", tcpa, newYork, at(newYork, 2026, 10, 31, 21, 0, 0), utc(2026, 11, 1, 13, 0)},

		// One instant, two recipients: Wednesday 07:00 in Tokyo, Tuesday 14:00 in Los Angeles.
		{"Tokyo before opening", sms, tokyo, utc(2026, 3, 3, 22, 0), utc(2026, 3, 3, 23, 0)},
		{"Los Angeles open", sms, losAngeles, utc(2026, 3, 3, 22, 0), utc(2026, 3, 3, 22, 0)},

		{"always open", throttle.AlwaysOpen, paris, at(paris, 2026, 12, 25, 3, 0, 0), at(paris, 2026, 12, 25, 3, 0, 0)},
		{"nil location is UTC", tcpa, nil, utc(2026, 3, 3, 7, 0), utc(2026, 3, 3, 8, 0)},
		{"no window: zero", throttle.Calendar{}, paris, at(paris, 2026, 3, 3, 10, 0, 0), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.cal.NextOpen(tt.t, tt.loc)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("NextOpen(%s) (-want +got):\n%s\ngot %s", tt.t, diff, got)
			}
			wantLoc := tt.loc
			if wantLoc == nil {
				wantLoc = time.UTC
			}
			if !got.IsZero() && got.Location() != wantLoc {
				t.Errorf("NextOpen gave a time in %s, want %s", got.Location(), wantLoc)
			}
			if !got.IsZero() && !tt.cal.Open(got, tt.loc) {
				t.Errorf("Open(NextOpen(t)) = false")
			}
			if open := got.Equal(tt.t); open != tt.cal.Open(tt.t, tt.loc) {
				t.Errorf("Open(t) = %v, NextOpen(t) == t is %v", !open, open)
			}
		})
	}
}

// TestNextOpenEveryMinute walks a year in steps that cross every DST change
// and checks what NextOpen returns against the wall clock.
func TestNextOpenEveryMinute(t *testing.T) {
	t.Parallel()
	cal := mustCalendar(t, "mon-fri 08:00-12:00,14:00-21:00; sat 02:15-02:45,10:00-18:00; sun 02:30-03:30; holidays 2026-12-25")
	for _, name := range []string{"Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			everyMinute(t, cal, mustLoad(t, name))
		})
	}
}

// everyMinute checks NextOpen at a time in every minute of the hour over
// 2026: the answer is open, and no minute before it is.
func everyMinute(t *testing.T, cal throttle.Calendar, loc *time.Location) {
	for tm := time.Date(2026, 1, 1, 0, 7, 30, 0, time.UTC); tm.Year() == 2026; tm = tm.Add(61 * time.Minute) {
		got := cal.NextOpen(tm, loc)
		if got.Before(tm) {
			t.Fatalf("NextOpen(%s) = %s, before t", tm, got)
		}
		if !openByWallClock(cal, got.In(loc)) {
			t.Fatalf("NextOpen(%s) = %s, not open", tm, got)
		}
		for x := tm; x.Before(got); x = x.Truncate(time.Minute).Add(time.Minute) {
			if openByWallClock(cal, x.In(loc)) {
				t.Fatalf("NextOpen(%s) = %s, but %s is open", tm, got, x.In(loc))
			}
		}
	}
}

func openByWallClock(c throttle.Calendar, t time.Time) bool {
	if c.Holidays[t.Format("2006-01-02")] {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	for _, w := range c.Windows[t.Weekday()] {
		if w.Start <= m && m < w.End {
			return true
		}
	}
	return false
}

func TestParseCalendar(t *testing.T) {
	t.Parallel()
	w := func(h1, m1, h2, m2 int) throttle.Window { return throttle.Window{Start: h1*60 + m1, End: h2*60 + m2} }
	tests := []parseCase[throttle.Calendar]{
		{in: "mon-sat 08:00-20:00; holidays 2026-12-25,2027-01-01", want: throttle.Calendar{
			Windows: [7][]throttle.Window{
				time.Monday: {w(8, 0, 20, 0)}, time.Tuesday: {w(8, 0, 20, 0)}, time.Wednesday: {w(8, 0, 20, 0)},
				time.Thursday: {w(8, 0, 20, 0)}, time.Friday: {w(8, 0, 20, 0)}, time.Saturday: {w(8, 0, 20, 0)},
			},
			Holidays: map[string]bool{"2026-12-25": true, "2027-01-01": true},
		}},
		{in: "mon-fri 08:00-12:00,14:00-21:00; sat 10:00-18:00", want: throttle.Calendar{
			Windows: [7][]throttle.Window{
				time.Monday: {w(8, 0, 12, 0), w(14, 0, 21, 0)}, time.Tuesday: {w(8, 0, 12, 0), w(14, 0, 21, 0)},
				time.Wednesday: {w(8, 0, 12, 0), w(14, 0, 21, 0)}, time.Thursday: {w(8, 0, 12, 0), w(14, 0, 21, 0)},
				time.Friday: {w(8, 0, 12, 0), w(14, 0, 21, 0)}, time.Saturday: {w(10, 0, 18, 0)},
			},
		}},
		{in: "Fri-Mon 20:00-24:00, 00:00-01:00 ; sat 10:00-22:00; sun off", want: throttle.Calendar{
			Windows: [7][]throttle.Window{
				time.Friday:   {w(0, 0, 1, 0), w(20, 0, 24, 0)},
				time.Saturday: {w(0, 0, 1, 0), w(10, 0, 24, 0)},
				time.Monday:   {w(0, 0, 1, 0), w(20, 0, 24, 0)},
			},
		}},
		{in: "daily 00:00-24:00", want: throttle.AlwaysOpen},
		{in: "mon,wed 09:00-10:00", want: throttle.Calendar{
			Windows: [7][]throttle.Window{time.Monday: {w(9, 0, 10, 0)}, time.Wednesday: {w(9, 0, 10, 0)}},
		}},
		{in: "", err: "no open window"},
		{in: "sun off", err: "no open window"},
		{in: "mon-sat 08:00", err: `clause 1 "mon-sat 08:00": window "08:00"`},
		{in: "mon-sat 8-20", err: `time "8"`},
		{in: "mon-sat 08:00-25:00", err: `time "25:00"`},
		{in: "mon-sat 08:00-24:30", err: `time "24:30"`},
		{in: "mon-sat 20:00-08:00", err: "ends before it starts"},
		{in: "mon-sat 24:00-24:00", err: "cannot start at 24:00"},
		{in: "lun-sam 08:00-20:00", err: `day "lun"`},
		{in: "mon-sat", err: "no windows"},
		{in: "mon 08:00-09:00; holidays 2026-13-01", err: `clause 2 "holidays 2026-13-01": holiday "2026-13-01"`},
		{in: "mon 08:00-09:00; holidays", err: "no dates after holidays"},
	}
	testParse(t, "ParseCalendar", throttle.ParseCalendar, tests, func(t *testing.T, got throttle.Calendar) {
		again, err := throttle.ParseCalendar(got.String())
		if err != nil {
			t.Fatalf("ParseCalendar(%q) (its String): %v", got.String(), err)
		}
		if diff := cmp.Diff(got, again, cmpEmptyMaps); diff != "" {
			t.Errorf("round trip through %q (-want +got):\n%s", got.String(), diff)
		}
	}, cmpEmptyMaps)
}

var cmpEmptyMaps = cmp.Transformer("emptyNil", func(m map[string]bool) map[string]bool {
	if len(m) == 0 {
		return nil
	}
	return m
})

func TestCalendarValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cal  throttle.Calendar
		err  string
	}{
		{"zero", throttle.Calendar{}, "no open window"},
		{"end before start", throttle.Calendar{Windows: [7][]throttle.Window{1: {{600, 500}}}}, "Monday window 600-500"},
		{"past midnight", throttle.Calendar{Windows: [7][]throttle.Window{1: {{600, 1441}}}}, "window 600-1441"},
		{"bad holiday", throttle.Calendar{Windows: [7][]throttle.Window{1: {{600, 700}}}, Holidays: map[string]bool{"25/12/2026": true}}, `holiday "25/12/2026"`},
		{"default SMS", throttle.DefaultSMSCalendar(2026), ""},
		{"always open", throttle.AlwaysOpen, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cal.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.err)
			}
		})
	}
}

func TestFrenchHolidays(t *testing.T) {
	t.Parallel()
	tests := []struct {
		year int
		want []string
	}{
		{2026, []string{"2026-01-01", "2026-04-06", "2026-05-01", "2026-05-08", "2026-05-14", "2026-05-25", "2026-07-14", "2026-08-15", "2026-11-01", "2026-11-11", "2026-12-25"}},
		{2027, []string{"2027-01-01", "2027-03-29", "2027-05-01", "2027-05-06", "2027-05-08", "2027-05-17", "2027-07-14", "2027-08-15", "2027-11-01", "2027-11-11", "2027-12-25"}},
		// Ascension fell on 1 May in 2008: one holiday, listed once.
		{2008, []string{"2008-01-01", "2008-03-24", "2008-05-01", "2008-05-08", "2008-05-12", "2008-07-14", "2008-08-15", "2008-11-01", "2008-11-11", "2008-12-25"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, throttle.FrenchHolidays(tt.year)); diff != "" {
			t.Errorf("FrenchHolidays(%d) (-want +got):\n%s", tt.year, diff)
		}
	}
}

func TestEaster(t *testing.T) {
	t.Parallel()
	// Known dates, including the earliest (22 March) and latest (25 April) possible.
	for _, want := range []string{"1818-03-22", "1943-04-25", "2008-03-23", "2019-04-21", "2024-03-31", "2025-04-20", "2026-04-05", "2027-03-28", "2038-04-25", "2285-03-22"} {
		d, _ := time.Parse("2006-01-02", want)
		if got := throttle.Easter(d.Year()).Format("2006-01-02"); got != want {
			t.Errorf("Easter(%d) = %s, want %s", d.Year(), got, want)
		}
	}
}

func TestDefaultSMSCalendar(t *testing.T) {
	t.Parallel()
	c := throttle.DefaultSMSCalendar(2026, 2027)
	if got, want := c.String(), "mon 08:00-20:00; tue 08:00-20:00; wed 08:00-20:00; thu 08:00-20:00; fri 08:00-20:00; sat 08:00-20:00; holidays "+
		strings.Join(append(throttle.FrenchHolidays(2026), throttle.FrenchHolidays(2027)...), ","); got != want {
		t.Errorf("DefaultSMSCalendar(2026, 2027) = %q, want %q", got, want)
	}
}

func BenchmarkNextOpen(b *testing.B) {
	paris := mustLoad(b, "Europe/Paris")
	cal := throttle.DefaultSMSCalendar(2026, 2027)
	// Saturday evening: the answer is Monday morning.
	t := time.Date(2026, 3, 7, 21, 0, 0, 0, paris)
	b.ReportAllocs()
	for b.Loop() {
		if cal.NextOpen(t, paris).IsZero() {
			b.Fatal("closed")
		}
	}
}

package throttle

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Window is an open span of a day in local wall-clock minutes since
// midnight: Start is open, End is not. End may be 1440 (24:00).
type Window struct {
	Start, End int
}

func (w Window) String() string { return hhmm(w.Start) + "-" + hhmm(w.End) }

func hhmm(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// Calendar says when messages may reach a recipient, in the recipient's own
// time zone: open windows per weekday, and holidays closed all day.
type Calendar struct {
	// Windows are the open windows by time.Weekday (Sunday is 0); a day
	// without windows is closed.
	Windows [7][]Window
	// Holidays are local dates ("2026-12-25") closed all day.
	Holidays map[string]bool
}

// AlwaysOpen is open at every minute of every day: the default for email.
// Do not modify it.
var AlwaysOpen = Calendar{Windows: [7][]Window{
	{{0, 1440}}, {{0, 1440}}, {{0, 1440}}, {{0, 1440}}, {{0, 1440}}, {{0, 1440}}, {{0, 1440}},
}}

// DefaultSMSCalendar is the French practice for marketing SMS, the stricter
// of the published ones: Monday to Saturday 08:00-20:00, never on Sundays nor
// on the French public holidays of the given years. Give every year the
// calendar will be used in (say this year and the next): other years have no
// holidays.
func DefaultSMSCalendar(years ...int) Calendar {
	var c Calendar
	for d := time.Monday; d <= time.Saturday; d++ {
		c.Windows[d] = []Window{{8 * 60, 20 * 60}}
	}
	c.Holidays = map[string]bool{}
	for _, y := range years {
		for _, h := range FrenchHolidays(y) {
			c.Holidays[h] = true
		}
	}
	return c
}

const dateLayout = "2006-01-02"

// maxSearchDays bounds NextOpen's search.
const maxSearchDays = 400

// Validate reports a window out of 00:00-24:00 or ending before it starts,
// a holiday that is not a YYYY-MM-DD date, and a calendar without any open
// window, which would never let a message out.
func (c Calendar) Validate() error {
	open := false
	for d, ws := range c.Windows {
		for _, w := range ws {
			if w.Start < 0 || w.End > 1440 || w.Start >= w.End {
				return fmt.Errorf("throttle: calendar: %s window %d-%d: want 0 <= start < end <= 1440 minutes", time.Weekday(d), w.Start, w.End)
			}
			open = true
		}
	}
	if !open {
		return errors.New("throttle: calendar: no open window on any day")
	}
	for h := range c.Holidays {
		if _, err := time.Parse(dateLayout, h); err != nil {
			return fmt.Errorf("throttle: calendar: holiday %q: want a date like 2026-12-25", h)
		}
	}
	return nil
}

// Open reports whether t is inside an open window in loc.
func (c Calendar) Open(t time.Time, loc *time.Location) bool {
	return c.NextOpen(t, loc).Equal(t)
}

// NextOpen returns t itself, in loc, when t is inside an open window of the
// calendar in loc (nil means UTC); otherwise the first instant of the next
// open minute, in loc. Windows are read on the local wall clock of each
// local date, so a window in a daylight-saving gap opens when the clock
// jumps into it, and one in a repeated hour opens at its first occurrence.
//
// NextOpen looks at most about 400 days ahead and returns the zero Time when
// nothing is open there, which happens only for a calendar Validate rejects
// (or one whose holidays cover a whole year of open days).
func (c Calendar) NextOpen(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	y, m, d := t.Date()
	var (
		best     time.Time
		bestDay  int
		holiday  [len(dateLayout)]byte
		holidays = len(c.Holidays) > 0
	)
	// Start a day early and look one day past the first hit: where clocks
	// go back across midnight, a local date's windows can come after the
	// next date's.
	for i := -1; i <= maxSearchDays; i++ {
		if !best.IsZero() && i > bestDay+1 {
			break
		}
		date := time.Date(y, m, d+i, 0, 0, 0, 0, time.UTC) // a civil date, not an instant
		ws := c.Windows[date.Weekday()]
		if len(ws) == 0 {
			continue
		}
		if holidays && c.Holidays[string(date.AppendFormat(holiday[:0], dateLayout))] {
			continue
		}
		for _, w := range ws {
			if x, ok := firstOpen(date, w, t, loc); ok && (best.IsZero() || x.Before(best)) {
				best, bestDay = x, i
			}
		}
	}
	return best
}

// maxOffset is more than any UTC offset a zone has had.
const maxOffset = 16 * 3600

// firstOpen returns the first instant not before t whose wall clock in loc
// reads date and a minute in w.
//
// For one UTC offset, the instants whose wall clock is in the window make
// one interval; so firstOpen walks the offsets loc uses around date (zone
// bounds) and intersects. No wall-clock arithmetic, so no DST surprises.
func firstOpen(date time.Time, w Window, t time.Time, loc *time.Location) (time.Time, bool) {
	if w.Start < 0 || w.End > 1440 || w.Start >= w.End {
		return time.Time{}, false
	}
	wallStart := date.Unix() + int64(w.Start)*60
	wallEnd := date.Unix() + int64(w.End)*60
	x := time.Unix(wallStart-maxOffset, 0).In(loc)
	for {
		_, off := x.Zone()
		segStart, segEnd := x.ZoneBounds()
		a := time.Unix(wallStart-int64(off), 0)
		b := time.Unix(wallEnd-int64(off), 0)
		if !segStart.IsZero() && a.Before(segStart) {
			a = segStart
		}
		if !segEnd.IsZero() && b.After(segEnd) {
			b = segEnd
		}
		if a.Before(t) {
			a = t
		}
		if a.Before(b) {
			return a.In(loc), true
		}
		if segEnd.IsZero() || segEnd.Unix() > wallEnd+maxOffset {
			return time.Time{}, false
		}
		x = segEnd.In(loc)
	}
}

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseCalendar reads clauses separated by semicolons: a set of days with
// their windows, "holidays" with dates, for example
//
//	mon-sat 08:00-20:00; holidays 2026-12-25,2027-01-01
//	mon-fri 08:00-12:00,14:00-21:00; sat 10:00-18:00
//
// Days are mon, tue, wed, thu, fri, sat, sun, ranges of them (fri-mon wraps),
// lists joined by commas, or "daily"; "off" instead of windows closes them.
// Windows for a day add up: overlapping and touching ones are merged. A day
// not named is closed. The result passes Validate.
func ParseCalendar(s string) (Calendar, error) {
	var c Calendar
	for i, clause := range strings.Split(s, ";") {
		clause = strings.TrimSpace(clause)
		if clause == "" {
			continue
		}
		if err := c.parseClause(clause); err != nil {
			return Calendar{}, fmt.Errorf("throttle: calendar clause %d %q: %w", i+1, clause, err)
		}
	}
	for d := range c.Windows {
		c.Windows[d] = mergeWindows(c.Windows[d])
	}
	if err := c.Validate(); err != nil {
		return Calendar{}, err
	}
	return c, nil
}

func (c *Calendar) parseClause(clause string) error {
	head, rest, _ := strings.Cut(clause, " ")
	rest = strings.TrimSpace(rest)
	if strings.EqualFold(head, "holidays") || strings.EqualFold(head, "holiday") {
		if rest == "" {
			return errors.New("no dates after holidays")
		}
		if c.Holidays == nil {
			c.Holidays = map[string]bool{}
		}
		for _, h := range strings.Split(rest, ",") {
			h = strings.TrimSpace(h)
			t, err := time.Parse(dateLayout, h)
			if err != nil {
				return fmt.Errorf("holiday %q: want a date like 2026-12-25", h)
			}
			c.Holidays[t.Format(dateLayout)] = true
		}
		return nil
	}
	days, err := parseDays(head)
	if err != nil {
		return err
	}
	if rest == "" {
		return fmt.Errorf("no windows after %q: want like 08:00-20:00, or off", head)
	}
	if strings.EqualFold(rest, "off") || strings.EqualFold(rest, "closed") {
		for _, d := range days {
			c.Windows[d] = nil
		}
		return nil
	}
	var ws []Window
	for _, part := range strings.Split(rest, ",") {
		w, err := parseWindowSpan(strings.TrimSpace(part))
		if err != nil {
			return err
		}
		ws = append(ws, w)
	}
	for _, d := range days {
		c.Windows[d] = append(c.Windows[d], ws...)
	}
	return nil
}

func parseDays(s string) ([]time.Weekday, error) {
	if strings.EqualFold(s, "daily") {
		return []time.Weekday{0, 1, 2, 3, 4, 5, 6}, nil
	}
	var days []time.Weekday
	for _, part := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, err := parseWeekday(from)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parseWeekday(to); err != nil {
				return nil, err
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			if !slices.Contains(days, d) {
				days = append(days, d)
			}
			if d == b {
				break
			}
		}
	}
	return days, nil
}

func parseWeekday(s string) (time.Weekday, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, name := range weekdays {
		if s == name {
			return time.Weekday(i), nil
		}
	}
	return 0, fmt.Errorf("day %q: want mon, tue, wed, thu, fri, sat, sun, a range like mon-sat, or daily", s)
}

func parseWindowSpan(s string) (Window, error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return Window{}, fmt.Errorf("window %q: want like 08:00-20:00", s)
	}
	start, err := parseClock(from)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	end, err := parseClock(to)
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	if start >= 1440 {
		return Window{}, fmt.Errorf("window %q: cannot start at 24:00", s)
	}
	if end <= start {
		return Window{}, fmt.Errorf("window %q: ends before it starts (windows do not cross midnight: split at 24:00)", s)
	}
	return Window{start, end}, nil
}

func parseClock(s string) (int, error) {
	s = strings.TrimSpace(s)
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("time %q: want HH:MM from 00:00 to 24:00", s)
	}
	return hh*60 + mm, nil
}

// mergeWindows sorts windows and joins those that overlap or touch.
func mergeWindows(ws []Window) []Window {
	if len(ws) == 0 {
		return nil
	}
	ws = slices.Clone(ws)
	slices.SortFunc(ws, func(a, b Window) int { return a.Start - b.Start })
	out := ws[:1]
	for _, w := range ws[1:] {
		last := &out[len(out)-1]
		if w.Start <= last.End {
			last.End = max(last.End, w.End)
			continue
		}
		out = append(out, w)
	}
	return out
}

// String gives the calendar in the syntax ParseCalendar reads.
func (c Calendar) String() string {
	var clauses []string
	for d := time.Sunday; d <= time.Saturday; d++ {
		// Name days Monday first, as people write them.
		day := (d + 1) % 7
		if len(c.Windows[day]) == 0 {
			continue
		}
		spans := make([]string, len(c.Windows[day]))
		for i, w := range c.Windows[day] {
			spans[i] = w.String()
		}
		clauses = append(clauses, weekdays[day]+" "+strings.Join(spans, ","))
	}
	if len(c.Holidays) > 0 {
		hs := make([]string, 0, len(c.Holidays))
		for h := range c.Holidays {
			hs = append(hs, h)
		}
		slices.Sort(hs)
		clauses = append(clauses, "holidays "+strings.Join(hs, ","))
	}
	return strings.Join(clauses, "; ")
}

// FrenchHolidays returns the French public holidays of year as local dates
// (YYYY-MM-DD), in order: New Year, Easter Monday, 1 May, 8 May, Ascension,
// Whit Monday, 14 July, 15 August, 1 November, 11 November, Christmas.
func FrenchHolidays(year int) []string {
	easter := Easter(year)
	dates := []time.Time{
		time.Date(year, time.January, 1, 0, 0, 0, 0, time.UTC),
		easter.AddDate(0, 0, 1),
		time.Date(year, time.May, 1, 0, 0, 0, 0, time.UTC),
		time.Date(year, time.May, 8, 0, 0, 0, 0, time.UTC),
		easter.AddDate(0, 0, 39),
		easter.AddDate(0, 0, 50),
		time.Date(year, time.July, 14, 0, 0, 0, 0, time.UTC),
		time.Date(year, time.August, 15, 0, 0, 0, 0, time.UTC),
		time.Date(year, time.November, 1, 0, 0, 0, 0, time.UTC),
		time.Date(year, time.November, 11, 0, 0, 0, 0, time.UTC),
		time.Date(year, time.December, 25, 0, 0, 0, 0, time.UTC),
	}
	// Ascension can fall on 1 or 8 May: keep the order and no duplicates.
	slices.SortFunc(dates, func(a, b time.Time) int { return a.Compare(b) })
	dates = slices.CompactFunc(dates, time.Time.Equal)
	out := make([]string, len(dates))
	for i, d := range dates {
		out[i] = d.Format(dateLayout)
	}
	return out
}

// Easter returns Easter Sunday of year in the Gregorian calendar (the
// anonymous Gregorian algorithm), as a date at midnight UTC.
func Easter(year int) time.Time {
	a := year % 19
	b, c := year/100, year%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	dd := (h+l-7*m+114)%31 + 1
	return time.Date(year, time.Month(month), dd, 0, 0, 0, 0, time.UTC)
}

// NextOpenAll returns the first instant at or after t, in loc, that every
// calendar of cals leaves open (NextOpen of each, in turn, until they
// agree): a recipient's preferred hours inside the operator's quiet hours.
// It returns the zero Time when they share no open minute within
// NextOpen's horizon.
func NextOpenAll(t time.Time, loc *time.Location, cals ...Calendar) time.Time {
	// Each round moves t to an instant some calendar opens at, never past
	// the horizon: the rounds are bounded by the windows met.
	horizon := t.Add(maxSearchDays * 24 * time.Hour)
	for range 8 * maxSearchDays {
		moved := false
		for _, c := range cals {
			next := c.NextOpen(t, loc)
			if next.IsZero() || next.After(horizon) {
				return time.Time{}
			}
			if !next.Equal(t) {
				t, moved = next, true
			}
		}
		if !moved {
			return t
		}
	}
	return time.Time{}
}

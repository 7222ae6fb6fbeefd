package wire

import (
	"fmt"
	"time"
)

// Window is a daily time window in local time, such as 01:00–05:00, for
// off-hours transfers. It may wrap midnight (22:00–02:00). Start == End
// would be empty and is refused.
type Window struct {
	Start, End int // minutes after midnight, [0, 1440)
}

// ParseWindow parses "HH:MM-HH:MM" (24-hour clock, two digits each).
func ParseWindow(s string) (Window, error) {
	if len(s) != len("01:00-05:00") || s[5] != '-' {
		return Window{}, fmt.Errorf("window %q: want HH:MM-HH:MM, e.g. 01:00-05:00", truncateStr(s, 40))
	}
	start, err := parseClock(s[:5])
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	end, err := parseClock(s[6:])
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	if start == end {
		return Window{}, fmt.Errorf("window %q: start and end are equal (an empty window)", s)
	}
	return Window{Start: start, End: end}, nil
}

func parseClock(s string) (int, error) {
	digit := func(b byte) (int, bool) { return int(b - '0'), b >= '0' && b <= '9' }
	h1, ok1 := digit(s[0])
	h2, ok2 := digit(s[1])
	m1, ok3 := digit(s[3])
	m2, ok4 := digit(s[4])
	if !ok1 || !ok2 || !ok3 || !ok4 || s[2] != ':' {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	h, m := h1*10+h2, m1*10+m2
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("%q is not a time of day", s)
	}
	return h*60 + m, nil
}

// String formats w as ParseWindow reads it.
func (w Window) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, w.End/60, w.End%60)
}

// Contains reports whether t (in its own location) is inside w.
func (w Window) Contains(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	if w.Start < w.End {
		return m >= w.Start && m < w.End
	}
	return m >= w.Start || m < w.End
}

// Next returns when w next opens at or after t: t itself if t is inside.
func (w Window) Next(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	open := day.Add(time.Duration(w.Start) * time.Minute)
	if !open.After(t) {
		open = day.AddDate(0, 0, 1).Add(time.Duration(w.Start) * time.Minute)
	}
	return open
}

// Until returns when w closes, for a t inside it.
func (w Window) Until(t time.Time) time.Time {
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	end := day.Add(time.Duration(w.End) * time.Minute)
	if !end.After(t) {
		end = day.AddDate(0, 0, 1).Add(time.Duration(w.End) * time.Minute)
	}
	return end
}

func truncateStr(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

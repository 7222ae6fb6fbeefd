package wire

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 11, 23, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		w          string
		in, out    []time.Time
		next, from time.Time
	}{
		{"01:00-05:00", []time.Time{at(1, 0), at(4, 59)}, []time.Time{at(0, 59), at(5, 0), at(23, 0)}, at(1, 0), at(0, 30)},
		{"22:00-02:00", []time.Time{at(22, 0), at(23, 59), at(0, 0), at(1, 59)}, []time.Time{at(2, 0), at(21, 59), at(12, 0)}, at(22, 0), at(12, 0)},
		{"01:00-05:00", nil, nil, at(1, 0).AddDate(0, 0, 1), at(6, 0)},
	} {
		w, err := ParseWindow(tc.w)
		if err != nil {
			t.Fatal(err)
		}
		if w.String() != tc.w {
			t.Errorf("%s formats as %s", tc.w, w)
		}
		for _, x := range tc.in {
			if !w.Contains(x) {
				t.Errorf("%s does not contain %s", tc.w, x.Format("15:04"))
			}
		}
		for _, x := range tc.out {
			if w.Contains(x) {
				t.Errorf("%s contains %s", tc.w, x.Format("15:04"))
			}
		}
		if got := w.Next(tc.from); !got.Equal(tc.next) {
			t.Errorf("%s: next after %s = %s, want %s", tc.w, tc.from, got, tc.next)
		}
	}
	w, _ := ParseWindow("22:00-02:00")
	if got := w.Until(at(23, 0)); !got.Equal(at(2, 0).AddDate(0, 0, 1)) {
		t.Errorf("until from 23:00 = %s", got)
	}
	for _, bad := range []string{"", "1:00-5:00", "01:00-01:00", "24:00-01:00", "01:60-02:00", "01:00_05:00", "0a:00-05:00", "01:00-05:00x"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"01:00-05:00", "22:00-02:00", "23:59-00:00", "ab:cd-ef:gh", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindow(s)
		if err != nil {
			return
		}
		if w.Start < 0 || w.Start >= 1440 || w.End < 0 || w.End >= 1440 || w.Start == w.End {
			t.Fatalf("%q parsed as %+v", s, w)
		}
		if w2, err := ParseWindow(w.String()); err != nil || w2 != w {
			t.Fatalf("%q: round trip %v, %v", s, w2, err)
		}
		now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		if n := w.Next(now); !w.Contains(n) || n.Before(now) {
			t.Fatalf("%q: next %s", s, n)
		}
	})
}

package cpustat

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// A /proc/stat from a 2-CPU Linux 6.1 machine (first lines).
const sample = "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0\n" +
	"cpu0 1393280 32966 572056 5875567 2282 0 21335 0 24328 0\n" +
	"intr 1 2 3\n"

func TestParse(t *testing.T) {
	cases := []struct {
		name, in    string
		busy, total uint64
		bad         bool
	}{
		{"linux 6", sample, 10132153 + 290696 + 3084719 + 25195, 10132153 + 290696 + 3084719 + 46828483 + 16683 + 25195, false},
		{"four counters (old kernels)", "cpu 1 2 3 4\n", 6, 10, false},
		{"no newline", "cpu 1 2 3 4", 6, 10, false},
		{"guest not counted twice", "cpu 10 0 0 10 0 0 0 0 7 7\n", 10, 20, false},
		{"empty", "", 0, 0, true},
		{"not cpu first", "cpu0 1 2 3 4\n", 0, 0, true},
		{"too few", "cpu 1 2 3\n", 0, 0, true},
		{"too many", "cpu 1 2 3 4 5 6 7 8 9 10 11\n", 0, 0, true},
		{"negative", "cpu 1 -2 3 4\n", 0, 0, true},
		{"not a number", "cpu 1 x 3 4\n", 0, 0, true},
		{"overflow", "cpu 18446744073709551615 1 0 0\n", 0, 0, true},
		{"too long", "cpu 1 2 3 4" + strings.Repeat(" ", 2000) + "\n", 0, 0, true},
		{"endless line", "cpu " + strings.Repeat("1", 1<<20), 0, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tc.in))
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted %q as %+v", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Busy != tc.busy || got.Total != tc.total {
				t.Fatalf("got %+v, want busy %d total %d", got, tc.busy, tc.total)
			}
		})
	}
}

func TestBusyFraction(t *testing.T) {
	if b, ok := BusyFraction(Times{Busy: 100, Total: 400}, Times{Busy: 175, Total: 500}); !ok || b != 0.75 {
		t.Fatalf("got %v %v, want 0.75", b, ok)
	}
	for _, c := range [][2]Times{
		{{Busy: 1, Total: 10}, {Busy: 1, Total: 10}},  // no time passed
		{{Busy: 5, Total: 10}, {Busy: 1, Total: 20}},  // busy went backwards
		{{Busy: 5, Total: 10}, {Busy: 50, Total: 20}}, // busier than the time passed
	} {
		if _, ok := BusyFraction(c[0], c[1]); ok {
			t.Errorf("BusyFraction(%+v, %+v) ok", c[0], c[1])
		}
	}
}

// TestSampler drives a Sampler over a file the test rewrites, with an
// injected clock.
func TestSampler(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := &Sampler{Path: path, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	write("cpu 100 0 0 100\n")
	if _, ok, err := s.Busy(); ok || err != nil {
		t.Fatalf("first reading: ok=%v err=%v, want no figure yet", ok, err)
	}
	advance(time.Second)
	write("cpu 190 0 0 110\n")
	if b, ok, err := s.Busy(); !ok || err != nil || b != 0.9 {
		t.Fatalf("busy %v ok=%v err=%v, want 0.9", b, ok, err)
	}
	advance(time.Minute) // too long ago to say anything about now
	write("cpu 191 0 0 209\n")
	if _, ok, _ := s.Busy(); ok {
		t.Fatal("a window longer than MaxWindow was reported")
	}
	advance(time.Second)
	write("cpu 201 0 0 299\n")
	if b, ok, _ := s.Busy(); !ok || b != 0.1 {
		t.Fatalf("busy %v ok=%v, want 0.1", b, ok)
	}
	write("garbage\n")
	if _, ok, err := s.Busy(); ok || err == nil {
		t.Fatal("unparsable file gave a figure")
	}
	s.Path = filepath.Join(t.TempDir(), "missing")
	if _, _, err := s.Busy(); err == nil {
		t.Fatal("missing file gave no error")
	}
}

// TestSamplerProcStat reads the real file where there is one.
func TestSamplerProcStat(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/stat is Linux only")
	}
	f, err := os.Open(DefaultPath)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	got, err := Parse(f)
	if err != nil || got.Total == 0 || got.Busy > got.Total {
		t.Fatalf("parse %s: %+v %v", DefaultPath, got, err)
	}
}

// FuzzParse: Parse never panics, and what it accepts is consistent.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("cpu 1 2 3 4"))
	f.Add([]byte("cpu 18446744073709551615 0 0 0\n"))
	f.Add([]byte("cpu  \t1\t2 3 4 5 6 7 8 9 10\n"))
	f.Add([]byte("cpux 1 2 3 4\n"))
	f.Add([]byte{0xff, 0, '\n'})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Parse(strings.NewReader(string(in)))
		if err != nil {
			return
		}
		if got.Busy > got.Total {
			t.Fatalf("busy %d > total %d for %q", got.Busy, got.Total, in)
		}
		if b, ok := BusyFraction(Times{}, got); ok && (b < 0 || b > 1) {
			t.Fatalf("fraction %v for %q", b, in)
		}
	})
}

// Package cpustat reads how busy the machine's CPUs are from Linux's
// /proc/stat, for the peer agent's idle-only uploading. Parse takes any
// reader (and bounds what it reads); Sampler turns two readings into the
// busy fraction of the time between them.
package cpustat

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultPath is where Linux publishes the counters.
const DefaultPath = "/proc/stat"

// maxLine bounds the aggregate line Parse accepts; the kernel's is under
// 200 bytes.
const maxLine = 1024

// Times are the aggregate CPU counters of every CPU, in clock ticks since
// boot.
type Times struct {
	Busy  uint64 // user, nice, system, irq, softirq and steal
	Total uint64 // Busy plus idle and iowait
}

// Parse reads the first line of r, which must be the aggregate "cpu" line
// of /proc/stat ("cpu  user nice system idle [iowait irq softirq steal
// [guest guest_nice]]"), and returns its counters. It reads at most maxLine
// bytes. Guest time is already counted in user time, so it is not added
// again.
func Parse(r io.Reader) (Times, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxLine+1), maxLine+1)
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return Times{}, fmt.Errorf("cpustat: %w", err)
	}
	if len(line) > maxLine {
		return Times{}, fmt.Errorf("cpustat: first line longer than %d bytes", maxLine)
	}
	fields := strings.Fields(line)
	if len(fields) == 0 || fields[0] != "cpu" {
		return Times{}, errors.New(`cpustat: first line does not start with "cpu"`)
	}
	vals := fields[1:]
	if len(vals) < 4 || len(vals) > 10 {
		return Times{}, fmt.Errorf("cpustat: %d counters on the cpu line, want 4 to 10", len(vals))
	}
	var t Times
	for k, f := range vals {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return Times{}, fmt.Errorf("cpustat: counter %d %q: want a non-negative integer", k+1, f)
		}
		if k >= 8 {
			continue // guest, guest_nice: part of user and nice already
		}
		if t.Total > math.MaxUint64-v {
			return Times{}, errors.New("cpustat: counters overflow")
		}
		t.Total += v
		if k != 3 && k != 4 { // idle, iowait
			t.Busy += v
		}
	}
	return t, nil
}

// BusyFraction returns the share of CPU time that was busy between two
// readings, in [0, 1]; ok is false if no time passed or the counters went
// backwards (a reading from another boot).
func BusyFraction(prev, cur Times) (busy float64, ok bool) {
	if cur.Total <= prev.Total || cur.Busy < prev.Busy {
		return 0, false
	}
	dt, db := cur.Total-prev.Total, cur.Busy-prev.Busy
	if db > dt {
		return 0, false
	}
	return float64(db) / float64(dt), true
}

// Sampler reports the busy fraction since its previous reading. It is safe
// for concurrent use.
type Sampler struct {
	// Path is the file to read; "" means DefaultPath.
	Path string
	// MaxWindow is the longest gap between two readings whose average is
	// still reported; longer gaps say nothing about the last seconds, so
	// Busy reports ok=false and starts a new window. 0 means 10 s.
	MaxWindow time.Duration
	// Now nil means time.Now.
	Now func() time.Time

	mu     sync.Mutex
	prev   Times     // guarded by mu
	prevAt time.Time // guarded by mu; zero before the first reading
}

// Busy reads the counters and returns the busy fraction since the previous
// call. ok is false at the first call, after a gap longer than MaxWindow,
// and when the file cannot be read or parsed (err says why).
func (s *Sampler) Busy() (busy float64, ok bool, err error) {
	path := s.Path
	if path == "" {
		path = DefaultPath
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, false, fmt.Errorf("cpustat: %w", err)
	}
	cur, err := Parse(f)
	f.Close()
	if err != nil {
		return 0, false, err
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	window := s.MaxWindow
	if window <= 0 {
		window = 10 * time.Second
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, prevAt := s.prev, s.prevAt
	s.prev, s.prevAt = cur, now
	if prevAt.IsZero() || now.Sub(prevAt) > window {
		return 0, false, nil
	}
	busy, ok = BusyFraction(prev, cur)
	return busy, ok, nil
}

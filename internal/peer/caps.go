package peer

// Upload caps and consent: the upload mode (on, off, idle), the token
// bucket every chunk upload draws from, the inbound connection cap of the
// chunk server, and the counters that report them.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// UploadMode says whether the agent serves chunks to other peers.
type UploadMode string

// Upload modes.
const (
	// UploadOn serves chunks within the caps (the default).
	UploadOn UploadMode = "on"
	// UploadOff is leech only: the agent registers with no address (the
	// edge never hands it out), announces that it holds nothing and
	// refuses every chunk request with 403.
	UploadOff UploadMode = "off"
	// UploadIdle serves chunks only while this machine's user is idle
	// (Config.IdleAfterMs, Config.IdleCPUPercent); otherwise it announces
	// that it holds nothing and answers chunk requests 503 with Retry-After.
	UploadIdle UploadMode = "idle"
)

// ParseUploadMode parses "on", "off" or "idle"; "" means on.
func ParseUploadMode(s string) (UploadMode, error) {
	switch m := UploadMode(s); m {
	case "", UploadOn:
		return UploadOn, nil
	case UploadOff, UploadIdle:
		return m, nil
	}
	return "", fmt.Errorf("upload mode %q: want on, off or idle", s)
}

// Reasons a chunk request is refused, as counted in AgentStats.Refused.
const (
	RefusedSlots   = "slots"    // every upload slot busy (MaxUploads): 503
	RefusedOff     = "off"      // uploading is off: 403
	RefusedNotIdle = "not_idle" // idle-only uploading while the user is active: 503
)

// uploadPiece is the largest write of chunk bytes between two draws from
// the upload bucket, and uploadBurst the bucket's depth: small enough that
// concurrent uploads interleave finely and the rate holds over a second.
const (
	uploadPiece = 16 << 10
	uploadBurst = 32 << 10
)

// uploadLimiter is the token bucket all chunk uploads share. A nil
// *uploadLimiter does not limit.
type uploadLimiter struct {
	lim *rate.Limiter
	now func() time.Time
}

func newUploadLimiter(bytesPerSec int64, now func() time.Time) *uploadLimiter {
	if bytesPerSec <= 0 {
		return nil
	}
	return &uploadLimiter{lim: rate.NewLimiter(rate.Limit(bytesPerSec), uploadBurst), now: now}
}

// delay reserves n ≤ uploadBurst bytes and returns how long to wait before
// sending them, with cancel to give them back if the wait is abandoned.
func (u *uploadLimiter) delay(n int) (time.Duration, func()) {
	now := u.now()
	r := u.lim.ReserveN(now, n)
	return r.DelayFrom(now), func() { r.CancelAt(u.now()) }
}

// wait blocks until n ≤ uploadBurst bytes may be sent, or ctx ends.
func (u *uploadLimiter) wait(ctx context.Context, n int) error {
	if u == nil {
		return nil
	}
	d, cancel := u.delay(n)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		cancel()
		return ctx.Err()
	}
}

// writeUpload sends data to w in pieces drawn from the upload bucket and
// counts what was sent. Under a cap the write deadline is renewed per
// piece: uploadWriteTimeout bounds a stalled downloader, not a chunk that
// the cap makes slow.
func (a *Agent) writeUpload(ctx context.Context, w http.ResponseWriter, data []byte) (int, error) {
	if a.upLimit == nil {
		n, err := w.Write(data)
		a.countUpload(n)
		return n, err
	}
	rc := http.NewResponseController(w)
	sent := 0
	for sent < len(data) {
		k := min(len(data)-sent, uploadPiece)
		if err := a.upLimit.wait(ctx, k); err != nil {
			return sent, err
		}
		_ = rc.SetWriteDeadline(time.Now().Add(uploadWriteTimeout))
		n, err := w.Write(data[sent : sent+k])
		sent += n
		a.countUpload(n)
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

func (a *Agent) countUpload(n int) {
	a.upBytes.Add(int64(n))
	a.upRate.add(a.now(), int64(n))
}

// admitUpload says whether a chunk request may be served at all under the
// upload mode; the error carries the status to answer.
func (a *Agent) admitUpload() error {
	switch a.cfg.Upload {
	case UploadOff:
		a.refused(RefusedOff)
		return &httpError{code: http.StatusForbidden, msg: "this peer does not upload (upload mode off)"}
	case UploadIdle:
		st := a.idle.state()
		if !st.Idle {
			a.refused(RefusedNotIdle)
			return &httpError{code: http.StatusServiceUnavailable, msg: "this peer uploads only while its user is idle: " + st.Reason, retryAfter: st.RetryAfter}
		}
	}
	return nil
}

// offering reports whether the agent offers its chunks right now: what it
// announces to the edge follows it.
func (a *Agent) offering() bool {
	switch a.cfg.Upload {
	case UploadOff:
		return false
	case UploadIdle:
		return a.idle.state().Idle
	}
	return true
}

func (a *Agent) refused(reason string) {
	a.refuseMu.Lock()
	a.refusedBy[reason]++
	a.refuseMu.Unlock()
}

// rateMeter measures a rate over the last rateWindow, in one-second
// buckets. It is safe for concurrent use.
type rateMeter struct {
	mu      sync.Mutex
	buckets [rateWindow + 1]int64 // guarded by mu: bytes per second, by unix second mod len
	secs    [rateWindow + 1]int64 // guarded by mu: the second each bucket holds
}

const rateWindow = 5 // seconds

func (m *rateMeter) add(now time.Time, n int64) {
	s := now.Unix()
	k := int(uint64(s) % uint64(len(m.buckets)))
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.secs[k] != s {
		m.secs[k], m.buckets[k] = s, 0
	}
	m.buckets[k] += n
}

// rate returns bytes/s over the rateWindow whole seconds before now's.
func (m *rateMeter) rate(now time.Time) float64 {
	s := now.Unix()
	m.mu.Lock()
	defer m.mu.Unlock()
	var sum int64
	for k := range m.buckets {
		if d := s - m.secs[k]; d >= 1 && d <= rateWindow {
			sum += m.buckets[k]
		}
	}
	return float64(sum) / rateWindow
}

// connLimiter wraps the chunk server's listener: past max open
// connections, a new connection is closed as soon as it is accepted.
type connLimiter struct {
	net.Listener
	slots   chan struct{} // one per open connection; never closed
	refused *atomic.Int64
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, slots: l.slots}, nil
		default:
			l.refused.Add(1)
			c.Close()
		}
	}
}

// limitedConn gives its slot back when closed.
type limitedConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.slots })
	return err
}

// retryAfter formats a Retry-After value in whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

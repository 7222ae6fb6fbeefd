package peer

// Idle detection for idle-only uploading (UploadIdle).
//
// The machine's user counts as idle when, at once:
//   - no local player has read from the agent (PlayerHandler, a Download's
//     reader) and no download of this agent's own has run for IdleAfterMs;
//   - the system's CPUs were busy less than IdleCPUPercent over the latest
//     sample (at most one a second) — where a sampler exists (Linux
//     /proc/stat, or Deps.CPUBusy); while the sampler has no figure yet
//     the user is taken as active.

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// cpuSampleEvery is the least time between two CPU samples.
const cpuSampleEvery = time.Second

// cpuRetryAfter is the Retry-After given while the CPU is busy.
const cpuRetryAfter = 5 * time.Second

// IdleStatus is the idle gate's verdict.
type IdleStatus struct {
	Idle bool `json:"idle"`
	// Reason says why the user counts as active ("" when idle).
	Reason string `json:"reason,omitempty"`
	// RetryAfter is about how long until the user may count as idle again.
	RetryAfter time.Duration `json:"-"`
	// LastActivity is the last player read or own download end; zero if none.
	LastActivity time.Time `json:"last_activity,omitzero"`
	// CPUBusy is the latest CPU busy fraction, -1 if unknown or not checked.
	CPUBusy float64 `json:"cpu_busy"`
}

// idleGate tracks local activity and decides idleness.
type idleGate struct {
	after   time.Duration
	maxBusy float64                // the CPU check passes below it; ≥ 1 disables the check
	cpu     func() (float64, bool) // nil: no CPU check
	now     func() time.Time

	lastAct atomic.Int64 // unix ns of the last player read or own download end; 0 = none
	active  atomic.Int64 // own downloads in progress

	mu      sync.Mutex
	cpuAt   time.Time // guarded by mu: when cpu was last sampled
	cpuBusy float64   // guarded by mu
	cpuOK   bool      // guarded by mu
}

// touch records local activity now.
func (g *idleGate) touch() {
	if g != nil {
		g.lastAct.Store(g.now().UnixNano())
	}
}

// downloadStarted and downloadEnded bracket each own download.
func (g *idleGate) downloadStarted() {
	if g != nil {
		g.active.Add(1)
	}
}

func (g *idleGate) downloadEnded() {
	if g != nil {
		g.active.Add(-1)
		g.touch()
	}
}

// state decides whether the user is idle now.
func (g *idleGate) state() IdleStatus {
	now := g.now()
	st := IdleStatus{CPUBusy: -1}
	if ns := g.lastAct.Load(); ns != 0 {
		st.LastActivity = time.Unix(0, ns)
	}
	if g.cpu != nil && g.maxBusy < 1 {
		g.mu.Lock()
		if g.cpuAt.IsZero() || now.Sub(g.cpuAt) >= cpuSampleEvery {
			g.cpuBusy, g.cpuOK = g.cpu()
			g.cpuAt = now
		}
		busy, ok := g.cpuBusy, g.cpuOK
		g.mu.Unlock()
		if ok {
			st.CPUBusy = busy
		}
		switch {
		case !ok:
			st.Reason, st.RetryAfter = "CPU load not measured yet", cpuSampleEvery
		case busy >= g.maxBusy:
			st.Reason, st.RetryAfter = fmt.Sprintf("CPU %.0f%% busy (limit %.0f%%)", 100*busy, 100*g.maxBusy), cpuRetryAfter
		}
	}
	switch {
	case g.active.Load() > 0:
		st.Reason, st.RetryAfter = "a download of this peer's own is running", g.after
	case !st.LastActivity.IsZero() && now.Sub(st.LastActivity) < g.after:
		since := now.Sub(st.LastActivity)
		st.Reason = fmt.Sprintf("local activity %v ago (idle after %v)", since.Round(time.Second), g.after)
		st.RetryAfter = g.after - since
	}
	st.Idle = st.Reason == ""
	return st
}

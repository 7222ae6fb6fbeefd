package peer

// The scheduler's per-source pacing rules as pure functions of a source's
// measured state. The loop calls them, and so does the simulator
// (internal/sim), so that a simulated swarm is paced by the same arithmetic.

import (
	"math"
	"math/rand/v2"
	"time"
)

// TickInterval is how often the loop checks request deadlines and backoffs.
const TickInterval = tickEvery

// WithDefaults returns c with every zero field replaced by its default, as
// the agent applies them; the rules below expect such a Config.
func (c Config) WithDefaults() Config { return c.applyDefaults() }

// Slots is how many requests a source of the given kind may have in flight:
// about base + cfg.PipelineMs of its measured rate (bytes/s, 0 = not yet
// measured) in chunks, clamped to [1, MaxPeerSlots] for a peer and [4,
// MaxEdgeSlots] for the edge (see below); 2 for
// an unmeasured peer and 4 for an unmeasured edge; 1 while it is failing.
// base is the source's base latency (BaseLatency of its times to first
// byte; 0 = not measured): the round trip every request pays however
// lightly the source is loaded. Without it a source far away (a 300 ms
// round trip) would be asked one chunk at a time and its rate, measured
// as a chunk per round trip, would never show that it could send more.
func Slots(cfg Config, chunkSize int, kind SourceKind, rate float64, base time.Duration, failures int) int {
	hi, initial := cfg.MaxPeerSlots, 2
	if kind == KindEdge {
		hi, initial = cfg.MaxEdgeSlots, 4
	}
	switch {
	case failures > 0:
		return 1
	case rate <= 0:
		return min(initial, hi)
	}
	k := int(math.Ceil(rate*(base+ms(cfg.PipelineMs)).Seconds()/float64(chunkSize) - 0.05))
	lo := 1
	if kind == KindEdge {
		// The edge is a server for many; when its answers to this peer are
		// slow, the cause is usually this peer's own link or CPU, not the
		// edge (which refuses with 503 when it is the bottleneck): keep its
		// initial pipeline rather than draining to one request at a time.
		lo = min(initial, hi)
	}
	return max(lo, min(k, hi))
}

// RequestTimeout is how long a new request to a source may take when
// inflight requests are already queued on it: four times what the source
// needs at its measured rate to deliver them and the new one, never less
// than cfg.FetchTimeoutMs (twice that for an unmeasured edge), at most two
// minutes.
func RequestTimeout(cfg Config, chunkSize int, kind SourceKind, rate float64, inflight int) time.Duration {
	floor := ms(cfg.FetchTimeoutMs)
	if rate <= 0 {
		if kind == KindEdge {
			return 2 * floor
		}
		return floor
	}
	expected := time.Duration(float64(chunkSize*(inflight+1)) / rate * float64(time.Second))
	return min(max(floor, 4*expected), 2*time.Minute)
}

// StallFactor caps a request that keeps making progress: at most this many
// RequestTimeouts after its start, however steadily bytes trickle in.
const StallFactor = 4

// FlightDeadline is when a request started at start with timeout t
// (RequestTimeout at launch) is given up, if lastByte is when bytes of it
// last arrived (zero: none yet): t after the start or the latest progress,
// whichever is later, but never later than StallFactor × t after the start.
// A transfer that is slow because the source's uplink is shared by many
// requesters is not a failure (cancelling it wastes what already arrived);
// a source that stops sending, or trickles bytes to hold a chunk, is.
func FlightDeadline(start, lastByte time.Time, t time.Duration) time.Time {
	d := start.Add(t)
	if lastByte.After(start) {
		d = lastByte.Add(t)
	}
	if hard := start.Add(StallFactor * t); d.After(hard) {
		d = hard
	}
	return d
}

// BaseWindow is how long a base-latency sample stands before a newer,
// larger one may replace it (a source's path or load can change).
const BaseWindow = 10 * time.Second

// BaseLatency folds one request's time to first byte (dur), seen at now,
// into a source's base latency: a windowed minimum. base and at are the current
// estimate and when it was taken (zero: none yet); it returns the new pair.
func BaseLatency(base time.Duration, at time.Time, dur time.Duration, now time.Time) (time.Duration, time.Time) {
	if base == 0 || dur <= base || now.Sub(at) > BaseWindow {
		return dur, now
	}
	return base, at
}

// MaxFlights is how many requests one download keeps in flight at most.
func MaxFlights(cfg Config, chunkSize int) int {
	return int(min(int64(cfg.MaxInFlight), max(2, cfg.MaxInFlightBytes/int64(chunkSize))))
}

// NextRate folds one completed request of n bytes that took dur into a
// source's rate estimate (0 = none yet). By Little's law the source
// delivers (requests in flight × bytes) per request latency; inflight is
// what is still queued on the source after this request.
func NextRate(rate float64, n, inflight int, dur time.Duration) float64 {
	sec := max(dur.Seconds(), 1e-4)
	sample := float64(n) * float64(inflight+1) / sec
	if rate == 0 {
		return sample
	}
	return 0.7*rate + 0.3*sample
}

// FailureBackoff is how long a source is not asked after its failures-th
// consecutive failure: 250 ms doubling, at most 10 s for a peer and 2 s for
// the edge (the source of last resort).
func FailureBackoff(kind SourceKind, failures int) time.Duration {
	ceiling := 10 * time.Second
	if kind == KindEdge {
		ceiling = 2 * time.Second
	}
	return min(250*time.Millisecond<<min(failures-1, 6), ceiling)
}

// BusyBackoff is how long a source that refused a request for load (503)
// is not asked: 150 ms plus up to 250 ms at random, so refused peers do
// not come back in step.
func BusyBackoff(r *rand.Rand) time.Duration {
	return 150*time.Millisecond + time.Duration(r.Int64N(int64(250*time.Millisecond)))
}

// RemoteSlots is how many requests a peer in another network location
// (PeerInfo.Cost > 0) may have in flight, and it is asked only for chunks
// no source in this peer's location holds: remote peers fill the gaps,
// the peer's own location (and the edge) carry the bulk. Measured with
// `edgeswarm demo --peers 20 --pids 2` (docs/BENCHMARKS.md): the share of
// peer bytes kept in a location rises from 0.47 to 0.81 at the same
// completion time.
const RemoteSlots = 1

// DemoteAfter is how many consecutive failures make a download stop asking
// a peer (demote it) for DemoteFor: broken transfers, errors, or timeouts
// of a peer that never sent it a whole chunk (timeouts of one that did are
// congestion as often as not, and only back it off); a peer whose
// connection is refused is demoted at the first. Three: one broken
// transfer or one slow answer is the network's doing as often as the
// peer's, and a peer that advertises chunks it never sends costs one
// timeout per try.
const DemoteAfter = 3

// DemoteFor is how long a demoted peer is not asked. Then it is given one
// request at a time, and its next failure demotes it again.
const DemoteFor = 30 * time.Second

// EdgeFailoverAfter is how many consecutive failures of the edge serving a
// download's edge chunks make the download look for another edge serving
// the same version (Config.Fallbacks); a refused connection makes it look
// at the first. EdgeRetryAfter is how long it waits before looking again
// when no other edge serves the version.
const (
	EdgeFailoverAfter = 2
	EdgeRetryAfter    = 5 * time.Second
)

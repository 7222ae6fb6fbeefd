package sim

import (
	"math"
	"testing"
)

// netRun builds a network of bare nodes (no downloads) with the given
// capacities in bytes/s, starts the given transfers, runs it and returns
// when each transfer finished.
func netRun(t *testing.T, up, down []float64, xfers []xfer) []float64 {
	t.Helper()
	s, err := New(Config{Peers: len(up) - 1})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, ok := s.q.pop(); !ok {
			break
		}
	}
	for i := range s.nodes {
		s.nodes[i].up, s.nodes[i].down, s.nodes[i].lat = up[i], down[i], 0
	}
	s.minY = 0
	ids := make(map[int32]int)
	for k, x := range xfers {
		id := s.newFlight()
		f := &s.fl[id]
		f.src, f.peer, f.size, f.state = x.from, x.to, x.bytes, fsTransit
		s.q.ev[f.ev].kind = evArrive
		s.q.schedule(f.ev, x.at)
		ids[id] = k
	}
	done := make([]float64, len(xfers))
	for {
		h, ok := s.q.pop()
		if !ok {
			break
		}
		e := s.q.ev[h]
		s.now = e.at
		if e.kind == evDeliver {
			done[ids[e.obj]] = s.now
		}
		s.dispatch(e.kind, e.obj)
	}
	return done
}

type xfer struct {
	at       float64
	from, to int32
	bytes    float64
}

func TestBandwidthSharing(t *testing.T) {
	inf := math.Inf(1)
	const mb = 1e6
	tests := map[string]struct {
		up, down []float64
		xfers    []xfer
		want     []float64
	}{
		"one transfer, sender-limited": {
			up: []float64{10 * mb, 0}, down: []float64{inf, 100 * mb},
			xfers: []xfer{{0, 0, 1, 10 * mb}},
			want:  []float64{1},
		},
		"one transfer, receiver-limited": {
			up: []float64{100 * mb, 0}, down: []float64{inf, 10 * mb},
			xfers: []xfer{{0, 0, 1, 10 * mb}},
			want:  []float64{1},
		},
		"two transfers share an uplink": {
			up: []float64{10 * mb, 0, 0}, down: []float64{inf, 100 * mb, 100 * mb},
			xfers: []xfer{{0, 0, 1, 10 * mb}, {0, 0, 2, 10 * mb}},
			want:  []float64{2, 2},
		},
		// A alone for 0.5 s (5 MB), then both at 5 MB/s: A's last 5 MB
		// take 1 s; B has 5 MB then and gets the whole link for the rest.
		"staggered transfers share an uplink": {
			up: []float64{10 * mb, 0, 0}, down: []float64{inf, 100 * mb, 100 * mb},
			xfers: []xfer{{0, 0, 1, 10 * mb}, {0.5, 0, 2, 10 * mb}},
			want:  []float64{1.5, 2},
		},
		// Two fast senders into one downlink: each gets half of it.
		"two transfers share a downlink": {
			up: []float64{10 * mb, 10 * mb, 0}, down: []float64{inf, inf, 10 * mb},
			xfers: []xfer{{0, 0, 2, 10 * mb}, {0, 1, 2, 10 * mb}},
			want:  []float64{2, 2},
		},
		// The second flow halves the downlink share: the first flow goes
		// from sender-bound (8) to receiver-bound (5) and back after the
		// second ends. First: 8 MB by t=1; 5 MB/s till t=1.2 (second, 1 MB
		// at 5 MB/s, done); then 8 MB/s for the last 1 MB: 1.325 s.
		"a flow changes side twice": {
			up: []float64{8 * mb, 8 * mb, 0}, down: []float64{inf, inf, 10 * mb},
			xfers: []xfer{{0, 0, 2, 10 * mb}, {1, 1, 2, 1 * mb}},
			want:  []float64{1.325, 1.2},
		},
		// Not work-conserving, by design of the model: the uplink is split
		// 5/5, the slow receiver takes 2 of its 5, and the other flow does
		// not get the 3 left over (it finishes at 2 s, then the slow one
		// goes on at 2 MB/s: 10 MB in 5 s).
		"a receiver-limited flow does not lend its share": {
			up: []float64{10 * mb, 0, 0}, down: []float64{inf, 2 * mb, 100 * mb},
			xfers: []xfer{{0, 0, 1, 10 * mb}, {0, 0, 2, 10 * mb}},
			want:  []float64{5, 2},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := netRun(t, tc.up, tc.down, tc.xfers)
			for i := range got {
				if math.Abs(got[i]-tc.want[i]) > 1e-9 {
					t.Errorf("transfer %d done at %.12f s, want %.12f", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestEdgeVirtualTime: a thousand flows on one uplink finish together, at
// the time the uplink needs for all their bytes.
func TestEdgeVirtualTime(t *testing.T) {
	const n = 1000
	up, down := make([]float64, n+1), make([]float64, n+1)
	up[0], down[0] = 1e6, math.Inf(1)
	var xs []xfer
	for i := 1; i <= n; i++ {
		down[i] = 1e9
		xs = append(xs, xfer{0, 0, int32(i), 1000})
	}
	for i, d := range netRun(t, up, down, xs) {
		if math.Abs(d-1) > 1e-9 {
			t.Fatalf("flow %d done at %.12f s, want 1", i, d)
		}
	}
}

package fluid

import (
	"math"
	"testing"
)

func TestBoundAndOffloadLimit(t *testing.T) {
	const mib = 1 << 20
	tests := map[string]struct {
		n                        int
		size                     int64
		edgeUp, peerUp, peerDown float64
		bound, limit             float64
	}{
		// The defaults: swarm upload is the bottleneck.
		"defaults": {20, 64 * mib, 100e6, 20e6, 100e6, 20 * 64 * mib * 8 / 500e6, 0.8},
		// One peer: the edge (= the download link here) bounds it; peers carry nothing.
		"single peer": {1, 64 * mib, 100e6, 20e6, 100e6, 64 * mib * 8 / 100e6, 0},
		// A slow download link bounds it.
		"slow download": {4, 8 * mib, 100e6, 100e6, 10e6, 8 * mib * 8 / 10e6, 1 - 100e6*(8*mib*8/10e6)/(4*8*mib*8)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := Bound(tc.n, tc.size, tc.edgeUp, tc.peerUp, tc.peerDown)
			if math.Abs(b-tc.bound) > 1e-9*tc.bound {
				t.Fatalf("bound %.6f, want %.6f", b, tc.bound)
			}
			l := OffloadLimit(tc.n, tc.size, tc.edgeUp, b)
			if math.Abs(l-max(0, tc.limit)) > 1e-9 {
				t.Fatalf("offload limit %.6f, want %.6f", l, tc.limit)
			}
		})
	}
}

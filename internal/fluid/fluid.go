// Package fluid holds the fluid-model bounds every edgeswarm benchmark
// reports against (the demo, the simulator, the testbed): the shortest time
// in which a flash crowd can finish and the largest share of bytes peers can
// carry when it does.
package fluid

// Bound returns T* = max(F/u_edge, F/d_min, N·F/(u_edge + Σu_peer)) in
// seconds for N identical peers; rates in bit/s, 0 meaning unlimited.
func Bound(n int, size int64, edgeUp, peerUp, peerDown float64) float64 {
	f := float64(size) * 8
	t := 0.0
	if edgeUp > 0 {
		t = max(t, f/edgeUp)
	}
	if peerDown > 0 {
		t = max(t, f/peerDown)
	}
	if edgeUp > 0 && peerUp > 0 {
		t = max(t, float64(n)*f/(edgeUp+float64(n)*peerUp))
	}
	return t
}

// OffloadLimit returns 1 − u_edge·T*/(N·F): the largest share of bytes peers
// can carry when everyone finishes at the bound.
func OffloadLimit(n int, size int64, edgeUp, bound float64) float64 {
	if edgeUp <= 0 || n == 0 || size == 0 {
		return 0
	}
	return max(0, 1-edgeUp*bound/(float64(n)*float64(size)*8))
}

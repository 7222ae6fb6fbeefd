package sim

import (
	"slices"
	"testing"

	"github.com/edgeswarm/edgeswarm/internal/swarm"
)

// The simulated tracker hands out what the real policy ranks best: with
// every member ranked (sample −1) and distinct usefulness, a hand-out is
// exactly the requester's MaxPeers most useful peers; a swarm no larger
// than a hand-out is handed out whole; members without chunks, the
// requester and members that left are never handed out.
func TestTrackerHandout(t *testing.T) {
	const n = 120
	s, err := New(Config{Peers: n, Size: 256 << 10, ChunkSize: 16 << 10, HandoutSample: -1, Handout: swarm.UsefulFirst{}})
	if err != nil {
		t.Fatal(err)
	}
	// Peer i holds chunks [0, i mod 17): usefulness to an empty requester
	// is i mod 17, so ties exist only between peers 17 apart.
	snaps := make([]*snap, n+1)
	for i := 1; i <= n; i++ {
		b := newBitset(s.nChunks)
		for c := 0; c < (i % 17); c++ {
			b.set(c)
		}
		snaps[i] = &snap{bits: b, count: i % 17}
		s.tr.announce(int32(i), snaps[i], false)
	}
	got := s.tr.handout(1, nil)
	if len(got) != 50 {
		t.Fatalf("hand-out of %d peers, want 50", len(got))
	}
	minUseful := 17
	for _, e := range got {
		if e.node == 1 || e.snap.count == 0 || e.snap != snaps[e.node] {
			t.Fatalf("handed out %d (count %d)", e.node, e.snap.count)
		}
		minUseful = min(minUseful, e.snap.count)
	}
	// Seven peers hold each count from 16 down: the 50 best are the 49
	// holding 10 or more and one holding 9.
	for i := 2; i <= n; i++ {
		if i%17 > minUseful && !slices.ContainsFunc(got, func(e hoEntry) bool { return e.node == int32(i) }) {
			t.Errorf("peer %d (useful %d) left out while one of use %d is in", i, i%17, minUseful)
		}
	}

	// A small swarm is handed out whole.
	s2, _ := New(Config{Peers: 30, Size: 256 << 10, ChunkSize: 16 << 10})
	for i := 1; i <= 30; i++ {
		b := newBitset(s2.nChunks)
		b.set(0)
		s2.tr.announce(int32(i), &snap{bits: b, count: i % 3}, false) // a third hold nothing
	}
	s2.tr.leave(4)
	got = s2.tr.handout(2, nil)
	want := 0
	for i := 1; i <= 30; i++ {
		if i != 2 && i != 4 && i%3 != 0 {
			want++
		}
	}
	if len(got) != want {
		t.Errorf("small swarm: %d handed out, want %d", len(got), want)
	}
	for _, e := range got {
		if e.node == 2 || e.node == 4 || e.node%3 == 0 {
			t.Errorf("small swarm: handed out %d", e.node)
		}
	}
}

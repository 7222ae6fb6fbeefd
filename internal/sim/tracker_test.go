package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
)

// give makes node i of s hold the given chunks, in that order, and
// announces them.
func give(s *Sim, i int, chunks ...int) {
	for k, c := range chunks {
		s.log[i*s.nChunks+k] = int32(c)
	}
	s.tr.announce(int32(i), int32(len(chunks)), false)
}

func upTo(n int) []int {
	c := make([]int, n)
	for i := range c {
		c[i] = i
	}
	return c
}

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
	for i := 1; i <= n; i++ {
		give(s, i, upTo(i%17)...)
	}
	got := s.tr.handout(1, nil)
	if len(got) != 50 {
		t.Fatalf("hand-out of %d peers, want 50", len(got))
	}
	minUseful := int32(17)
	for _, e := range got {
		if e.node == 1 || e.n == 0 || e.n != int32(e.node%17) {
			t.Fatalf("handed out %d (count %d)", e.node, e.n)
		}
		minUseful = min(minUseful, e.n)
	}
	// Seven peers hold each count from 16 down: the 50 best are the 49
	// holding 10 or more and one holding 9.
	for i := 2; i <= n; i++ {
		if int32(i%17) > minUseful && !slices.ContainsFunc(got, func(e hoEntry) bool { return e.node == int32(i) }) {
			t.Errorf("peer %d (useful %d) left out while one of use %d is in", i, i%17, minUseful)
		}
	}

	// A small swarm is handed out whole.
	s2, _ := New(Config{Peers: 30, Size: 256 << 10, ChunkSize: 16 << 10})
	for i := 1; i <= 30; i++ {
		give(s2, i, upTo(i%3)...) // a third hold nothing
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

// The simulated tracker draws and ranks exactly as internal/swarm's Tracker
// does: fed the same announces in the same order and the same random
// source, its ranked hand-outs are the real tracker's, peer for peer and
// in order (a uniform sample of HandoutSample holders, the requester
// dropped, ranked by the real swarm.Weighted).
func TestTrackerMirrorsSwarm(t *testing.T) {
	const (
		n      = 300
		sample = 80
		seed   = 42
	)
	s, err := New(Config{Peers: n, Size: 1 << 20, ChunkSize: 16 << 10, HandoutSample: sample, RerankEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1e9, 0)
	real, err := swarm.New(swarm.Config{HandoutSample: sample, SweepInterval: -1},
		swarm.Deps{Now: func() time.Time { return now }, Rand: rand.New(rand.NewPCG(seed, 7))})
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	s.tr.rng = rand.New(rand.NewPCG(seed, 7))
	s.tr.peerIDs() // replaced below by the real tracker's IDs
	s.tr.byID = make(map[string]int32)
	root := core.Hash{1}
	ids := make([]string, n+1)
	for i := 1; i <= n; i++ {
		id, _, err := real.Register(fmt.Sprintf("10.0.%d.%d:7000", i/256, i%256), "", int64(s.nodes[i].up))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		s.tr.ids[i], s.tr.byID[id] = id, int32(i)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 1; i <= n; i++ {
		var chunks []int
		if i%5 != 0 { // a fifth hold nothing
			for c := range s.nChunks {
				if r.IntN(3) == 0 {
					chunks = append(chunks, c)
				}
			}
		}
		give(s, i, chunks...)
		bf := core.NewBitfield(s.nChunks)
		for _, c := range chunks {
			bf.Set(c)
		}
		if err := real.Announce(ids[i], root, s.nChunks, bf); err != nil {
			t.Fatal(err)
		}
	}
	for _, req := range []int{1, 5, 17, 150, 299, 1, 1} {
		got := s.tr.handout(int32(req), nil)
		want := real.Handout(root, ids[req], 50)
		if len(got) != len(want) || len(got) != 50 {
			t.Fatalf("requester %d: %d handed out, the real tracker %d", req, len(got), len(want))
		}
		for k := range got {
			if ids[got[k].node] != want[k].PeerID {
				t.Fatalf("requester %d, place %d: sim hands out %s, the real tracker %s", req, k, ids[got[k].node], want[k].PeerID)
			}
			if got[k].n != int32(want[k].Have.Count()) {
				t.Fatalf("requester %d: %s carries %d chunks, the real tracker %d", req, want[k].PeerID, got[k].n, want[k].Have.Count())
			}
		}
	}
	if s.tr.ranked != 7 {
		t.Errorf("%d hand-outs ranked, want 7", s.tr.ranked)
	}
}

// Between rankings (RerankEvery > 1) a requester gets its previous hand-out
// again with the counts its members announced since; a member that left is
// replaced, and the hand-out is ranked afresh every RerankEvery announces.
func TestTrackerRepeat(t *testing.T) {
	const n = 200
	s, err := New(Config{Peers: n, Size: 1 << 20, ChunkSize: 16 << 10, RerankEvery: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		give(s, i, upTo(1+i%7)...)
	}
	p := &s.peers[1]
	s.join(p)
	deliver := func() []hoEntry {
		p.ho = s.tr.handout(1, p.ho[:0])
		ho := slices.Clone(p.ho)
		s.onHandout(p)
		return ho
	}
	first := deliver()
	if len(first) != 50 || s.tr.ranked != 1 {
		t.Fatalf("first hand-out: %d peers, %d ranked", len(first), s.tr.ranked)
	}
	moved, gone := first[0].node, first[1].node
	give(s, int(moved), upTo(30)...)
	s.tr.leave(gone)
	second := deliver()
	if s.tr.ranked != 1 {
		t.Fatalf("second hand-out ranked")
	}
	for _, e := range second {
		if e.node == gone {
			t.Errorf("member that left handed out again")
		}
		if e.node == moved && e.n != 30 {
			t.Errorf("repeated hand-out carries %d chunks of %d, want its new count 30", e.n, e.node)
		}
	}
	kept := 0
	for _, e := range first {
		if slices.ContainsFunc(second, func(f hoEntry) bool { return f.node == e.node }) {
			kept++
		}
	}
	if len(second) != 50 || kept != 49 {
		t.Errorf("repeat: %d handed out, %d of the first kept; want 50 and 49", len(second), kept)
	}
	// The sources' counts follow: the moved member's 30 chunks are counted.
	if k := slices.IndexFunc(p.sources, func(sr src) bool { return sr.node == moved }); k < 0 || p.sources[k].n != 30 || p.avail[29] == 0 {
		t.Errorf("source %d not refreshed to 30 chunks", moved)
	}
	deliver()
	if s.tr.ranked != 1 {
		t.Fatalf("third hand-out ranked")
	}
	deliver()
	if s.tr.ranked != 2 {
		t.Errorf("fourth hand-out not ranked (every 3)")
	}
	// Availability is exactly the count of the live sources holding each chunk.
	want := make([]int32, s.nChunks)
	for _, sr := range p.sources {
		if !sr.stale {
			for _, c := range s.logOf(sr.node, sr.n) {
				want[c]++
			}
		}
	}
	if !slices.Equal(want, p.avail) {
		t.Errorf("avail %v, want %v", p.avail, want)
	}
}

// Simulated peers announce at the interval the edge would tell them: the
// simulated tracker's swarm.AnnounceInterval for its members is the real
// tracker's for the same announces and leaves.
func TestAnnounceIntervalMirrorsSwarm(t *testing.T) {
	const n = 300
	s, err := New(Config{Peers: n, Size: 1 << 20, ChunkSize: 16 << 10, AnnounceBudget: 100})
	if err != nil {
		t.Fatal(err)
	}
	real, err := swarm.New(swarm.Config{AnnounceBudget: 100, SweepInterval: -1}, swarm.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer real.Close()
	root := core.Hash{2}
	base := 500 * time.Millisecond
	ids := make([]string, n+1)
	check := func(what string) {
		t.Helper()
		want := real.AnnounceInterval(root, base)
		if got := time.Duration(s.tr.interval()) * time.Millisecond; got != want {
			t.Fatalf("%s: sim %v, the real tracker %v", what, got, want)
		}
	}
	for i := 1; i <= n; i++ {
		id, _, err := real.Register(fmt.Sprintf("10.1.%d.%d:7000", i/256, i%256), "", 1)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		var chunks []int
		if i%3 != 0 {
			chunks = upTo(i % 5)
		}
		give(s, i, chunks...)
		bf := core.NewBitfield(s.nChunks)
		for _, c := range chunks {
			bf.Set(c)
		}
		if err := real.Announce(id, root, s.nChunks, bf); err != nil {
			t.Fatal(err)
		}
		if i%37 == 0 {
			check(fmt.Sprintf("%d members", i))
		}
	}
	check("full swarm")
	if got := s.tr.interval(); got != 3000 {
		t.Fatalf("300 members at 100 per s: %d ms, want 3000", got)
	}
	for i := 1; i <= 120; i++ {
		s.tr.leave(int32(i))
		real.Leave(ids[i], root)
	}
	check("after leaves")
}

// A run's peers announce at the stretched interval: fewer hand-outs, the
// longest interval reported, and every peer still completes.
func TestAnnounceBudgetRun(t *testing.T) {
	run := func(budget int) Result {
		r, err := Run(Config{Peers: 200, Size: 8 << 20, ChunkSize: 64 << 10, AnnounceBudget: budget})
		if err != nil {
			t.Fatal(err)
		}
		if r.Completed != 200 {
			t.Fatalf("budget %d: %d of 200 completed", budget, r.Completed)
		}
		return r
	}
	none, tight := run(-1), run(50) // 200 members at 50 per s: 4 s
	if none.AnnounceMaxMs != 500 || none.AnnounceBudget != -1 {
		t.Errorf("no budget: longest interval %d ms (budget %d), want 500", none.AnnounceMaxMs, none.AnnounceBudget)
	}
	if tight.AnnounceMaxMs != 4000 || tight.AnnounceBudget != 50 {
		t.Errorf("budget 50: longest interval %d ms (budget %d), want 4000", tight.AnnounceMaxMs, tight.AnnounceBudget)
	}
	// Each peer announces about every 4 s instead of every 0.5 s (plus at
	// its first chunk and completion).
	if limit := 200 * (tight.SimS/4 + 4); float64(tight.Handouts) > limit || tight.Handouts*3 > none.Handouts {
		t.Errorf("hand-outs: %d with the budget (limit %.0f), %d without", tight.Handouts, limit, none.Handouts)
	}
}

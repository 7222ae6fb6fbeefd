package peer

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPolicies(t *testing.T) {
	// 8 chunks; avail counts per chunk.
	avail := []int32{3, 0, 2, 0, 1, 0, 1, 0}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7}
	cases := []struct {
		name   string
		policy ChunkPolicy
		in     PickInput
		want   []int // the acceptable picks (random tie-break)
	}{
		{"rarest picks min avail", RarestFirst{}, PickInput{Kind: KindPeer, Candidates: []int{0, 2, 4, 6}, Avail: avail}, []int{4, 6}},
		{"rarest single", RarestFirst{}, PickInput{Kind: KindPeer, Candidates: []int{0, 2}, Avail: avail}, []int{2}},
		{"rarest none", RarestFirst{}, PickInput{Kind: KindPeer, Candidates: nil, Avail: avail}, []int{-1}},
		{"urgent first", RarestFirst{}, PickInput{Kind: KindPeer, Candidates: []int{0, 2, 4}, Avail: avail, Urgent: []int{1, 2, 0}}, []int{2}},
		{"urgent not held falls back", RarestFirst{}, PickInput{Kind: KindPeer, Candidates: []int{0, 4}, Avail: avail, Urgent: []int{1, 3}}, []int{4}},
		{"superseed unheld first", SuperSeed{}, PickInput{Kind: KindEdge, Candidates: all, Avail: avail}, []int{1, 3, 5, 7}},
		{"superseed own stripe", SuperSeed{}, PickInput{Kind: KindEdge, Candidates: all, Avail: avail, Stripe: 1, Stripes: 4}, []int{3}},
		{"superseed stripe done", SuperSeed{}, PickInput{Kind: KindEdge, Candidates: []int{0, 1, 4, 6}, Avail: avail, Stripe: 2, Stripes: 4}, []int{1}},
		{"superseed then rarest", SuperSeed{}, PickInput{Kind: KindEdge, Candidates: []int{0, 2, 4}, Avail: avail}, []int{4}},
		{"superseed urgent", SuperSeed{}, PickInput{Kind: KindEdge, Candidates: all, Avail: avail, Urgent: []int{0}}, []int{0}},
		{"default edge", DefaultPolicy{}, PickInput{Kind: KindEdge, Candidates: []int{0, 2, 5}, Avail: avail}, []int{5}},
		{"default peer", DefaultPolicy{}, PickInput{Kind: KindPeer, Candidates: []int{0, 2, 6}, Avail: avail}, []int{6}},
		{"sequential", Sequential{}, PickInput{Candidates: []int{4, 6}, Avail: avail}, []int{4}},
		{"func adapter", PolicyFunc(func(in PickInput) int { return in.Candidates[len(in.Candidates)-1] }), PickInput{Candidates: []int{4, 6}}, []int{6}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[int]bool{}
			for seed := uint64(0); seed < 64; seed++ {
				in := tc.in
				in.Rand = rand.New(rand.NewPCG(seed, 1))
				got := tc.policy.Pick(in)
				ok := false
				for _, w := range tc.want {
					ok = ok || got == w
				}
				if !ok {
					t.Fatalf("seed %d: picked %d, want one of %v", seed, got, tc.want)
				}
				seen[got] = true
			}
			// Ties are broken at random: every acceptable pick shows up.
			if len(seen) != len(tc.want) {
				t.Fatalf("picks %v over 64 seeds, want all of %v", seen, tc.want)
			}
		})
	}
}

// TestSuperSeedSpreads checks the point of super-seeding: peers that start
// together, knowing of each other but holding nothing, ask the edge for
// disjoint chunks.
func TestSuperSeedSpreads(t *testing.T) {
	const n, peers = 1024, 16
	avail := make([]int32, n)
	cands := make([]int, n)
	for i := range cands {
		cands[i] = i
	}
	firsts := map[int]int{}
	for p := 0; p < peers; p++ {
		in := PickInput{Kind: KindEdge, Candidates: cands, Avail: avail, Stripe: p, Stripes: peers, Rand: rand.New(rand.NewPCG(uint64(p), 7))}
		for k := 0; k < 8; k++ { // each peer's first 8 edge requests
			c := SuperSeed{}.Pick(in)
			if c*peers/n != p {
				t.Fatalf("peer %d picked chunk %d outside its stripe", p, c)
			}
			firsts[c]++
			// remove c from the candidates as the scheduler would
			next := make([]int, 0, len(in.Candidates)-1)
			for _, x := range in.Candidates {
				if x != c {
					next = append(next, x)
				}
			}
			in.Candidates = next
		}
	}
	if len(firsts) != peers*8 {
		t.Fatalf("%d distinct chunks among %d edge requests", len(firsts), peers*8)
	}
}

func TestBitset(t *testing.T) {
	a, b := newBitset(130), newBitset(130)
	for _, i := range []int{0, 63, 64, 100, 129} {
		a.set(i)
	}
	for _, i := range []int{63, 100, 101} {
		b.set(i)
	}
	got := a.appendAnd(nil, b)
	if len(got) != 2 || got[0] != 63 || got[1] != 100 {
		t.Fatalf("and = %v", got)
	}
	if all := a.appendAnd(nil, nil); len(all) != 5 || all[4] != 129 {
		t.Fatalf("all = %v", all)
	}
	a.clear(63)
	if a.has(63) || !a.has(64) || a.has(-1) || a.has(500) {
		t.Fatal("has/clear")
	}
}

func TestFlightDeadline(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const to = time.Second
	cases := []struct {
		name     string
		lastByte time.Time
		want     time.Time
	}{
		{"no bytes yet", time.Time{}, t0.Add(to)},
		{"progress moves it on", t0.Add(1500 * time.Millisecond), t0.Add(2500 * time.Millisecond)},
		{"capped at StallFactor timeouts", t0.Add(10 * time.Second), t0.Add(StallFactor * to)},
		{"a byte before the start counts as none", t0.Add(-time.Second), t0.Add(to)},
	}
	for _, tc := range cases {
		if got := FlightDeadline(t0, tc.lastByte, to); !got.Equal(tc.want) {
			t.Errorf("%s: deadline %v after start, want %v", tc.name, got.Sub(t0), tc.want.Sub(t0))
		}
	}
}

func TestSlots(t *testing.T) {
	cfg := Config{}.WithDefaults() // PipelineMs 300, 8 slots at most
	const cs = 64 << 10
	cases := []struct {
		name     string
		kind     SourceKind
		rate     float64
		base     time.Duration
		failures int
		want     int
	}{
		{"unmeasured peer", KindPeer, 0, 0, 0, 2},
		{"unmeasured edge", KindEdge, 0, 0, 0, 4},
		{"failing", KindEdge, 10e6, 0, 1, 1},
		{"300 ms of the rate", KindPeer, 4 * cs / 0.3, 0, 0, 4},
		{"slow source keeps one", KindPeer, 1000, 0, 0, 1},
		{"slow edge keeps its initial pipeline", KindEdge, 1000, 0, 0, 4},
		{"capped", KindPeer, 1e9, 0, 0, 8},
		// One chunk per 300 ms round trip measures as 218 KB/s; the base
		// latency says the pipe holds a round trip more: 2 slots, not 1.
		{"far source gets its round trip", KindPeer, cs / 0.3, 300 * time.Millisecond, 0, 2},
		{"far and fast", KindPeer, 3 * cs / 0.3, 300 * time.Millisecond, 0, 6},
	}
	for _, tc := range cases {
		if got := Slots(cfg, cs, tc.kind, tc.rate, tc.base, tc.failures); got != tc.want {
			t.Errorf("%s: Slots = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestBaseLatency(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b, at := BaseLatency(0, time.Time{}, 80*time.Millisecond, t0)
	if b != 80*time.Millisecond || !at.Equal(t0) {
		t.Fatalf("first sample: %v at %v", b, at)
	}
	if b, _ = BaseLatency(b, at, 200*time.Millisecond, t0.Add(time.Second)); b != 80*time.Millisecond {
		t.Fatalf("a slower sample inside the window replaced the minimum: %v", b)
	}
	if b, at = BaseLatency(b, at, 50*time.Millisecond, t0.Add(2*time.Second)); b != 50*time.Millisecond || !at.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("a faster sample did not replace the minimum: %v at %v", b, at)
	}
	if b, _ = BaseLatency(b, at, 400*time.Millisecond, at.Add(BaseWindow+time.Millisecond)); b != 400*time.Millisecond {
		t.Fatalf("the minimum outlived its window: %v", b)
	}
}

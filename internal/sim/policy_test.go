package sim

import (
	"math/rand/v2"
	"testing"

	"github.com/edgeswarm/edgeswarm/internal/peer"
)

// refPick is peer.DefaultPolicy as it was before its scoring loops were
// written out for speed (a score function per candidate, reservoir
// sampling among ties); the simulator's results depend on the written-out
// version picking the same chunk with the same random draws.
func refPick(in peer.PickInput) int {
	availOf := func(c int) int32 {
		if c < 0 || c >= len(in.Avail) {
			return 0
		}
		return in.Avail[c]
	}
	score := func(c int) int { return int(availOf(c)) }
	if in.Kind == peer.KindEdge {
		n := len(in.Avail)
		score = func(c int) int {
			a := int(availOf(c))
			switch {
			case a > 0:
				return 1 + a
			case in.Stripes > 0 && n > 0 && c*in.Stripes/n == in.Stripe:
				return 0
			default:
				return 1
			}
		}
	}
	for _, u := range in.Urgent {
		for _, c := range in.Candidates {
			if c == u {
				return u
			}
		}
	}
	best, bestScore, ties := -1, 0, 0
	for _, c := range in.Candidates {
		s := score(c)
		switch {
		case best < 0 || s < bestScore:
			best, bestScore, ties = c, s, 1
		case s == bestScore:
			ties++
			if in.Rand != nil && in.Rand.IntN(ties) == 0 {
				best = c
			}
		}
	}
	return best
}

func TestDefaultPolicyUnchanged(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 5000 {
		n := 1 + r.IntN(300)
		avail := make([]int32, n)
		maxAvail := 1 + r.IntN(6)
		for i := range avail {
			avail[i] = int32(r.IntN(maxAvail))
		}
		var cands []int
		for c := range n + 2 { // a candidate past Avail counts as held by none
			if r.IntN(3) > 0 {
				cands = append(cands, c)
			}
		}
		in := peer.PickInput{Kind: peer.KindPeer, Candidates: cands, Avail: avail}
		if r.IntN(2) == 0 {
			in.Kind = peer.KindEdge
			in.Stripes = r.IntN(60)
			in.Stripe = r.IntN(in.Stripes + 1)
		}
		if r.IntN(10) == 0 {
			in.Urgent = []int{r.IntN(n), r.IntN(n)}
		}
		seed := r.Uint64()
		a, b := in, in
		a.Rand, b.Rand = rand.New(rand.NewPCG(seed, 1)), rand.New(rand.NewPCG(seed, 1))
		if got, want := (peer.DefaultPolicy{}).Pick(a), refPick(b); got != want {
			t.Fatalf("trial %d: picked %d, the reference %d", trial, got, want)
		}
		if a.Rand.Uint64() != b.Rand.Uint64() {
			t.Fatalf("trial %d: different random draws", trial)
		}
	}
}

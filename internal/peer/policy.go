package peer

import (
	"math/rand/v2"
	"sort"
)

// ChunkPolicy picks which chunk to ask a source for next. It is pure: the
// scheduler passes everything it may look at, so policies are table-tested
// without a network and swapped through Deps.Policy.
type ChunkPolicy interface {
	// Pick returns one of in.Candidates, or -1 to ask the source for nothing.
	Pick(in PickInput) int
}

// PickInput is what a policy sees for one pick.
type PickInput struct {
	// Kind is the kind of the source being given work.
	Kind SourceKind
	// Candidates are the chunks this peer lacks, that are not in flight and
	// that the source holds, ascending.
	Candidates []int
	// Avail[i] is how many known peers (not this one) hold chunk i; its
	// length is the object's chunk count.
	Avail []int32
	// Urgent are chunks an active reader needs soon, most urgent first.
	Urgent []int
	// Stripe and Stripes place this peer among the peers it knows (its rank
	// in ID order, and their number including itself): the edge policy
	// prefers chunks in this peer's stripe so that peers starting together
	// ask the edge for different chunks. Stripes 0 means unknown.
	Stripe, Stripes int
	// Rand breaks ties.
	Rand *rand.Rand
}

// PolicyFunc adapts a function to ChunkPolicy.
type PolicyFunc func(PickInput) int

// Pick implements ChunkPolicy.
func (f PolicyFunc) Pick(in PickInput) int { return f(in) }

// DefaultPolicy serves urgent chunks first, then asks the edge with
// SuperSeed and peers with RarestFirst.
type DefaultPolicy struct{}

// Pick implements ChunkPolicy.
func (DefaultPolicy) Pick(in PickInput) int {
	if in.Kind == KindEdge {
		return SuperSeed{}.Pick(in)
	}
	return RarestFirst{}.Pick(in)
}

// RarestFirst picks an urgent candidate if any, else the candidate the
// fewest known peers hold, ties broken at random.
type RarestFirst struct{}

// Pick implements ChunkPolicy.
func (RarestFirst) Pick(in PickInput) int {
	if i := pickUrgent(in); i >= 0 {
		return i
	}
	return pickRarest(in)
}

// SuperSeed is the edge's policy: an urgent candidate if any, else a chunk
// no known peer holds (this peer's stripe first, random within), else the
// rarest. Peers starting together thus pull different chunks from the edge,
// and each has something to upload to the others from the first second.
type SuperSeed struct{}

// Pick implements ChunkPolicy.
func (SuperSeed) Pick(in PickInput) int {
	if i := pickUrgent(in); i >= 0 {
		return i
	}
	return pickSuperSeed(in)
}

// Sequential picks the lowest candidate: a baseline for comparisons.
type Sequential struct{}

// Pick implements ChunkPolicy.
func (Sequential) Pick(in PickInput) int {
	if len(in.Candidates) == 0 {
		return -1
	}
	return in.Candidates[0]
}

// pickUrgent returns the first urgent chunk that is a candidate, or -1.
func pickUrgent(in PickInput) int {
	for _, u := range in.Urgent {
		if k := sort.SearchInts(in.Candidates, u); k < len(in.Candidates) && in.Candidates[k] == u {
			return u
		}
	}
	return -1
}

// pickRarest returns the candidate the fewest known peers hold (a
// candidate outside Avail counts as held by none), uniformly at random
// among ties by reservoir sampling, or -1 when there is none. It runs for
// every request, over every candidate, so the score is written out.
func pickRarest(in PickInput) int {
	avail := in.Avail
	best, bestScore, ties := -1, int32(0), 0
	for _, c := range in.Candidates {
		var s int32
		if uint(c) < uint(len(avail)) {
			s = avail[c]
		}
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

// pickSuperSeed is pickRarest with SuperSeed's score: 1 + the
// availability of a chunk some known peer holds, 0 for an unheld chunk in
// this peer's stripe, 1 for any other unheld chunk.
func pickSuperSeed(in PickInput) int {
	avail := in.Avail
	n := len(avail)
	striped := in.Stripes > 0 && n > 0
	best, bestScore, ties := -1, 0, 0
	for _, c := range in.Candidates {
		var a int
		if uint(c) < uint(n) {
			a = int(avail[c])
		}
		s := 1
		switch {
		case a > 0:
			s = 1 + a
		case striped && c*in.Stripes/n == in.Stripe:
			s = 0
		}
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

package swarm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// bf builds a bitfield of n chunks with the given chunks set.
func bf(n int, set ...int) core.Bitfield {
	f := core.NewBitfield(n)
	for _, i := range set {
		f.Set(i)
	}
	return f
}

func ids(cs []Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.PeerID
	}
	return out
}

func TestUsefulFirstRanking(t *testing.T) {
	const n = 16
	tests := []struct {
		name  string
		have  core.Bitfield
		cands []Candidate
		want  []string // exact order where scores differ
	}{
		{
			name: "more useful chunks first",
			have: bf(n),
			cands: []Candidate{
				{PeerID: "one", Have: bf(n, 0)},
				{PeerID: "three", Have: bf(n, 0, 1, 2)},
				{PeerID: "two", Have: bf(n, 5, 9)},
			},
			want: []string{"three", "two", "one"},
		},
		{
			name: "chunks the requester holds do not count",
			have: bf(n, 0, 1, 2, 3),
			cands: []Candidate{
				{PeerID: "many-but-useless", Have: bf(n, 0, 1, 2, 3)},
				{PeerID: "few-but-useful", Have: bf(n, 15)},
			},
			want: []string{"few-but-useful", "many-but-useless"},
		},
		{
			name: "unknown requester counts as empty",
			have: core.Bitfield{},
			cands: []Candidate{
				{PeerID: "a", Have: bf(n, 1)},
				{PeerID: "b", Have: bf(n, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
			},
			want: []string{"b", "a"},
		},
		{
			name:  "empty input",
			have:  bf(n),
			cands: nil,
			want:  []string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Have: tc.have, Want: 10, Rand: rand.New(rand.NewPCG(1, 2))}
			got := ids(UsefulFirst{}.Rank(req, slices.Clone(tc.cands)))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("order = %v, want %v", got, tc.want)
			}
		})
	}
}

// Ties must be broken at random: over many seeds each of the tied peers
// comes first at least once, while a strictly better peer always wins.
func TestUsefulFirstTiesSpread(t *testing.T) {
	const n = 8
	cands := []Candidate{
		{PeerID: "best", Have: bf(n, 0, 1, 2)},
		{PeerID: "t1", Have: bf(n, 3)},
		{PeerID: "t2", Have: bf(n, 4)},
		{PeerID: "t3", Have: bf(n, 5)},
		{PeerID: "t4", Have: bf(n, 6)},
	}
	secondPlace := map[string]int{}
	for seed := range uint64(200) {
		req := Request{Have: bf(n), Rand: rand.New(rand.NewPCG(seed, 7))}
		got := UsefulFirst{}.Rank(req, slices.Clone(cands))
		if got[0].PeerID != "best" {
			t.Fatalf("seed %d: first = %s, want best", seed, got[0].PeerID)
		}
		secondPlace[got[1].PeerID]++
	}
	for _, id := range []string{"t1", "t2", "t3", "t4"} {
		if secondPlace[id] < 20 {
			t.Errorf("tied peer %s ranked second %d/200 times; ties are not spread: %v", id, secondPlace[id], secondPlace)
		}
	}
}

func TestUsefulFirstDeterministicPerSeed(t *testing.T) {
	const n = 8
	var cands []Candidate
	for i := range 20 {
		cands = append(cands, Candidate{PeerID: string(rune('a' + i)), Have: bf(n, i%n)})
	}
	rank := func() []string {
		req := Request{Have: bf(n), Rand: rand.New(rand.NewPCG(42, 42))}
		return ids(UsefulFirst{}.Rank(req, slices.Clone(cands)))
	}
	if a, b := rank(), rank(); !slices.Equal(a, b) {
		t.Fatalf("same seed, different orders:\n%v\n%v", a, b)
	}
}

func TestPolicyByName(t *testing.T) {
	for _, name := range []string{"", PolicyWeighted, PolicyUsefulFirst, PolicyRandom} {
		if _, err := PolicyByName(name); err != nil {
			t.Errorf("PolicyByName(%q): %v", name, err)
		}
	}
	if _, err := PolicyByName("closest"); err == nil {
		t.Error("PolicyByName(closest) succeeded, want error")
	}
}

func TestRankWithoutRandIsDeterministic(t *testing.T) {
	cands := []Candidate{{PeerID: "c"}, {PeerID: "a"}, {PeerID: "b"}}
	got := ids(Random{}.Rank(Request{}, cands))
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
}

// Weighted: candidates with nothing useful always come last; among useful
// ones the chance of coming first grows with usefulness, yet every useful
// candidate comes first sometimes (no two requesters herd onto one set).
func TestWeightedRanking(t *testing.T) {
	const n = 16
	cands := []Candidate{
		{PeerID: "useless", Have: bf(n, 0, 1)},
		{PeerID: "one", Have: bf(n, 2)},
		{PeerID: "four", Have: bf(n, 3, 4, 5, 6)},
		{PeerID: "empty", Have: bf(n)},
	}
	have := bf(n, 0, 1)
	first := map[string]int{}
	const draws = 4000
	for seed := range uint64(draws) {
		req := Request{Have: have, Rand: rand.New(rand.NewPCG(seed, 3))}
		got := ids(Weighted{}.Rank(req, slices.Clone(cands)))
		if len(got) != len(cands) {
			t.Fatalf("seed %d: %d candidates back, want %d", seed, len(got), len(cands))
		}
		if tail := got[2:]; !slices.Contains(tail, "useless") || !slices.Contains(tail, "empty") {
			t.Fatalf("seed %d: order %v: candidates with nothing useful must come last", seed, got)
		}
		first[got[0]]++
	}
	// P(four first) = 4/5, P(one first) = 1/5.
	if f := float64(first["four"]) / draws; f < 0.75 || f > 0.85 {
		t.Errorf("four came first in %.3f of draws, want ≈ 0.8 (weights 4:1)", f)
	}
	if first["one"] == 0 {
		t.Errorf("the less useful candidate never came first: %v", first)
	}
}

// At scale the point of Weighted: requesters in the same state get
// different top sets. 200 candidates each holding one chunk and one holding
// ten; the top 50 of two requesters overlap far less than UsefulFirst's
// would if ties were not shuffled, and the best one is usually in.
func TestWeightedSpreadsTopSets(t *testing.T) {
	const n = 64
	var cands []Candidate
	for i := range 200 {
		cands = append(cands, Candidate{PeerID: fmt.Sprint("p", i), Have: bf(n, i%n)})
	}
	cands = append(cands, Candidate{PeerID: "ahead", Have: bf(n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)})
	top := func(seed uint64) []string {
		req := Request{Have: bf(n), Rand: rand.New(rand.NewPCG(seed, 9))}
		return ids(Weighted{}.Rank(req, slices.Clone(cands)))[:50]
	}
	a, b := top(1), top(2)
	common := 0
	for _, id := range a {
		if slices.Contains(b, id) {
			common++
		}
	}
	if common > 30 {
		t.Errorf("two requesters share %d of their top 50; hand-outs herd", common)
	}
	in := 0
	for seed := range uint64(100) {
		if slices.Contains(top(seed), "ahead") {
			in++
		}
	}
	if in < 90 {
		t.Errorf("the candidate ten times as useful was in the top 50 only %d/100 times", in)
	}
}

func TestWeightedDeterministic(t *testing.T) {
	const n = 8
	var cands []Candidate
	for i := range 20 {
		cands = append(cands, Candidate{PeerID: string(rune('a' + i)), Have: bf(n, i%n, (i+3)%n)})
	}
	rank := func(r *rand.Rand) []string {
		return ids(Weighted{}.Rank(Request{Have: bf(n, 1), Rand: r}, slices.Clone(cands)))
	}
	if a, b := rank(rand.New(rand.NewPCG(4, 2))), rank(rand.New(rand.NewPCG(4, 2))); !slices.Equal(a, b) {
		t.Fatalf("same seed, different orders:\n%v\n%v", a, b)
	}
	if a, b := rank(nil), rank(nil); !slices.Equal(a, b) {
		t.Fatalf("no rand, different orders:\n%v\n%v", a, b)
	}
}

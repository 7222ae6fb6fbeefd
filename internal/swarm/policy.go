package swarm

// Hand-out policies: pure rankings of the candidate peers an edge may hand
// to a requester. They run without a network and without the tracker's lock.

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// Request is what a policy knows about the peer asking for a hand-out.
type Request struct {
	Root   core.Hash
	PeerID string
	// PID is the requester's network location ("" unknown).
	PID string
	// Have is what the requester holds of the object (empty if unknown).
	Have core.Bitfield
	// Want is how many candidates the caller will keep (already bounded).
	Want int
	// Rand breaks ties. It is private to this call, seeded by the tracker,
	// so a policy stays a pure function of its arguments.
	Rand *rand.Rand
}

// Candidate is a live peer in the object's swarm that could be handed out.
type Candidate struct {
	PeerID string
	Addr   string
	Name   string
	PID    string // network location ("" unknown)
	// Have is what the candidate holds. It is shared with the tracker and
	// must not be modified (the tracker replaces it, never mutates it).
	Have      core.Bitfield
	UploadBps int64
	LastSeen  time.Time
	// Managed: a managed cache (Tracker.SetManaged), ranked before the
	// end-user peers of its location.
	Managed bool
}

// HandoutPolicy ranks candidates best first. It may reorder cands in place
// and return it, and may drop candidates it would never hand out.
type HandoutPolicy interface {
	Rank(req Request, cands []Candidate) []Candidate
}

// HandoutPolicyFunc adapts a function to HandoutPolicy.
type HandoutPolicyFunc func(req Request, cands []Candidate) []Candidate

// Rank calls f.
func (f HandoutPolicyFunc) Rank(req Request, cands []Candidate) []Candidate { return f(req, cands) }

// Policy names accepted by Config.Policy.
const (
	PolicyWeighted    = "weighted"
	PolicyUsefulFirst = "useful-first"
	PolicyRandom      = "random"
)

// DefaultPolicy is the hand-out policy a tracker uses unless told otherwise.
const DefaultPolicy = PolicyWeighted

// PolicyByName returns the named built-in policy.
func PolicyByName(name string) (HandoutPolicy, error) {
	switch name {
	case PolicyWeighted, "":
		return Weighted{}, nil
	case PolicyUsefulFirst:
		return UsefulFirst{}, nil
	case PolicyRandom:
		return Random{}, nil
	}
	return nil, fmt.Errorf("swarm: unknown hand-out policy %q (want %q, %q or %q)", name, PolicyWeighted, PolicyUsefulFirst, PolicyRandom)
}

// Weighted orders the candidates by a random draw weighted by how many
// chunks each holds that the requester lacks: a candidate with twice the
// useful chunks is twice as likely to come first, and candidates with
// nothing useful go last in random order. Unlike UsefulFirst, requesters in
// the same state get different sets of good peers, so a large swarm's
// upload is spread over many peers instead of every requester being sent
// to the same few that are furthest ahead (which leaves the rest idle).
//
// The draw is Efraimidis–Spirakis sampling without replacement: each
// candidate gets the key E/w with E exponential(1) and w its weight, and
// keys sort ascending.
type Weighted struct{}

// Rank implements HandoutPolicy.
func (Weighted) Rank(req Request, cands []Candidate) []Candidate {
	mine := req.Have.Bytes()
	type keyed struct {
		c   Candidate
		key float64
	}
	s := make([]keyed, len(cands))
	for i, c := range cands {
		w := usefulCount(c.Have.Bytes(), mine)
		e := 1.0
		if req.Rand != nil {
			e = req.Rand.ExpFloat64()
		}
		key := math.Inf(1)
		if w > 0 {
			key = e / float64(w)
		}
		s[i] = keyed{c, key}
	}
	if req.Rand == nil {
		slices.SortStableFunc(s, func(a, b keyed) int { return cmp.Compare(a.c.PeerID, b.c.PeerID) })
	}
	// Candidates with nothing useful (key +Inf) keep a random order: the
	// stable sort leaves them as shuffled here.
	shuffleKeyed := func(i, j int) { s[i], s[j] = s[j], s[i] }
	if req.Rand != nil {
		req.Rand.Shuffle(len(s), shuffleKeyed)
	}
	slices.SortStableFunc(s, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	for i := range s {
		cands[i] = s[i].c
	}
	return cands
}

// UsefulFirst puts first the candidates that hold the most chunks the
// requester lacks; candidates with nothing useful go last. Ties are broken
// at random so that requesters in the same state see different orders and
// the load spreads over the swarm.
type UsefulFirst struct{}

// Rank implements HandoutPolicy.
func (UsefulFirst) Rank(req Request, cands []Candidate) []Candidate {
	shuffle(req.Rand, cands)
	mine := req.Have.Bytes()
	type scored struct {
		c      Candidate
		useful int
	}
	s := make([]scored, len(cands))
	for i, c := range cands {
		s[i] = scored{c, usefulCount(c.Have.Bytes(), mine)}
	}
	// Stable keeps the random order among equal scores.
	slices.SortStableFunc(s, func(a, b scored) int { return cmp.Compare(b.useful, a.useful) })
	for i := range s {
		cands[i] = s[i].c
	}
	return cands
}

// Random hands out candidates in random order, a baseline for benchmarks.
type Random struct{}

// Rank implements HandoutPolicy.
func (Random) Rank(req Request, cands []Candidate) []Candidate {
	shuffle(req.Rand, cands)
	return cands
}

func shuffle(r *rand.Rand, cands []Candidate) {
	if r == nil {
		// Deterministic order rather than a panic: a policy called
		// without randomness (a caller's bug) still ranks.
		sort.SliceStable(cands, func(i, j int) bool { return cands[i].PeerID < cands[j].PeerID })
		return
	}
	r.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
}

// usefulCount counts the bits set in theirs and not in mine. A mine shorter
// than theirs (requester unknown) counts as empty.
func usefulCount(theirs, mine []byte) int {
	n := 0
	for i, b := range theirs {
		if i < len(mine) {
			b &^= mine[i]
		}
		n += bits.OnesCount8(b)
	}
	return n
}

// Locality ranks by network location first (DESIGN: "same PID, then cost,
// then spare upload and chunk availability"): peers in the requester's
// PID, then the others by the cost from the requester's PID to theirs,
// managed caches first within each location, each group in Inner's order.
// A requester or candidate of unknown location ("") counts as another PID
// at cost Cost("", pid).
type Locality struct {
	Inner HandoutPolicy
	// Cost is the cost of traffic from PID a to PID b (netmap.Map.Cost);
	// nil ranks by same PID only.
	Cost func(a, b string) int
}

// Rank implements HandoutPolicy.
func (l Locality) Rank(req Request, cands []Candidate) []Candidate {
	cands = l.Inner.Rank(req, cands)
	key := func(c Candidate) (group, cost, managed int) {
		if !c.Managed {
			managed = 1
		}
		switch {
		case req.PID == "":
			return 0, 0, managed
		case c.PID == req.PID:
			return 0, 0, managed
		case l.Cost == nil:
			return 1, 0, managed
		}
		return 1, l.Cost(req.PID, c.PID), managed
	}
	slices.SortStableFunc(cands, func(a, b Candidate) int {
		ga, ca, ma := key(a)
		gb, cb, mb := key(b)
		return cmp.Or(cmp.Compare(ga, gb), cmp.Compare(ca, cb), cmp.Compare(ma, mb))
	})
	return cands
}

package sim

// The edge's tracker and the peers' announces. A downloading peer announces
// its bitfield every announce interval (and at once after its first chunk
// and at completion) and gets back, a round trip later, a hand-out of up to
// MaxPeers other peers with the bitfields they last announced. As in
// internal/swarm's Tracker: peers past the swarm cap are not recorded (so
// never handed out), only peers holding a chunk are handed out, a peer
// that vanished is handed out until PeerTTL after its last announce, and
// the candidates are ranked by the real HandoutPolicy and cut to the
// hand-out size.
//
// The one difference is cost. The real tracker ranks every member, which
// is O(members × chunks) per announce, and at 100k peers there are 200k
// announces per simulated second. Here:
//
//   - a swarm no larger than the hand-out is handed out whole (ranking it
//     cannot change which peers are in it) — exact;
//   - otherwise the policy ranks the requester's previous hand-out plus
//     fresh members drawn at random, HandoutSample candidates in all, and
//     the best MaxPeers are handed out. Keeping the previous winners in
//     the running approximates ranking the whole swarm (a peer that was
//     among the most useful stays so until better ones turn up), and it is
//     exact when the swarm is no larger than HandoutSample;
//   - a HandoutSample no larger than the hand-out means fresh random
//     hand-outs, unranked (a baseline);
//   - in a run that would rank more than RankBudget hand-outs, a requester
//     is re-ranked only every few announces (Config.RerankEvery); in
//     between it gets its previous hand-out back with fresh bitfields
//     (members that left replaced at random).

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
)

// peerTTL is swarm.Config.PeerTTL's default.
const peerTTL = 10.0

// hoEntry is one handed-out peer and the bitfield it carries.
type hoEntry struct {
	node int32
	snap *snap
}

type member struct {
	snap     *snap
	lastSeen float64 // +Inf for seeds, which announce as long as they live
	in       bool    // recorded in the swarm
	elig     int32   // index in tracker.elig, -1 if none
}

type tracker struct {
	s      *Sim
	policy swarm.HandoutPolicy
	want   int
	sample int
	cap    int
	rng    *rand.Rand

	m     []member
	prev  [][]int32 // each requester's last hand-out
	count []uint32  // hand-outs per requester
	every int       // re-rank every this many hand-outs
	nIn   int
	elig  []int32 // recorded members that hold a chunk
	dead  []int32 // recorded members that vanished, until they expire
	mark  []uint32
	stamp uint32
	pick  []int32
	cands []swarm.Candidate
	ids   []string
	byID  map[string]int32
	empty core.Bitfield

	handouts, ranked int64
}

func newTracker(s *Sim, policy swarm.HandoutPolicy, want, sample, cap, every int, rng *rand.Rand) tracker {
	return tracker{s: s, policy: policy, want: want, sample: sample, cap: cap, every: every, rng: rng}
}

// index sizes the per-peer tables once the network exists.
func (t *tracker) index() {
	n := len(t.s.nodes)
	t.m = make([]member, n)
	for i := range t.m {
		t.m[i].elig = -1
	}
	t.mark = make([]uint32, n)
	t.prev = make([][]int32, n)
	t.count = make([]uint32, n)
	t.empty = core.NewBitfield(t.s.nChunks)
}

// announce records node's bitfield.
func (t *tracker) announce(node int32, sn *snap, seed bool) {
	mm := &t.m[node]
	if !mm.in {
		if t.cap > 0 && t.nIn >= t.cap {
			t.expire()
			if t.nIn >= t.cap {
				return // a full swarm: hand-outs, but never handed out
			}
		}
		mm.in = true
		t.nIn++
	}
	mm.snap = sn
	mm.lastSeen = t.s.now
	if seed {
		mm.lastSeen = math.Inf(1)
	}
	if sn.count > 0 && mm.elig < 0 {
		mm.elig = int32(len(t.elig))
		t.elig = append(t.elig, node)
	}
}

// vanish notes that node stopped announcing without leaving.
func (t *tracker) vanish(node int32) {
	if t.m[node].in {
		t.m[node].lastSeen = min(t.m[node].lastSeen, t.s.now)
		t.dead = append(t.dead, node)
	}
}

// leave removes node from the swarm.
func (t *tracker) leave(node int32) {
	mm := &t.m[node]
	if !mm.in {
		return
	}
	mm.in = false
	t.nIn--
	if k := mm.elig; k >= 0 {
		last := t.elig[len(t.elig)-1]
		t.elig[k] = last
		t.m[last].elig = k
		t.elig = t.elig[:len(t.elig)-1]
		mm.elig = -1
	}
}

// expire drops vanished members not seen for PeerTTL.
func (t *tracker) expire() {
	keep := t.dead[:0]
	for _, n := range t.dead {
		switch {
		case !t.m[n].in:
		case t.s.now-t.m[n].lastSeen > peerTTL:
			t.leave(n)
		default:
			keep = append(keep, n)
		}
	}
	t.dead = keep
}

// handout appends node's hand-out to out.
func (t *tracker) handout(node int32, out []hoEntry) []hoEntry {
	t.handouts++
	if len(t.dead) > 0 {
		t.expire()
	}
	pool := len(t.elig)
	if t.m[node].elig >= 0 {
		pool--
	}
	if pool <= t.want {
		for _, e := range t.elig {
			if e != node {
				out = append(out, hoEntry{e, t.m[e].snap})
			}
		}
		return out
	}
	if t.sample > 0 && t.sample <= t.want {
		// Too small a sample to rank: a fresh random hand-out.
		t.newStamp()
		t.mark[node] = t.stamp
		t.pick = t.fill(t.pick[:0], t.want, pool)
		for _, e := range t.pick {
			out = append(out, hoEntry{e, t.m[e].snap})
		}
		return out
	}
	t.count[node]++
	rank := t.every <= 1 || len(t.prev[node]) == 0 || t.count[node]%uint32(t.every) == 1
	// The previous winners that are still handed out stay candidates.
	t.newStamp()
	t.mark[node] = t.stamp
	pick := t.pick[:0]
	for _, e := range t.prev[node] {
		if t.m[e].elig >= 0 && t.mark[e] != t.stamp {
			t.mark[e] = t.stamp
			pick = append(pick, e)
		}
	}
	k := t.want
	if rank {
		k = t.sample
		if k < 0 || k > pool {
			k = pool
		}
	}
	pick = t.fill(pick, k, pool)
	t.pick = pick
	if rank && len(pick) > t.want {
		pick = t.rank(node, pick)
	}
	t.prev[node] = append(t.prev[node][:0], pick...)
	for _, e := range pick {
		out = append(out, hoEntry{e, t.m[e].snap})
	}
	return out
}

// fill adds eligible members not yet marked, at random, until pick holds k
// of the pool's members.
func (t *tracker) fill(pick []int32, k, pool int) []int32 {
	if len(pick) >= k {
		return pick
	}
	if 2*k >= pool {
		// Dense: take the unmarked members in a random order.
		start := len(pick)
		for _, e := range t.elig {
			if t.mark[e] != t.stamp {
				pick = append(pick, e)
			}
		}
		rest := pick[start:]
		for i := 0; i < k-start && i < len(rest); i++ {
			j := i + t.rng.IntN(len(rest)-i)
			rest[i], rest[j] = rest[j], rest[i]
		}
		return pick[:min(k, len(pick))]
	}
	for len(pick) < k {
		e := t.elig[t.rng.IntN(len(t.elig))]
		if t.mark[e] == t.stamp {
			continue
		}
		t.mark[e] = t.stamp
		pick = append(pick, e)
	}
	return pick
}

func (t *tracker) newStamp() {
	t.stamp++
	if t.stamp == 0 {
		clear(t.mark)
		t.stamp = 1
	}
}

// rank orders the candidates with the hand-out policy and keeps the best.
func (t *tracker) rank(node int32, pick []int32) []int32 {
	t.ranked++
	if t.byID == nil {
		t.ids = make([]string, len(t.s.nodes))
		t.byID = make(map[string]int32, len(t.s.nodes))
		for i := 1; i < len(t.s.nodes); i++ {
			t.ids[i] = strconv.FormatUint(t.s.peers[i].key, 16)
			t.byID[t.ids[i]] = int32(i)
		}
	}
	t.cands = t.cands[:0]
	for _, e := range pick {
		t.cands = append(t.cands, swarm.Candidate{
			PeerID:    t.ids[e],
			Have:      t.s.bitfieldOf(t.m[e].snap),
			UploadBps: int64(t.s.nodes[e].up),
		})
	}
	req := swarm.Request{PeerID: t.ids[node], Have: t.empty, Want: t.want,
		Rand: rand.New(rand.NewPCG(t.rng.Uint64(), t.rng.Uint64()))}
	if mm := &t.m[node]; mm.in && mm.snap != nil {
		req.Have = t.s.bitfieldOf(mm.snap)
	}
	ranked := t.policy.Rank(req, t.cands)
	best := pick[:0]
	for _, c := range ranked[:min(len(ranked), t.want)] {
		if e, ok := t.byID[c.PeerID]; ok {
			best = append(best, e)
		}
	}
	return best
}

func (s *Sim) bitfieldOf(sn *snap) core.Bitfield {
	if !sn.bfOK {
		sn.bf, sn.bfOK = sn.bits.bitfield(s.nChunks), true
	}
	return sn.bf
}

// snapshot is p's bitfield as it announces it, shared while unchanged.
func (s *Sim) snapshot(p *peerState) *snap {
	if p.snap.count == p.heldN {
		return p.snap
	}
	p.snap = &snap{bits: slices.Clone(p.held), count: p.heldN}
	return p.snap
}

// doAnnounce sends p's announce; the response arrives a round trip later.
func (s *Sim) doAnnounce(p *peerState) {
	if p.state != psActive && p.state != psDone {
		return
	}
	p.annBusy = true
	s.tr.announce(p.node, s.snapshot(p), p.state == psDone)
	p.ho = p.ho[:0]
	if p.state == psActive {
		p.ho = s.tr.handout(p.node, p.ho)
	}
	s.q.schedule(p.hoEv, s.now+2*s.oneWay(p.node, 0))
}

// onHandoutEvent: the announce response is in; the next announce follows
// an interval later, or at once if one was asked for meanwhile. A seed
// stops here: its later announces change nothing.
func (s *Sim) onHandoutEvent(p *peerState) {
	p.annBusy = false
	if p.state == psActive {
		s.onHandout(p)
		s.schedule(p)
	}
	switch {
	case p.state != psActive && p.state != psDone:
	case p.annAgain:
		p.annAgain = false
		s.doAnnounce(p)
	case p.state == psActive:
		s.q.schedule(p.annEv, s.now+s.announce)
	}
}

func (s *Sim) requestAnnounce(p *peerState) {
	if p.annBusy {
		p.annAgain = true
		return
	}
	s.q.cancel(p.annEv)
	s.doAnnounce(p)
}

// onHandout refreshes p's peer sources from the hand-out, as the loop's
// onHandout does: new peers are counted, known ones recounted by the
// difference of their bitfields, missing ones go stale (and are dropped
// once nothing is in flight from them).
func (s *Sim) onHandout(p *peerState) {
	list := p.ho
	slices.SortFunc(list, func(a, b hoEntry) int { return int(a.node - b.node) })
	out := s.srcBuf[:0]
	old := p.sources
	i, j := 0, 0
	for i < len(old) || j < len(list) {
		switch {
		case j >= len(list) || (i < len(old) && old[i].node < list[j].node):
			sr := old[i]
			i++
			if !sr.stale {
				s.addAvail(p, sr.have, -1)
				sr.stale = true
			}
			if sr.inflight > 0 {
				out = append(out, sr)
			}
		case i >= len(old) || list[j].node < old[i].node:
			e := list[j]
			j++
			s.addAvail(p, e.snap, 1)
			out = append(out, src{node: e.node, have: e.snap, haveEpoch: 1})
		default:
			sr, e := old[i], list[j]
			i++
			j++
			if sr.stale {
				s.addAvail(p, e.snap, 1)
			} else {
				s.diffAvail(p, sr.have, e.snap)
			}
			sr.have, sr.stale = e.snap, false
			sr.haveEpoch++
			out = append(out, sr)
		}
	}
	p.sources = append(p.sources[:0], out...)
	s.srcBuf = out[:0]
	p.stripes = len(list) + 1
	p.stripe = 0
	for _, e := range list {
		if s.peers[e.node].key < p.key {
			p.stripe++
		}
	}
}

func (s *Sim) addAvail(p *peerState, sn *snap, d int32) {
	for w, x := range sn.bits {
		for x != 0 {
			p.avail[w*64+bits.TrailingZeros64(x)] += d
			x &= x - 1
		}
	}
}

func (s *Sim) diffAvail(p *peerState, old, cur *snap) {
	if old == cur {
		return
	}
	for w, x := range cur.bits {
		o := old.bits[w]
		for a := x &^ o; a != 0; a &= a - 1 {
			p.avail[w*64+bits.TrailingZeros64(a)]++
		}
		for r := o &^ x; r != 0; r &= r - 1 {
			p.avail[w*64+bits.TrailingZeros64(r)]--
		}
	}
}

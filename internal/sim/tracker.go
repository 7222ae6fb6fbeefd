package sim

// The edge's tracker and the peers' announces. A downloading peer announces
// its bitfield every announce interval — the one the edge's last response
// gave, swarm.AnnounceInterval for the tracker's members — (and at once
// after its first chunk and at completion) and gets back, a round trip later, a hand-out of up to
// MaxPeers other peers with the bitfields they last announced. As in
// internal/swarm's Tracker: peers past the swarm cap are not recorded (so
// never handed out), only peers holding a chunk are handed out, a peer
// that vanished is handed out until PeerTTL after its last announce, and a
// hand-out is a uniform sample of at most HandoutSample holders (Floyd's
// algorithm, as sampleLocked draws it, the requester dropped) ranked by the
// real HandoutPolicy and cut to the hand-out size.
//
// A peer's chunks only grow, so the bitfield it announced is a prefix of
// its log of received chunks (Sim.logOf): the tracker keeps each member's
// announced count, and a hand-out entry is (peer, count).
//
// The one difference is cost: the real tracker draws and ranks a fresh
// hand-out at every announce, and at 100k peers there are 200k announces
// per simulated second. Here a requester gets a fresh hand-out at its first
// announce, at every RerankEvery-th and whenever the holders it could be
// drawn from have doubled since its last one; in between it gets its
// previous hand-out again with the counts its members have announced since
// (members that left replaced at random). RerankEvery 1 is the real
// tracker; Config.autoHandouts picks it, and HandoutSample, from budgets.
// docs/SIM.md has what this changes, measured.

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
)

// redrawGrowth: a hand-out is drawn afresh, whatever RerankEvery says,
// once the members it could be drawn from have grown this many times over
// since it was last drawn (a flash crowd's first hand-outs come from the
// few first holders; repeating them herds the crowd onto those).
const redrawGrowth = 2

// peerTTL is swarm.Config.PeerTTL's default.
var peerTTL = swarm.DefaultPeerTTL.Seconds()

// hoEntry is one handed-out peer and the bitfield it carries: the first n
// chunks of its log, as it last announced.
type hoEntry struct {
	node int32
	n    int32
}

type member struct {
	ann      int32   // chunks announced: a prefix of the node's log
	elig     int32   // index in tracker.elig, -1 if none
	in       bool    // recorded in the swarm
	lastSeen float64 // +Inf for seeds, which announce as long as they live
}

type tracker struct {
	s      *Sim
	policy swarm.HandoutPolicy
	want   int
	sample int
	cap    int
	rng    *rand.Rand

	m     []member
	live  []int32 // each member's ann if it is handed out, else -1 (hot: read per source per hand-out)
	count []int32 // hand-outs since the requester's last fresh one
	// drawPool is how many members could be handed out when the
	// requester's hand-out was last drawn.
	drawPool []int32
	every    int32 // rank every this many hand-outs
	nIn      int
	elig     []int32 // recorded members that hold a chunk
	dead     []int32 // recorded members that vanished, until they expire
	mark     []uint32
	stamp    uint32
	pick     []int32
	pure     bool // the last hand-out repeated the previous one exactly
	cands    []swarm.Candidate
	ids      []string
	byID     map[string]int32
	empty    core.Bitfield
	bf       []core.Bitfield // wire form of each member's announced bitfield
	bfN      []int32         // the announced count bf was made for
	// annBits holds each node's announced count and bitfield (its first
	// ann chunks), 1 + words per node: a source handed out with the count
	// its node last announced gains the bits it lacks, a cache line
	// instead of a log.
	annBits []uint64
	words   int

	handouts, ranked int64
	maxIvMs          int // the longest announce interval given
}

func newTracker(s *Sim, policy swarm.HandoutPolicy, want, sample, cap, every int, rng *rand.Rand) tracker {
	return tracker{s: s, policy: policy, want: want, sample: sample, cap: cap, every: int32(max(every, 1)), rng: rng}
}

// index sizes the per-peer tables once the network exists.
func (t *tracker) index() {
	n := len(t.s.nodes)
	t.m = make([]member, n)
	t.live = make([]int32, n)
	for i := range t.m {
		t.m[i].elig = -1
		t.live[i] = -1
	}
	t.mark = make([]uint32, n)
	t.count = make([]int32, n)
	t.drawPool = make([]int32, n)
	t.empty = core.NewBitfield(t.s.nChunks)
	t.words = (t.s.nChunks + 63) / 64
	t.annBits = make([]uint64, n*(1+t.words))
}

// announced is node's announced count and bitfield (its first ann chunks).
func (t *tracker) announced(node int32) (int32, bitset) {
	row := t.annBits[int(node)*(1+t.words) : int(node+1)*(1+t.words)]
	return int32(row[0]), bitset(row[1:])
}

// announce records node's bitfield: the first n chunks of its log.
func (t *tracker) announce(node int32, n int32, seed bool) {
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
	_, b := t.announced(node)
	if n < mm.ann {
		clear(b)
		mm.ann = 0
	}
	for _, c := range t.s.logOf(node, n)[mm.ann:] {
		b.set(int(c))
	}
	t.annBits[int(node)*(1+t.words)] = uint64(n)
	mm.ann = n
	mm.lastSeen = t.s.now
	if seed {
		mm.lastSeen = math.Inf(1)
	}
	if n > 0 && mm.elig < 0 {
		mm.elig = int32(len(t.elig))
		t.elig = append(t.elig, node)
	}
	if mm.elig >= 0 {
		t.live[node] = n
	}
}

// interval is the announce interval the edge returns now, for the members
// the tracker records (swarm.AnnounceInterval), in milliseconds. The edge's
// configured interval is taken to be the agents' (500 ms both by default);
// an agent announces at the longer of its own and the edge's, which is
// then this.
func (t *tracker) interval() int32 {
	ms := int(swarm.AnnounceInterval(t.s.cfg.swarmConfig(), t.s.announce, t.nIn).Milliseconds())
	t.maxIvMs = max(t.maxIvMs, ms)
	return int32(ms)
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
		t.live[node] = -1
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

// handout appends node's hand-out to out. It sets t.pure when that is
// node's previous hand-out again (the same peers in the same order).
func (t *tracker) handout(node int32, out []hoEntry) []hoEntry {
	t.handouts++
	t.pure = false
	if len(t.dead) > 0 {
		t.expire()
	}
	pool := len(t.elig)
	if t.m[node].elig >= 0 {
		pool--
	}
	if pool <= t.want {
		// The real tracker ranks them all and keeps them all.
		for _, e := range t.elig {
			if e != node {
				out = append(out, hoEntry{e, t.m[e].ann})
			}
		}
		return out
	}
	if c := t.count[node]; c > 0 && c < t.every && pool < redrawGrowth*int(t.drawPool[node]) {
		if out, ok := t.repeat(node, out, pool); ok {
			t.count[node]++
			return out
		}
	}
	// A fresh hand-out, drawn and ranked as the real tracker does. (A
	// sample no larger than a hand-out is kept whole: ranking would only
	// order it.)
	t.count[node] = 1
	t.drawPool[node] = int32(pool)
	pick := t.sampleHolders(node)
	if len(pick) > t.want {
		pick = t.rank(node, pick)
	}
	for _, e := range pick {
		out = append(out, hoEntry{e, t.m[e].ann})
	}
	return out
}

// sampleHolders returns the members a ranked hand-out to node considers,
// as the real tracker's sampleLocked draws them: every member holding a
// chunk, or HandoutSample of them uniformly without replacement (Floyd's
// algorithm, node included), then node dropped.
func (t *tracker) sampleHolders(node int32) []int32 {
	n, k := len(t.elig), t.sample
	pick := t.pick[:0]
	if k < 0 || n <= k {
		for _, e := range t.elig {
			if e != node {
				pick = append(pick, e)
			}
		}
		t.pick = pick
		return pick
	}
	t.newStamp()
	for j := n - k; j < n; j++ {
		i := t.rng.IntN(j + 1)
		if t.mark[t.elig[i]] == t.stamp {
			i = j
		}
		e := t.elig[i]
		t.mark[e] = t.stamp
		if e != node {
			pick = append(pick, e)
		}
	}
	t.pick = pick
	return pick
}

// repeat hands node its previous hand-out again, with the bitfields its
// members have announced since; members no longer handed out are replaced
// by others drawn at random. It declines (false) when the previous
// hand-out was not a full one, which a ranking then replaces.
func (t *tracker) repeat(node int32, out []hoEntry, pool int) ([]hoEntry, bool) {
	p := &t.s.peers[node]
	start, prev := len(out), 0
	for k := range p.sources {
		sr := &p.sources[k]
		if sr.stale {
			continue
		}
		prev++
		if n := t.live[sr.node]; n >= 0 {
			out = append(out, hoEntry{sr.node, n})
		}
	}
	if prev < t.want {
		return out[:start], false
	}
	t.pure = len(out)-start == prev
	if n := len(out) - start; n < t.want {
		t.newStamp()
		t.mark[node] = t.stamp
		for _, e := range out[start:] {
			t.mark[e.node] = t.stamp
		}
		t.pick = t.fill(t.pick[:0], t.want-n, pool-n)
		for _, e := range t.pick {
			out = append(out, hoEntry{e, t.m[e].ann})
		}
	}
	return out, true
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
	t.peerIDs()
	t.cands = t.cands[:0]
	for _, e := range pick {
		t.cands = append(t.cands, swarm.Candidate{
			PeerID:    t.ids[e],
			Have:      t.bitfield(e),
			UploadBps: int64(t.s.nodes[e].up),
		})
	}
	req := swarm.Request{PeerID: t.ids[node], Have: t.empty, Want: t.want,
		Rand: rand.New(rand.NewPCG(t.rng.Uint64(), t.rng.Uint64()))}
	if mm := &t.m[node]; mm.in {
		req.Have = t.bitfield(node)
	}
	ranked := t.policy.Rank(req, t.cands)
	best := pick[:0]
	for _, c := range ranked[:min(len(ranked), t.want)] {
		if e, ok := t.nodeOf(c.PeerID); ok {
			best = append(best, e)
		}
	}
	return best
}

// peerIDs makes the peer IDs the policy sees: each peer's key in 16 hex
// digits (so that IDs sort as the keys do), then its node in hex.
func (t *tracker) peerIDs() {
	if t.ids != nil {
		return
	}
	t.ids = make([]string, len(t.s.nodes))
	for i := 1; i < len(t.s.nodes); i++ {
		t.ids[i] = fmt.Sprintf("%016x%x", t.s.peers[i].key, i)
	}
}

// nodeOf is the node of a peer ID (byID when set, as tests do to use
// another tracker's IDs).
func (t *tracker) nodeOf(id string) (int32, bool) {
	if t.byID != nil {
		e, ok := t.byID[id]
		return e, ok
	}
	if len(id) <= 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(id[16:], 16, 31)
	if err != nil || n == 0 || n >= uint64(len(t.s.nodes)) {
		return 0, false
	}
	return int32(n), true
}

// bitfield is the wire form of node's announced bitfield.
func (t *tracker) bitfield(node int32) core.Bitfield {
	if t.bf == nil {
		t.bf = make([]core.Bitfield, len(t.m))
		t.bfN = make([]int32, len(t.m))
		for i := range t.bfN {
			t.bfN[i] = -1
		}
	}
	n := t.m[node].ann
	if t.bfN[node] != n {
		f := core.NewBitfield(t.s.nChunks)
		for _, c := range t.s.logOf(node, n) {
			f.Set(int(c))
		}
		t.bf[node], t.bfN[node] = f, n
	}
	return t.bf[node]
}

// doAnnounce sends p's announce; the response arrives a round trip later.
func (s *Sim) doAnnounce(p *peerState) {
	if p.state != psActive && p.state != psDone {
		return
	}
	p.annBusy = true
	s.tr.announce(p.node, int32(p.heldN), p.state == psDone)
	p.annMs = s.tr.interval()
	p.ho = p.ho[:0]
	if p.state == psActive {
		p.ho = s.tr.handout(p.node, p.ho)
		p.hoPure = s.tr.pure
	}
	s.q.after(p.hoEv, s.now, 2*s.oneWay(p.node, 0))
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
		s.q.after(p.annEv, s.now, float64(p.annMs)/1000)
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
// chunks they announced since (a peer's chunks only grow), missing ones go
// stale (and are dropped once nothing is in flight from them).
func (s *Sim) onHandout(p *peerState) {
	if p.hoPure {
		// The same peers with fresh counts: applied when the loop next
		// looks at its sources (applyHandout); a later one supersedes it
		// (a peer's count only grows).
		p.ho, p.pend = p.pend, p.ho
		p.pendDue = true
		return
	}
	s.applyHandout(p)
	s.merge(p, p.ho)
}

// applyHandout applies a repeated hand-out that has arrived: each source
// gains the chunks it announced since.
func (s *Sim) applyHandout(p *peerState) {
	if !p.pendDue {
		return
	}
	p.pendDue = false
	if !s.refresh(p, p.pend) {
		s.merge(p, p.pend)
	}
}

// merge makes p's sources those of list, as the loop's onHandout does.
func (s *Sim) merge(p *peerState, list []hoEntry) {
	if !slices.IsSortedFunc(list, cmpHo) {
		slices.SortFunc(list, cmpHo)
	}
	if s.refresh(p, list) {
		return
	}
	out := s.srcBuf[:0]
	old := p.sources
	i, j := 0, 0
	for i < len(old) || j < len(list) {
		switch {
		case j >= len(list) || (i < len(old) && old[i].node < list[j].node):
			sr := old[i]
			i++
			if !sr.stale {
				s.addAvail(p, p.have(&sr), -1)
				sr.stale = true
			}
			if sr.inflight > 0 {
				out = append(out, sr)
			} else {
				s.forgetWait(&sr)
				p.freeSlot = append(p.freeSlot, sr.slot)
				p.slotIdx[sr.slot] = -1
			}
		case i >= len(old) || list[j].node < old[i].node:
			e := list[j]
			j++
			sr := src{node: e.node, slot: p.newSlot(), key: s.keys[e.node], haveEpoch: 1}
			s.extend(p, &sr, e.n)
			out = append(out, sr)
		default:
			sr, e := old[i], list[j]
			i++
			j++
			if sr.stale {
				s.addAvail(p, p.have(&sr), 1)
				sr.stale = false
			}
			s.extend(p, &sr, e.n)
			sr.haveEpoch++
			out = append(out, sr)
		}
	}
	p.sources = append(p.sources[:0], out...)
	for k := range p.sources {
		p.slotIdx[p.sources[k].slot] = int32(k)
	}
	s.srcBuf = out[:0]
	// The handed-out peers are the sources not stale.
	p.stripes = len(list) + 1
	p.stripe = 0
	for k := range p.sources {
		if sr := &p.sources[k]; !sr.stale && sr.key < p.key {
			p.stripe++
		}
	}
}

func cmpHo(a, b hoEntry) int { return int(a.node - b.node) }

// refresh handles the common hand-out, the same peers as p's sources (a
// repeat), in place: each source gains what it announced since. It
// reports false, having changed nothing that the full merge would not
// redo, when the peers differ.
func (s *Sim) refresh(p *peerState, list []hoEntry) bool {
	if len(list) != len(p.sources) {
		return false
	}
	for k := range list {
		if sr := &p.sources[k]; sr.node != list[k].node || sr.stale {
			return false
		}
	}
	for k := range list {
		if sr := &p.sources[k]; list[k].n > sr.n {
			s.extend(p, sr, list[k].n)
			sr.haveEpoch++
		}
	}
	return true
}

// extend adds to sr the chunks of its node's log from sr.n to n. When n
// is what the node last announced (the usual case), those are the bits
// of its announced bitfield that sr lacks.
func (s *Sim) extend(p *peerState, sr *src, n int32) {
	if n <= sr.n {
		return
	}
	have := p.have(sr)
	if ann, ab := s.tr.announced(sr.node); n == ann {
		for w, a := range ab {
			d := a &^ have[w]
			have[w] |= d
			for d != 0 {
				p.avail[w*64+bits.TrailingZeros64(d)]++
				d &= d - 1
			}
		}
	} else {
		for _, c := range s.logOf(sr.node, n)[sr.n:] {
			have.set(int(c))
			p.avail[c]++
		}
	}
	sr.n = n
}

func (s *Sim) addAvail(p *peerState, b bitset, d int32) {
	for w, x := range b {
		for x != 0 {
			p.avail[w*64+bits.TrailingZeros64(x)] += d
			x &= x - 1
		}
	}
}

// newSlot returns an empty place for a source's bitfield in p's arena.
func (p *peerState) newSlot() int32 {
	w := len(p.held)
	if n := len(p.freeSlot); n > 0 {
		k := p.freeSlot[n-1]
		p.freeSlot = p.freeSlot[:n-1]
		clear(p.arena[int(k)*w : int(k+1)*w])
		return k
	}
	k := int32(len(p.arena) / w)
	p.arena = append(p.arena, make([]uint64, w)...)
	p.slotIdx = append(p.slotIdx, -1)
	return k
}

// logOf is the first n chunks node received, in order.
func (s *Sim) logOf(node, n int32) []int32 {
	base := int(node) * s.nChunks
	return s.log[base : base+int(n)]
}

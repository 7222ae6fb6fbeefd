package sim

// One peer's download: a transcription of internal/peer's scheduler loop
// (scheduler.go) onto the virtual clock. What it keeps from the real loop,
// statement for statement: the order in which sources are given work
// (peers by measured rate, then the edge), the candidates a policy sees
// (missing, not in flight, held by the source, ascending), the real
// ChunkPolicy's pick, the real pacing rules (peer.Slots, RequestTimeout,
// MaxFlights, NextRate, FailureBackoff, BusyBackoff), endgame duplicates,
// cancel-the-losers, timeouts checked on the loop's 100 ms tick, the stall
// timeout, the hand-out bookkeeping (availability counts, stale sources,
// the stripe) and the announces (every interval, at once after the first
// chunk and at completion).
//
// What differs, to stay fast at 100k peers: a peer's loop runs at the
// events that change it (results, hand-outs, its deadlines and backoffs)
// rather than on every tick; availability counts are updated by the
// chunks a source announced since its last hand-out rather than recounted,
// and a hand-out that repeats the previous one is applied when the loop
// next looks at its sources; and a request refused for load (503) is
// decided when it is sent, without
// asking the policy for a chunk first, and the requester is retried when
// the sender frees an upload slot after the requester's backoff rather
// than by polling (see admit). There are no readers, so no urgent chunks
// and no rescue.

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/peer"
)

// Flight states.
const (
	fsFree    = iota
	fsTransit // request on its way to the sender
	fsActive  // a flow on the network
	fsReturn  // response (or error) on its way back
)

// flight is one chunk request and, once admitted, its flow.
type flight struct {
	ev        int32 // arrive, then deliver
	peer, src int32 // requester and sender nodes
	chunk     int32
	srcSlot   int32 // the source's slot at the requester (src.slot)
	state     uint8
	where     uint8 // inNone, inSender, inReceiver
	canceled  bool  // the requester gave up on it
	failed    bool  // the sender was gone
	slot      bool  // holds one of the sender's upload slots
	start     float64
	ttfb      float64 // when the first byte reaches the requester, minus start; 0 = not yet
	timeout   float64 // peer.RequestTimeout at launch, s
	deadline  float64 // peer.FlightDeadline, moved on while bytes flow
	size      float64
	tag       float64 // virtual finishing time in its pool
	hpos      int32
	opos      int32
	ipos      int32
}

// src is one source as a download sees it (peer's srcState). A peer's
// chunks only ever grow, in the order of its log (Sim.logOf), so the
// bitfield it announced is a prefix of its log: a source holds the first n
// chunks of its node's log, and a hand-out that brings a larger n adds
// just the chunks in between.
//
// What the loop's pass over its sources reads comes first.
type src struct {
	until     float64
	rate      float64
	key       uint64 // the node's peer ID order
	inflight  int32
	slots     int32 // peer.Slots of rate and failures; 0: to compute
	stale     bool
	busyWait  bool // refused for load; the sender wakes it
	emptyOK   bool
	emptyGrow uint32
	emptyHave uint32
	haveEpoch uint32
	node      int32 // 0: the edge
	n         int32 // it holds the first n chunks of node's log
	slot      int32 // its bitfield's place in the peer's arena; -1: the edge (everything)
	waitGen   uint32
	failures  int32
	base      float64 // peer.BaseLatency, s; 0 = unmeasured
	baseAt    float64
}

// simTime is virtual time t (seconds since the start) as a time.Time, for
// the real rules that take one.
func simTime(t float64) time.Time { return time.Time{}.Add(time.Duration(t * float64(time.Second))) }

// When a peer leaves (churn).
const (
	leaveNever = iota
	leaveMid   // killed mid-download
	leaveDone  // gracefully, once complete
)

// peerState is one peer: its download loop, its announcer and its counters.
type peerState struct {
	// What most events read comes first: its cache lines are cold by the
	// time a peer's next event comes.
	state     uint8
	pendDue   bool // a repeated hand-out arrived, not yet applied (pend)
	leave     uint8
	completed bool
	announced bool
	annBusy   bool
	annAgain  bool
	hoPure    bool // the hand-out in transit repeats the previous one
	node      int32
	grow      uint32
	sources   []src   // handed-out peers, by node
	slotIdx   []int32 // each arena slot's source (index in sources), -1 if free

	flights  []int32 // live requests, oldest first
	pending  bitset
	nPending int
	nMissing int

	held         bitset
	heldN        int
	avail        []int32
	lastProgress float64

	arena                        []uint64 // the sources' bitfields, words per source each
	rng                          *rand.Rand
	tick0                        float64
	wakeEv, annEv, hoEv, leaveEv int32
	requests, busy               int32

	key      uint64
	stripe   int
	stripes  int
	annMs    int32 // the announce interval of the latest response, ms
	timeouts int32
	freeSlot []int32   // unused places in arena
	ho       []hoEntry // the hand-out in transit
	pend     []hoEntry // a repeated hand-out arrived, not yet applied
	edge     src

	joinAt, endAt float64
	leaveAfter    float64

	edgeBytes, peerBytes, crossBytes, dupBytes int64
	_                                          [8]byte // 512 bytes: 8 whole cache lines
}

func (s *Sim) kind(node int32) peer.SourceKind {
	if node == 0 {
		return peer.KindEdge
	}
	return peer.KindPeer
}

// slots is peer.Slots for sr, kept until its rate, base latency or
// failures change.
func (s *Sim) slots(sr *src) int {
	if sr.slots == 0 {
		sr.slots = int32(peer.Slots(s.pc, s.cs, s.kind(sr.node), sr.rate, secs(sr.base), int(sr.failures)))
	}
	return int(sr.slots)
}

func (s *Sim) chunkLen(i int) float64 {
	off := int64(i) * int64(s.cs)
	return float64(min(int64(s.cs), s.cfg.Size-off))
}

// oneWay is the latency between two nodes.
func (s *Sim) oneWay(a, b int32) float64 { return s.nodes[a].lat + s.nodes[b].lat }

// eps absorbs rounding in comparisons of virtual times.
const eps = 1e-9

// tickAfter is the first tick of p's loop strictly after t (when a request
// due at t is found late); tickAtOrAfter the first at or after t (when a
// backoff ending at t is over).
func (s *Sim) tickAfter(p *peerState, t float64) float64 {
	return p.tick0 + (math.Floor((t+eps-p.tick0)/s.tick)+1)*s.tick
}

func (s *Sim) tickAtOrAfter(p *peerState, t float64) float64 {
	return p.tick0 + math.Ceil((t-eps-p.tick0)/s.tick)*s.tick
}

func (s *Sim) armWake(p *peerState, t float64) {
	if !s.q.queued(p.wakeEv) || t < s.q.ev[p.wakeEv].at {
		s.q.schedule(p.wakeEv, t)
	}
}

// join starts p's download: the manifest takes a round trip to the edge,
// then the loop and the announcer start at once.
func (s *Sim) join(p *peerState) {
	p.joinAt = s.now
	start := s.now + 2*s.oneWay(p.node, 0)
	p.state = psActive
	p.tick0 = start
	p.lastProgress = start
	p.held = newBitset(s.nChunks)
	p.pending = newBitset(s.nChunks)
	for i := 0; i < s.nChunks; i++ {
		p.pending.set(i)
	}
	p.nMissing, p.nPending = s.nChunks, s.nChunks
	p.avail = make([]int32, s.nChunks)
	p.edge = src{node: 0, slot: -1}
	s.q.schedule(p.annEv, start)
	s.q.schedule(p.wakeEv, start)
	if p.leave == leaveMid {
		s.q.schedule(p.leaveEv, start+p.leaveAfter)
	}
}

// onWake is the loop's tick: time out late requests, fail a stalled
// download, give sources work, and sleep until the next deadline, backoff
// or stall check.
func (s *Sim) onWake(p *peerState) {
	if p.state != psActive {
		return
	}
	for k := 0; k < len(p.flights); {
		id := p.flights[k]
		f := &s.fl[id]
		if f.state == fsActive && f.ttfb > 0 && s.now >= f.start+f.ttfb {
			// Bytes are arriving (a flow always moves while its sender
			// lives): the deadline moves on as in the agent's tick.
			f.deadline = peer.FlightDeadline(simTime(f.start), simTime(s.now), secs(f.timeout)).Sub(time.Time{}).Seconds()
		}
		if s.now > f.deadline+eps {
			sr := s.findSrc(p, f)
			chunk := int(f.chunk)
			s.cancelFlight(p, id)
			p.timeouts++
			s.sourceFailed(p, sr)
			s.requeue(p, chunk)
			continue // the list shifted
		}
		k++
	}
	if s.now-p.lastProgress > s.stall {
		s.fail(p)
		return
	}
	s.schedule(p)
	if p.state != psActive {
		return
	}
	next := s.tickAfter(p, p.lastProgress+s.stall)
	for _, id := range p.flights {
		next = min(next, s.tickAfter(p, s.fl[id].deadline))
	}
	consider := func(sr *src) {
		if sr.until > s.now+eps && !sr.busyWait && !sr.stale {
			next = min(next, s.tickAtOrAfter(p, sr.until))
		}
	}
	consider(&p.edge)
	for i := range p.sources {
		consider(&p.sources[i])
	}
	if next <= s.now {
		next = s.now + s.tick // rounding must never spin the loop
	}
	s.q.schedule(p.wakeEv, next)
}

func (s *Sim) usable(sr *src) bool { return !sr.stale && !sr.busyWait && s.now+eps >= sr.until }

// schedule gives every source with spare slots work, peers first (fastest
// first), then the edge; then endgame duplicates.
func (s *Sim) schedule(p *peerState) {
	if p.state != psActive || p.nMissing == 0 || len(p.flights) >= s.maxFlight {
		return // fill and endgame launch nothing past MaxFlights
	}
	s.applyHandout(p)
	// The real loop sorts the usable sources with spare slots by rate
	// (then ID) and fills them in that order. Most passes stop after a few
	// sources (MaxFlights reached), so the order is drawn by selection,
	// and sorted in full only for endgame.
	// A source known to hold nothing p still needs to request (fill's
	// first check) is left out of the selection unless endgame may need
	// it: fill would return at once.
	cs, empty := s.schedBuf[:0], s.schedEmpty[:0]
	for i := range p.sources {
		sr := &p.sources[i]
		if !s.usable(sr) || int(sr.inflight) >= s.slots(sr) {
			continue
		}
		e := schedEntry{sr.rate, sr.key, int32(i)}
		if p.nPending > 0 && sr.emptyOK && sr.emptyGrow == p.grow && sr.emptyHave == sr.haveEpoch {
			empty = append(empty, e)
		} else {
			cs = append(cs, e)
		}
	}
	s.schedEmpty = empty
	edge := s.usable(&p.edge) && int(p.edge.inflight) < s.slots(&p.edge)
	done := 0
	for ; done < len(cs) && p.nPending > 0; done++ {
		if len(p.flights) >= s.maxFlight {
			s.schedBuf = cs
			return
		}
		b := done
		for k := done + 1; k < len(cs); k++ {
			if cs[k].before(cs[b]) {
				b = k
			}
		}
		cs[done], cs[b] = cs[b], cs[done]
		s.fill(p, &p.sources[cs[done].i])
		if p.state != psActive {
			s.schedBuf = cs
			return
		}
	}
	s.schedBuf = cs
	if edge {
		s.fill(p, &p.edge)
		if p.state != psActive {
			return
		}
	}
	if p.nPending == 0 {
		// Endgame gives every usable source with spare slots work, in
		// the loop's order: the empty ones too.
		cs = append(cs, empty...)
		s.schedBuf = cs
		slices.SortFunc(cs, func(a, b schedEntry) int {
			if a.before(b) {
				return -1
			}
			return 1
		})
		order := s.order[:0]
		for _, e := range cs {
			order = append(order, e.i)
		}
		if edge {
			order = append(order, -1)
		}
		s.order = order
		s.endgame(p, order)
	}
}

// schedEntry is a source in the order the loop gives sources work.
type schedEntry struct {
	rate float64
	key  uint64
	i    int32
}

// before: faster first, then by peer ID.
func (a schedEntry) before(b schedEntry) bool {
	return a.rate > b.rate || (a.rate == b.rate && a.key < b.key)
}

// have is the bitfield of sr (nil for the edge: everything). It is valid
// until p's next hand-out.
func (p *peerState) have(sr *src) bitset {
	if sr.slot < 0 {
		return nil
	}
	w := len(p.held)
	return bitset(p.arena[int(sr.slot)*w : int(sr.slot+1)*w])
}

func (p *peerState) srcAt(i int32) *src {
	if i < 0 {
		return &p.edge
	}
	return &p.sources[i]
}

// fill launches requests on sr while it has spare slots and the policy
// finds a chunk for it.
func (s *Sim) fill(p *peerState, sr *src) {
	s.applyHandout(p)
	slots := s.slots(sr)
	for int(sr.inflight) < slots && len(p.flights) < s.maxFlight && p.nPending > 0 {
		if sr.emptyOK && sr.emptyGrow == p.grow && sr.emptyHave == sr.haveEpoch {
			return
		}
		have := p.have(sr)
		if !p.pending.intersects(have) {
			sr.emptyOK, sr.emptyGrow, sr.emptyHave = true, p.grow, sr.haveEpoch
			return
		}
		if s.refuses(sr.node) {
			s.refuse(p, sr)
			return
		}
		s.cands = p.pending.appendAnd(s.cands[:0], have)
		i := s.cfg.Policy.Pick(peer.PickInput{
			Kind:       s.kind(sr.node),
			Candidates: s.cands,
			Avail:      p.avail,
			Stripe:     p.stripe,
			Stripes:    p.stripes,
			Rand:       p.rng,
		})
		if i < 0 || i >= s.nChunks || !p.pending.has(i) || (have != nil && !have.has(i)) {
			return // the policy declined (or answered nonsense)
		}
		s.launch(p, sr, i)
	}
}

// egEntry is one chunk in flight, for endgame.
type egEntry struct {
	chunk  int32
	copies int32
	start  float64 // of its oldest request
}

// endgame runs once every missing chunk is in flight: sources with spare
// slots get duplicates of the chunks with the fewest copies, oldest first,
// never two requests for one chunk to one source.
func (s *Sim) endgame(p *peerState, order []int32) {
	s.applyHandout(p)
	if s.egMark == nil {
		s.egMark = make([]uint32, s.nChunks)
		s.egAt = make([]int32, s.nChunks)
	}
	es := s.entries[:0]
	stamp := s.egNext()
	for _, id := range p.flights { // oldest first
		f := &s.fl[id]
		k := s.egAt[f.chunk]
		if s.egMark[f.chunk] != stamp {
			s.egMark[f.chunk], s.egAt[f.chunk] = stamp, int32(len(es))
			es = append(es, egEntry{chunk: f.chunk, start: f.start})
			k = int32(len(es) - 1)
		}
		es[k].copies++
	}
	s.entries = es
	for _, oi := range order {
		sr := p.srcAt(oi)
		if int(sr.inflight) >= s.slots(sr) || len(p.flights) >= s.maxFlight {
			continue
		}
		// The chunks already in flight from this source.
		from := s.egNext()
		for _, id := range p.flights {
			if f := &s.fl[id]; f.src == sr.node {
				s.egMark[f.chunk] = from
			}
		}
		have := p.have(sr)
		for int(sr.inflight) < s.slots(sr) && len(p.flights) < s.maxFlight {
			best := -1
			for k := range es {
				e := &es[k]
				if int(e.copies) >= s.pc.EndgameCopies || (have != nil && !have.has(int(e.chunk))) || s.egMark[e.chunk] == from {
					continue
				}
				if best < 0 || e.copies < es[best].copies || (e.copies == es[best].copies && e.start < es[best].start) {
					best = k
				}
			}
			if best < 0 {
				break
			}
			if s.refuses(sr.node) {
				s.refuse(p, sr)
				break
			}
			es[best].copies++
			s.egMark[es[best].chunk] = from
			s.launch(p, sr, int(es[best].chunk))
		}
	}
}

// egNext is a fresh stamp for egMark.
func (s *Sim) egNext() uint32 {
	s.egStamp++
	if s.egStamp == 0 {
		clear(s.egMark)
		s.egStamp = 1
	}
	return s.egStamp
}

func (s *Sim) newFlight() int32 {
	if n := len(s.free); n > 0 {
		id := s.free[n-1]
		s.free = s.free[:n-1]
		return id
	}
	s.fl = append(s.fl, flight{})
	id := int32(len(s.fl) - 1)
	s.fl[id].ev = s.q.alloc(evArrive, id)
	return id
}

func (s *Sim) freeFlight(id int32) {
	f := &s.fl[id]
	ev := f.ev
	*f = flight{ev: ev}
	s.free = append(s.free, id)
}

// launch sends a request for chunk i to sr.
func (s *Sim) launch(p *peerState, sr *src, i int) {
	timeout := peer.RequestTimeout(s.pc, s.cs, s.kind(sr.node), sr.rate, int(sr.inflight)).Seconds()
	id := s.newFlight()
	f := &s.fl[id]
	f.peer, f.src, f.chunk, f.srcSlot = p.node, sr.node, int32(i), sr.slot
	f.start, f.timeout, f.deadline, f.size = s.now, timeout, s.now+timeout, s.chunkLen(i)
	f.state = fsTransit
	p.flights = append(p.flights, id)
	if p.pending.has(i) {
		p.pending.clear(i)
		p.nPending--
	}
	sr.inflight++
	p.requests++
	s.nodes[sr.node].uploads++
	f.slot = true
	s.armWake(p, s.tickAfter(p, f.deadline))
	if d := s.oneWay(p.node, sr.node); d > 0 {
		s.q.ev[f.ev].kind = evArrive
		s.q.after(f.ev, s.now, d)
		return
	}
	s.arrive(id)
}

// arrive: the request reaches its sender, which starts sending (or, gone,
// fails it).
func (s *Sim) arrive(id int32) {
	f := &s.fl[id]
	switch {
	case f.canceled:
		s.freeFlight(id)
	case s.nodes[f.src].dead:
		s.releaseSlot(id)
		f.failed = true
		s.sendBack(id)
	default:
		f.state = fsActive
		f.ttfb = s.now - f.start + s.oneWay(f.peer, f.src)
		s.startFlow(id)
	}
}

// flowDone: the sender has sent the last byte.
func (s *Sim) flowDone(id int32) {
	s.releaseSlot(id)
	s.sendBack(id)
}

func (s *Sim) sendBack(id int32) {
	f := &s.fl[id]
	f.state = fsReturn
	s.q.ev[f.ev].kind = evDeliver
	s.q.after(f.ev, s.now, s.oneWay(f.peer, f.src))
}

func (s *Sim) releaseSlot(id int32) {
	f := &s.fl[id]
	if !f.slot {
		return
	}
	f.slot = false
	nd := &s.nodes[f.src]
	nd.uploads--
	s.armAdmit(f.src)
}

// deliver: the response reaches the requester's loop.
func (s *Sim) deliver(id int32) {
	f := s.fl[id]
	s.freeFlight(id)
	if f.canceled {
		return
	}
	p := &s.peers[f.peer]
	if p.state != psActive {
		return
	}
	sr := s.findSrc(p, &f)
	s.drop(p, sr, id)
	i := int(f.chunk)
	if f.failed {
		s.sourceFailed(p, sr)
		s.requeue(p, i)
		s.schedule(p)
		return
	}
	n := int64(f.size)
	if f.src == 0 {
		p.edgeBytes += n
	} else {
		p.peerBytes += n
		if s.isps[f.src] != s.isps[f.peer] {
			p.crossBytes += n
		}
	}
	sr.rate = peer.NextRate(sr.rate, int(n), int(sr.inflight), secs(s.now-f.start))
	if f.ttfb > 0 {
		b, at := peer.BaseLatency(secs(sr.base), simTime(sr.baseAt), secs(f.ttfb), simTime(s.now))
		sr.base, sr.baseAt = b.Seconds(), at.Sub(time.Time{}).Seconds()
	}
	sr.failures = 0
	sr.slots = 0
	if p.held.has(i) {
		p.dupBytes += n
	} else {
		s.gotChunk(p, i)
	}
	if p.state == psActive {
		s.requeue(p, i)
		s.schedule(p)
	}
}

// findSrc returns p's state for the source of a live request of p (a
// live request's source is never dropped).
func (s *Sim) findSrc(p *peerState, f *flight) *src {
	if f.src == 0 {
		return &p.edge
	}
	sr := &p.sources[p.slotIdx[f.srcSlot]]
	if sr.node != f.src {
		panic("sim: flight from an unknown source")
	}
	return sr
}

// drop removes a live request from p's books.
func (s *Sim) drop(p *peerState, sr *src, id int32) {
	if k := slices.Index(p.flights, id); k >= 0 {
		p.flights = slices.Delete(p.flights, k, k+1)
		sr.inflight--
	}
}

// cancelFlight stops a live request of p.
func (s *Sim) cancelFlight(p *peerState, id int32) {
	f := &s.fl[id]
	s.drop(p, s.findSrc(p, f), id)
	switch f.state {
	case fsActive:
		s.endFlow(id)
		s.releaseSlot(id)
		s.freeFlight(id)
	case fsTransit:
		s.releaseSlot(id)
		f.canceled = true
	case fsReturn:
		f.canceled = true
	}
}

// requeue returns chunk i to pending when nothing is fetching it.
func (s *Sim) requeue(p *peerState, i int) {
	if p.held.has(i) || p.pending.has(i) {
		return
	}
	for _, id := range p.flights {
		if int(s.fl[id].chunk) == i {
			return
		}
	}
	p.pending.set(i)
	p.nPending++
	p.grow++
}

func (s *Sim) sourceFailed(p *peerState, sr *src) {
	sr.failures++
	sr.slots = 0
	sr.until = s.now + peer.FailureBackoff(s.kind(sr.node), int(sr.failures)).Seconds()
	s.armWake(p, s.tickAtOrAfter(p, sr.until))
}

func (s *Sim) gotChunk(p *peerState, i int) {
	p.held.set(i)
	s.log[int(p.node)*s.nChunks+p.heldN] = int32(i)
	p.heldN++
	p.nMissing--
	p.lastProgress = s.now
	for k := 0; k < len(p.flights); {
		id := p.flights[k]
		if int(s.fl[id].chunk) == i {
			s.cancelFlight(p, id) // a loser
			continue
		}
		k++
	}
	if !p.announced {
		p.announced = true
		s.requestAnnounce(p)
	}
	if p.nMissing == 0 {
		s.complete(p)
	}
}

func (s *Sim) complete(p *peerState) {
	p.state = psDone
	p.completed = true
	p.endAt = s.now
	s.running--
	s.endDownload(p)
	s.requestAnnounce(p) // tell the swarm we now hold everything
	if p.leave == leaveDone {
		s.q.schedule(p.leaveEv, s.now)
	}
}

func (s *Sim) fail(p *peerState) {
	p.state = psFailed
	p.endAt = s.now
	s.running--
	s.endDownload(p)
	s.tr.leave(p.node)
}

// endDownload cancels what p still has in flight and frees its loop.
func (s *Sim) endDownload(p *peerState) {
	for len(p.flights) > 0 {
		s.cancelFlight(p, p.flights[len(p.flights)-1])
	}
	s.q.cancel(p.wakeEv)
	s.forgetWait(&p.edge)
	for k := range p.sources {
		s.forgetWait(&p.sources[k])
	}
	p.sources, p.avail, p.pending, p.flights = nil, nil, nil, nil
	p.arena, p.slotIdx, p.freeSlot, p.pend, p.pendDue = nil, nil, nil, nil, false
}

// leaveNow: p leaves the swarm. One that leaves mid-download is killed:
// its connections reset and the tracker hands it out until its entry
// expires. One that completed leaves gracefully (the agent's Close
// announces it).
func (s *Sim) leaveNow(p *peerState) {
	if p.state == psGone {
		return
	}
	if p.state == psActive {
		s.running--
		s.endDownload(p)
		s.tr.vanish(p.node)
	} else {
		s.tr.leave(p.node)
	}
	p.state = psGone
	s.q.cancel(p.annEv)
	nd := &s.nodes[p.node]
	nd.dead = true
	// Uploads in progress are cut; their requesters see an error.
	for len(nd.out) > 0 {
		id := nd.out[len(nd.out)-1]
		s.endFlow(id)
		s.releaseSlot(id)
		s.fl[id].failed = true
		s.sendBack(id)
	}
	for _, w := range nd.waiters {
		if q := &s.peers[w.peer]; q.state == psActive {
			if sr := s.liveWaiter(q, p.node, w.slot, w.gen); sr != nil {
				sr.busyWait = false
				s.armWake(q, s.tickAtOrAfter(q, max(sr.until, s.now)))
			}
		}
	}
	nd.waiters = nil
}

func secs(t float64) time.Duration { return time.Duration(t * 1e9) }

package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptrace"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// tickEvery paces timeout checks, backoff expiry and stats publication.
const tickEvery = 100 * time.Millisecond

// errTimedOut marks the error of a request the loop gave up for taking too
// long (FlightDeadline).
var errTimedOut = errors.New("timed out")

// loop is the scheduler of one download. Its goroutine (run) owns every
// field; fetch goroutines only read the immutable ones and report on
// d.results.
type loop struct {
	d      *Download
	a      *Agent
	m      *core.Manifest
	cfg    Config
	policy ChunkPolicy
	n, cs  int

	held      bitset // verified and stored
	pending   bitset // missing and not in flight
	nMissing  int
	nPending  int
	grow      uint64 // bumped whenever a chunk goes back to pending
	flights   map[int][]*flight
	nFlights  int // live flights
	maxFlight int

	sources map[string]*srcState // peers by ID (banned ones kept, so not re-added)
	edge    *srcState            // the edge serving the download's edge chunks: edges[edgeIdx]
	avail   []int32              // known non-banned, current peers holding each chunk
	// localAvail counts only the peers in this peer's network location
	// (not remote).
	localAvail []int32
	// cacheAvail counts the managed caches of this peer's location holding
	// each chunk; while one of them is usable (cachesUp) the edge is not
	// asked for what they hold.
	cacheAvail []int32
	cachesUp   bool
	handedOut  bool      // a hand-out has arrived
	started    time.Time // when the loop started
	self       string    // our peer ID, from the last hand-out
	stripe     int
	stripes    int

	st           Stats            // counters, published to d.stats on each tick
	recv         map[string]int64 // bytes from each peer source since the last publish, for the edge's usage report
	lastProgress time.Time
	lastErr      error
	announced    bool // asked for the announce that follows the first chunk
	finished     bool
	nextID       uint64

	edges   []*srcState // one per a.edges, nil until used
	edgeIdx int
	// failingOver: findEdge is looking for another edge; no new search
	// before nextFailover.
	failingOver  bool
	nextFailover time.Time

	// Stream mode (Config.Mode): edgeOK holds the chunks the edge may be
	// asked for now (edgeList lists them, to clear), late the chunks of a
	// reader's window due within StreamLeadMs and lateDue their deadlines;
	// all recomputed by computeUrgent.
	stream    bool
	gateAt    time.Time // when the first edge request was launched (connGate)
	edgeOK    bitset
	lateSet   bitset // the chunks of late
	startSet  bitset // the start-up chunks of the readers (fast start)
	startList []int
	edgeList  []int
	late      []int
	lateDue   []time.Time

	// scratch
	order  []*srcState
	cands  []int
	urgent []int
	pos    []readPos
}

// srcState is the loop's view of one source.
type srcState struct {
	src       Source
	kind      SourceKind
	addr      string
	have      bitset // nil: holds everything (the edge)
	haveEpoch uint64 // bumped when have changes
	// emptyGrow/emptyHave remember a scan that found nothing to ask; it
	// stays empty until pending grows or have changes.
	emptyValid           bool
	emptyGrow, emptyHave uint64

	rate     float64       // EWMA of delivered bytes/s (Little's law per completion); 0 = unmeasured
	base     time.Duration // windowed minimum request latency (BaseLatency); 0 = unmeasured
	baseAt   time.Time
	inflight int
	failures int       // consecutive failures and timeouts
	until    time.Time // not asked before this (backoff)
	stale    bool      // missing from the latest hand-out
	banned   bool
	demoted  bool // not asked before until (DemoteAfter, DemoteFor)
	remote   bool // a peer in another network location (PeerInfo.Cost > 0)

	bytes, useful      int64
	requests, failsCnt int
}

// flight is one chunk request.
type flight struct {
	chunk    int
	src      *srcState
	start    time.Time
	timeout  time.Duration // RequestTimeout at launch
	deadline time.Time     // FlightDeadline, moved on as bytes arrive
	got      atomic.Int64  // bytes received so far, stored by the fetch goroutine
	ttfb     atomic.Int64  // time to the response's start, ns; 0 = not yet
	seen     int64         // got as the loop last saw it
	cancel   context.CancelFunc
	lc       *liveChunk // an edge response of a start-up chunk readers may play as it arrives (fast start)
	gate     bool       // the download's first edge request (stream mode: connGate)
	live     bool       // counted in flights; false once finished or canceled
	why      string     // why the loop canceled it: "timeout", "loser", "ban", "demote", "end"
}

// result is what a fetch goroutine reports.
type result struct {
	f        *flight
	n        int   // payload bytes of a complete response
	err      error // fetch failed
	bad      error // response failed verification (hash or length)
	storeErr error // verified but not stored
}

func newLoop(d *Download) *loop {
	m := d.m
	n := m.NumChunks()
	l := &loop{
		d: d, a: d.a, m: m, cfg: d.a.cfg, policy: d.a.policy,
		n: n, cs: m.ChunkSize,
		held:       fromBitfield(d.have),
		pending:    newBitset(n),
		flights:    map[int][]*flight{},
		sources:    map[string]*srcState{},
		edges:      make([]*srcState, len(d.a.edgeSrcs)),
		edgeIdx:    d.edgeIdx,
		avail:      make([]int32, n),
		localAvail: make([]int32, n),
		cacheAvail: make([]int32, n),
		recv:       map[string]int64{},
		st: Stats{
			Bytes:       map[SourceKind]int64{},
			UsefulBytes: map[SourceKind]int64{},
		},
	}
	for i := 0; i < n; i++ {
		if !l.held.has(i) {
			l.pending.set(i)
			l.nMissing++
		}
	}
	l.nPending = l.nMissing
	l.maxFlight = MaxFlights(l.cfg, l.cs)
	if l.cfg.Mode == ModeStream {
		l.stream = true
		l.edgeOK = newBitset(n)
		l.lateSet = newBitset(n)
		l.startSet = newBitset(n)
	}
	l.edge = &srcState{src: d.a.edgeSrcs[d.edgeIdx], kind: KindEdge}
	l.edges[d.edgeIdx] = l.edge
	return l
}

func (l *loop) run() {
	defer l.a.wg.Done()
	defer close(l.d.loopDone)
	defer l.shutdown()
	l.lastProgress = l.a.now()
	l.started = l.lastProgress
	if l.nMissing == 0 {
		l.complete()
		return
	}
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for !l.finished {
		l.schedule(l.a.now())
		select {
		case r := <-l.d.results:
			l.onResult(r)
			// Take every result already waiting before scheduling again.
			for drained := false; !drained && !l.finished; {
				select {
				case r := <-l.d.results:
					l.onResult(r)
				default:
					drained = true
				}
			}
		case h := <-l.d.handouts:
			l.onHandout(h)
		case j := <-l.d.edgeFound:
			l.onEdgeFound(j, l.a.now())
		case <-l.d.poke:
		case <-tick.C:
			l.onTick(l.a.now())
		case <-l.d.ctx.Done():
			l.d.finish(ErrClosed)
			return
		}
	}
}

// schedule gives every source with spare slots work: peers first (fastest
// first), then the edge; then endgame duplicates and reader rescues.
func (l *loop) schedule(now time.Time) {
	if l.finished || l.nMissing == 0 {
		return
	}
	l.computeUrgent(now)
	l.order = l.order[:0]
	l.cachesUp = false
	for _, s := range l.sources {
		if l.usable(s, now) {
			l.order = append(l.order, s)
			l.cachesUp = l.cachesUp || (s.kind == KindCache && !s.remote)
		}
	}
	sort.Slice(l.order, func(i, j int) bool {
		if l.order[i].rate != l.order[j].rate {
			return l.order[i].rate > l.order[j].rate
		}
		return l.order[i].src.ID() < l.order[j].src.ID()
	})
	if l.usable(l.edge, now) {
		if l.stream {
			// The edge takes only what is due or held by no peer: first, so
			// that start-up and late chunks are not left to slower peers.
			l.order = slices.Insert(l.order, 0, l.edge)
		} else {
			l.order = append(l.order, l.edge)
		}
	}
	for _, s := range l.order {
		l.fill(s, now)
	}
	if l.nPending == 0 {
		l.endgame(now)
	}
	l.rescue(now)
	if l.stream {
		l.rescueLate(now)
	}
}

func (l *loop) usable(s *srcState, now time.Time) bool {
	return !s.banned && !s.stale && !s.demoted && !now.Before(s.until)
}

// counted reports whether s's chunks count in avail and localAvail.
func (l *loop) counted(s *srcState) bool {
	return !s.stale && !s.banned && !s.demoted
}

// handoutGrace: until the first hand-out (or for this long after the
// start) the edge gets one request at a time, so that a download whose
// location has a managed cache asks the edge for almost nothing.
const handoutGrace = 500 * time.Millisecond

// streamPrefetchSlots caps, in stream mode, the edge requests for chunks
// that are neither start-up chunks nor late (the window's chunks no peer
// holds yet).
const streamPrefetchSlots = 2

// connGateMax bounds how long, in stream mode, the download's first edge
// request is its only request (connGate).
const connGateMax = 200 * time.Millisecond

// connGate reports whether the download's first edge request, in stream
// mode, is still waiting for a connection: until it has one it is the only
// request (of the loop and the announcer), so that the player's first
// chunk takes the warm connection the manifest came on rather than wait
// for a new one, a round trip more. At most connGateMax.
func (l *loop) connGate() bool {
	if !l.stream || l.gateAt.IsZero() {
		return false
	}
	select {
	case <-l.d.firstConn:
		return false
	default:
		return l.a.now().Sub(l.gateAt) < connGateMax
	}
}

// slots is how many requests s may have in flight (Slots).
func (l *loop) slots(s *srcState) int {
	if l.connGate() {
		return 0
	}
	if s.remote {
		return RemoteSlots
	}
	if s == l.edge && !l.stream && !l.handedOut && l.a.now().Sub(l.started) < handoutGrace {
		return 1
	}
	n := Slots(l.cfg, l.cs, s.kind, s.rate, s.base, s.failures)
	if s == l.edge && l.stream && len(l.startList) > 0 && s.failures == 0 {
		// Start-up chunks missing: all of them at once, each on its own
		// connection, rather than a few at a time through slow start.
		n = max(n, min(len(l.startList), l.cfg.MaxEdgeSlots))
	}
	return n
}

// timeout is how long a new request to s may take (RequestTimeout).
func (l *loop) timeout(s *srcState) time.Duration {
	return RequestTimeout(l.cfg, l.cs, s.kind, s.rate, s.inflight)
}

// fill launches requests on s while it has spare slots and the policy finds
// a chunk for it.
func (l *loop) fill(s *srcState, now time.Time) {
	slots := l.slots(s)
	for s.inflight < slots && l.nFlights < l.maxFlight && l.nPending > 0 && !l.connGate() {
		if s.emptyValid && s.emptyGrow == l.grow && s.emptyHave == s.haveEpoch {
			return
		}
		l.cands = l.pending.appendAnd(l.cands[:0], s.have)
		if len(l.cands) == 0 {
			s.emptyValid, s.emptyGrow, s.emptyHave = true, l.grow, s.haveEpoch
			return
		}
		if s.remote {
			// Another network location: only what no peer in ours holds.
			l.cands = slices.DeleteFunc(l.cands, func(i int) bool { return l.localAvail[i] > 0 })
			if len(l.cands) == 0 {
				return
			}
		}
		if s == l.edge && l.stream {
			// Streaming: start-up chunks, chunks due soon, and chunks of a
			// window no peer holds; the latter on streamPrefetchSlots
			// requests at most, so that a viewer filling its window does
			// not crowd out, on the edge's uplink, the start-up chunks of
			// the viewers joining.
			prefetchOK := s.inflight < streamPrefetchSlots
			l.cands = slices.DeleteFunc(l.cands, func(i int) bool {
				return !l.edgeOK.has(i) || !prefetchOK && !l.startSet.has(i) && !l.lateSet.has(i)
			})
			if len(l.cands) == 0 {
				return
			}
		} else if l.stream && len(l.late) > 0 {
			// Streaming: a chunk due within StreamLeadMs is the edge's.
			l.cands = slices.DeleteFunc(l.cands, func(i int) bool { return l.lateSet.has(i) })
			if len(l.cands) == 0 {
				return
			}
		} else if s == l.edge && l.cachesUp {
			// A managed cache of ours serves what it holds: the edge only the rest.
			l.cands = slices.DeleteFunc(l.cands, func(i int) bool { return l.cacheAvail[i] > 0 })
			if len(l.cands) == 0 {
				return
			}
		}
		i := l.policy.Pick(PickInput{
			Kind:       s.kind,
			Candidates: l.cands,
			Avail:      l.avail,
			Urgent:     l.urgent,
			Stripe:     l.stripe,
			Stripes:    l.stripes,
			Rand:       l.d.rnd,
		})
		if !l.pending.has(i) || (s.have != nil && !s.have.has(i)) {
			return // the policy declined (or answered nonsense)
		}
		l.launch(s, i, now)
	}
}

// endgame runs once every missing chunk is in flight: idle sources get
// duplicates of the chunks with the fewest copies, oldest first; the first
// verified copy cancels the others.
func (l *loop) endgame(now time.Time) {
	for _, s := range l.order {
		for s.inflight < l.slots(s) && l.nFlights < l.maxFlight {
			best, bestCopies, bestStart := -1, 0, time.Time{}
			for j, fl := range l.flights {
				if len(fl) >= l.cfg.EndgameCopies || (s.have != nil && !s.have.has(j)) || flightFrom(fl, s) || (s.remote && l.localAvail[j] > 0) ||
					(s == l.edge && !l.stream && l.cachesUp && l.cacheAvail[j] > 0) || (s == l.edge && l.stream && !l.edgeOK.has(j)) {
					continue
				}
				start := fl[0].start
				if best < 0 || len(fl) < bestCopies || (len(fl) == bestCopies && start.Before(bestStart)) {
					best, bestCopies, bestStart = j, len(fl), start
				}
			}
			if best < 0 {
				break
			}
			l.launch(s, best, now)
		}
	}
}

// rescue asks the edge for the chunk a reader is blocked on when only peers
// have had it in flight for RescueMs, so playback does not wait on a slow peer.
func (l *loop) rescue(now time.Time) {
	if len(l.pos) == 0 || !l.usable(l.edge, now) || l.edge.inflight >= l.slots(l.edge)+2 {
		return
	}
	for _, p := range l.pos {
		j := p.chunk
		for j < l.n && l.held.has(j) {
			j++
		}
		fl := l.flights[j]
		if j >= l.n || len(fl) == 0 || flightFrom(fl, l.edge) || now.Sub(fl[0].start) < ms(l.cfg.RescueMs) {
			continue
		}
		l.launch(l.edge, j, now)
		if l.edge.inflight >= l.slots(l.edge)+2 {
			return
		}
	}
}

func flightFrom(fl []*flight, s *srcState) bool {
	for _, f := range fl {
		if f.src == s {
			return true
		}
	}
	return false
}

// computeUrgent lists the missing chunks in each reader's window: the
// ReaderWindow chunks from its position, or in stream mode the chunks due
// within StreamWindowMs (at least the one it needs). In stream mode it also
// marks the chunks the edge may be asked for: the start-up chunks after
// where the reader started, the chunks due within StreamLeadMs (late), and
// the window's chunks no peer holds (for a crowd that plays in step, only
// this peer's share of them, every stripes-th chunk: the others come from
// the peers that fetch them, or from the edge once they are late).
func (l *loop) computeUrgent(now time.Time) {
	l.pos = l.d.readerPositions(l.pos[:0])
	l.urgent = l.urgent[:0]
	if !l.stream {
		for _, p := range l.pos {
			for i := p.chunk; i < l.n && i < p.chunk+l.cfg.ReaderWindow; i++ {
				if !l.held.has(i) {
					l.urgent = append(l.urgent, i)
				}
			}
		}
		return
	}
	for _, i := range l.edgeList {
		l.edgeOK.clear(i)
	}
	for _, i := range l.late {
		l.lateSet.clear(i)
	}
	for _, i := range l.startList {
		l.startSet.clear(i)
	}
	l.startList = l.startList[:0]
	l.edgeList, l.late, l.lateDue = l.edgeList[:0], l.late[:0], l.lateDue[:0]
	rate := l.cfg.StreamRateBps
	window, lead := ms(l.cfg.StreamWindowMs), ms(l.cfg.StreamLeadMs)
	for _, p := range l.pos {
		if !l.held.has(p.chunk) {
			if behind := now.Sub(p.due(l.m, p.chunk, rate)); behind > 0 {
				p.anchor = p.anchor.Add(behind) // the player is stalled on it
			}
		}
		startEnd := p.startEnd
		for i := p.chunk; i < l.n; i++ {
			due := p.due(l.m, i, rate)
			slack := due.Sub(now)
			if slack > window && i > p.chunk {
				break
			}
			if l.held.has(i) {
				continue
			}
			l.urgent = append(l.urgent, i)
			mine := l.stripes <= 1 || i%l.stripes == l.stripe
			if i <= startEnd && !l.startSet.has(i) {
				l.startSet.set(i)
				l.startList = append(l.startList, i)
			}
			if i <= startEnd || slack < lead || (l.avail[i] == 0 && mine) {
				if !l.edgeOK.has(i) {
					l.edgeOK.set(i)
					l.edgeList = append(l.edgeList, i)
				}
			}
			if slack < lead && !l.lateSet.has(i) {
				l.lateSet.set(i)
				l.late = append(l.late, i)
				l.lateDue = append(l.lateDue, due)
			}
		}
	}
}

// rescueLate asks the edge, in stream mode, for the late chunks (due within
// StreamLeadMs) that only peers have in flight and that none of them will
// deliver in time at the rate it is sending.
func (l *loop) rescueLate(now time.Time) {
	if len(l.late) == 0 || !l.usable(l.edge, now) {
		return
	}
	for k, j := range l.late {
		if l.edge.inflight >= l.slots(l.edge)+2 {
			return
		}
		fl := l.flights[j]
		if len(fl) == 0 || flightFrom(fl, l.edge) || l.onTime(fl, l.lateDue[k], now) {
			continue
		}
		l.st.EdgeRescues++
		l.launch(l.edge, j, now)
	}
}

// onTime reports whether one of the flights fl should complete before due:
// its remaining bytes at its source's rate shared among that source's
// requests. A flight from a source not yet measured counts as on time
// while the edge could still deliver the chunk in time after it (twice
// edgeNeed before due): the last moment to ask the edge instead. Both
// keep a tick of margin: the loop may look again only a tick later.
func (l *loop) onTime(fl []*flight, due time.Time, now time.Time) bool {
	for _, f := range fl {
		rem := float64(int64(l.m.ChunkLen(f.chunk)) - f.got.Load())
		if r := f.src.rate / float64(max(1, f.src.inflight)); r > 0 {
			if now.Add(time.Duration(rem/r*float64(time.Second)) + tickEvery).Before(due) {
				return true
			}
		} else if now.Add(2*l.edgeNeed(f.chunk) + tickEvery).Before(due) {
			return true
		}
	}
	return false
}

// edgeNeed is how long the edge takes to deliver chunk i by its measured
// latency and rate (200 ms while unmeasured).
func (l *loop) edgeNeed(i int) time.Duration {
	e := l.edge
	if e.rate <= 0 {
		return 200 * time.Millisecond
	}
	return e.base + time.Duration(float64(l.m.ChunkLen(i))/e.rate*float64(max(1, e.inflight))*float64(time.Second))
}

func (l *loop) launch(s *srcState, i int, now time.Time) {
	ctx, cancel := context.WithCancel(l.d.ctx)
	t := l.timeout(s)
	f := &flight{chunk: i, src: s, start: now, timeout: t, deadline: FlightDeadline(now, time.Time{}, t), cancel: cancel, live: true}
	if l.stream && s.kind == KindEdge && l.gateAt.IsZero() {
		f.gate, l.gateAt = true, now
	}
	if l.a.fastStart && s.kind == KindEdge && l.startSet.has(i) {
		f.lc = newLiveChunk(l.m.ChunkLen(i))
		l.d.setLive(i, f.lc)
	}
	l.flights[i] = append(l.flights[i], f)
	if l.pending.has(i) {
		l.pending.clear(i)
		l.nPending--
	}
	s.inflight++
	s.requests++
	l.nFlights++
	l.st.Requests++
	l.a.wg.Add(1) // the loop is itself counted, so this cannot race Close's Wait
	go l.fetch(ctx, f, s.src)
}

// fetch runs in its own goroutine: fetch, verify, store, report.
func (l *loop) fetch(ctx context.Context, f *flight, src Source) {
	defer l.a.wg.Done()
	defer f.cancel()
	i, size := f.chunk, l.m.ChunkLen(f.chunk)
	var buf []byte
	if f.lc != nil {
		buf = f.lc.buf // readers may be playing from it: not pooled
		defer f.lc.end()
	} else {
		bp := l.d.getBuf()
		defer l.d.putBuf(bp)
		buf = *bp
	}
	r := result{f: f}
	if f.gate {
		opened := func() {
			l.d.firstConnOnce.Do(func() { close(l.d.firstConn) })
			select {
			case l.d.poke <- struct{}{}: // the loop may launch the rest
			default:
			}
		}
		defer opened() // also when it failed before having a connection
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { opened() }})
	}
	data, err := src.Fetch(ctx, l.m.Root, i, size, buf, func(n int) {
		if n == 0 {
			f.ttfb.Store(max(1, int64(l.a.now().Sub(f.start))))
		}
		f.got.Store(int64(n))
		if f.lc != nil && n > 0 {
			f.lc.advance(n)
		}
	})
	switch {
	case err == nil:
		r.n = len(data)
		if err := l.m.CheckChunk(i, data); err != nil {
			r.bad = err
		} else if err := l.d.obj.WriteChunk(i, data); err != nil {
			r.storeErr = err
		}
	case errors.Is(err, wire.ErrChunkTooLarge):
		r.bad = err // a source never legitimately sends more than the chunk
	default:
		r.err = err
	}
	select {
	case l.d.results <- r:
	case <-l.d.loopDone:
	}
}

// drop removes a live flight from the books.
func (l *loop) drop(f *flight) {
	if !f.live {
		return
	}
	f.live = false
	f.src.inflight--
	l.nFlights--
	fl := l.flights[f.chunk]
	for k, g := range fl {
		if g == f {
			fl = slices.Delete(fl, k, k+1)
			break
		}
	}
	if len(fl) == 0 {
		delete(l.flights, f.chunk)
	} else {
		l.flights[f.chunk] = fl
	}
}

// cancelFlight stops a live request for the given reason.
func (l *loop) cancelFlight(f *flight, why string) {
	if !f.live {
		return
	}
	l.drop(f)
	f.why = why
	f.cancel()
}

// requeue returns chunk i to pending when nothing is fetching it.
func (l *loop) requeue(i int) {
	if l.held.has(i) || len(l.flights[i]) > 0 || l.pending.has(i) {
		return
	}
	l.pending.set(i)
	l.nPending++
	l.grow++
}

func (l *loop) onResult(r result) {
	f, s, i := r.f, r.f.src, r.f.chunk
	now := l.a.now()
	wasLive := f.live
	l.drop(f)
	if f.lc != nil && (r.err != nil || r.bad != nil || r.storeErr != nil) {
		l.d.dropLive(i, f.lc)
	}
	if r.n > 0 {
		l.st.Bytes[s.kind] += int64(r.n)
		s.bytes += int64(r.n)
		if s != l.edge {
			l.recv[s.src.ID()] += int64(r.n)
		}
	}
	if r.err != nil {
		l.st.PartialBytes += f.got.Load()
	}

	switch {
	case r.bad != nil:
		l.st.CorruptChunks++
		l.onBad(s, i, r.bad, now)
	case r.storeErr != nil:
		l.fail(fmt.Errorf("download %s: store chunk %d: %w", l.m.URL, i, r.storeErr))
		return
	case r.err == nil:
		if wasLive {
			l.measure(s, r.n, now.Sub(f.start), time.Duration(f.ttfb.Load()), now)
		}
		s.failures = 0
		if l.held.has(i) {
			l.st.DuplicateBytes += int64(r.n)
		} else {
			l.gotChunk(i, s, r.n, now)
		}
	case f.why != "" || l.d.ctx.Err() != nil:
		// We canceled it; the error is ours, not the source's.
	case errors.Is(r.err, ErrSourceBusy):
		l.st.Busy++
		s.until = now.Add(BusyBackoff(l.d.rnd))
	case errors.Is(r.err, wire.ErrChunkNotFound):
		// It announced the chunk but does not have it: stop believing it.
		if s.have != nil && s.have.has(i) {
			if l.counted(s) {
				l.avail[i]--
				if !s.remote {
					l.localAvail[i]--
				}
				if s.kind == KindCache && !s.remote {
					l.cacheAvail[i]--
				}
			}
			s.have.clear(i)
			s.haveEpoch++
		}
		l.sourceFailed(s, now, r.err)
	default:
		l.sourceFailed(s, now, r.err)
	}
	l.requeue(i)
}

// measure folds one completion into s's rate (NextRate).
func (l *loop) measure(s *srcState, n int, dur, ttfb time.Duration, now time.Time) {
	s.rate = NextRate(s.rate, n, s.inflight, dur)
	if ttfb > 0 {
		s.base, s.baseAt = BaseLatency(s.base, s.baseAt, ttfb, now)
	}
}

func (l *loop) sourceFailed(s *srcState, now time.Time, err error) {
	s.failures++
	s.failsCnt++
	l.st.Failures++
	l.lastErr = err
	s.until = now.Add(FailureBackoff(s.kind, s.failures))
	l.a.log.Debug("chunk fetch failed", "root", l.m.Root.Short(), "source", s.src.ID(), "failures", s.failures, "err", err)
	switch {
	case s.kind == KindEdge:
		if s == l.edge && (unreachable(err) || s.failures >= EdgeFailoverAfter) {
			l.failover(now, err)
		}
	case unreachable(err), s.failures >= DemoteAfter && (s.bytes == 0 || !errors.Is(err, errTimedOut)):
		l.demote(s, now, err)
	}
}

// demote stops asking peer s for DemoteFor: it refused a connection (it is
// gone), or it failed DemoteAfter times in a row, the last time otherwise
// than by timing out (its transfers broke: it is gone, or it hangs up) or
// without ever having sent this download a whole chunk (it advertises
// chunks it never sends). A peer that did send chunks and now times out is
// left to FailureBackoff: in a crowd whose links are full, honest peers
// time out too. The demoted
// peer's other requests are canceled and its chunks no longer count as
// available; the edge hears of it once per demotion by this agent, and
// hands it out no more once enough peers have said so.
func (l *loop) demote(s *srcState, now time.Time, err error) {
	if s.demoted || s.banned {
		return
	}
	if l.counted(s) {
		l.uncount(s)
	}
	s.demoted = true
	s.until = now.Add(DemoteFor)
	l.st.Demotions++
	if len(l.st.Demoted) < maxDemoted && !slices.Contains(l.st.Demoted, s.src.ID()) {
		l.st.Demoted = append(l.st.Demoted, s.src.ID())
	}
	for _, fl := range l.flights {
		for _, f := range slices.Clone(fl) {
			if f.src == s {
				l.cancelFlight(f, "demote")
				l.requeue(f.chunk)
			}
		}
	}
	l.a.log.Info("peer demoted: not asked for a while", "root", l.m.Root.Short(), "peer", s.src.ID(), "for", DemoteFor, "err", err)
	if l.a.demote(s.src.ID(), s.until) {
		l.a.wg.Add(1)
		go l.a.report(l.m.Root, s.src.ID(), wire.ReportUnresponsive, 0, err.Error())
	}
}

// failover starts looking for another edge that serves this download's
// object version, after the one serving its edge chunks failed (err).
func (l *loop) failover(now time.Time, err error) {
	if len(l.edges) < 2 || l.failingOver || now.Before(l.nextFailover) {
		return
	}
	l.failingOver = true
	l.a.log.Warn("edge failing; looking for another edge", "root", l.m.Root.Short(), "edge", l.edge.src.ID(), "err", err)
	l.a.wg.Add(1) // the loop is itself counted
	go l.d.findEdge(l.edgeIdx)
}

// onEdgeFound moves the download's edge chunks to edge j (index in
// a.edges), or, j < 0, notes that no other edge serves them now.
func (l *loop) onEdgeFound(j int, now time.Time) {
	l.failingOver = false
	if j < 0 || j == l.edgeIdx {
		l.nextFailover = now.Add(EdgeRetryAfter)
		return
	}
	old := l.edge
	if l.edges[j] == nil {
		l.edges[j] = &srcState{src: l.a.edgeSrcs[j], kind: KindEdge}
	}
	l.edge, l.edgeIdx = l.edges[j], j
	l.edge.failures, l.edge.until = 0, time.Time{}
	l.st.EdgeFailovers++
	l.a.log.Warn("edge chunks now from another edge", "root", l.m.Root.Short(), "from", old.src.ID(), "to", l.edge.src.ID())
}

// onBad handles a chunk that failed verification: a peer is banned for
// this agent and reported to the edge; the edge (which we cannot ban) is
// backed off. The bytes were never stored.
func (l *loop) onBad(s *srcState, i int, err error, now time.Time) {
	if s.kind == KindEdge {
		l.a.log.Error("edge sent a chunk that fails verification", "root", l.m.Root.Short(), "chunk", i, "err", err)
		l.sourceFailed(s, now, err)
		return
	}
	reason := "hash mismatch"
	if errors.Is(err, wire.ErrChunkTooLarge) || errors.Is(err, core.ErrChunkLength) {
		reason = "wrong length"
	}
	l.a.log.Warn("banning peer for a bad chunk", "root", l.m.Root.Short(), "peer", s.src.ID(), "chunk", i, "reason", reason)
	l.a.ban(s.src.ID(), s.addr)
	l.banSource(s)
	l.a.wg.Add(1)
	go l.a.report(l.m.Root, s.src.ID(), wire.ReportBadChunk, i, reason)
}

// banSource stops using s: its flights are dropped and its chunks no
// longer count as available.
func (l *loop) banSource(s *srcState) {
	if s.banned {
		return
	}
	if l.counted(s) {
		l.uncount(s)
	}
	s.banned = true
	l.st.Banned = append(l.st.Banned, s.src.ID())
	for _, fl := range l.flights {
		for _, f := range slices.Clone(fl) {
			if f.src == s {
				l.cancelFlight(f, "ban")
				l.requeue(f.chunk)
			}
		}
	}
}

func (l *loop) uncount(s *srcState) {
	cache := s.kind == KindCache && !s.remote
	for _, i := range s.have.appendAnd(l.cands[:0], nil) {
		l.avail[i]--
		if !s.remote {
			l.localAvail[i]--
		}
		if cache {
			l.cacheAvail[i]--
		}
	}
}

func (l *loop) count(s *srcState) {
	cache := s.kind == KindCache && !s.remote
	for _, i := range s.have.appendAnd(l.cands[:0], nil) {
		l.avail[i]++
		if !s.remote {
			l.localAvail[i]++
		}
		if cache {
			l.cacheAvail[i]++
		}
	}
}

func (l *loop) gotChunk(i int, s *srcState, n int, now time.Time) {
	l.held.set(i)
	l.nMissing--
	l.st.UsefulBytes[s.kind] += int64(n)
	s.useful += int64(n)
	l.lastProgress = now
	for _, f := range slices.Clone(l.flights[i]) {
		l.cancelFlight(f, "loser")
	}
	l.d.publish(i)
	if !l.announced {
		l.announced = true
		l.d.requestAnnounce()
	}
	if l.nMissing == 0 {
		l.complete()
	}
}

// onHandout refreshes the peer sources from an announce response.
func (l *loop) onHandout(h handout) {
	now := l.a.now()
	l.self = h.self
	seen := map[string]bool{}
	for _, p := range h.peers {
		if len(seen) >= l.cfg.MaxPeers {
			break
		}
		if p.PeerID == "" || p.PeerID == h.self || p.Addr == "" || seen[p.PeerID] {
			continue
		}
		if _, _, err := net.SplitHostPort(p.Addr); err != nil {
			continue
		}
		bf, err := core.BitfieldFromBytes(l.n, p.Have)
		if err != nil {
			l.a.log.Debug("hand-out: bad bitfield", "peer", p.PeerID, "err", err)
			continue
		}
		s := l.sources[p.PeerID]
		if s != nil && s.addr != p.Addr && !s.banned && s.inflight == 0 {
			if l.counted(s) {
				l.uncount(s)
			}
			delete(l.sources, p.PeerID)
			s = nil
		}
		if s == nil {
			if l.a.isBanned(p.PeerID, p.Addr) {
				continue
			}
			kind := KindPeer
			if p.Managed {
				kind = KindCache
			}
			s = &srcState{
				src:  l.a.peerSource(p.PeerID, p.Addr, kind),
				kind: kind,
				addr: p.Addr,
				have: newBitset(l.n),
			}
			if until := l.a.demotedUntil(p.PeerID); now.Before(until) {
				s.demoted, s.until, s.failures = true, until, DemoteAfter // demoted by another download
			}
			l.sources[p.PeerID] = s
		}
		if s.banned {
			continue
		}
		if l.counted(s) {
			l.uncount(s)
		}
		s.have, s.stale, s.remote = fromBitfield(bf), false, p.Cost > 0
		s.haveEpoch++
		if l.counted(s) {
			l.count(s)
		}
		seen[p.PeerID] = true
	}
	for id, s := range l.sources {
		switch {
		case s.banned:
		case l.a.isBanned(id, s.addr): // banned by another download of this agent
			l.banSource(s)
		case !seen[id] && !s.stale:
			if l.counted(s) {
				l.uncount(s)
			}
			s.stale = true
		}
		if s.stale && s.inflight == 0 && !s.banned {
			delete(l.sources, id)
		}
	}
	l.handedOut = true
	l.yieldToCaches()
	// Our stripe: our rank among the handed-out peers of our network
	// location and us, by ID (so that each location asks the edge for the
	// whole object between its peers, instead of fetching across).
	ids := make([]string, 0, len(seen)+1)
	for id := range seen {
		if s := l.sources[id]; s == nil || !s.remote {
			ids = append(ids, id)
		}
	}
	ids = append(ids, h.self)
	slices.Sort(ids)
	l.stripes = len(ids)
	l.stripe = slices.Index(ids, h.self)
}

// yieldToCaches cancels the edge requests, made before a hand-out named a
// managed cache of this location, for chunks the cache holds and of which
// less than half has arrived: the cache serves them instead.
func (l *loop) yieldToCaches() {
	for _, fl := range l.flights {
		for _, f := range slices.Clone(fl) {
			if f.src == l.edge && l.cacheAvail[f.chunk] > 0 && f.got.Load() < int64(l.m.ChunkLen(f.chunk)/2) {
				l.cancelFlight(f, "cache")
				l.requeue(f.chunk)
			}
		}
	}
}

func (l *loop) onTick(now time.Time) {
	for _, fl := range l.flights {
		for _, f := range slices.Clone(fl) {
			if !f.live {
				continue // canceled by a demotion earlier in this pass
			}
			if g := f.got.Load(); g != f.seen {
				f.seen = g
				f.deadline = FlightDeadline(f.start, now, f.timeout)
			}
			if now.After(f.deadline) {
				l.cancelFlight(f, "timeout")
				l.st.Timeouts++
				started := "no response yet"
				if ttfb := time.Duration(f.ttfb.Load()); ttfb > 0 {
					started = fmt.Sprintf("response after %v", ttfb.Round(time.Millisecond))
				}
				l.sourceFailed(f.src, now, fmt.Errorf("chunk %d from %s: %d of %d bytes in %v (%s), none in the last %v: %w", f.chunk, f.src.src.ID(), f.seen, l.m.ChunkLen(f.chunk), now.Sub(f.start).Round(time.Millisecond), started, f.timeout, errTimedOut))
				l.requeue(f.chunk)
			}
		}
	}
	for _, s := range l.sources {
		if s.demoted && !now.Before(s.until) {
			// Probation: one request at a time (s.failures > 0); a failure
			// demotes it again.
			s.demoted = false
			if l.counted(s) {
				l.count(s)
			}
		}
	}
	if l.stream && len(l.urgent) == 0 && l.nFlights == 0 {
		// No player needs a chunk soon: a stream waits (the edge is asked
		// for nothing past a reader's window), it has not stalled.
		l.lastProgress = now
	}
	if stall := ms(l.cfg.StallTimeoutMs); now.Sub(l.lastProgress) > stall {
		l.fail(fmt.Errorf("download %s: no chunk verified for %v (last error: %v)", l.m.URL, stall, l.lastErr))
		return
	}
	l.publishStats()
}

// publishStats copies the loop's counters to d.stats.
func (l *loop) publishStats() {
	src := make([]SourceStats, 0, len(l.sources)+1)
	add := func(s *srcState) {
		src = append(src, SourceStats{
			ID: s.src.ID(), Kind: s.kind, Bytes: s.bytes, UsefulBytes: s.useful,
			Requests: s.requests, Failures: s.failsCnt, RateBps: s.rate, Banned: s.banned, Demoted: s.demoted,
		})
	}
	add(l.edge)
	for _, s := range l.edges {
		if s != nil && s != l.edge {
			add(s)
		}
	}
	for _, s := range l.sources {
		add(s)
	}
	slices.SortFunc(src[1:], func(a, b SourceStats) int {
		if a.Kind != b.Kind {
			return strings.Compare(string(a.Kind), string(b.Kind))
		}
		return strings.Compare(a.ID, b.ID)
	})
	d := l.d
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &d.stats
	st.Bytes, st.UsefulBytes = cloneMap(l.st.Bytes), cloneMap(l.st.UsefulBytes)
	st.DuplicateBytes = l.st.DuplicateBytes
	st.CorruptChunks = l.st.CorruptChunks
	st.Banned = slices.Clone(l.st.Banned)
	st.Demoted = slices.Clone(l.st.Demoted)
	st.Demotions, st.EdgeFailovers, st.PartialBytes = l.st.Demotions, l.st.EdgeFailovers, l.st.PartialBytes
	st.Requests, st.Timeouts, st.Failures, st.Busy = l.st.Requests, l.st.Timeouts, l.st.Failures, l.st.Busy
	st.EdgeRescues = l.st.EdgeRescues
	st.Sources = src
	for id, n := range l.recv {
		d.received[id] += n
	}
	clear(l.recv)
}

func (l *loop) complete() {
	l.publishStats()
	l.finished = true
	l.d.finish(nil)
	l.d.requestAnnounce() // tell the swarm we now hold everything
	st := l.d.Stats()
	l.a.log.Info("download complete", "url", l.m.URL, "root", l.m.Root.Short(),
		"secs", st.Finished.Sub(st.Started).Seconds(),
		"edge_bytes", st.Bytes[KindEdge], "peer_bytes", st.Bytes[KindPeer], "corrupt", st.CorruptChunks)
}

func (l *loop) fail(err error) {
	l.publishStats()
	l.finished = true
	l.a.log.Error("download failed", "url", l.m.URL, "err", err)
	l.d.finish(err)
}

// shutdown cancels what is still in flight; a failed download also
// releases its storage handle (a complete one keeps seeding).
func (l *loop) shutdown() {
	l.publishStats() // the last bytes received, for the leaving announce
	for _, fl := range l.flights {
		for _, f := range slices.Clone(fl) {
			l.cancelFlight(f, "end")
		}
	}
	if l.d.failed() {
		l.d.obj.Close()
	}
}

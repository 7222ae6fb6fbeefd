package sim

// The event queue: events ordered by (time, sequence), so that events due
// at the same instant run in the order they were scheduled and a run is a
// pure function of its seed.
//
// Most events are due a fixed delay after they are scheduled (a request
// and a response cross the network in one-way latency, an announce
// response comes back a round trip later, the next announce follows an
// interval later). Since the clock never goes back, the events of one such
// delay are scheduled in the order they fall due: each delay has a FIFO
// lane, O(1) to push and pop. The other events (pools, ticks, backoffs)
// live in a 4-ary min-heap. pop takes the earliest of the heap's top and
// the lanes' heads, so the order is exactly that of a single heap.

type evKind uint8

const (
	evPool     evKind = iota // a bandwidth pool's next flow completes (obj: pool)
	evWake                   // a peer's loop tick: deadlines, backoffs, stall (obj: peer)
	evAnnounce               // a peer announces to the tracker (obj: peer)
	evHandout                // the announce response reaches the peer (obj: peer)
	evArrive                 // a request reaches its sender (obj: flight)
	evDeliver                // a response reaches its requester (obj: flight)
	evJoin                   // a peer starts its download (obj: peer)
	evLeave                  // a peer leaves the swarm (obj: peer)
	evAdmit                  // a refused requester's backoff ends at a node with a free upload slot (obj: node)
)

// Positions of an event that is not in the heap.
const (
	notQueued = -1
	inLane    = -2
)

// event is one schedulable item. Handles are stable: pools, timers and
// flights keep theirs and re-arm it.
type event struct {
	at   float64
	seq  uint64
	pos  int32 // index in heap; notQueued or inLane
	kind evKind
	obj  int32
}

// slot is a heap or lane entry; it carries the key so that sifting does
// not chase the event.
type slot struct {
	at  float64
	seq uint64
	h   int32
}

// lane is the FIFO of the events scheduled a fixed delay d ahead. A
// canceled or rescheduled event leaves a stale entry (its seq no longer
// matches), skipped when it reaches the head.
type lane struct {
	d    float64
	buf  []slot
	head int
}

// maxLanes bounds the distinct delays that get a lane; others use the heap.
const maxLanes = 4

type queue struct {
	ev    []event
	heap  []slot
	lanes []lane
	seq   uint64
	pops  uint64
}

func (q *queue) alloc(kind evKind, obj int32) int32 {
	q.ev = append(q.ev, event{pos: notQueued, kind: kind, obj: obj})
	return int32(len(q.ev) - 1)
}

func (q *queue) queued(h int32) bool { return q.ev[h].pos != notQueued }

func (a slot) before(b slot) bool { return a.at < b.at || (a.at == b.at && a.seq < b.seq) }

// schedule (re)arms h at time at, in the heap.
func (q *queue) schedule(h int32, at float64) {
	e := &q.ev[h]
	if e.pos == inLane {
		e.pos = notQueued // its lane entry goes stale
	}
	e.at = at
	q.seq++
	e.seq = q.seq
	if e.pos < 0 {
		e.pos = int32(len(q.heap))
		q.heap = append(q.heap, slot{at, q.seq, h})
		q.up(int(e.pos))
		return
	}
	i := int(e.pos)
	q.heap[i].at, q.heap[i].seq = at, q.seq
	q.up(i)
	q.down(int(q.ev[h].pos))
}

// after (re)arms h at now+d, where now is the current virtual time (never
// less than at any earlier call). The order is the one schedule(h, now+d)
// would give.
func (q *queue) after(h int32, now, d float64) {
	var l *lane
	for i := range q.lanes {
		if q.lanes[i].d == d {
			l = &q.lanes[i]
			break
		}
	}
	at := now + d
	if l == nil {
		// A lane left empty takes the new delay (the announce interval
		// changes as the swarm grows).
		for i := range q.lanes {
			if q.lanes[i].head == len(q.lanes[i].buf) {
				l = &q.lanes[i]
				l.d, l.buf, l.head = d, l.buf[:0], 0
				break
			}
		}
	}
	if l == nil {
		if len(q.lanes) == maxLanes {
			q.schedule(h, at)
			return
		}
		q.lanes = append(q.lanes, lane{d: d})
		l = &q.lanes[len(q.lanes)-1]
	}
	if n := len(l.buf); n > l.head && l.buf[n-1].at > at {
		q.schedule(h, at) // the clock went back: never in a run
		return
	}
	q.cancel(h)
	e := &q.ev[h]
	e.at = at
	q.seq++
	e.seq = q.seq
	e.pos = inLane
	if l.head > 0 && l.head >= len(l.buf)/2 {
		n := copy(l.buf, l.buf[l.head:])
		l.buf = l.buf[:n]
		l.head = 0
	}
	l.buf = append(l.buf, slot{at, q.seq, h})
}

// cancel disarms h if it is queued.
func (q *queue) cancel(h int32) {
	i := int(q.ev[h].pos)
	if i == inLane {
		q.ev[h].pos = notQueued
		return
	}
	if i < 0 {
		return
	}
	last := len(q.heap) - 1
	if i != last {
		q.swap(i, last)
	}
	q.heap = q.heap[:last]
	q.ev[h].pos = notQueued
	if i != last {
		moved := q.heap[i].h
		q.up(i)
		q.down(int(q.ev[moved].pos))
	}
}

// pop removes and returns the earliest event.
func (q *queue) pop() (int32, bool) {
	best := -1 // lane index; -1 the heap
	var top slot
	if len(q.heap) > 0 {
		top = q.heap[0]
	}
	for i := range q.lanes {
		l := &q.lanes[i]
		for l.head < len(l.buf) {
			s := l.buf[l.head]
			if e := &q.ev[s.h]; e.pos == inLane && e.seq == s.seq {
				break
			}
			l.head++ // stale
		}
		if l.head == len(l.buf) {
			l.buf, l.head = l.buf[:0], 0
			continue
		}
		if s := l.buf[l.head]; (best < 0 && len(q.heap) == 0) || s.before(top) {
			best, top = i, s
		}
	}
	if best < 0 {
		if len(q.heap) == 0 {
			return 0, false
		}
		q.cancel(top.h)
	} else {
		q.lanes[best].head++
		q.ev[top.h].pos = notQueued
	}
	q.pops++
	return top.h, true
}

func (q *queue) swap(i, j int) {
	q.heap[i], q.heap[j] = q.heap[j], q.heap[i]
	q.ev[q.heap[i].h].pos = int32(i)
	q.ev[q.heap[j].h].pos = int32(j)
}

func (q *queue) up(i int) {
	for i > 0 {
		p := (i - 1) / 4
		if !q.heap[i].before(q.heap[p]) {
			return
		}
		q.swap(i, p)
		i = p
	}
}

func (q *queue) down(i int) {
	n := len(q.heap)
	for {
		c := 4*i + 1
		if c >= n {
			return
		}
		m := c
		for k := c + 1; k < c+4 && k < n; k++ {
			if q.heap[k].before(q.heap[m]) {
				m = k
			}
		}
		if !q.heap[m].before(q.heap[i]) {
			return
		}
		q.swap(i, m)
		i = m
	}
}

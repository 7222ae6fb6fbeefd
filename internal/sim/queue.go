package sim

// The event queue: a 4-ary min-heap of event handles ordered by (time,
// sequence), so that events due at the same instant run in the order they
// were scheduled and a run is a pure function of its seed.

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

// event is one schedulable item. Handles are stable: pools, timers and
// flights keep theirs and re-arm it.
type event struct {
	at   float64
	seq  uint64
	pos  int32 // index in heap; -1 when not queued
	kind evKind
	obj  int32
}

// slot is a heap entry; it carries the key so that sifting does not chase
// the event.
type slot struct {
	at  float64
	seq uint64
	h   int32
}

type queue struct {
	ev   []event
	heap []slot
	seq  uint64
	pops uint64
}

func (q *queue) alloc(kind evKind, obj int32) int32 {
	q.ev = append(q.ev, event{pos: -1, kind: kind, obj: obj})
	return int32(len(q.ev) - 1)
}

func (q *queue) queued(h int32) bool { return q.ev[h].pos >= 0 }

func (a slot) before(b slot) bool { return a.at < b.at || (a.at == b.at && a.seq < b.seq) }

// schedule (re)arms h at time at.
func (q *queue) schedule(h int32, at float64) {
	e := &q.ev[h]
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

// cancel disarms h if it is queued.
func (q *queue) cancel(h int32) {
	i := int(q.ev[h].pos)
	if i < 0 {
		return
	}
	last := len(q.heap) - 1
	if i != last {
		q.swap(i, last)
	}
	q.heap = q.heap[:last]
	q.ev[h].pos = -1
	if i != last {
		moved := q.heap[i].h
		q.up(i)
		q.down(int(q.ev[moved].pos))
	}
}

// pop removes and returns the earliest event.
func (q *queue) pop() (int32, bool) {
	if len(q.heap) == 0 {
		return 0, false
	}
	h := q.heap[0].h
	q.cancel(h)
	q.pops++
	return h, true
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

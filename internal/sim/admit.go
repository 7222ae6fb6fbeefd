package sim

// Upload slots. A peer serves at most MaxUploads chunks at once and refuses
// more with 503; the requester backs off that source for BusyBackoff. The
// real requester polls: its loop asks again at the first tick after the
// backoff and may be refused again. Polling every busy source of every
// peer every 100 ms would cost more than the transfers at 100k peers, so a
// refused requester waits at the sender instead (a heap by backoff end)
// and is woken when a slot is free and its backoff is over — the moment
// its next ask would have succeeded — and asks that sender again (its
// other sources have not changed since its loop last ran). A freed slot thus goes to the waiter
// whose backoff ended first, and a requester is never refused twice in a
// row by the same busy sender.

import "github.com/edgeswarm/edgeswarm/internal/peer"

// waiter is a requester refused by a node.
type waiter struct {
	until float64
	seq   uint64
	peer  int32
	slot  int32  // the src's slot at the requester
	gen   uint32 // the src's waitGen when it was refused
}

func (s *Sim) refuses(node int32) bool {
	nd := &s.nodes[node]
	return nd.maxUploads > 0 && nd.uploads >= nd.maxUploads && !nd.dead
}

// refuse books a 503 from sr's node to p: p learns it a round trip later
// and then backs off.
func (s *Sim) refuse(p *peerState, sr *src) {
	p.busy++
	s.waitSeq++
	if w := int(s.waitSeq / 64); w >= len(s.waitDead) {
		s.waitDead = append(s.waitDead, make([]uint64, w+1-len(s.waitDead))...)
	}
	sr.until = s.now + 2*s.oneWay(p.node, sr.node) + peer.BusyBackoff(p.rng).Seconds()
	sr.busyWait = true
	sr.waitGen = uint32(s.waitSeq)
	nd := &s.nodes[sr.node]
	nd.waiters = append(nd.waiters, waiter{until: sr.until, seq: s.waitSeq, peer: p.node, slot: sr.slot, gen: sr.waitGen})
	waitUp(nd.waiters, len(nd.waiters)-1)
}

// forgetWait marks sr's wait at its sender dead (sr is dropped, or its
// download ended), so that admit discards it without looking at the
// requester (whose state is cold by then).
func (s *Sim) forgetWait(sr *src) {
	if sr.busyWait {
		seq := s.waitSeqOf(sr)
		s.waitDead[seq/64] |= 1 << (seq % 64)
	}
}

// waitSeqOf is the sequence number of sr's wait: the latest refusal whose
// low 32 bits are its waitGen.
func (s *Sim) waitSeqOf(sr *src) uint64 {
	seq := s.waitSeq&^0xffffffff | uint64(sr.waitGen)
	if seq > s.waitSeq {
		seq -= 1 << 32
	}
	return seq
}

// liveWaiter returns q's state for the source at node (in slot) if it
// still waits under gen.
func (s *Sim) liveWaiter(q *peerState, node, slot int32, gen uint32) *src {
	if q.state != psActive {
		return nil
	}
	sr := &q.edge
	if node != 0 {
		if int(slot) >= len(q.slotIdx) || q.slotIdx[slot] < 0 {
			return nil
		}
		sr = &q.sources[q.slotIdx[slot]]
		if sr.node != node {
			return nil
		}
	}
	if !sr.busyWait || sr.waitGen != gen {
		return nil
	}
	return sr
}

// armAdmit wakes node's waiters when it has a free slot.
func (s *Sim) armAdmit(node int32) {
	nd := &s.nodes[node]
	if len(nd.waiters) == 0 || (nd.maxUploads > 0 && nd.uploads >= nd.maxUploads) {
		return
	}
	t := max(s.now, nd.waiters[0].until)
	if !s.q.queued(nd.admitEv) || t < s.q.ev[nd.admitEv].at {
		s.q.schedule(nd.admitEv, t)
	}
}

// admit gives node's free slots to waiters whose backoff is over: each
// runs its loop, which asks node again (or not, if it no longer needs to).
func (s *Sim) admit(node int32) {
	nd := &s.nodes[node]
	for len(nd.waiters) > 0 && (nd.maxUploads == 0 || nd.uploads < nd.maxUploads) {
		w := nd.waiters[0]
		if s.waitDead[w.seq/64]&(1<<(w.seq%64)) != 0 {
			nd.waiters = waitPop(nd.waiters)
			continue
		}
		q := &s.peers[w.peer]
		sr := s.liveWaiter(q, node, w.slot, w.gen)
		if sr == nil {
			nd.waiters = waitPop(nd.waiters)
			continue
		}
		if w.until > s.now {
			s.q.schedule(nd.admitEv, w.until)
			return
		}
		nd.waiters = waitPop(nd.waiters)
		sr.busyWait = false
		// Only this source changed since the loop's last pass: give it work
		// (a full pass when endgame may add duplicates).
		switch {
		case !s.usable(sr):
		case q.nPending == 0:
			s.schedule(q)
		default:
			s.fill(q, sr)
		}
	}
}

func waitLess(a, b waiter) bool { return a.until < b.until || (a.until == b.until && a.seq < b.seq) }

func waitUp(h []waiter, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !waitLess(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func waitPop(h []waiter) []waiter {
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && waitLess(h[c+1], h[c]) {
			c++
		}
		if !waitLess(h[c], h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	return h
}

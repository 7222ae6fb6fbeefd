package sim

// The network model. Every node has an uplink and a downlink capacity and
// a one-way latency to the core. A chunk transfer is a fluid flow from its
// sender to its requester whose rate is
//
//	rate = min(up_s / n_s, down_r / n_r)
//
// where n_s counts the flows the sender is sending and n_r those the
// receiver is receiving: each link is processor-shared among its flows and
// a flow runs at the smaller of its two shares (the flow model of the
// classic BitTorrent simulators). It is exact for the cases that matter
// here — one flow; flows sharing an uplink; a flow limited by its
// receiver — and it never lets a link carry more than its capacity; it is
// not work-conserving when one flow of a link is held back by its other
// end (that share is not handed to the link's other flows).
//
// Cost: a flow is "sender-bound" (up_s/n_s ≤ down_r/n_r) or
// "receiver-bound". All sender-bound flows of one node progress at the
// same rate, so they live in the node's sender pool, a processor-sharing
// queue kept in virtual time: the pool's clock v counts the bytes each of
// its flows has received, and a flow finishes when v reaches its tag. A
// change of n_s is O(1) for the pool, whatever its size (the edge may send
// to every peer at once); only flows that change side are touched, and the
// only scans are over the receiver's flows (at most MaxFlights) and a
// peer sender's (at most its upload slots). Each pool has one entry in the
// event queue: its next completion.

import "math"

// pool is a processor-sharing queue in virtual time.
type pool struct {
	ev   int32   // its completion event
	v, t float64 // bytes served per flow by time t
	r    float64 // bytes/s each flow receives now
	h    []int32 // flights, a min-heap by tag
}

// node is 128 bytes, two cache lines: the first has what a request to it
// (refuses, admit) and its flows' shares read.
type node struct {
	// Upload slots: requests admitted (in transit or sending). A request
	// past maxUploads is refused (503); 0 means unlimited.
	uploads, maxUploads int32
	admitEv             int32
	nUp                 int32
	nDown               int32
	isp                 uint8
	dead                bool     // left abruptly: requests to it fail
	waiters             []waiter // refused requesters, a min-heap by until
	up, down            float64  // bytes/s
	lat                 float64  // one-way latency to the core, seconds
	rbOut               int32    // flows in out that are receiver-bound
	out, in             []int32  // active flows sent and received
}

const (
	inNone = iota
	inSender
	inReceiver
)

func senderPool(n int32) int32   { return 2 * n }
func receiverPool(n int32) int32 { return 2*n + 1 }

// share is a link's per-flow share with k flows on it.
func share(capacity float64, k int32) float64 {
	if k <= 0 {
		return math.Inf(1)
	}
	return capacity / float64(k)
}

// x and y are node n's uplink and downlink shares, kept in Sim.xs and
// Sim.ys (dense arrays: the rebalancing scans read them for every flow of
// a node, each at another node) whenever n's flows change (setShares).
func (s *Sim) x(n int32) float64 { return s.xs[n] }
func (s *Sim) y(n int32) float64 { return s.ys[n] }

func (s *Sim) setShares(n int32) {
	nd := &s.nodes[n]
	s.xs[n], s.ys[n] = share(nd.up, nd.nUp), share(nd.down, nd.nDown)
}

func (s *Sim) advance(p *pool) {
	if len(p.h) == 0 {
		p.v, p.t = 0, s.now // keep the clock small
		return
	}
	if s.now > p.t {
		p.v += p.r * (s.now - p.t)
		p.t = s.now
	}
}

func (s *Sim) touch(pid int32) {
	if s.touchMark[pid] != s.touchStamp {
		s.touchMark[pid] = s.touchStamp
		s.touched = append(s.touched, pid)
	}
}

// settle re-arms the completion events of the pools touched since the last
// settle.
func (s *Sim) settle() {
	for _, pid := range s.touched {
		p := &s.pools[pid]
		if len(p.h) == 0 || p.r <= 0 {
			s.q.cancel(p.ev)
			continue
		}
		rem := s.fl[p.h[0]].tag - p.v
		s.q.schedule(p.ev, p.t+max(rem, 0)/p.r)
	}
	s.touched = s.touched[:0]
	s.touchStamp++
}

// startFlow puts flight f on the network now.
func (s *Sim) startFlow(id int32) {
	f := &s.fl[id]
	src, dst := f.src, f.peer
	ns, nr := &s.nodes[src], &s.nodes[dst]
	ps, pr := &s.pools[senderPool(src)], &s.pools[receiverPool(dst)]
	s.advance(ps)
	s.advance(pr)
	ns.nUp++
	nr.nDown++
	s.setShares(src)
	s.setShares(dst)
	ps.r, pr.r = s.x(src), s.y(dst)
	f.opos = int32(len(ns.out))
	ns.out = append(ns.out, id)
	f.ipos = int32(len(nr.in))
	nr.in = append(nr.in, id)
	if ps.r <= pr.r {
		s.poolPush(senderPool(src), id, f.size)
		f.where = inSender
	} else {
		s.poolPush(receiverPool(dst), id, f.size)
		f.where = inReceiver
		ns.rbOut++
	}
	s.touch(senderPool(src))
	s.touch(receiverPool(dst))
	// The sender's share fell: its receiver-bound flows may now be
	// sender-bound. The receiver's share fell: its sender-bound flows may
	// now be receiver-bound.
	s.rebalanceSenderDown(src)
	s.rebalanceReceiverDown(dst)
	s.settle()
}

// endFlow takes flight f off the network now (finished or canceled).
func (s *Sim) endFlow(id int32) {
	f := &s.fl[id]
	src, dst := f.src, f.peer
	ns, nr := &s.nodes[src], &s.nodes[dst]
	ps, pr := &s.pools[senderPool(src)], &s.pools[receiverPool(dst)]
	s.advance(ps)
	s.advance(pr)
	switch f.where {
	case inSender:
		s.poolRemove(senderPool(src), id)
	case inReceiver:
		s.poolRemove(receiverPool(dst), id)
		ns.rbOut--
	}
	f.where = inNone
	ns.nUp--
	nr.nDown--
	s.setShares(src)
	s.setShares(dst)
	ps.r, pr.r = s.x(src), s.y(dst)
	last := ns.out[len(ns.out)-1]
	ns.out[f.opos] = last
	s.fl[last].opos = f.opos
	ns.out = ns.out[:len(ns.out)-1]
	last = nr.in[len(nr.in)-1]
	nr.in[f.ipos] = last
	s.fl[last].ipos = f.ipos
	nr.in = nr.in[:len(nr.in)-1]
	s.touch(senderPool(src))
	s.touch(receiverPool(dst))
	s.rebalanceSenderUp(src)
	s.rebalanceReceiverUp(dst)
	s.settle()
}

// rebalanceSenderDown: n's uplink share fell; receiver-bound flows whose
// receiver share is now at least the uplink share move to n's sender pool.
func (s *Sim) rebalanceSenderDown(n int32) {
	ns := &s.nodes[n]
	if ns.rbOut == 0 {
		return
	}
	x := s.x(n)
	for _, id := range ns.out {
		f := &s.fl[id]
		if f.where == inReceiver && s.y(f.peer) >= x {
			s.flip(id, inSender)
		}
	}
}

// rebalanceSenderUp: n's uplink share rose; sender-bound flows whose
// receiver share is now below it move to their receiver's pool. No
// receiver's share is below minY, which spares the scan of a busy edge.
func (s *Sim) rebalanceSenderUp(n int32) {
	ns := &s.nodes[n]
	x := s.x(n)
	if ns.nUp == 0 || x <= s.minY || int(ns.rbOut) == len(ns.out) {
		return
	}
	for _, id := range ns.out {
		f := &s.fl[id]
		if f.where == inSender && x > s.y(f.peer) {
			s.flip(id, inReceiver)
		}
	}
}

// rebalanceReceiverDown: n's downlink share fell; sender-bound flows whose
// sender share is above it move to n's receiver pool.
func (s *Sim) rebalanceReceiverDown(n int32) {
	y := s.y(n)
	for _, id := range s.nodes[n].in {
		f := &s.fl[id]
		if f.where == inSender && s.x(f.src) > y {
			s.flip(id, inReceiver)
		}
	}
}

// rebalanceReceiverUp: n's downlink share rose; receiver-bound flows whose
// sender share is now at most it move to their sender's pool.
func (s *Sim) rebalanceReceiverUp(n int32) {
	y := s.y(n)
	for _, id := range s.nodes[n].in {
		f := &s.fl[id]
		if f.where == inReceiver && s.x(f.src) <= y {
			s.flip(id, inSender)
		}
	}
}

// flip moves a flow to the other side, keeping the bytes it still needs.
func (s *Sim) flip(id int32, to uint8) {
	f := &s.fl[id]
	sp, rp := senderPool(f.src), receiverPool(f.peer)
	s.advance(&s.pools[sp])
	s.advance(&s.pools[rp])
	var rem float64
	if f.where == inSender {
		rem = s.poolRemove(sp, id)
	} else {
		rem = s.poolRemove(rp, id)
		s.nodes[f.src].rbOut--
	}
	if to == inSender {
		s.poolPush(sp, id, rem)
	} else {
		s.poolPush(rp, id, rem)
		s.nodes[f.src].rbOut++
	}
	f.where = to
	s.touch(sp)
	s.touch(rp)
}

// onPool completes the flows of pool pid that are done.
func (s *Sim) onPool(pid int32) {
	p := &s.pools[pid]
	s.advance(p)
	for len(p.h) > 0 {
		id := p.h[0]
		// A flow is done when its tag is reached, give or take rounding
		// (a thousandth of a byte).
		if s.fl[id].tag > p.v+1e-3 {
			break
		}
		s.endFlow(id)
		s.flowDone(id)
	}
	s.touch(pid)
	s.settle()
}

// poolPush adds flight id to pool pid with rem bytes to go; the pool's
// clock must be current.
func (s *Sim) poolPush(pid, id int32, rem float64) {
	p := &s.pools[pid]
	f := &s.fl[id]
	f.tag = p.v + rem
	f.hpos = int32(len(p.h))
	p.h = append(p.h, id)
	s.poolUp(p, int(f.hpos))
}

// poolRemove takes flight id out of pool pid and returns the bytes it still
// needed; the pool's clock must be current.
func (s *Sim) poolRemove(pid, id int32) float64 {
	p := &s.pools[pid]
	f := &s.fl[id]
	rem := max(f.tag-p.v, 0)
	i := int(f.hpos)
	last := len(p.h) - 1
	moved := p.h[last]
	p.h[i] = moved
	s.fl[moved].hpos = int32(i)
	p.h = p.h[:last]
	if i != last {
		s.poolUp(p, i)
		s.poolDown(p, int(s.fl[moved].hpos))
	}
	f.hpos = -1
	return rem
}

func (s *Sim) poolLess(a, b int32) bool {
	ta, tb := s.fl[a].tag, s.fl[b].tag
	return ta < tb || (ta == tb && a < b)
}

func (s *Sim) poolUp(p *pool, i int) {
	for i > 0 {
		par := (i - 1) / 2
		if !s.poolLess(p.h[i], p.h[par]) {
			return
		}
		p.h[i], p.h[par] = p.h[par], p.h[i]
		s.fl[p.h[i]].hpos = int32(i)
		s.fl[p.h[par]].hpos = int32(par)
		i = par
	}
}

func (s *Sim) poolDown(p *pool, i int) {
	n := len(p.h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && s.poolLess(p.h[c+1], p.h[c]) {
			c++
		}
		if !s.poolLess(p.h[c], p.h[i]) {
			return
		}
		p.h[i], p.h[c] = p.h[c], p.h[i]
		s.fl[p.h[i]].hpos = int32(i)
		s.fl[p.h[c]].hpos = int32(c)
		i = c
	}
}

package cachepolicy

// TinyLFU is W-TinyLFU (Einziger, Friedman and Manes, "TinyLFU: A Highly
// Efficient Cache Admission Policy", 2017) as Caffeine lays it out, by
// bytes: new keys enter an LRU window of 1 % of the budget; keys pushed
// out of the window become candidates for main and each competes with
// main's next victim: the one a count-min sketch of recent requests says
// is used less often is evicted. Main is a segmented LRU: a probation
// segment, and a protected one (80 % of main) for keys hit while on
// probation.
//
// One difference from Caffeine: the key being added is never evicted by
// its own Add, even when it alone overflows the window (the edge has
// already written it and is about to serve it); it faces the filter when
// the next arrival pushes it out of the window.
type TinyLFU struct {
	budget
	window, probation, protected queue
	nodes                        map[string]*node
	sketch                       sketch

	windowTarget    int64 // bytes
	protectedTarget int64 // bytes
}

const (
	inWindow uint8 = iota + 1
	inProbation
	inProtected
	inCandidate // in probation, pushed out of the window by this Add
)

// NewTinyLFU returns an empty W-TinyLFU policy.
func NewTinyLFU(l Limits) *TinyLFU {
	w := max(l.Bytes/100, 1)
	p := &TinyLFU{
		budget:          budget{Limits: l},
		nodes:           make(map[string]*node),
		windowTarget:    w,
		protectedTarget: max(l.Bytes-w, 1) * 8 / 10,
	}
	p.window.init()
	p.probation.init()
	p.protected.init()
	p.sketch.init(1024)
	return p
}

func (p *TinyLFU) queue(n *node) *queue {
	switch n.where {
	case inWindow:
		return &p.window
	case inProtected:
		return &p.protected
	}
	return &p.probation
}

func (p *TinyLFU) Add(key string, size int64) []string {
	n, ok := p.nodes[key]
	if ok {
		p.bytes += size - n.size
		p.queue(n).resize(n, size)
		p.hit(n)
	} else {
		p.sketch.add(key)
		n = &node{key: key, size: size, where: inWindow}
		p.nodes[key] = n
		p.window.pushFront(n)
		p.bytes += size
		if len(p.nodes) > p.sketch.width() {
			p.sketch.init(2 * len(p.nodes))
		}
	}

	// Push the window's oldest keys out to probation as candidates.
	var cands []*node
	for p.window.bytes > p.windowTarget && p.window.back() != n {
		c := p.window.back()
		p.window.remove(c)
		c.where = inCandidate
		p.probation.pushFront(c)
		cands = append(cands, c)
	}

	// While over the limits, each candidate competes with main's victim.
	var out []string
	for p.over(len(p.nodes)) && len(p.nodes) > 1 {
		var cand *node
		for len(cands) > 0 && cand == nil {
			if cands[0].where == inCandidate {
				cand = cands[0]
			}
			cands = cands[1:]
		}
		victim := p.mainVictim()
		switch {
		case cand == nil && victim == nil:
			out = append(out, p.drop(p.windowVictim(n)))
		case cand == nil:
			out = append(out, p.drop(victim))
		case victim == nil || p.sketch.estimate(cand.key) <= p.sketch.estimate(victim.key):
			out = append(out, p.drop(cand))
		default:
			out = append(out, p.drop(victim))
			cand.where = inProbation // admitted
		}
	}
	for _, c := range cands {
		if c.where == inCandidate {
			c.where = inProbation
		}
	}
	return out
}

// mainVictim is the oldest key of main that is not a candidate, or nil.
// Candidates sit at probation's newest end, so the back of probation is
// one only when probation holds nothing else.
func (p *TinyLFU) mainVictim() *node {
	if n := p.probation.back(); n != nil && n.where != inCandidate {
		return n
	}
	return p.protected.back()
}

// windowVictim is the oldest window key other than keep; one must exist.
func (p *TinyLFU) windowVictim(keep *node) *node {
	for n := p.window.back(); n != nil; n = p.window.newer(n) {
		if n != keep {
			return n
		}
	}
	panic("cachepolicy: TinyLFU asked to evict with only the newcomer resident")
}

func (p *TinyLFU) Hit(key string) {
	if n, ok := p.nodes[key]; ok {
		p.hit(n)
	}
}

func (p *TinyLFU) hit(n *node) {
	p.sketch.add(n.key)
	switch n.where {
	case inWindow:
		p.window.moveToFront(n)
	case inProbation, inCandidate:
		p.probation.remove(n)
		n.where = inProtected
		p.protected.pushFront(n)
		for p.protected.bytes > p.protectedTarget && p.protected.len > 1 {
			d := p.protected.back()
			p.protected.remove(d)
			d.where = inProbation
			p.probation.pushFront(d)
		}
	case inProtected:
		p.protected.moveToFront(n)
	}
}

func (p *TinyLFU) Remove(key string) {
	if n, ok := p.nodes[key]; ok {
		p.drop(n)
	}
}

func (p *TinyLFU) drop(n *node) string {
	p.queue(n).remove(n)
	p.bytes -= n.size
	delete(p.nodes, n.key)
	return n.key
}

func (p *TinyLFU) Evict() (string, bool) {
	n := p.mainVictim()
	if n == nil {
		n = p.window.back()
	}
	if n == nil {
		return "", false
	}
	return p.drop(n), true
}

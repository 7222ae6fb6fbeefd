package cachepolicy

// SIEVE keeps keys in insertion order with a visited bit. The hand walks
// from the oldest key toward the newest, clearing visited bits, and evicts
// the first unvisited key; it stays where it stopped for the next call.
type SIEVE struct {
	budget
	q     queue
	hand  *node // next key to examine; nil means start at the back
	nodes map[string]*node
}

// NewSIEVE returns an empty SIEVE policy.
func NewSIEVE(l Limits) *SIEVE {
	p := &SIEVE{budget: budget{Limits: l}, nodes: make(map[string]*node)}
	p.q.init()
	return p
}

func (p *SIEVE) Add(key string, size int64) []string {
	n, ok := p.nodes[key]
	if ok {
		p.bytes += size - n.size
		p.q.resize(n, size)
		n.freq = 1
	} else {
		n = &node{key: key, size: size}
		p.nodes[key] = n
		p.q.pushFront(n)
		p.bytes += size
	}
	var out []string
	for p.over(len(p.nodes)) && p.q.len > 1 {
		out = append(out, p.evict(n))
	}
	return out
}

func (p *SIEVE) Hit(key string) {
	if n, ok := p.nodes[key]; ok {
		n.freq = 1
	}
}

func (p *SIEVE) Remove(key string) {
	if n, ok := p.nodes[key]; ok {
		p.drop(n)
	}
}

func (p *SIEVE) drop(n *node) string {
	if p.hand == n {
		p.hand = p.q.newer(n)
	}
	p.q.remove(n)
	p.bytes -= n.size
	delete(p.nodes, n.key)
	return n.key
}

// evict runs the hand to the next unvisited key other than keep (nil for
// none) and drops it. The queue must hold a key other than keep.
func (p *SIEVE) evict(keep *node) string {
	n := p.hand
	if n == nil {
		n = p.q.back()
	}
	for n.freq != 0 || n == keep {
		n.freq = 0
		if n = p.q.newer(n); n == nil {
			n = p.q.back()
		}
	}
	p.hand = n // drop moves it on to the next newer key
	return p.drop(n)
}

func (p *SIEVE) Evict() (string, bool) {
	if p.q.len == 0 {
		return "", false
	}
	return p.evict(nil), true
}

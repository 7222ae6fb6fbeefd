package cachepolicy

// LRU evicts the least recently used key.
type LRU struct {
	budget
	q     queue
	nodes map[string]*node
}

// NewLRU returns an empty LRU policy.
func NewLRU(l Limits) *LRU {
	p := &LRU{budget: budget{Limits: l}, nodes: make(map[string]*node)}
	p.q.init()
	return p
}

func (p *LRU) Add(key string, size int64) []string {
	n, ok := p.nodes[key]
	if ok {
		p.bytes += size - n.size
		p.q.resize(n, size)
		p.q.moveToFront(n)
	} else {
		n = &node{key: key, size: size}
		p.nodes[key] = n
		p.q.pushFront(n)
		p.bytes += size
	}
	var out []string
	for p.over(len(p.nodes)) && p.q.len > 1 { // the back is never n, at the front
		out = append(out, p.drop(p.q.back()))
	}
	return out
}

func (p *LRU) Hit(key string) {
	if n, ok := p.nodes[key]; ok {
		p.q.moveToFront(n)
	}
}

func (p *LRU) Remove(key string) {
	if n, ok := p.nodes[key]; ok {
		p.drop(n)
	}
}

func (p *LRU) drop(n *node) string {
	p.q.remove(n)
	p.bytes -= n.size
	delete(p.nodes, n.key)
	return n.key
}

func (p *LRU) Evict() (string, bool) {
	if n := p.q.back(); n != nil {
		return p.drop(n), true
	}
	return "", false
}

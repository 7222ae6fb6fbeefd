package cachepolicy

// S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
// SOSP '23), by bytes. New keys enter a small FIFO of 10 % of the budget;
// a key leaving it is moved to the main FIFO if it was hit while there,
// else evicted and remembered in a ghost FIFO. A key re-added while in the
// ghost goes straight to main. Main is a FIFO whose keys with hits are
// reinserted (their counter decremented) instead of evicted. Most objects
// in skewed workloads are requested once in a short window; the small
// queue evicts them early, before they push out proven ones.
type S3FIFO struct {
	budget
	small, main queue
	ghost       ghost
	nodes       map[string]*node // resident keys
	keep        *node            // the key being added: never the victim

	smallTarget int64 // bytes
	mainTarget  int64 // bytes
}

const (
	inSmall uint8 = iota + 1
	inMain
)

// s3MaxFreq caps the hit counter (2 bits in the paper).
const s3MaxFreq = 3

// NewS3FIFO returns an empty S3-FIFO policy.
func NewS3FIFO(l Limits) *S3FIFO {
	small := max(l.Bytes/10, 1)
	p := &S3FIFO{
		budget:      budget{Limits: l},
		nodes:       make(map[string]*node),
		smallTarget: small,
		mainTarget:  max(l.Bytes-small, 1),
	}
	p.small.init()
	p.main.init()
	p.ghost.init(p.mainTarget)
	return p
}

func (p *S3FIFO) queue(n *node) *queue {
	if n.where == inSmall {
		return &p.small
	}
	return &p.main
}

func (p *S3FIFO) Add(key string, size int64) []string {
	n, ok := p.nodes[key]
	switch {
	case ok:
		p.bytes += size - n.size
		p.queue(n).resize(n, size)
		p.hit(n)
	case p.ghost.remove(key):
		n = &node{key: key, size: size, where: inMain}
		p.main.pushFront(n)
	default:
		n = &node{key: key, size: size, where: inSmall}
		p.small.pushFront(n)
	}
	if !ok {
		p.nodes[key] = n
		p.bytes += size
	}
	var out []string
	p.keep = n
	for p.over(len(p.nodes)) && len(p.nodes) > 1 {
		out = append(out, p.evict())
	}
	p.keep = nil
	return out
}

func (p *S3FIFO) Hit(key string) {
	if n, ok := p.nodes[key]; ok {
		p.hit(n)
	}
}

func (p *S3FIFO) hit(n *node) {
	if n.freq < s3MaxFreq {
		n.freq++
	}
}

func (p *S3FIFO) Remove(key string) {
	if n, ok := p.nodes[key]; ok {
		p.drop(n)
	}
}

func (p *S3FIFO) drop(n *node) string {
	p.queue(n).remove(n)
	p.bytes -= n.size
	delete(p.nodes, n.key)
	return n.key
}

func (p *S3FIFO) Evict() (string, bool) {
	if len(p.nodes) == 0 {
		return "", false
	}
	return p.evict(), true
}

// evict drops one key other than p.keep; one must be resident.
func (p *S3FIFO) evict() string {
	if p.small.len > 0 && (p.small.bytes >= p.smallTarget || p.main.len == 0) {
		return p.evictSmall()
	}
	return p.evictMain()
}

// evictSmall moves hit keys from the back of small to main until it finds
// one to evict, or until main overflows and gives up one of its own.
func (p *S3FIFO) evictSmall() string {
	for n := p.small.back(); n != nil; n = p.small.back() {
		if n == p.keep {
			break // small holds only the newcomer
		}
		if n.freq > 0 {
			p.small.remove(n)
			n.freq = 0
			n.where = inMain
			p.main.pushFront(n)
			if p.main.bytes > p.mainTarget {
				return p.evictMain()
			}
			continue
		}
		p.ghost.add(n.key, n.size)
		return p.drop(n)
	}
	return p.evictMain()
}

// evictMain evicts the first key from the back of main without hits,
// reinserting the others with one hit fewer. It ends: every pass lowers a
// counter, and counters are capped; the newcomer is passed over.
func (p *S3FIFO) evictMain() string {
	for n := p.main.back(); n != nil; n = p.main.back() {
		if n == p.keep {
			if p.main.len == 1 {
				break // main holds only the newcomer
			}
			p.main.moveToFront(n)
			continue
		}
		if n.freq > 0 {
			n.freq--
			p.main.moveToFront(n)
			continue
		}
		return p.drop(n)
	}
	return p.evictSmallAny()
}

// evictSmallAny evicts the oldest key of small other than the newcomer,
// hit or not: the last resort when main has nothing else to give.
func (p *S3FIFO) evictSmallAny() string {
	for n := p.small.back(); n != nil; n = p.small.newer(n) {
		if n != p.keep {
			p.ghost.add(n.key, n.size)
			return p.drop(n)
		}
	}
	panic("cachepolicy: S3FIFO asked to evict with only the newcomer resident")
}

// ghost is a FIFO of evicted keys with the bytes they held, bounded in
// bytes, with O(1) membership.
type ghost struct {
	q     queue
	nodes map[string]*node
	limit int64
}

func (g *ghost) init(limit int64) {
	g.q.init()
	g.nodes = make(map[string]*node)
	g.limit = limit
}

func (g *ghost) add(key string, size int64) {
	if n, ok := g.nodes[key]; ok {
		g.q.remove(n)
	}
	n := &node{key: key, size: size}
	g.nodes[key] = n
	g.q.pushFront(n)
	for g.q.bytes > g.limit && g.q.len > 1 {
		old := g.q.back()
		g.q.remove(old)
		delete(g.nodes, old.key)
	}
}

// remove reports whether key was in the ghost, and forgets it.
func (g *ghost) remove(key string) bool {
	n, ok := g.nodes[key]
	if ok {
		g.q.remove(n)
		delete(g.nodes, key)
	}
	return ok
}

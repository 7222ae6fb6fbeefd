package cachepolicy

// node is one resident (or ghost) key in a queue.
type node struct {
	key        string
	size       int64
	prev, next *node
	freq       uint8 // policy-specific: a hit counter or a visited bit
	where      uint8 // policy-specific: which queue holds the node
}

// queue is an intrusive doubly linked list with its byte total. The front
// is the newest end; back the oldest. The zero value is not ready: call
// init.
type queue struct {
	root  node // sentinel: root.next is the front, root.prev the back
	len   int
	bytes int64
}

func (q *queue) init() {
	q.root.next = &q.root
	q.root.prev = &q.root
}

func (q *queue) pushFront(n *node) {
	n.prev = &q.root
	n.next = q.root.next
	n.next.prev = n
	q.root.next = n
	q.len++
	q.bytes += n.size
}

func (q *queue) remove(n *node) {
	n.prev.next = n.next
	n.next.prev = n.prev
	n.prev, n.next = nil, nil
	q.len--
	q.bytes -= n.size
}

func (q *queue) moveToFront(n *node) {
	if q.root.next == n {
		return
	}
	n.prev.next = n.next
	n.next.prev = n.prev
	n.prev = &q.root
	n.next = q.root.next
	n.next.prev = n
	q.root.next = n
}

// back returns the oldest node, or nil.
func (q *queue) back() *node {
	if q.len == 0 {
		return nil
	}
	return q.root.prev
}

// newer returns the node in front of n (toward the front), or nil at the
// front.
func (q *queue) newer(n *node) *node {
	if n.prev == &q.root {
		return nil
	}
	return n.prev
}

// resize changes a resident node's size and its queue's total.
func (q *queue) resize(n *node, size int64) {
	q.bytes += size - n.size
	n.size = size
}

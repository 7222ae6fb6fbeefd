package edge

// The hot set: verified in-memory copies of small stored versions (≤
// smallObjectMax), within a byte budget (Config.HotCacheSize), chosen by
// the same S3-FIFO policy as the disk. A small hit otherwise opens, stats,
// reads, checksums and closes its file; from the hot set it is a map
// lookup and one write to the client. A copy is taken only after a read
// from disk has passed its checksum, never from a fill, so damage on disk
// is still found by the read that would first have served it. It goes
// with its version (replaced, evicted, purged, found corrupt) and with
// the process. What it does not see is the disk copy rotting after the
// copy was taken; the copy is still the verified bytes, and the next
// read from disk, once the copy is evicted, checks them again.

import (
	"bytes"
	"sync/atomic"

	"github.com/edgeswarm/edgeswarm/internal/cachepolicy"
)

// hotSet is guarded by cache.mu, except its counters.
type hotSet struct {
	policy cachepolicy.Policy // nil: no hot set
	bytes  int64              // sum of the copies held
	hits   atomic.Int64       // opens served from a copy
}

// hotReaderLocked returns a reader of e's hot copy, if it has one.
func (c *cache) hotReaderLocked(e *entry) (*objectReader, bool) {
	if e.hot == nil || c.verifyEveryRead.Load() {
		return nil, false
	}
	c.hot.policy.Hit(e.key)
	c.hot.hits.Add(1)
	return &objectReader{c: c, e: e, mode: modeMemory, data: e.hot, blk: -1}, true
}

// keepHot offers the hot set a copy of e's data, just checked.
func (c *cache) keepHot(e *entry, data []byte) {
	if c.hot.policy == nil || int64(len(data)) != e.size || c.verifyEveryRead.Load() {
		return
	}
	c.mu.Lock()
	skip := e.removed || e.hot != nil
	c.mu.Unlock()
	if skip {
		return
	}
	cp := bytes.Clone(data)
	if cp == nil {
		cp = []byte{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.removed || e.hot != nil {
		return
	}
	e.hot = cp
	c.hot.bytes += e.size
	for _, k := range c.hot.policy.Add(e.key, e.size) {
		if v := c.index[k]; v != nil && v.hot != nil {
			c.hot.bytes -= v.size
			v.hot = nil
		}
	}
}

// dropHotLocked lets e's copy go.
func (c *cache) dropHotLocked(e *entry) {
	if e.hot == nil {
		return
	}
	c.hot.policy.Remove(e.key)
	c.hot.bytes -= e.size
	e.hot = nil
}

// hotBytes is the memory the hot set holds.
func (c *cache) hotBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hot.bytes
}

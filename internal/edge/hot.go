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
	"os"
	"sync/atomic"

	"github.com/edgeswarm/edgeswarm/internal/cachepolicy"
)

// hotFileMin: a hot version larger than this also keeps its data file
// open, so that the fast lane can send it with sendfile(2) from the page
// cache instead of copying the memory copy into the socket (laneCopyMax:
// smaller bodies go out in one write with the headers anyway).
const hotFileMin = laneCopyMax

// maxHotFiles bounds the data files the hot set keeps open, whatever its
// byte budget: descriptors are for connections first.
const maxHotFiles = 1024

// hotFile is a hot version's open data file, shared by the responses
// sending from it. It is closed when its version has left the hot set and
// no response holds it, so a descriptor is never reused under a send.
type hotFile struct {
	c       *cache
	f       *os.File
	id      fileID // the file's identity when its data passed its checksum
	refs    int    // guarded by c.mu
	dropped bool   // guarded by c.mu
}

// retainHot takes a reference on hf for a response.
func (c *cache) retainHot(hf *hotFile) {
	c.mu.Lock()
	hf.refs++
	c.mu.Unlock()
}

// releaseHot gives a reference back.
func (c *cache) releaseHot(hf *hotFile) {
	c.mu.Lock()
	hf.refs--
	closeIt := hf.refs == 0 && hf.dropped
	c.mu.Unlock()
	if closeIt {
		hf.f.Close()
	}
}

// hotSet is guarded by cache.mu, except its counters.
type hotSet struct {
	policy cachepolicy.Policy // nil: no hot set
	bytes  int64              // sum of the copies held
	files  int                // hot files open for their versions
	hits   atomic.Int64       // opens served from a copy
	sent   atomic.Int64       // lane responses sent from a hot file with sendfile
}

// hotReaderLocked returns a reader of e's hot copy, if it has one.
func (c *cache) hotReaderLocked(e *entry) (*objectReader, bool) {
	if e.hot == nil || c.verifyEveryRead.Load() {
		return nil, false
	}
	c.hot.policy.Hit(e.key)
	c.hot.hits.Add(1)
	r := &objectReader{c: c, e: e, mode: modeMemory, data: e.hot, blk: -1}
	if hf := e.hotFile; hf != nil {
		hf.refs++
		r.hf = hf
	}
	return r, true
}

// keepHot offers the hot set a copy of e's data, just checked, read from
// f (whose identity was id). It reports whether it kept f open (for
// hotFileMin); else f is the caller's to close.
func (c *cache) keepHot(e *entry, data []byte, f *os.File, id fileID) bool {
	if c.hot.policy == nil || int64(len(data)) != e.size || c.verifyEveryRead.Load() {
		return false
	}
	c.mu.Lock()
	skip := e.removed || e.hot != nil
	c.mu.Unlock()
	if skip {
		return false
	}
	cp := bytes.Clone(data)
	if cp == nil {
		cp = []byte{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.removed || e.hot != nil {
		return false
	}
	e.hot = cp
	if e.size > hotFileMin && f != nil && c.hot.files < maxHotFiles {
		e.hotFile = &hotFile{c: c, f: f, id: id}
		c.hot.files++
	}
	c.hot.bytes += e.size
	for _, k := range c.hot.policy.Add(e.key, e.size) {
		if v := c.index[k]; v != nil {
			c.dropCopyLocked(v)
		}
	}
	return e.hotFile != nil
}

// dropHotLocked lets e's copy go.
func (c *cache) dropHotLocked(e *entry) {
	if e.hot == nil {
		return
	}
	c.hot.policy.Remove(e.key)
	c.dropCopyLocked(e)
}

// dropCopyLocked frees e's copy and file (the policy has forgotten e).
func (c *cache) dropCopyLocked(e *entry) {
	if e.hot == nil {
		return
	}
	c.hot.bytes -= e.size
	e.hot = nil
	if hf := e.hotFile; hf != nil {
		e.hotFile = nil
		c.hot.files--
		hf.dropped = true
		if hf.refs == 0 {
			hf.f.Close()
		}
	}
}

// hotBytes is the memory the hot set holds.
func (c *cache) hotBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hot.bytes
}

// closeHot lets every hot copy and file go (Server.Close): a file a
// response still holds closes when that response lets go of it.
func (c *cache) closeHot() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hot.policy == nil {
		return
	}
	for _, e := range c.index {
		c.dropHotLocked(e)
	}
}

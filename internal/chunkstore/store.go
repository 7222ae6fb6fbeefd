// Package chunkstore keeps the verified chunks a peer holds, per object
// version (keyed by the manifest's root hash), in memory or on disk. Callers
// verify chunks before writing them; the disk store re-verifies what it finds
// when it reopens an object, so a restarted peer resumes with good chunks only.
// A store may hold a budget (WithBudget, budget.go): past it, writes evict the
// least recently used other versions' chunks, except pinned ones.
package chunkstore

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// Errors returned by stores and objects.
var (
	// ErrNotFound: the chunk is not held (or its index is out of range).
	ErrNotFound = errors.New("chunkstore: chunk not held")
	// ErrClosed: the store or object was closed.
	ErrClosed = errors.New("chunkstore: closed")
)

// Store opens per-object storage.
type Store interface {
	// Open creates or reopens the storage of the object version m names
	// (keyed by m.Root). Opening a root that is already open returns
	// another handle on the same storage.
	Open(m *core.Manifest) (Object, error)
	// Close closes every open object; later Opens fail with ErrClosed.
	Close() error
	// Usage reports the chunk bytes held, the budget (WithBudget) and
	// what eviction did.
	Usage() Usage
}

// Object is the storage of one object version. Its methods are safe for
// concurrent use.
type Object interface {
	// WriteChunk stores chunk i and marks it held. The caller has verified
	// data against the manifest; WriteChunk only checks its length. Writing
	// a held chunk again is a no-op.
	WriteChunk(i int, data []byte) error
	// ReadChunk reads chunk i into buf (grown if needed) and returns it;
	// ErrNotFound if the chunk is not held.
	ReadChunk(i int, buf []byte) ([]byte, error)
	// Have returns a copy of the held-chunks bitfield.
	Have() core.Bitfield
	// Pin keeps chunks [i, i+n) (clipped to the object) from being evicted
	// until unpin is called; pins nest. A chunk held when Pin returns stays
	// held until then. unpin may be called more than once.
	Pin(i, n int) (unpin func())
	// Evictions counts this object's chunks evicted so far: a holder of a
	// copy of Have compares it to learn that the copy is stale.
	Evictions() int64
	// Close releases this handle; the storage closes with its last handle.
	Close() error
}

// backend is what a store implementation provides per object; the shared
// code below adds handles, reference counts and argument checks.
type backend interface {
	writeAt(i int, data []byte) error
	readAt(i int, buf []byte) error
	// marked is called after a chunk is written or evicted and its bit
	// changed.
	marked()
	// drop frees the storage of chunk i, whose bit is already clear.
	drop(i int) error
	close() error
}

// object is the shared state of one open object: the manifest, the held
// bitfield and the backend holding the bytes.
type object struct {
	m    *core.Manifest
	b    backend
	acct *budget

	lastUse atomic.Uint64 // the budget's clock at the last read or write

	mu      sync.Mutex
	have    core.Bitfield // guarded by mu
	pins    []int32       // guarded by mu: pin count per chunk; nil until the first Pin
	evicted int64         // guarded by mu: chunks evicted so far
	refs    int           // guarded by the store's mu
}

func (o *object) write(i int, data []byte) error {
	if i < 0 || i >= o.m.NumChunks() {
		return fmt.Errorf("write chunk %d of %s: index out of range [0,%d)", i, o.m.Root.Short(), o.m.NumChunks())
	}
	if len(data) != o.m.ChunkLen(i) {
		return fmt.Errorf("write chunk %d of %s: %d bytes, want %d: %w", i, o.m.Root.Short(), len(data), o.m.ChunkLen(i), core.ErrChunkLength)
	}
	o.mu.Lock()
	held := o.have.Has(i)
	o.mu.Unlock()
	if held {
		return nil
	}
	o.lastUse.Store(o.acct.tick())
	n := int64(len(data))
	if err := o.acct.reserve(o, n); err != nil {
		return fmt.Errorf("write chunk %d of %s: %w", i, o.m.Root.Short(), err)
	}
	// Two concurrent writers of one chunk write the same verified bytes,
	// so racing here is harmless; the second gives its reservation back.
	if err := o.b.writeAt(i, data); err != nil {
		o.acct.unreserve(o, n)
		return fmt.Errorf("write chunk %d of %s: %w", i, o.m.Root.Short(), err)
	}
	o.mu.Lock()
	dup := o.have.Has(i)
	o.have.Set(i)
	o.mu.Unlock()
	if dup {
		o.acct.unreserve(o, n)
	}
	o.b.marked()
	return nil
}

func (o *object) read(i int, buf []byte) ([]byte, error) {
	if i < 0 || i >= o.m.NumChunks() {
		return nil, fmt.Errorf("read chunk %d of %s: index out of range: %w", i, o.m.Root.Short(), ErrNotFound)
	}
	o.mu.Lock()
	held, gen := o.have.Has(i), o.evicted
	o.mu.Unlock()
	if !held {
		return nil, fmt.Errorf("read chunk %d of %s: %w", i, o.m.Root.Short(), ErrNotFound)
	}
	o.lastUse.Store(o.acct.tick())
	n := o.m.ChunkLen(i)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if err := o.b.readAt(i, buf); err != nil {
		return nil, fmt.Errorf("read chunk %d of %s: %w", i, o.m.Root.Short(), err)
	}
	// An unpinned chunk may have been evicted while it was read: then the
	// bytes are not trusted.
	o.mu.Lock()
	gone := !o.have.Has(i) || (o.evicted != gen && !o.pinned(i))
	o.mu.Unlock()
	if gone {
		return nil, fmt.Errorf("read chunk %d of %s: evicted while read: %w", i, o.m.Root.Short(), ErrNotFound)
	}
	return buf, nil
}

// pinned reports whether chunk i is pinned; called with mu held.
func (o *object) pinned(i int) bool { return o.pins != nil && o.pins[i] > 0 }

// pin adds delta to the pin counts of [i, i+n) clipped to the object.
func (o *object) pin(i, n, delta int) {
	lo, hi := max(i, 0), min(i+max(n, 0), o.m.NumChunks())
	if lo >= hi {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pins == nil {
		o.pins = make([]int32, o.m.NumChunks())
	}
	for k := lo; k < hi; k++ {
		o.pins[k] += int32(delta)
	}
}

// evict drops unpinned held chunks, highest index first, until at least
// need bytes are freed or none is left; it returns what it freed. The bits
// are cleared and the bytes dropped under mu, so that a Pin or a write
// that follows sees the chunk gone for good.
func (o *object) evict(need int64) (bytes int64, chunks int) {
	o.mu.Lock()
	for i := o.m.NumChunks() - 1; i >= 0 && bytes < need; i-- {
		if !o.have.Has(i) || o.pinned(i) {
			continue
		}
		o.have.Clear(i)
		_ = o.b.drop(i) // the chunk is gone either way; a failed drop only keeps its blocks
		bytes += int64(o.m.ChunkLen(i))
		chunks++
	}
	o.evicted += int64(chunks)
	o.mu.Unlock()
	if chunks > 0 {
		o.b.marked()
	}
	return bytes, chunks
}

func (o *object) haveCopy() core.Bitfield {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.have.Clone()
}

// registry is the open-object table shared by both stores.
type registry struct {
	acct    *budget
	mu      sync.Mutex
	objects map[core.Hash]*object // guarded by mu
	closed  bool                  // guarded by mu
}

// open returns a handle on the object of m, creating it with create when it
// is not open yet.
func (r *registry) open(m *core.Manifest, create func(m *core.Manifest) (*object, error)) (Object, error) {
	if m == nil || m.Root.IsZero() || len(m.Hashes) != core.NumChunks(m.Size, m.ChunkSize) || !core.ValidChunkSize(m.ChunkSize) {
		return nil, errors.New("chunkstore: open: invalid manifest")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if r.objects == nil {
		r.objects = map[core.Hash]*object{}
	}
	o := r.objects[m.Root]
	if o == nil {
		if err := r.acct.fits(m.Size); err != nil {
			return nil, fmt.Errorf("chunkstore: open %s: %w", m.Root.Short(), err)
		}
		r.acct.claim(m.Root)
		var err error
		if o, err = create(m); err != nil {
			r.acct.abandon(m.Root)
			return nil, err
		}
		o.acct = r.acct
		r.acct.opened(o)
		r.objects[m.Root] = o
	}
	o.refs++
	return &handle{o: o, r: r}, nil
}

func (r *registry) release(o *object) error {
	r.mu.Lock()
	o.refs--
	last := o.refs == 0 && r.objects[o.m.Root] == o
	if last {
		delete(r.objects, o.m.Root)
		r.acct.closed(o) // no eviction touches o from here on
	}
	r.mu.Unlock()
	if last {
		return o.b.close()
	}
	return nil
}

func (r *registry) closeAll() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	objs := r.objects
	r.objects = nil
	r.mu.Unlock()
	var errs []error
	for _, o := range objs {
		errs = append(errs, o.b.close())
	}
	return errors.Join(errs...)
}

// handle is one Open's view of a shared object.
type handle struct {
	o    *object
	r    *registry
	once sync.Once
	mu   sync.Mutex
	shut bool // guarded by mu
}

func (h *handle) closed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.shut
}

func (h *handle) WriteChunk(i int, data []byte) error {
	if h.closed() {
		return ErrClosed
	}
	return h.o.write(i, data)
}

func (h *handle) ReadChunk(i int, buf []byte) ([]byte, error) {
	if h.closed() {
		return nil, ErrClosed
	}
	return h.o.read(i, buf)
}

func (h *handle) Have() core.Bitfield { return h.o.haveCopy() }

func (h *handle) Pin(i, n int) func() {
	if h.closed() {
		return func() {}
	}
	h.o.pin(i, n, 1)
	var once sync.Once
	return func() { once.Do(func() { h.o.pin(i, n, -1) }) }
}

func (h *handle) Evictions() int64 {
	h.o.mu.Lock()
	defer h.o.mu.Unlock()
	return h.o.evicted
}

func (h *handle) Close() error {
	var err error
	h.once.Do(func() {
		h.mu.Lock()
		h.shut = true
		h.mu.Unlock()
		err = h.r.release(h.o)
	})
	return err
}

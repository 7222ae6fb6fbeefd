// Package chunkstore keeps the verified chunks a peer holds, per object
// version (keyed by the manifest's root hash), in memory or on disk. Callers
// verify chunks before writing them; the disk store re-verifies what it finds
// when it reopens an object, so a restarted peer resumes with good chunks only.
package chunkstore

import (
	"errors"
	"fmt"
	"sync"

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
	// Close releases this handle; the storage closes with its last handle.
	Close() error
}

// backend is what a store implementation provides per object; the shared
// code below adds handles, reference counts and argument checks.
type backend interface {
	writeAt(i int, data []byte) error
	readAt(i int, buf []byte) error
	// marked is called after a chunk is written and its bit set.
	marked()
	close() error
}

// object is the shared state of one open object: the manifest, the held
// bitfield and the backend holding the bytes.
type object struct {
	m *core.Manifest
	b backend

	mu   sync.Mutex
	have core.Bitfield // guarded by mu
	refs int           // guarded by the store's mu
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
	// Two concurrent writers of one chunk write the same verified bytes,
	// so racing here is harmless.
	if err := o.b.writeAt(i, data); err != nil {
		return fmt.Errorf("write chunk %d of %s: %w", i, o.m.Root.Short(), err)
	}
	o.mu.Lock()
	o.have.Set(i)
	o.mu.Unlock()
	o.b.marked()
	return nil
}

func (o *object) read(i int, buf []byte) ([]byte, error) {
	if i < 0 || i >= o.m.NumChunks() {
		return nil, fmt.Errorf("read chunk %d of %s: index out of range: %w", i, o.m.Root.Short(), ErrNotFound)
	}
	o.mu.Lock()
	held := o.have.Has(i)
	o.mu.Unlock()
	if !held {
		return nil, fmt.Errorf("read chunk %d of %s: %w", i, o.m.Root.Short(), ErrNotFound)
	}
	n := o.m.ChunkLen(i)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if err := o.b.readAt(i, buf); err != nil {
		return nil, fmt.Errorf("read chunk %d of %s: %w", i, o.m.Root.Short(), err)
	}
	return buf, nil
}

func (o *object) haveCopy() core.Bitfield {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.have.Clone()
}

// registry is the open-object table shared by both stores.
type registry struct {
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
		var err error
		if o, err = create(m); err != nil {
			return nil, err
		}
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

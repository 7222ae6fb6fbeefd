package chunkstore

// The budget: a bound on the chunk bytes a store holds across every object
// version, kept by evicting chunks of other versions, least recently used
// first, never a pinned one.

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/units"
)

// ErrFull: a chunk does not fit in the store's budget and nothing can be
// evicted to make room.
var ErrFull = errors.New("chunkstore: budget full")

// Option configures a store.
type Option func(*options)

type options struct {
	budget int64
}

// WithBudget bounds the chunk bytes the store holds across every object
// version to bytes; 0 (the default) means no bound. A write that would go
// past it first evicts chunks of other object versions, least recently
// used version first, highest index first within a version (players start
// at the beginning, so a version keeps its head longest); a pinned chunk
// (Object.Pin) is never evicted, and neither is a chunk of the object being
// written. Versions no handle has open are removed whole when they are the
// least recently used. When nothing can be evicted the write fails with
// ErrFull, and Open refuses an object larger than the budget.
func WithBudget(bytes int64) Option {
	return func(o *options) { o.budget = max(bytes, 0) }
}

func buildOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// Usage is what a store holds against its budget.
type Usage struct {
	// UsedBytes counts the chunk bytes held, every object version, open or
	// not. Manifests and have-files (about 32 bytes a chunk) are not counted.
	UsedBytes int64 `json:"used_bytes"`
	// BudgetBytes is the bound; 0 means none.
	BudgetBytes int64 `json:"budget_bytes"`
	// Objects counts the object versions the store knows.
	Objects int `json:"objects"`
	// EvictedChunks and EvictedBytes count what eviction removed; a version
	// removed whole counts its bytes and chunks too.
	EvictedChunks int64 `json:"evicted_chunks"`
	EvictedBytes  int64 `json:"evicted_bytes"`
	// RefusedWrites counts writes that failed with ErrFull.
	RefusedWrites int64 `json:"refused_writes"`
}

// budget accounts the chunk bytes of a store and evicts to stay within its
// limit. Lock order: registry.mu → budget.mu → object.mu.
type budget struct {
	limit int64
	// discard removes the storage of a version no handle has open.
	discard func(root core.Hash) error
	clock   atomic.Uint64 // logical time of uses, for LRU

	mu      sync.Mutex
	used    int64                // guarded by mu
	entries map[core.Hash]*entry // guarded by mu
	evChunk int64                // guarded by mu
	evBytes int64                // guarded by mu
	refused int64                // guarded by mu
}

// entry is one object version the budget knows.
type entry struct {
	bytes   int64   // held chunk bytes
	chunks  int     // held chunks
	lastUse uint64  // when closed; an open object's is in obj.lastUse
	obj     *object // nil when no handle is open
	opening bool    // being (re)opened: not evictable
}

func newBudget(limit int64, discard func(core.Hash) error) *budget {
	return &budget{limit: limit, discard: discard, entries: map[core.Hash]*entry{}}
}

func (b *budget) tick() uint64 { return b.clock.Add(1) }

// add records a version found in storage that no handle has open.
func (b *budget) add(root core.Hash, bytes int64, chunks int, lastUse uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries[root] = &entry{bytes: bytes, chunks: chunks, lastUse: lastUse}
	b.used += bytes
}

// fits reports whether an object of size can ever fit.
func (b *budget) fits(size int64) error {
	if b.limit > 0 && size > b.limit {
		return fmt.Errorf("object of %s is larger than the budget of %s", units.Bytes(size), units.Bytes(b.limit))
	}
	return nil
}

// claim marks root as being opened so that eviction leaves it alone while
// its storage is read; opened or abandon ends the claim.
func (b *budget) claim(root core.Hash) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[root]
	if e == nil {
		e = &entry{}
		b.entries[root] = e
	}
	e.opening = true
}

// opened records the open object of a claimed root with what it holds.
func (b *budget) opened(o *object) {
	o.mu.Lock()
	chunks := o.have.Count()
	var bytes int64
	for i := 0; i < o.m.NumChunks(); i++ {
		if o.have.Has(i) {
			bytes += int64(o.m.ChunkLen(i))
		}
	}
	o.mu.Unlock()
	o.lastUse.Store(b.tick())
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[o.m.Root]
	b.used += bytes - e.bytes
	e.bytes, e.chunks, e.obj, e.opening = bytes, chunks, o, false
}

// abandon ends a claim whose open failed.
func (b *budget) abandon(root core.Hash) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.entries[root]; e != nil {
		e.opening = false
		if e.obj == nil && e.bytes == 0 {
			delete(b.entries, root)
		}
	}
}

// closed records that no handle has o open any more.
func (b *budget) closed(o *object) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.entries[o.m.Root]; e != nil && e.obj == o {
		e.obj, e.lastUse = nil, o.lastUse.Load()
	}
}

// reserve makes room for n more bytes of w, evicting from other versions
// if needed.
func (b *budget) reserve(w *object, n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit == 0 || b.used+n <= b.limit {
		b.grow(w, n, 1)
		return nil
	}
	skip := map[*entry]bool{} // open versions with nothing evictable now
	for b.used+n > b.limit {
		root, e := b.victim(w, skip)
		if e == nil {
			b.refused++
			return fmt.Errorf("%w: %s held of %s and %s more needed, and nothing can be evicted (the rest is this object's or pinned by downloads in progress, uploads and players)",
				ErrFull, units.Bytes(b.used), units.Bytes(b.limit), units.Bytes(n))
		}
		if e.obj == nil {
			// A version no handle has open goes whole. If removing it
			// fails it is forgotten all the same: counting it would block
			// every later write.
			_ = b.discard(root)
			b.used -= e.bytes
			b.evBytes += e.bytes
			b.evChunk += int64(e.chunks)
			delete(b.entries, root)
			continue
		}
		bytes, chunks := e.obj.evict(b.used + n - b.limit)
		if chunks == 0 {
			skip[e] = true
			continue
		}
		e.bytes -= bytes
		e.chunks -= chunks
		b.used -= bytes
		b.evBytes += bytes
		b.evChunk += int64(chunks)
	}
	b.grow(w, n, 1)
	return nil
}

// grow adds n bytes and chunks held by w (negative to take them back).
// Called with mu held.
func (b *budget) grow(w *object, n int64, chunks int) {
	b.used += n
	if e := b.entries[w.m.Root]; e != nil && e.obj == w {
		e.bytes += n
		e.chunks += chunks
	}
}

// unreserve gives back a reservation whose write did not happen.
func (b *budget) unreserve(w *object, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.grow(w, -n, -1)
}

// victim returns the least recently used version other than w that holds
// bytes and is not being opened or in skip. Called with mu held.
func (b *budget) victim(w *object, skip map[*entry]bool) (core.Hash, *entry) {
	var (
		best     *entry
		bestRoot core.Hash
		bestUse  uint64
	)
	for root, e := range b.entries {
		if e.bytes <= 0 || e.opening || skip[e] || (e.obj != nil && e.obj == w) || root == w.m.Root {
			continue
		}
		use := e.lastUse
		if e.obj != nil {
			use = e.obj.lastUse.Load()
		}
		if best == nil || use < bestUse {
			best, bestRoot, bestUse = e, root, use
		}
	}
	return bestRoot, best
}

func (b *budget) usage() Usage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Usage{
		UsedBytes: b.used, BudgetBytes: b.limit, Objects: len(b.entries),
		EvictedChunks: b.evChunk, EvictedBytes: b.evBytes, RefusedWrites: b.refused,
	}
}

// trim evicts versions no handle has open, least recently used first,
// until the store is within its limit (after a restart with a smaller one).
func (b *budget) trim() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.limit > 0 && b.used > b.limit {
		var best *entry
		var bestRoot core.Hash
		for root, e := range b.entries {
			if e.obj == nil && !e.opening && e.bytes > 0 && (best == nil || e.lastUse < best.lastUse) {
				best, bestRoot = e, root
			}
		}
		if best == nil {
			return
		}
		_ = b.discard(bestRoot)
		b.used -= best.bytes
		b.evBytes += best.bytes
		b.evChunk += int64(best.chunks)
		delete(b.entries, bestRoot)
	}
}

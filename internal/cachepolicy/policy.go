// Package cachepolicy holds the eviction policies of a byte-budgeted cache:
// which stored object to drop when a new one needs room. Each policy is a
// pure, single-threaded bookkeeping structure keyed by the cache key; the
// cache owns the objects, the byte budget and the lock, and asks the policy
// for victims until the new object fits. Every operation is O(1) or
// amortized O(1).
//
// The policies (docs/BENCHMARKS.md compares them on Zipf traces):
//
//   - lru: least recently used; the floor the others must beat.
//   - sieve: SIEVE (Zhang et al., NSDI '24), a FIFO with a visited bit and
//     a moving hand.
//   - s3fifo: S3-FIFO (Yang et al., SOSP '23), a small FIFO that filters
//     one-hit wonders out, a main FIFO with reinsertion, and a ghost FIFO
//     of recently evicted keys.
//   - tinylfu: W-TinyLFU (Einziger et al., 2017; Caffeine's layout), an LRU
//     window in front of a segmented LRU guarded by a count-min frequency
//     sketch.
//
// All are size-aware in the sense a disk cache needs: queue targets are in
// bytes, and a victim is chosen per call, so a large newcomer costs as many
// victims as it needs.
package cachepolicy

import (
	"fmt"
	"slices"
)

// Policy chooses what a byte-budgeted cache evicts. The cache tells it
// of every stored object (Add), every reuse (Hit) and every removal it
// made on its own (Remove); Add answers with the keys to evict so that the
// resident set fits the budget again. Implementations are not safe for
// concurrent use: the cache calls them under its own lock.
//
// Four methods are the fewest a policy needs: it must learn of arrivals,
// reuse and foreign removals, and the cache must be able to ask for one
// more victim when the disk, not the budget, runs out (Evict).
type Policy interface {
	// Add records that key is now stored with size bytes and returns the
	// resident keys the cache must evict, which the policy has already
	// forgotten. It never returns key itself: the caller has just written
	// the object and is about to serve it. Adding a resident key updates
	// its size and counts as a hit.
	Add(key string, size int64) (evict []string)
	// Hit records that the stored object key was used. Unknown keys are
	// ignored.
	Hit(key string)
	// Remove forgets a resident key that the cache dropped on its own
	// (replaced, corrupt, purged). Unknown keys are ignored.
	Remove(key string)
	// Evict picks one more resident key to drop, forgets it and returns
	// it; ok is false when nothing is resident.
	Evict() (key string, ok bool)
}

// Default is the policy the edge uses, chosen by the trace comparison in
// docs/BENCHMARKS.md.
const Default = "s3fifo"

var constructors = map[string]func(Limits) Policy{
	"lru":     func(l Limits) Policy { return NewLRU(l) },
	"sieve":   func(l Limits) Policy { return NewSIEVE(l) },
	"s3fifo":  func(l Limits) Policy { return NewS3FIFO(l) },
	"tinylfu": func(l Limits) Policy { return NewTinyLFU(l) },
}

// Limits bound what a cache holds.
type Limits struct {
	Bytes   int64 // the byte budget; must be > 0
	Objects int   // the most objects held; 0 means no limit
}

// budget is the bookkeeping every policy shares: resident bytes against
// the limits.
type budget struct {
	Limits
	bytes int64 // resident bytes
}

// over reports whether count objects holding b.bytes break the limits.
func (b *budget) over(count int) bool {
	return b.bytes > b.Bytes || (b.Objects > 0 && count > b.Objects)
}

// Names lists the policies New knows, sorted.
func Names() []string {
	names := make([]string, 0, len(constructors))
	for n := range constructors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// New returns the named policy for a cache with limits l.
func New(name string, l Limits) (Policy, error) {
	f, ok := constructors[name]
	if !ok {
		return nil, fmt.Errorf("cachepolicy: unknown policy %q (have %v)", name, Names())
	}
	if l.Bytes <= 0 || l.Objects < 0 {
		return nil, fmt.Errorf("cachepolicy: limits %+v: want Bytes > 0, Objects ≥ 0", l)
	}
	return f(l), nil
}

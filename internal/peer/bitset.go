package peer

import (
	"math/bits"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// bitset is the scheduler's word-wide set of chunk indexes; it intersects
// sets 64 chunks at a time where core.Bitfield works byte by byte.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(i int) bool { return i >= 0 && i/64 < len(b) && b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) clear(i int)    { b[i/64] &^= 1 << (i % 64) }

// fromBitfield converts a wire bitfield.
func fromBitfield(f core.Bitfield) bitset {
	b := newBitset(f.Len())
	for i := 0; i < f.Len(); i++ {
		if f.Has(i) {
			b.set(i)
		}
	}
	return b
}

// appendAnd appends the indexes set in both b and o (o nil means all of b).
func (b bitset) appendAnd(dst []int, o bitset) []int {
	for w, x := range b {
		if o != nil {
			x &= o[w]
		}
		for x != 0 {
			t := bits.TrailingZeros64(x)
			dst = append(dst, w*64+t)
			x &= x - 1
		}
	}
	return dst
}

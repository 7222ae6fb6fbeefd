package sim

import (
	"math/bits"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// bitset is a set of chunk indexes, 64 per word; nil stands for "every
// chunk" where a source's holdings are meant (the edge).
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(i int) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }
func (b bitset) set(i int)      { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) clear(i int)    { b[i>>6] &^= 1 << (uint(i) & 63) }

// intersects reports whether b and o (nil: everything) share an index.
func (b bitset) intersects(o bitset) bool {
	for w, x := range b {
		if o != nil {
			x &= o[w]
		}
		if x != 0 {
			return true
		}
	}
	return false
}

// appendAnd appends the indexes set in both b and o (nil: everything), ascending.
func (b bitset) appendAnd(dst []int, o bitset) []int {
	for w, x := range b {
		if o != nil {
			x &= o[w]
		}
		for x != 0 {
			dst = append(dst, w*64+bits.TrailingZeros64(x))
			x &= x - 1
		}
	}
	return dst
}

// bitfield converts b to the wire form for n chunks.
func (b bitset) bitfield(n int) core.Bitfield {
	f := core.NewBitfield(n)
	for w, x := range b {
		for x != 0 {
			f.Set(w*64 + bits.TrailingZeros64(x))
			x &= x - 1
		}
	}
	return f
}

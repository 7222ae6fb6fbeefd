package core

import (
	"fmt"
	"math/bits"
)

// Bitfield records which chunks of an object a node holds. Bit i is set when
// chunk i is held. The zero value is an empty field of length 0.
type Bitfield struct {
	n    int
	bits []byte
}

// NewBitfield returns an empty bitfield for n chunks.
func NewBitfield(n int) Bitfield {
	return Bitfield{n: n, bits: make([]byte, (n+7)/8)}
}

// BitfieldFromBytes decodes the wire form of a bitfield for n chunks. It
// refuses a buffer of the wrong length or with bits set past n.
func BitfieldFromBytes(n int, b []byte) (Bitfield, error) {
	if n < 0 || len(b) != (n+7)/8 {
		return Bitfield{}, fmt.Errorf("bitfield: %d bytes for %d chunks, want %d", len(b), n, (n+7)/8)
	}
	if n%8 != 0 && len(b) > 0 && b[len(b)-1]&^byte(0xff<<(8-n%8)) != 0 {
		return Bitfield{}, fmt.Errorf("bitfield: bits set past chunk %d", n)
	}
	return Bitfield{n: n, bits: append([]byte(nil), b...)}, nil
}

// Len is the number of chunks the field covers.
func (f Bitfield) Len() int { return f.n }

// Has reports whether chunk i is set; out-of-range i reports false.
func (f Bitfield) Has(i int) bool {
	if i < 0 || i >= f.n {
		return false
	}
	return f.bits[i/8]&(0x80>>(i%8)) != 0
}

// Set marks chunk i as held. It panics on an out-of-range index, which is a
// programming error: indexes come from a verified manifest.
func (f Bitfield) Set(i int) {
	if i < 0 || i >= f.n {
		panic(fmt.Sprintf("bitfield: index %d out of range [0,%d)", i, f.n))
	}
	f.bits[i/8] |= 0x80 >> (i % 8)
}

// Clear unsets chunk i.
func (f Bitfield) Clear(i int) {
	if i < 0 || i >= f.n {
		return
	}
	f.bits[i/8] &^= 0x80 >> (i % 8)
}

// Count returns the number of set chunks.
func (f Bitfield) Count() int {
	c := 0
	for _, b := range f.bits {
		c += bits.OnesCount8(b)
	}
	return c
}

// Complete reports whether every chunk is set.
func (f Bitfield) Complete() bool { return f.Count() == f.n }

// Bytes returns a copy of the wire form (MSB-first, as BitTorrent's).
func (f Bitfield) Bytes() []byte { return append([]byte(nil), f.bits...) }

// Clone returns an independent copy.
func (f Bitfield) Clone() Bitfield { return Bitfield{n: f.n, bits: f.Bytes()} }

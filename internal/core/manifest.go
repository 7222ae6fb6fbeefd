package core

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Limits on manifests. They bound what a parser of outside input allocates.
const (
	MinChunkSize = 16 << 10 // 16 KiB
	MaxChunkSize = 64 << 20 // 64 MiB
	MaxChunks    = 1 << 20
	MaxURLLen    = 8 << 10
	MaxFieldLen  = 1 << 10 // validator, content type, key id

	// DefaultMinChunk is the smallest chunk size ChooseChunkSize picks.
	DefaultMinChunk = 64 << 10
	// TargetChunks is the chunk count ChooseChunkSize stays under.
	TargetChunks = 2048
)

// Errors returned by manifest verification.
var (
	ErrBadSignature = errors.New("manifest signature does not verify")
	ErrBadRoot      = errors.New("manifest root hash does not match its chunk hashes")
	ErrUnknownKey   = errors.New("manifest signed by an unknown key")
	ErrHashMismatch = errors.New("chunk hash mismatch")
	ErrChunkLength  = errors.New("chunk has the wrong length")
)

// Manifest describes one version of one object: its chunking, the SHA-256 of
// every chunk and a root hash over them, signed by the edge tier. The root
// hash names the version everywhere in the swarm.
type Manifest struct {
	URL         string // object path (and query) on its property, e.g. "/videos/a.mp4"
	Validator   string // strong ETag, or Last-Modified when the origin gives no ETag
	Size        int64  // object length in bytes
	ChunkSize   int    // power of two
	ContentType string
	Hashes      []Hash // one per chunk, len == NumChunks(Size, ChunkSize)
	Root        Hash   // RootHash(Hashes)
	KeyID       string // which edge-tier key signed it (KeyIDOf)
	Signature   []byte // ed25519 over SigningBytes()
}

// NumChunks returns the number of chunks of an object of size bytes.
func NumChunks(size int64, chunkSize int) int {
	if size <= 0 {
		return 0
	}
	return int((size + int64(chunkSize) - 1) / int64(chunkSize))
}

// ChooseChunkSize picks the smallest power of two, at least DefaultMinChunk,
// that keeps the object under TargetChunks chunks.
func ChooseChunkSize(size int64) int {
	cs := DefaultMinChunk
	for cs < MaxChunkSize && int64(cs)*TargetChunks < size {
		cs <<= 1
	}
	return cs
}

// ValidChunkSize reports whether cs is a power of two within the limits.
func ValidChunkSize(cs int) bool {
	return cs >= MinChunkSize && cs <= MaxChunkSize && cs&(cs-1) == 0
}

// NumChunks returns the manifest's chunk count.
func (m *Manifest) NumChunks() int { return len(m.Hashes) }

// ChunkLen returns the length of chunk i (the last one may be short).
func (m *Manifest) ChunkLen(i int) int {
	off := int64(i) * int64(m.ChunkSize)
	if rest := m.Size - off; rest < int64(m.ChunkSize) {
		return int(rest)
	}
	return m.ChunkSize
}

// ChunkOffset returns the byte offset of chunk i in the object.
func (m *Manifest) ChunkOffset(i int) int64 { return int64(i) * int64(m.ChunkSize) }

// CheckChunk verifies that data is chunk i of this manifest.
func (m *Manifest) CheckChunk(i int, data []byte) error {
	if i < 0 || i >= len(m.Hashes) {
		return fmt.Errorf("chunk %d of %s: index out of range [0,%d)", i, m.Root.Short(), len(m.Hashes))
	}
	if len(data) != m.ChunkLen(i) {
		return fmt.Errorf("chunk %d of %s: %d bytes, want %d: %w", i, m.Root.Short(), len(data), m.ChunkLen(i), ErrChunkLength)
	}
	if HashBytes(data) != m.Hashes[i] {
		return fmt.Errorf("chunk %d of %s: %w", i, m.Root.Short(), ErrHashMismatch)
	}
	return nil
}

// RootHash returns the root over a list of chunk hashes: SHA-256 of a
// domain-separation prefix followed by every chunk hash in order.
func RootHash(hashes []Hash) Hash {
	h := sha256.New()
	h.Write([]byte("edgeswarm-root-v1\x00"))
	for i := range hashes {
		h.Write(hashes[i][:])
	}
	var r Hash
	copy(r[:], h.Sum(nil))
	return r
}

// KeyIDOf names a public key: the hex of the first 8 bytes of its SHA-256.
func KeyIDOf(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// Sign sets KeyID, Root and Signature using priv.
func (m *Manifest) Sign(priv ed25519.PrivateKey) error {
	if err := m.checkShape(); err != nil {
		return err
	}
	m.Root = RootHash(m.Hashes)
	m.KeyID = KeyIDOf(priv.Public().(ed25519.PublicKey))
	body, err := m.SigningBytes()
	if err != nil {
		return err
	}
	m.Signature = ed25519.Sign(priv, body)
	return nil
}

// KeyRing maps key ids to the edge tier's public keys that peers trust.
type KeyRing map[string]ed25519.PublicKey

// NewKeyRing builds a ring from public keys.
func NewKeyRing(keys ...ed25519.PublicKey) KeyRing {
	r := KeyRing{}
	for _, k := range keys {
		r[KeyIDOf(k)] = k
	}
	return r
}

// Verify checks the manifest's shape, its root against its hashes and its
// signature against the ring. A manifest that fails must not be used.
func (m *Manifest) Verify(ring KeyRing) error {
	if err := m.checkShape(); err != nil {
		return err
	}
	if RootHash(m.Hashes) != m.Root {
		return ErrBadRoot
	}
	pub, ok := ring[m.KeyID]
	if !ok {
		return fmt.Errorf("%w: key id %q", ErrUnknownKey, truncate(m.KeyID, 80))
	}
	body, err := m.SigningBytes()
	if err != nil {
		return err
	}
	if len(m.Signature) != ed25519.SignatureSize || !ed25519.Verify(pub, body, m.Signature) {
		return ErrBadSignature
	}
	return nil
}

func (m *Manifest) checkShape() error {
	switch {
	case len(m.URL) == 0 || len(m.URL) > MaxURLLen:
		return fmt.Errorf("manifest: url length %d outside [1,%d]", len(m.URL), MaxURLLen)
	case len(m.Validator) > MaxFieldLen || len(m.ContentType) > MaxFieldLen || len(m.KeyID) > MaxFieldLen:
		return fmt.Errorf("manifest: a text field is longer than %d bytes", MaxFieldLen)
	case m.Size < 0:
		return fmt.Errorf("manifest: negative size %d", m.Size)
	case !ValidChunkSize(m.ChunkSize):
		return fmt.Errorf("manifest: chunk size %d is not a power of two in [%d,%d]", m.ChunkSize, MinChunkSize, MaxChunkSize)
	case NumChunks(m.Size, m.ChunkSize) > MaxChunks:
		return fmt.Errorf("manifest: %d chunks, more than %d", NumChunks(m.Size, m.ChunkSize), MaxChunks)
	case len(m.Hashes) != NumChunks(m.Size, m.ChunkSize):
		return fmt.Errorf("manifest: %d hashes for %d chunks", len(m.Hashes), NumChunks(m.Size, m.ChunkSize))
	}
	return nil
}

// manifestMagic starts every encoded manifest; the digit is the version.
var manifestMagic = []byte("ESM1")

// SigningBytes returns the stable encoding of everything but the signature.
func (m *Manifest) SigningBytes() ([]byte, error) {
	if err := m.checkShape(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(64 + len(m.URL) + len(m.Validator) + len(m.ContentType) + 32*len(m.Hashes))
	b.Write(manifestMagic)
	putString(&b, m.URL)
	putString(&b, m.Validator)
	putUint(&b, uint64(m.Size), 8)
	putUint(&b, uint64(m.ChunkSize), 4)
	putString(&b, m.ContentType)
	putUint(&b, uint64(len(m.Hashes)), 4)
	for i := range m.Hashes {
		b.Write(m.Hashes[i][:])
	}
	b.Write(m.Root[:])
	putString(&b, m.KeyID)
	return b.Bytes(), nil
}

// MarshalBinary encodes the manifest: SigningBytes followed by a
// length-prefixed signature. The encoding is stable (golden-tested).
func (m *Manifest) MarshalBinary() ([]byte, error) {
	body, err := m.SigningBytes()
	if err != nil {
		return nil, err
	}
	if len(m.Signature) > MaxFieldLen {
		return nil, fmt.Errorf("manifest: signature of %d bytes", len(m.Signature))
	}
	var b bytes.Buffer
	b.Write(body)
	putString(&b, string(m.Signature))
	return b.Bytes(), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote. It checks the encoding
// and the shape, never the signature: call Verify before trusting it.
func (m *Manifest) UnmarshalBinary(data []byte) error {
	r := &reader{b: data}
	if !bytes.Equal(r.next(len(manifestMagic)), manifestMagic) {
		return fmt.Errorf("manifest: bad magic (not an edgeswarm v1 manifest)")
	}
	var out Manifest
	out.URL = r.str(MaxURLLen)
	out.Validator = r.str(MaxFieldLen)
	size := r.uint(8)
	cs := r.uint(4)
	out.ContentType = r.str(MaxFieldLen)
	n := r.uint(4)
	if r.err != nil {
		return fmt.Errorf("manifest: %w", r.err)
	}
	if size > 1<<62 || cs > MaxChunkSize || n > MaxChunks {
		return fmt.Errorf("manifest: size %d, chunk size %d or chunk count %d out of range", size, cs, n)
	}
	out.Size, out.ChunkSize = int64(size), int(cs)
	if uint64(len(data)-r.off) < n*32 {
		return fmt.Errorf("manifest: %w", io.ErrUnexpectedEOF)
	}
	out.Hashes = make([]Hash, n)
	for i := range out.Hashes {
		copy(out.Hashes[i][:], r.next(32))
	}
	copy(out.Root[:], r.next(32))
	out.KeyID = r.str(MaxFieldLen)
	out.Signature = []byte(r.str(MaxFieldLen))
	if r.err != nil {
		return fmt.Errorf("manifest: %w", r.err)
	}
	if r.off != len(data) {
		return fmt.Errorf("manifest: %d trailing bytes", len(data)-r.off)
	}
	if err := out.checkShape(); err != nil {
		return err
	}
	*m = out
	return nil
}

// ParseManifest decodes data and verifies it against ring.
func ParseManifest(data []byte, ring KeyRing) (*Manifest, error) {
	m := new(Manifest)
	if err := m.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	if err := m.Verify(ring); err != nil {
		return nil, err
	}
	return m, nil
}

func putUint(b *bytes.Buffer, v uint64, n int) {
	var tmp [8]byte
	binary.BigEndian.PutUint64(tmp[:], v)
	b.Write(tmp[8-n:])
}

func putString(b *bytes.Buffer, s string) {
	putUint(b, uint64(len(s)), 2)
	b.WriteString(s)
}

// reader is a bounds-checked cursor; after the first error every read
// returns zero values and err stays set.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) uint(n int) uint64 {
	p := r.next(n)
	if p == nil {
		return 0
	}
	var tmp [8]byte
	copy(tmp[8-n:], p)
	return binary.BigEndian.Uint64(tmp[:])
}

func (r *reader) str(max int) string {
	n := int(r.uint(2))
	if r.err == nil && n > max {
		r.err = fmt.Errorf("field of %d bytes, limit %d", n, max)
		return ""
	}
	return string(r.next(n))
}

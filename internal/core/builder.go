package core

import (
	"crypto/sha256"
	"fmt"
	"io"
)

// BuildManifest reads an object of size bytes from r, hashes it chunk by
// chunk and returns an unsigned manifest (call Sign). It fails if r yields
// more or fewer than size bytes.
func BuildManifest(r io.Reader, url, validator, contentType string, size int64, chunkSize int) (*Manifest, error) {
	if chunkSize == 0 {
		chunkSize = ChooseChunkSize(size)
	}
	if !ValidChunkSize(chunkSize) {
		return nil, fmt.Errorf("build manifest: chunk size %d is not a power of two in [%d,%d]", chunkSize, MinChunkSize, MaxChunkSize)
	}
	m := &Manifest{URL: url, Validator: validator, Size: size, ChunkSize: chunkSize, ContentType: contentType}
	n := NumChunks(size, chunkSize)
	if n > MaxChunks {
		return nil, fmt.Errorf("build manifest: %d chunks, more than %d", n, MaxChunks)
	}
	m.Hashes = make([]Hash, n)
	buf := make([]byte, chunkSize)
	for i := 0; i < n; i++ {
		l := m.ChunkLen(i)
		if _, err := io.ReadFull(r, buf[:l]); err != nil {
			return nil, fmt.Errorf("build manifest: chunk %d: %w", i, err)
		}
		m.Hashes[i] = sha256.Sum256(buf[:l])
	}
	var one [1]byte
	if k, _ := r.Read(one[:]); k > 0 {
		return nil, fmt.Errorf("build manifest: object longer than its size %d", size)
	}
	m.Root = RootHash(m.Hashes)
	return m, nil
}

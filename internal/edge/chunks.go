package edge

// Chunk serving by manifest root, with per-peer usage counts.

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/edgeswarm/edgeswarm/internal/wire"
)

func (s *Server) handleChunk(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	root, index, err := wire.ParseChunkPath(r.URL.Path)
	if err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	f, man, err := s.cache.openRoot(root)
	if err != nil {
		return fmt.Errorf("chunk %d of %s: %w", index, root.Short(), err)
	}
	defer f.Close()
	if index >= man.NumChunks() {
		return errorf(http.StatusNotFound, "chunk %d of %s: the object has %d chunks", index, root.Short(), man.NumChunks())
	}
	select {
	case s.uploads <- struct{}{}:
		defer func() { <-s.uploads }()
	default:
		s.stats.chunksRefused.Add(1)
		w.Header().Set("Retry-After", "1")
		return errorf(http.StatusServiceUnavailable, "edge busy: %d chunk uploads in progress", cap(s.uploads))
	}
	size := man.ChunkLen(index)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(size))
	// A chunk's bytes never change: its name is its hash.
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	// Plain io.Copy through the connection, so rate-shaped conns (netem)
	// see every byte.
	n, err := io.Copy(w, io.NewSectionReader(f, man.ChunkOffset(index), int64(size)))
	s.stats.chunkBytes.Add(n)
	s.metrics.chunkBytesTo.Add(float64(n))
	s.usageFromEdge(man, r.Header.Get(wire.HeaderPeerID), n)
	if err != nil {
		return fmt.Errorf("chunk %d of %s after %d bytes: %w: %w", index, root.Short(), n, errAbort, err)
	}
	s.stats.chunks.Add(1)
	return nil
}

package edge

// Chunk serving by manifest root, with per-peer usage counts.

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

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
	s.usage.add(s, r.Header.Get(wire.HeaderPeerID), n)
	if err != nil {
		return fmt.Errorf("chunk %d of %s after %d bytes: %w: %w", index, root.Short(), n, errAbort, err)
	}
	s.stats.chunks.Add(1)
	return nil
}

// usage counts chunk bytes served per requesting peer, for accounting.
type usage struct {
	mu     sync.Mutex
	byPeer map[string]int64 // guarded by mu; "" = unattributed
}

// usageMax bounds the per-peer map; past it bytes go unattributed.
const usageMax = 100000

func (u *usage) add(s *Server, peerID string, n int64) {
	if n == 0 {
		return
	}
	// The header is the requester's claim; only registered ids are kept,
	// so a client cannot grow the map with made-up names.
	if peerID != "" && !s.tracker.Known(peerID) {
		peerID = ""
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.byPeer == nil {
		u.byPeer = make(map[string]int64)
	}
	if _, ok := u.byPeer[peerID]; !ok && len(u.byPeer) >= usageMax {
		peerID = ""
	}
	u.byPeer[peerID] += n
}

func (u *usage) snapshot() map[string]int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]int64, len(u.byPeer))
	for k, v := range u.byPeer {
		out[k] = v
	}
	return out
}

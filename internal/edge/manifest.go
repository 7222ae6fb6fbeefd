package edge

// Signed manifests: built once per stored version (coalesced by version),
// persisted beside the object, served on wire.PathManifest.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

type builtManifest struct {
	man *core.Manifest
	enc []byte
}

func (s *Server) handleManifest(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	raw := r.URL.Query().Get("url")
	if raw == "" {
		return errorf(http.StatusBadRequest, "missing url parameter")
	}
	u, err := url.ParseRequestURI(raw)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return errorf(http.StatusBadRequest, "url %q: want a path such as /videos/a.mp4", truncate(raw, 80))
	}
	p, key, err := s.requestKey(r.Host, u)
	if err != nil {
		return err
	}
	// The manifest describes the object as the edge fetches it for a
	// request without negotiation headers.
	q := s.newQuery(&http.Request{Header: http.Header{}}, p, key)
	for range maxServeAttempts {
		res, err := s.obtain(r.Context(), q)
		if err == nil {
			res, err = res.settle(r.Context())
		}
		if err != nil {
			return err
		}
		if res.entry == nil {
			return noManifest(key, res)
		}
		if _, m, ok := s.cache.lookup(res.entry.key); ok && m.Status != 0 && m.Status != http.StatusOK {
			return errorf(m.Status, "origin answered %d for %s; no manifest", m.Status, truncate(key, 200))
		}
		b, err := s.manifestFor(r.Context(), res.entry)
		if errors.Is(err, errNotCached) {
			continue // evicted before it could be built: fetch again
		}
		if err != nil {
			return err
		}
		h := w.Header()
		h.Set("Content-Type", wire.ContentTypeManifest)
		h.Set("Content-Length", fmt.Sprint(len(b.enc)))
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Cache", res.status)
		if r.Method == http.MethodHead {
			return nil
		}
		_, err = w.Write(b.enc)
		return err
	}
	return errorf(http.StatusServiceUnavailable, "%s was evicted while its manifest was built; retry", key)
}

// noManifest explains why an object the edge does not store has no manifest.
func noManifest(key string, res *fillResult) error {
	switch {
	case res.direct:
		return errorf(http.StatusInsufficientStorage, "%s is larger than this edge caches; no manifest", key)
	case res.pass.status == http.StatusOK:
		return errorf(http.StatusForbidden, "%s is not cacheable (no-store or private); no manifest", key)
	case res.pass.status >= 400 && res.pass.status < 500:
		return errorf(res.pass.status, "origin answered %d for %s", res.pass.status, key)
	}
	return errorf(http.StatusBadGateway, "origin answered %d for %s", res.pass.status, key)
}

// manifestFor returns e's manifest, building it at most once at a time.
func (s *Server) manifestFor(ctx context.Context, e *entry) (builtManifest, error) {
	if man, enc := s.cache.manifest(e); man != nil {
		return builtManifest{man, enc}, nil
	}
	c, _ := s.builds.do(e.id, s.spawn, func() (builtManifest, error) { return s.buildManifest(e) })
	return c.wait(ctx, 0)
}

func (s *Server) buildManifest(e *entry) (builtManifest, error) {
	if man, enc := s.cache.manifest(e); man != nil {
		return builtManifest{man, enc}, nil // built by a flight that just ended
	}
	f, m, err := s.cache.open(e)
	if err != nil {
		return builtManifest{}, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(ctxReader{s.ctx, f}, 1<<20)
	_, path := s.propertyOfKey(primaryKey(e.key))
	man, err := core.BuildManifest(r, path, m.validator(), m.Header["Content-Type"], m.Size, s.chunkSize(m.Size))
	if err != nil {
		return builtManifest{}, fmt.Errorf("manifest of %s: %w", e.key, err)
	}
	if err := man.Sign(s.cfg.SigningKey); err != nil {
		return builtManifest{}, fmt.Errorf("manifest of %s: sign: %w", e.key, err)
	}
	enc, err := man.MarshalBinary()
	if err != nil {
		return builtManifest{}, fmt.Errorf("manifest of %s: encode: %w", e.key, err)
	}
	s.stats.manifestBuilds.Add(1)
	if err := s.cache.setManifest(e, man, enc); err != nil {
		return builtManifest{}, err
	}
	s.log.Debug("manifest built", "key", e.key, "root", man.Root.Short(), "chunks", man.NumChunks())
	return builtManifest{man, enc}, nil
}

// chunkSize is the configured chunk size, unless that would make more
// chunks than a manifest may hold.
func (s *Server) chunkSize(size int64) int {
	cs := s.cfg.ChunkSize
	if cs == 0 || core.NumChunks(size, cs) > core.MaxChunks {
		cs = max(cs, core.ChooseChunkSize(size))
	}
	return cs
}

// ctxReader stops a long read (hashing a large object) when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

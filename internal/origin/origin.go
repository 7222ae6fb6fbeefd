// Package origin is a plain static HTTP origin for demos, tests and
// benchmarks: files under one directory with strong ETags, Last-Modified,
// Range and a configurable Cache-Control. Real deployments put edges in
// front of any HTTP origin instead.
package origin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures an origin.
type Config struct {
	// Dir is the directory whose files are served (required).
	Dir string
	// CacheControl is sent with every 200/206/304; "" means "public, max-age=3600".
	CacheControl string
}

func (c Config) applyDefaults() Config {
	if c.CacheControl == "" {
		c.CacheControl = "public, max-age=3600"
	}
	return c
}

// Stats counts what the origin served.
type Stats struct {
	Requests    int64 // every request received
	Fetches     int64 // GET requests answered 200 or 206 (bodies sent)
	BytesServed int64 // body bytes written
}

// Server serves the files of one directory.
type Server struct {
	cfg  Config
	root *os.Root
	log  *slog.Logger

	requests, fetches, bytes atomic.Int64

	mu    sync.Mutex           // guards etags
	etags map[string]etagEntry // file path → content hash keyed by size+mtime

	srvMu sync.Mutex   // guards srv
	srv   *http.Server // set by Serve
}

type etagEntry struct {
	size  int64
	mtime time.Time
	etag  string
}

// New opens cfg.Dir; files outside it can never be served (os.Root).
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	cfg = cfg.applyDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	return &Server{cfg: cfg, root: root, log: logger, etags: map[string]etagEntry{}}, nil
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.requests.Load(), Fetches: s.fetches.Load(), BytesServed: s.bytes.Load()}
}

// Handler serves GET and HEAD for files under Dir.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	s.srvMu.Lock()
	s.srv = srv
	s.srvMu.Unlock()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops serving and releases the directory.
func (s *Server) Close() error {
	s.srvMu.Lock()
	srv := s.srv
	s.srvMu.Unlock()
	if srv != nil {
		srv.Close()
	}
	return s.root.Close()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := cleanName(r.URL.Path)
	if !ok {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	f, err := s.root.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	etag, err := s.etag(name, f, fi)
	if err != nil {
		s.log.Error("origin etag", "path", name, "err", err)
		http.Error(w, "read error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Cache-Control", s.cfg.CacheControl)
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, fi.Name(), fi.ModTime(), f)
	if r.Method == http.MethodGet && (cw.status == http.StatusOK || cw.status == http.StatusPartialContent) {
		s.fetches.Add(1)
	}
	s.bytes.Add(cw.n)
}

// cleanName turns a URL path into a name relative to the root, refusing
// anything that is not a plain descendant (.., NUL, backslashes).
func cleanName(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00\\") {
		return "", false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", false
		}
	}
	name := strings.TrimPrefix(path.Clean(p), "/")
	if name == "" || !fs.ValidPath(name) {
		return "", false
	}
	return name, true
}

// etag returns a strong validator from the file's content, cached while its
// size and modification time stay the same.
func (s *Server) etag(name string, f io.ReadSeeker, fi fs.FileInfo) (string, error) {
	s.mu.Lock()
	e, ok := s.etags[name]
	s.mu.Unlock()
	if ok && e.size == fi.Size() && e.mtime.Equal(fi.ModTime()) {
		return e.etag, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	etag := `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
	s.mu.Lock()
	s.etags[name] = etagEntry{size: fi.Size(), mtime: fi.ModTime(), etag: etag}
	s.mu.Unlock()
	return etag, nil
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

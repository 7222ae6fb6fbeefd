package edge

// The caching reverse proxy: every GET or HEAD outside the swarm API is an
// object on the origin.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// maxServeAttempts bounds retries when the version a request obtained is
// evicted or replaced before it could be opened.
const maxServeAttempts = 3

func (s *Server) handleContent(w http.ResponseWriter, r *http.Request) error {
	p, key, err := s.requestKey(r.Host, r.URL)
	if err != nil {
		return err
	}
	if len(r.TransferEncoding) > 0 {
		// A chunked request may also have carried a Content-Length that
		// net/http dropped: answer it and close the connection (RFC 9112
		// §6.1), so nothing after its body is ever read as a request.
		w.Header().Set("Connection", "close")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return s.forwardUnsafe(w, r, key)
	}
	q := s.newQuery(r, p, key)
	if handled, err := s.trySlices(w, r, q); handled {
		return err
	}
	for range maxServeAttempts {
		res, err := s.obtain(r.Context(), q)
		switch {
		case err != nil:
			return err
		case res.direct:
			return s.passThrough(w, r, key, res, q.authorized)
		case res.pass != nil:
			return s.replay(w, r, res)
		case res.stream != nil:
			return s.serveStream(w, r, res)
		}
		if err := s.serveEntry(w, r, res); !errors.Is(err, errNotCached) {
			return err
		}
	}
	return errorf(http.StatusServiceUnavailable, "%s was evicted while being served; retry", key)
}

// forwardUnsafe passes any other method to the origin, body and all, and
// invalidates what the edge stores for the URL when the origin accepted it
// (RFC 9111 §4.4), and for the same-origin Location and Content-Location
// it names.
func (s *Server) forwardUnsafe(w http.ResponseWriter, r *http.Request, key string) error {
	return s.passThrough(w, r, key, &fillResult{status: statusPass, fwd: "method"}, true)
}

// invalidate drops every stored version of the URL key (each of its
// secondary keys too).
func (s *Server) invalidate(key string) {
	keys := append(s.vary.take(key), key)
	for _, k := range keys {
		if e, _, ok := s.cache.lookup(k); ok {
			s.cache.remove(e)
		}
		s.dropSlices(k)
	}
}

// requestKey returns the property answering host and the cache key of u
// under it.
func (s *Server) requestKey(host string, u *url.URL) (*property, string, error) {
	p := s.propertyFor(host)
	if p == nil {
		return nil, "", errorf(http.StatusMisdirectedRequest, "no property serves host %q here", truncate(host, 100))
	}
	if p.IgnoreQuery && u.RawQuery != "" {
		u2 := *u
		u2.RawQuery = ""
		u = &u2
	}
	key, err := cacheKey(u)
	if err != nil {
		return nil, "", err
	}
	return p, p.prefix + key, nil
}

// cacheKey is the object's path and query as the client sent them.
func cacheKey(u *url.URL) (string, error) {
	key := u.EscapedPath()
	if u.RawQuery != "" {
		key += "?" + u.RawQuery
	}
	switch {
	case !strings.HasPrefix(key, "/"):
		return "", errorf(http.StatusBadRequest, "request path %q does not start with /", truncate(key, 80))
	case len(key) > core.MaxURLLen:
		return "", errorf(http.StatusRequestURITooLong, "request URI longer than %d bytes", core.MaxURLLen)
	case unsafePath(u.Path):
		return "", errorf(http.StatusBadRequest, "request path %q has a dot segment or a control byte", truncate(key, 80))
	}
	return key, nil
}

// unsafePath reports a decoded path with a "." or ".." segment (which
// some origin would resolve upward), a backslash (which some treat as a
// separator), or a control byte such as NUL. Such paths are refused: no
// client has a reason to send them, and an origin serving files must
// never see them.
func unsafePath(p string) bool {
	for _, c := range []byte(p) {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return true
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// serveEntry serves a stored version; net/http handles Range, If-Range and
// conditional requests against the stored validators.
func (s *Server) serveEntry(w http.ResponseWriter, r *http.Request, res *fillResult) error {
	f, m, err := s.cache.open(res.entry)
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	for k, v := range m.Header {
		if !hiddenHeaders[k] {
			h.Set(k, v) // stored as the origin spelled them ("ETag")
		}
	}
	now := s.now()
	h.Set("Age", strconv.FormatInt(int64(age(m, now).Seconds()), 10))
	p, _ := s.propertyOfKey(primaryKey(m.Key))
	s.decorate(h, res, ttl(m, p.lifetime(m), now), true)
	if m.Status != 0 && m.Status != http.StatusOK {
		// A stored 404, 301, …: its status and body as they came.
		if m.Status != http.StatusNoContent {
			h.Set("Content-Length", strconv.FormatInt(m.Size, 10))
		}
		w.WriteHeader(m.Status)
		if r.Method != http.MethodHead && m.Status != http.StatusNoContent {
			if _, err := io.Copy(w, f); err != nil {
				return fmt.Errorf("stored %d response: %w: %w", m.Status, errAbort, err)
			}
		}
		return f.Err()
	}
	if plainRequest(r.Header) {
		sendWhole(w, r, f, m.Size)
		return f.Err()
	}
	normalizeRange(r.Header, m.Size)
	modtime, _ := http.ParseTime(m.Header["Last-Modified"])
	http.ServeContent(w, r, "", modtime, f)
	// ServeContent drops read errors: a block that failed its checksum
	// mid-body must abort the response (errAbort), never end it short.
	return f.Err()
}

// plainRequest reports a request without ranges or preconditions: the
// whole stored body answers it, as ServeContent would send it.
func plainRequest(h http.Header) bool {
	for _, k := range [...]string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if _, ok := h[k]; ok {
			return false
		}
	}
	return true
}

// sendWhole is http.ServeContent for a plainRequest, without its range
// and precondition work (and keeping the stored Last-Modified as the
// origin wrote it): the same headers, a sniffed Content-Type when none is
// stored, the body through w's ReadFrom (one write from memory, or
// sendfile). As ServeContent, it leaves read errors to f.Err.
func sendWhole(w http.ResponseWriter, r *http.Request, f *objectReader, size int64) {
	h := w.Header()
	if _, ok := h["Content-Type"]; !ok {
		var buf [512]byte
		n, _ := io.ReadFull(f, buf[:])
		h["Content-Type"] = []string{http.DetectContentType(buf[:n])}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return
		}
	}
	h["Accept-Ranges"] = []string{"bytes"}
	if h.Get("Content-Encoding") == "" {
		h["Content-Length"] = []string{strconv.FormatInt(size, 10)}
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.CopyN(w, f, size)
	}
}

// replay sends a buffered uncacheable response.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, res *fillResult) error {
	p := res.pass
	h := w.Header()
	for k, v := range p.header {
		h[k] = v
	}
	s.decorate(h, res, 0, false)
	h.Set("Content-Length", strconv.Itoa(len(p.body)))
	w.WriteHeader(p.status)
	if r.Method != http.MethodHead {
		if _, err := w.Write(p.body); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	return nil
}

// countStatus records how one content request was answered.
func (s *Server) countStatus(status string) {
	switch status {
	case statusHit, statusRevalidated, statusStale:
		s.stats.cacheHits.Add(1)
	case statusMiss:
		s.stats.cacheMisses.Add(1)
	case statusPass:
		s.stats.passes.Add(1)
	}
	if c, ok := s.metrics.byStatus[status]; ok {
		c.Inc()
	} else {
		s.metrics.requests.WithLabelValues(strings.ToLower(status)).Inc()
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

package edge

// Filling the cache from the origin: one coalesced flight per cache key
// that fetches, revalidates or falls back to a stale copy, detached from
// the clients that wait on it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Values of the X-Cache response header.
const (
	statusHit         = "HIT"
	statusMiss        = "MISS"
	statusRevalidated = "REVALIDATED"
	statusStale       = "STALE"
	statusPass        = "PASS" // not stored: uncacheable, an error status, or too large
)

// passBufferLimit bounds the body of an uncacheable response that a flight
// buffers to share with every waiter; larger ones are streamed to each
// client by its own origin request.
const passBufferLimit = 1 << 20

var (
	errOrigin    = errors.New("origin")
	errTruncated = errors.New("origin body shorter than its Content-Length")
)

// fillResult is what a flight hands to every request waiting on it.
type fillResult struct {
	status string
	entry  *entry            // the stored version to serve, or nil
	pass   *bufferedResponse // an uncacheable response to replay, or nil
	// direct: neither stored nor buffered (too large); each client makes
	// its own origin request and streams it.
	direct bool
}

type bufferedResponse struct {
	status int
	header http.Header
	body   []byte
}

func (s *Server) fresh(m meta) bool {
	return age(m, s.now()) < lifetime(m, s.cfg.DefaultTTL)
}

// obtain returns a servable version of key: the cached one if fresh, else
// the outcome of a coalesced fill. Only the wait depends on ctx.
func (s *Server) obtain(ctx context.Context, key string) (*fillResult, error) {
	if e, m, ok := s.cache.lookup(key); ok && s.fresh(m) {
		return &fillResult{status: statusHit, entry: e}, nil
	}
	if s.passMemo.has(key, s.now()) {
		return &fillResult{status: statusPass, direct: true}, nil
	}
	c, err := s.fills.do(key, s.spawn, func() (*fillResult, error) { return s.fill(key) })
	if err != nil {
		return nil, err
	}
	return c.wait(ctx)
}

// fill runs inside the flight for key.
func (s *Server) fill(key string) (*fillResult, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.FillTimeout)
	defer cancel()

	// Check again: a flight that ended just before this one started may
	// have stored a fresh copy.
	e, m, cached := s.cache.lookup(key)
	if cached && s.fresh(m) {
		return &fillResult{status: statusHit, entry: e}, nil
	}
	stale := func(why error) (*fillResult, error) {
		s.log.Warn("origin failed; serving stale copy", "key", key, "err", why)
		return &fillResult{status: statusStale, entry: e}, nil
	}
	canStale := cached && mayServeStale(m)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.originURL(key), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errOrigin, key, err)
	}
	s.originHeaders(req)
	if cached {
		if v := m.Header["ETag"]; v != "" {
			req.Header.Set("If-None-Match", v)
		}
		if v := m.Header["Last-Modified"]; v != "" {
			req.Header.Set("If-Modified-Since", v)
		}
	}
	start := time.Now()
	defer func() { s.metrics.originFetchSeconds.Observe(time.Since(start).Seconds()) }()
	resp, err := s.originDo(req)
	if err != nil {
		if canStale {
			return stale(err)
		}
		return nil, fmt.Errorf("%w: fetch %s: %w", errOrigin, key, err)
	}
	defer resp.Body.Close()
	now := s.now()

	switch {
	case cached && resp.StatusCode == http.StatusNotModified:
		if err := s.cache.updateMeta(e, refreshMeta(m, resp.Header, now)); err != nil {
			// The body is still good; the next request revalidates again.
			s.log.Warn("cache: refresh after 304", "key", key, "err", err)
		}
		return &fillResult{status: statusRevalidated, entry: e}, nil
	case canStale && resp.StatusCode >= 500:
		return stale(fmt.Errorf("status %s", resp.Status))
	case resp.StatusCode == http.StatusOK && storable(resp.Header):
		res, err := s.store(key, resp, now)
		if err != nil && canStale {
			return stale(err)
		}
		return res, err
	}
	return s.passResult(key, resp)
}

// store writes a 200 response into the cache.
func (s *Server) store(key string, resp *http.Response, now time.Time) (*fillResult, error) {
	limit := s.maxStore()
	if resp.ContentLength > limit {
		return s.tooLarge(key, resp.ContentLength)
	}
	f, err := s.cache.createTemp()
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, limit+1))
	switch {
	case err != nil:
		err = fmt.Errorf("%w: read %s: %w", errOrigin, key, err)
	case n > limit:
		f.Close()
		removeQuiet(f.Name())
		return s.tooLarge(key, n)
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		err = fmt.Errorf("%w: %s: %d of %d bytes: %w", errOrigin, key, n, resp.ContentLength, errTruncated)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeQuiet(f.Name())
		return nil, err
	}
	e, err := s.cache.commit(f.Name(), newMeta(key, s.originURL(key), resp.Header, now, n))
	if err != nil {
		removeQuiet(f.Name())
		return nil, err
	}
	s.log.Debug("cache: stored", "key", key, "bytes", n)
	return &fillResult{status: statusMiss, entry: e}, nil
}

func (s *Server) tooLarge(key string, size int64) (*fillResult, error) {
	s.log.Info("cache: object larger than the cache allows; passing it through", "key", key, "bytes", size, "limit", s.maxStore())
	s.passMemo.add(key, s.now().Add(s.cfg.DefaultTTL))
	return &fillResult{status: statusPass, direct: true}, nil
}

// passResult buffers an uncacheable response for every waiter, or marks
// it direct when it is too large to buffer.
func (s *Server) passResult(key string, resp *http.Response) (*fillResult, error) {
	if resp.ContentLength > passBufferLimit {
		s.passMemo.add(key, s.now().Add(s.cfg.DefaultTTL))
		return &fillResult{status: statusPass, direct: true}, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, passBufferLimit+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: read %s: %w", errOrigin, key, err)
	case len(body) > passBufferLimit:
		s.passMemo.add(key, s.now().Add(s.cfg.DefaultTTL))
		return &fillResult{status: statusPass, direct: true}, nil
	case resp.ContentLength >= 0 && int64(len(body)) != resp.ContentLength:
		return nil, fmt.Errorf("%w: %s: %w", errOrigin, key, errTruncated)
	}
	h := endToEnd(resp.Header)
	h.Del("Content-Length")
	return &fillResult{status: statusPass, pass: &bufferedResponse{resp.StatusCode, h, body}}, nil
}

func (s *Server) maxStore() int64 { return min(s.cfg.MaxObjectSize, s.cfg.CacheSize) }

func (s *Server) originURL(key string) string { return s.originBase + key }

// originHeaders sets what every origin request carries. Client headers are
// not forwarded: the cache key ignores them, so the origin must not see
// them either, and coalesced clients then truly make one identical request.
func (s *Server) originHeaders(req *http.Request) {
	// Explicit identity: the bytes stored are the bytes the origin sent,
	// and a transport never decompresses behind the cache's back.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", "edgeswarm-edge")
}

// originDo sends one request to the origin and counts it.
func (s *Server) originDo(req *http.Request) (*http.Response, error) {
	s.stats.originFetches.Add(1)
	s.metrics.originFetches.Inc()
	return s.client.Do(req)
}

// newMeta builds the metadata of a response received at now.
func newMeta(key, url string, h http.Header, now time.Time, size int64) meta {
	m := meta{V: metaVersion, Key: key, URL: url, Status: http.StatusOK, Header: map[string]string{}, Stored: now, Size: size}
	for _, name := range storedHeaders {
		if vs := h.Values(name); len(vs) > 0 {
			m.Header[name] = strings.Join(vs, ", ")
		}
	}
	m.InitialAge = parseAge(h.Get("Age"))
	return m
}

// refreshMeta applies a 304's headers to a stored response (RFC 9111
// §4.3.4). The validators and content headers describe the stored body and
// stay as they are.
func refreshMeta(m meta, h http.Header, now time.Time) meta {
	n := m
	n.Header = make(map[string]string, len(m.Header))
	for k, v := range m.Header {
		n.Header[k] = v
	}
	for _, name := range []string{"Cache-Control", "Expires", "Date"} {
		if vs := h.Values(name); len(vs) > 0 {
			n.Header[name] = strings.Join(vs, ", ")
		} else if name == "Date" {
			delete(n.Header, name) // an old Date would skew Expires − Date
		}
	}
	n.Stored = now
	n.InitialAge = parseAge(h.Get("Age"))
	return n
}

func parseAge(v string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return min(n, 1<<31) // RFC 9111 §1.2.2: cap at 2^31
}

// hopHeaders are not forwarded by a proxy (RFC 9110 §7.6.1).
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

// endToEnd returns a copy of h without hop-by-hop headers.
func endToEnd(h http.Header) http.Header {
	out := h.Clone()
	for _, v := range h.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			out.Del(strings.TrimSpace(f))
		}
	}
	for _, k := range hopHeaders {
		out.Del(k)
	}
	return out
}

// passThrough streams one origin response to one client without storing
// it. A body that ends early aborts the client's response rather than
// completing it as if whole.
func (s *Server) passThrough(w http.ResponseWriter, r *http.Request, key string) error {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, s.originURL(key), nil)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errOrigin, key, err)
	}
	s.originHeaders(req)
	// Nothing is stored, so the client's own range and conditions apply.
	for _, h := range []string{"Range", "If-Range", "If-None-Match", "If-Modified-Since"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	start := time.Now()
	resp, err := s.originDo(req)
	if err != nil {
		return fmt.Errorf("%w: fetch %s: %w", errOrigin, key, err)
	}
	defer resp.Body.Close()
	defer func() { s.metrics.originFetchSeconds.Observe(time.Since(start).Seconds()) }()
	h := w.Header()
	for k, v := range endToEnd(resp.Header) {
		h[k] = v
	}
	h.Set("X-Cache", statusPass)
	s.countStatus(statusPass)
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return nil
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = errTruncated
	}
	if err != nil {
		return fmt.Errorf("pass %s after %d bytes: %w: %w", key, n, errAbort, err)
	}
	return nil
}

// passMemo remembers keys whose objects are too large to store or buffer,
// so their requests go straight to the origin instead of through a flight
// that could not share the body anyway (Varnish's hit-for-pass).
type passMemo struct {
	mu    sync.Mutex
	until map[string]time.Time // guarded by mu
}

const passMemoMax = 4096

func (p *passMemo) has(key string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.until[key]
	if ok && !now.Before(t) {
		delete(p.until, key)
		return false
	}
	return ok
}

func (p *passMemo) add(key string, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.until == nil {
		p.until = make(map[string]time.Time)
	}
	if len(p.until) >= passMemoMax {
		clear(p.until) // forgetting only costs one extra origin request each
	}
	p.until[key] = until
}

package edge

// Filling the cache from the origin: one coalesced flight per cache key
// that fetches, revalidates or falls back to a stale copy, detached from
// the clients that wait on it.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

	// What Cache-Status (RFC 9211) says about it.
	fwd       string // why the origin was asked: uri-miss, vary-miss, stale, request; "" = it was not
	fwdStatus int    // the origin's status, 0 if it did not answer
	stored    bool   // the origin's response was stored
	detail    string // e.g. stale-while-revalidate, stale-if-error
	collapsed bool   // set per request: it waited on a fill another request started
	// stream, when set, is the body being stored, readable as it grows
	// (stream.go); entry is then nil until it is stored.
	stream *stream
}

// settle waits for a streamed result to be stored and returns the result
// with its entry, for uses that need the whole object (manifests).
func (r *fillResult) settle(ctx context.Context) (*fillResult, error) {
	if r.stream == nil {
		return r, nil
	}
	e, err := r.stream.wait(ctx)
	if err != nil {
		return nil, err
	}
	r2 := *r
	r2.stream, r2.entry = nil, e
	return &r2, nil
}

type bufferedResponse struct {
	status int
	header http.Header
	body   []byte
}

// query is one cacheable request as the fill machinery sees it.
type query struct {
	prop    *property    // the property the request's Host names
	primary string       // the property's key prefix, path and query
	key     string       // the cache key: primary plus its secondary key, if its Vary is known
	cc      cacheControl // the request's Cache-Control
	fwd     http.Header  // request headers forwarded to the origin (negotiated and varied-on)
	at      time.Time    // when the request arrived
	// authorized: the request carries Authorization (forwarded, and part
	// of the flight key). A stored response answers it only if marked
	// public, s-maxage or must-revalidate, and only such a response to it
	// is stored (RFC 9111 §3.5).
	authorized bool
}

// usable reports whether the stored response m may answer q at all.
func (q *query) usable(m meta) bool {
	if !q.authorized {
		return true
	}
	cc, _ := responseCC(metaGetter(m))
	return cc.public || cc.hasSMaxAge || cc.mustRevalidate
}

// newQuery builds the query of a GET or HEAD for primary (a cache key
// without secondary key) of property p.
func (s *Server) newQuery(r *http.Request, p *property, primary string) *query {
	q := &query{prop: p, primary: primary, key: primary, cc: requestCC(r), fwd: http.Header{}, at: s.now()}
	names := s.vary.names(primary)
	for _, n := range append(negotiatedHeaders, names...) {
		if vs := r.Header.Values(n); len(vs) > 0 {
			q.fwd[n] = vs
		}
	}
	q.key = secondaryKey(primary, names, q.fwd)
	if vs := r.Header.Values("Authorization"); len(vs) > 0 {
		q.fwd["Authorization"] = vs
		q.authorized = true
	}
	return q
}

// flightKey names the fill shared by requests: the same URL and the same
// forwarded headers (so every waiter gets a response to its own request),
// and a generation: waiters that time out on a slow fill start the next.
func (q *query) flightKey(gen int) string {
	var b strings.Builder
	b.WriteString(q.primary)
	for _, n := range slices.Sorted(maps.Keys(q.fwd)) {
		b.WriteString(keySep)
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(normValue(q.fwd, n))
	}
	fmt.Fprintf(&b, "%s#%d", keySep, gen)
	return b.String()
}

// maxFillGenerations bounds the origin fetches one burst of requests for a
// URL can cause when fills are slower than the lock timeout: the first
// fill, and one more each time its waiters give up on the previous one.
const maxFillGenerations = 3

// obtain returns a servable version for q: the stored one if the request
// may use it, else the outcome of a collapsed fill. Waiters give a fill
// LockTimeout before starting the next generation (at most
// maxFillGenerations, the last waited for without limit), and retry once
// in a new fill when the one they waited on failed to reach the origin.
// Only the waiting depends on ctx.
func (s *Server) obtain(ctx context.Context, q *query) (*fillResult, error) {
	if e, m, ok := s.cache.lookup(q.key); ok && q.usable(m) {
		switch q.prop.stale.judge(m, q.cc, q.prop.lifetime(m), q.at) {
		case useStored:
			return &fillResult{status: statusHit, entry: e}, nil
		case useRevalidate:
			// Serve it now; one background fill revalidates it.
			s.fills.do(q.flightKey(0), s.spawn, func() (*fillResult, error) { return s.fill(q) })
			return &fillResult{status: statusStale, entry: e, detail: "stale-while-revalidate"}, nil
		}
	}
	if q.cc.onlyIfCached {
		return nil, errorf(http.StatusGatewayTimeout, "only-if-cached: %s is not stored fresh here", truncate(q.primary, 200))
	}
	if s.passMemo.has(q.primary, q.at) {
		return &fillResult{status: statusPass, direct: true, fwd: "uri-miss"}, nil
	}
	if st := s.streams.get(q.flightKey(0)); st != nil {
		// Its fill is storing the body now: read along.
		return &fillResult{status: statusMiss, stream: st, fwd: "uri-miss", fwdStatus: http.StatusOK, stored: true, collapsed: true}, nil
	}
	retried := false
	for gen := 0; ; gen++ {
		c, leader := s.fills.do(q.flightKey(gen), s.spawn, func() (*fillResult, error) { return s.fill(q) })
		timeout := s.cfg.LockTimeout
		if gen >= maxFillGenerations-1 {
			timeout = 0
		}
		res, err := c.wait(ctx, timeout)
		switch {
		case errors.Is(err, errLockTimeout):
			s.log.Info("fill slower than the lock timeout; starting another", "key", q.primary, "generation", gen+1)
			continue
		case err != nil && !leader && !retried && gen < maxFillGenerations-1 && errors.Is(err, errOrigin) && ctx.Err() == nil:
			// The fill we waited on failed (its connection was reset, say):
			// try once more, together with the others who waited.
			retried = true
			continue
		case err != nil:
			return nil, err
		}
		r := *res
		r.collapsed = !leader
		return &r, nil
	}
}

// fill runs inside the flight for q.
func (s *Server) fill(q *query) (*fillResult, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.FillTimeout)
	handedOff := false // the body went to a streaming store, which closes it
	defer func() {
		if !handedOff {
			cancel()
		}
	}()

	// Check again: a flight that ended just before this one started may
	// have stored a copy this request can use.
	e, m, cached := s.cache.lookup(q.key)
	if cached && !q.usable(m) {
		e, m, cached = nil, meta{}, false
	}
	if cached && (m.Stored.After(q.at) || q.prop.stale.judge(m, q.cc, q.prop.lifetime(m), s.now()) == useStored) {
		return &fillResult{status: statusHit, entry: e}, nil
	}
	fwd := "uri-miss"
	switch {
	case cached && q.cc.noCache:
		fwd = "request"
	case cached:
		fwd = "stale"
	case s.vary.names(q.primary) != nil:
		fwd = "vary-miss"
	}
	stale := func(why error, status int) (*fillResult, error) {
		s.log.Warn("origin failed; serving stale copy", "key", q.primary, "err", why)
		return &fillResult{status: statusStale, entry: e, fwd: fwd, fwdStatus: status, detail: "stale-if-error"}, nil
	}
	canStale := func() bool { return cached && q.prop.stale.staleOnError(m, q.prop.lifetime(m), s.now()) }

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.originURL(q.primary), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errOrigin, q.primary, err)
	}
	for n, vs := range q.fwd {
		req.Header[n] = vs
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
		if canStale() {
			return stale(err, 0)
		}
		return nil, fmt.Errorf("%w: fetch %s: %w", errOrigin, q.primary, err)
	}
	defer func() {
		if !handedOff {
			resp.Body.Close()
		}
	}()
	resp.Body = s.idleBody(resp.Body, cancel)
	now := s.now()

	switch {
	case cached && resp.StatusCode == http.StatusNotModified:
		nm := refreshMeta(m, resp.Header, now)
		s.surrogates.add(q.key, nm.Header["Surrogate-Key"])
		if err := s.cache.updateMeta(e, nm); err != nil {
			// The body is still good; the next request revalidates again.
			s.log.Warn("cache: refresh after 304", "key", q.primary, "err", err)
		}
		return &fillResult{status: statusRevalidated, entry: e, fwd: fwd, fwdStatus: http.StatusNotModified}, nil
	case resp.StatusCode >= 500 && canStale():
		return stale(fmt.Errorf("status %s", resp.Status), resp.StatusCode)
	case cacheableStatus(resp.StatusCode) && storableFor(resp.Header, q.authorized) && !q.cc.noStore:
		if resp.StatusCode == http.StatusOK {
			if res := s.startStream(q, e, resp, cancel, now); res != nil {
				handedOff = true
				res.fwd, res.fwdStatus = fwd, resp.StatusCode
				return res, nil
			}
		}
		res, err := s.store(q, e, resp, now)
		if errors.Is(err, errStore) {
			// The cache's disk failed, not the origin: pass through (store_fs.go).
			res, err = s.storeFailed(q.primary, err)
		}
		if err != nil && canStale() {
			return stale(err, resp.StatusCode)
		}
		if res != nil {
			res.fwd, res.fwdStatus = fwd, resp.StatusCode
		}
		return res, err
	}
	res, err := s.passResult(q.primary, resp)
	if res != nil {
		res.fwd, res.fwdStatus = fwd, resp.StatusCode
	}
	return res, err
}

// cacheableStatus: the statuses stored — 200 and those RFC 9110 §15.1
// makes heuristically cacheable (a 404 is stored briefly: see lifetime);
// 206 is not (a partial body is not the object).
func cacheableStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// store writes a cacheable response into the cache under its secondary key.
// prev is the version the fill started from (nil if none): if another fill
// stored a newer one meanwhile, that one is served and this copy dropped,
// so a burst of fills stores one response.
func (s *Server) store(q *query, prev *entry, resp *http.Response, now time.Time) (*fillResult, error) {
	names := varyNames(resp.Header)
	key := secondaryKey(q.primary, names, q.fwd)
	limit := s.maxStore()
	if resp.ContentLength > limit {
		return s.tooLarge(q.primary, resp.ContentLength)
	}
	f, err := s.cache.createTemp()
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, limit+1))
	switch {
	case err != nil:
		err = fmt.Errorf("%w: read %s: %w", errOrigin, q.primary, err)
	case n > limit:
		f.Close()
		removeQuiet(f.Name())
		return s.tooLarge(q.primary, n)
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		err = fmt.Errorf("%w: %s: %d of %d bytes: %w", errOrigin, q.primary, n, resp.ContentLength, errTruncated)
	}
	if err := endTemp(f, err); err != nil {
		return nil, err
	}
	if cur, _, ok := s.cache.lookup(key); ok && cur != prev {
		removeQuiet(f.Name())
		return &fillResult{status: statusHit, entry: cur, detail: "stored by another fill"}, nil
	}
	if !s.vary.learn(q.primary, names, key) {
		removeQuiet(f.Name())
		s.log.Info("cache: too many variants; passing through", "key", q.primary, "vary", names)
		s.passMemo.add(q.primary, now.Add(s.cfg.DefaultTTL))
		return &fillResult{status: statusPass, direct: true}, nil
	}
	m := newMeta(key, s.originURL(q.primary), resp.Header, now, n)
	m.Status = resp.StatusCode
	e, err := s.cache.commit(f, m)
	if err != nil {
		removeQuiet(f.Name())
		return nil, err
	}
	s.surrogates.add(key, m.Header["Surrogate-Key"])
	s.log.Debug("cache: stored", "key", q.primary, "bytes", n, "vary", names)
	return &fillResult{status: statusMiss, entry: e, stored: true}, nil
}

// endTemp finishes a temp body that was written with error err: synced
// and closed if err is nil, removed if anything failed. It returns the
// first failure.
func endTemp(f *tempFile, err error) error {
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeQuiet(f.Name())
	}
	return err
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

// originURL is the origin URL of a cache key: its property's origin and
// the key's path and query.
func (s *Server) originURL(key string) string {
	p, path := s.propertyOfKey(primaryKey(key))
	return p.base + path
}

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
	for _, name := range slices.Concat(storedHeaders, semanticHeaders) {
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
	for _, name := range []string{"Cache-Control", "CDN-Cache-Control", "Expires", "Date", "Surrogate-Key", "Surrogate-Control"} {
		if vs := h.Values(name); len(vs) > 0 {
			n.Header[name] = strings.Join(vs, ", ")
		} else if name == "Date" {
			delete(n.Header, name) // an old Date would skew Expires − Date
		}
	}
	delete(n.Header, softPurgeMark) // revalidated: fresh again
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
// it. With all, the client's end-to-end headers and body go to the origin
// (unsafe methods, Authorization); otherwise only what a cacheable fetch
// forwards plus the client's own range and conditions (nothing is stored,
// so they apply). A body that ends early aborts the client's response
// rather than completing it as if whole. After an unsafe method the origin
// accepted, the URL's stored versions are invalidated.
func (s *Server) passThrough(w http.ResponseWriter, r *http.Request, key string, res *fillResult, all bool) error {
	var body io.Reader
	var cb *clientBody
	if all && r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		if r.ContentLength > s.cfg.MaxRequestBody {
			return errorf(http.StatusRequestEntityTooLarge, "request body of %d bytes; at most %d", r.ContentLength, s.cfg.MaxRequestBody)
		}
		cb = &clientBody{r: http.MaxBytesReader(nil, r.Body, s.cfg.MaxRequestBody)}
		body = cb
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, s.originURL(key), body)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errOrigin, key, err)
	}
	if all {
		req.Header = endToEnd(r.Header)
		req.ContentLength = r.ContentLength
	} else {
		for _, h := range append(negotiatedHeaders, "Range", "If-Range", "If-None-Match", "If-Modified-Since") {
			if vs := r.Header.Values(h); len(vs) > 0 {
				req.Header[h] = vs
			}
		}
	}
	s.originHeaders(req)
	if all {
		if v := r.Header.Get("User-Agent"); v != "" {
			req.Header.Set("User-Agent", v)
		}
		req.Header.Del("Accept-Encoding") // the client's own; the transport does not decompress
		if vs := r.Header.Values("Accept-Encoding"); len(vs) > 0 {
			req.Header["Accept-Encoding"] = vs
		}
	}
	start := time.Now()
	resp, err := s.originDo(req)
	if err != nil {
		if cb != nil && cb.err != nil {
			w.Header().Set("Connection", "close")
			var tooBig *http.MaxBytesError
			if errors.As(cb.err, &tooBig) {
				return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", tooBig.Limit)
			}
			return errorf(http.StatusBadRequest, "request body: %v", cb.err)
		}
		return fmt.Errorf("%w: fetch %s: %w", errOrigin, key, err)
	}
	defer resp.Body.Close()
	resp.Body = s.idleBody(resp.Body, cancel)
	defer func() { s.metrics.originFetchSeconds.Observe(time.Since(start).Seconds()) }()
	if !safeMethod(r.Method) && resp.StatusCode < 400 {
		s.invalidate(key)
		for _, name := range []string{"Location", "Content-Location"} {
			if k, ok := s.sameOriginKey(r, resp.Header.Get(name)); ok {
				s.invalidate(k)
			}
		}
	}
	h := w.Header()
	for k, v := range endToEnd(resp.Header) {
		h[k] = v
	}
	r2 := *res
	r2.fwdStatus = resp.StatusCode
	s.decorate(h, &r2, 0, false)
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

// clientBody remembers why reading a client's request body failed, to tell
// a malformed request (400) from a failing origin (502).
type clientBody struct {
	r   io.Reader
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// errOriginIdle: the origin sent no body bytes for OriginIdleTimeout.
var errOriginIdle = errors.New("origin sent nothing for the idle timeout")

// idleBody wraps an origin response body so that cancel is called (ending
// the request) once no byte has arrived for OriginIdleTimeout; reads then
// fail with errOriginIdle.
func (s *Server) idleBody(b io.ReadCloser, cancel context.CancelFunc) io.ReadCloser {
	ib := &idleBody{ReadCloser: b, d: s.cfg.OriginIdleTimeout}
	ib.t = time.AfterFunc(ib.d, func() { ib.fired.Store(true); cancel() })
	return ib
}

type idleBody struct {
	io.ReadCloser
	d     time.Duration
	t     *time.Timer
	fired atomic.Bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.t.Reset(b.d)
	}
	if err != nil && b.fired.Load() {
		err = fmt.Errorf("%w (%v): %w", errOriginIdle, b.d, err)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.t.Stop()
	return b.ReadCloser.Close()
}

// safeMethod: the methods that do not invalidate (RFC 9110 §9.2.1).
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// sameOriginKey returns the cache key of ref (a Location or
// Content-Location value) if it names this edge's own content.
func (s *Server) sameOriginKey(r *http.Request, ref string) (string, bool) {
	if ref == "" {
		return "", false
	}
	u, err := url.Parse(ref)
	if err != nil {
		return "", false
	}
	if u.Host != "" && !strings.EqualFold(u.Host, r.Host) {
		return "", false
	}
	u = r.URL.ResolveReference(u)
	k, err := cacheKey(u)
	return k, err == nil
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

package edge

// Partial-object caching: a single-range request for an object the edge
// does not store is answered from fixed-size slices of the object, each
// fetched from the origin with a Range request and stored as an object of
// its own (nginx's slice module), so a seek into a 4 GiB video fetches and
// stores the few slices it needs, not 4 GiB. A later request without Range
// fills the whole object as usual.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sliceSize is the size of one slice.
const sliceSize = 4 << 20

// sliceTotalHeader is kept in a slice's meta: the whole object's length.
const sliceTotalHeader = "Edgeswarm-Slice-Total"

// errNoSlices: the origin does not answer Range requests with 206; the
// request falls back to the whole-object path.
var errNoSlices = errors.New("origin does not serve byte ranges")

func sliceKey(key string, i int64) string { return key + keySep + "slice=" + strconv.FormatInt(i, 10) }

// sliceable reports whether r is a request the slice path answers: one
// byte range, no conditions (those need the whole stored object).
func sliceable(r *http.Request, q *query) bool {
	v := r.Header.Get("Range")
	if v == "" || strings.Contains(v, ",") || len(r.Header.Values("Range")) != 1 || q.authorized || q.cc.noStore {
		return false
	}
	for _, h := range []string{"If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	return true
}

// getSlice returns slice i of q's object, stored or fetched (collapsed
// like any fill), and its meta.
func (s *Server) getSlice(ctx context.Context, q *query, i int64) (*entry, meta, error) {
	k := sliceKey(q.key, i)
	if e, m, ok := s.cache.lookup(k); ok && q.prop.stale.judge(m, q.cc, q.prop.lifetime(m), s.now()) == useStored {
		return e, m, nil
	}
	c, _ := s.fills.do(k+keySep+"#0", s.spawn, func() (*fillResult, error) { return s.fillSlice(q, i, k) })
	res, err := c.wait(ctx, 0)
	if err != nil {
		return nil, meta{}, err
	}
	e, m, ok := s.cache.lookup(k)
	if !ok || e != res.entry {
		if res.entry == nil {
			return nil, meta{}, errNotCached
		}
		// Stored and already replaced or evicted: use what the fill got.
		e = res.entry
		if _, m2, ok := s.cache.lookup(k); ok {
			m = m2
		}
	}
	return e, m, nil
}

// fillSlice fetches slice i from the origin and stores it under k.
func (s *Server) fillSlice(q *query, i int64, k string) (*fillResult, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.FillTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.originURL(q.primary), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errOrigin, q.primary, err)
	}
	for n, vs := range q.fwd {
		req.Header[n] = vs
	}
	s.originHeaders(req)
	first := i * sliceSize
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", first, first+sliceSize-1))
	start := time.Now()
	resp, err := s.originDo(req)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch %s slice %d: %w", errOrigin, q.primary, i, err)
	}
	defer resp.Body.Close()
	defer func() { s.metrics.originFetchSeconds.Observe(time.Since(start).Seconds()) }()
	resp.Body = s.idleBody(resp.Body, cancel)
	switch {
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return nil, errorf(http.StatusRequestedRangeNotSatisfiable, "range not satisfiable: %s", resp.Header.Get("Content-Range"))
	case resp.StatusCode != http.StatusPartialContent:
		return nil, errNoSlices
	case !storableFor(resp.Header, false) || len(varyNames(resp.Header)) > 0:
		return nil, errNoSlices // not stored as slices; the whole-object path decides
	}
	a, b, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
	if !ok || a != first || b-a+1 != resp.ContentLength || (b != total-1 && b-a+1 != sliceSize) {
		return nil, fmt.Errorf("%w: %s slice %d: Content-Range %q, Content-Length %d", errOrigin, q.primary, i, resp.Header.Get("Content-Range"), resp.ContentLength)
	}
	f, err := s.cache.createTemp()
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, resp.ContentLength+1))
	if err == nil && n != resp.ContentLength {
		err = fmt.Errorf("%w: %s slice %d: %d of %d bytes: %w", errOrigin, q.primary, i, n, resp.ContentLength, errTruncated)
	}
	if err := endTemp(f, err); err != nil {
		return nil, err
	}
	m := newMeta(k, s.originURL(q.primary), resp.Header, s.now(), n)
	m.Header[sliceTotalHeader] = strconv.FormatInt(total, 10)
	e, err := s.cache.commit(f, m)
	if err != nil {
		removeQuiet(f.Name())
		return nil, err
	}
	s.slices.add(k, sliceTag(q.key))
	s.surrogates.add(k, m.Header["Surrogate-Key"])
	return &fillResult{status: statusMiss, entry: e, stored: true}, nil
}

// sliceTag names, in the slice registry, the slices of one cache key.
func sliceTag(key string) string { return "\x00" + key }

// parseContentRange reads "bytes FIRST-LAST/TOTAL".
func parseContentRange(v string) (first, last, total int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	span, tot, found := strings.Cut(rest, "/")
	fs, ls, found2 := strings.Cut(span, "-")
	if !found || !found2 {
		return 0, 0, 0, false
	}
	var ok1, ok2, ok3 bool
	first, ok1 = parseDigits(fs)
	last, ok2 = parseDigits(ls)
	total, ok3 = parseDigits(tot)
	if !ok1 || !ok2 || !ok3 || last < first || last >= total {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

// serveSlices answers a single-range request from slices. It returns
// errNoSlices, before writing anything, when the object cannot be
// sliced; the caller then takes the whole-object path.
func (s *Server) serveSlices(w http.ResponseWriter, r *http.Request, q *query) error {
	// The slice holding the range's first byte tells the object's length
	// (a suffix range needs it first: start from slice 0).
	spec := r.Header.Get("Range")
	probe := int64(0)
	if rs, err := parseRange(spec, 1<<62); err == nil && len(rs) == 1 && !strings.Contains(spec, "=-") {
		probe = rs[0].first / sliceSize
	}
	e0, m0, err := s.getSlice(r.Context(), q, probe)
	if err != nil {
		return err
	}
	total, _ := strconv.ParseInt(m0.Header[sliceTotalHeader], 10, 64)
	rs, err := parseRange(spec, total)
	switch {
	case errors.Is(err, errUnsatisfiable):
		w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(total, 10))
		return errorf(http.StatusRequestedRangeNotSatisfiable, "range not satisfiable")
	case err != nil || len(rs) != 1:
		return errNoSlices
	}
	rg := rs[0]
	h := w.Header()
	for k, v := range m0.Header {
		if !hiddenHeaders[k] && k != sliceTotalHeader && k != "Content-Range" {
			h.Set(k, v)
		}
	}
	p, _ := s.propertyOfKey(q.primary)
	now := s.now()
	h.Set("Age", strconv.FormatInt(int64(age(m0, now).Seconds()), 10))
	h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rg.first, rg.last, total))
	h.Set("Content-Length", strconv.FormatInt(rg.last-rg.first+1, 10))
	h.Set("Accept-Ranges", "bytes")
	s.decorate(h, &fillResult{status: statusHit, detail: "slices"}, ttl(m0, p.lifetime(m0), now), true)
	w.WriteHeader(http.StatusPartialContent)
	if r.Method == http.MethodHead {
		return nil
	}
	validator := m0.validator()
	for i := rg.first / sliceSize; i <= rg.last/sliceSize; i++ {
		e, m := e0, m0
		if i != probe {
			if e, m, err = s.getSlice(r.Context(), q, i); err != nil {
				return fmt.Errorf("slice %d: %w: %w", i, errAbort, err)
			}
		}
		if m.validator() != validator {
			// The object changed at the origin between slices: drop them
			// all; this response cannot be completed honestly.
			s.dropSlices(q.key)
			return fmt.Errorf("slice %d of %s has validator %q, not %q: %w", i, q.primary, m.validator(), validator, errAbort)
		}
		lo := max(rg.first, i*sliceSize) - i*sliceSize
		hi := min(rg.last, (i+1)*sliceSize-1) - i*sliceSize
		f, _, err := s.cache.open(e)
		if err != nil {
			return fmt.Errorf("slice %d: %w: %w", i, errAbort, err)
		}
		_, err = io.Copy(onlyWriter{w}, io.NewSectionReader(f, lo, hi-lo+1))
		if err == nil {
			err = f.Err()
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("slice %d: %w: %w", i, errAbort, err)
		}
	}
	return nil
}

// trySlices answers r from slices when it is a single-range request for
// an object the edge neither stores nor is filling; handled reports
// whether it did (err is then the response's outcome).
func (s *Server) trySlices(w http.ResponseWriter, r *http.Request, q *query) (handled bool, err error) {
	if !sliceable(r, q) || s.noSlices.has(q.key, q.at) || s.streams.get(q.flightKey(0)) != nil {
		return false, nil
	}
	if _, _, ok := s.cache.lookup(q.key); ok {
		return false, nil
	}
	err = s.serveSlices(w, r, q)
	if errors.Is(err, errNoSlices) {
		s.noSlices.add(q.key, q.at.Add(s.cfg.DefaultTTL))
		return false, nil
	}
	return true, err
}

// dropSlices removes every stored slice of key.
func (s *Server) dropSlices(key string) {
	for _, k := range s.slices.take(sliceTag(key)) {
		if e, _, ok := s.cache.lookup(k); ok {
			s.cache.remove(e)
		}
	}
}

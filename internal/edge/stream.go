package edge

// Read-while-write: a large cold object is sent to the requests waiting on
// its fill as it arrives from the origin, from the temp file the fill is
// writing, instead of after the whole body is stored. The first byte of a
// 4 GiB video then costs one origin round trip, not the whole transfer. A
// fill that fails part way aborts every response reading it (a client sees
// a broken transfer, never a short body that looks whole), and nothing is
// stored.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// streamMin is the smallest body streamed while it is stored; smaller ones
// are stored first and then served (it costs a few milliseconds).
const streamMin = 1 << 20

// freeSpacer is the optional part of a storeFS that says how many bytes
// the disk holding dir can still take.
type freeSpacer interface {
	Free(dir string) (int64, error)
}

// stream is one fill's body being written, readable as it grows.
type stream struct {
	path   string // the temp file
	size   int64  // the body's length (Content-Length)
	header meta   // what the stored version's meta will say

	mu      sync.Mutex
	n       int64         // guarded by mu; bytes written so far
	done    bool          // guarded by mu; ended, committed or not
	err     error         // guarded by mu; why it failed, nil if it did not
	entry   *entry        // guarded by mu; the stored version, once committed
	changed chan struct{} // guarded by mu; closed and replaced at every change
}

func newStream(path string, size int64, m meta) *stream {
	return &stream{path: path, size: size, header: m, changed: make(chan struct{})}
}

// progress records that the body has n bytes written.
func (st *stream) progress(n int64) {
	st.mu.Lock()
	st.n = n
	close(st.changed)
	st.changed = make(chan struct{})
	st.mu.Unlock()
}

// finish ends the stream: committed as e, or failed with err.
func (st *stream) finish(e *entry, err error) {
	st.mu.Lock()
	st.done, st.entry, st.err = true, e, err
	if err == nil && e == nil {
		st.err = errors.New("fill ended without storing")
	}
	close(st.changed)
	st.changed = make(chan struct{})
	st.mu.Unlock()
}

// state returns the bytes written, whether the stream ended, its error and
// the channel closed at its next change.
func (st *stream) state() (int64, bool, error, <-chan struct{}) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.n, st.done, st.err, st.changed
}

// wait blocks until the stream ends and returns the stored version.
func (st *stream) wait(ctx context.Context) (*entry, error) {
	for {
		_, done, err, ch := st.state()
		if done {
			st.mu.Lock()
			e := st.entry
			st.mu.Unlock()
			return e, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// openBody opens what a reader reads: the temp file while the stream
// runs (its descriptor stays valid after the file is renamed into place).
func (st *stream) openBody() (*os.File, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return nil, st.err
	}
	if st.done {
		return nil, errStreamDone
	}
	return os.Open(st.path)
}

var errStreamDone = errors.New("stream already stored")

// streams are the fills whose bodies are being streamed, by flight key
// (generation 0), so that requests arriving meanwhile join them.
type streams struct {
	mu sync.Mutex
	m  map[string]*stream // guarded by mu
}

func (ss *streams) get(k string) *stream {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.m[k]
}

func (ss *streams) put(k string, st *stream) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = make(map[string]*stream)
	}
	ss.m[k] = st
}

func (ss *streams) drop(k string, st *stream) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m[k] == st {
		delete(ss.m, k)
	}
}

// roomFor reports whether the cache's disk can take size more bytes,
// evicting to make room if needed. Without a way to ask, it assumes so.
func (c *cache) roomFor(size int64) bool {
	fsp, ok := c.fs.(freeSpacer)
	if !ok {
		return true
	}
	free, err := fsp.Free(c.dir)
	if err != nil {
		return true
	}
	if free >= size {
		return true
	}
	c.freeSpace(size - free)
	free, err = fsp.Free(c.dir)
	return err == nil && free >= size
}

// startStream stores resp's body in a goroutine of its own while the
// requests of the fill read it. It returns nil when the body is not to be
// streamed (the caller stores it first); otherwise the fill result, and
// the body, the origin request's cancel and the response are the
// goroutine's to close.
func (s *Server) startStream(q *query, prev *entry, resp *http.Response, cancel context.CancelFunc, now time.Time) *fillResult {
	size := resp.ContentLength
	if size < streamMin || size > s.maxStore() || !s.cache.roomFor(size) {
		return nil
	}
	names := varyNames(resp.Header)
	key := secondaryKey(q.primary, names, q.fwd)
	f, err := s.cache.createTemp()
	if err != nil {
		return nil // the synchronous path reports it (pass through)
	}
	m := newMeta(key, s.originURL(q.primary), resp.Header, now, size)
	st := newStream(f.Name(), size, m)
	fk := q.flightKey(0)
	s.streams.put(fk, st)
	err = s.spawn(func() {
		defer cancel()
		defer resp.Body.Close()
		defer s.streams.drop(fk, st)
		e, err := s.finishStream(q, prev, key, names, f, st, resp, now)
		st.finish(e, err)
	})
	if err != nil {
		s.streams.drop(fk, st)
		f.Close()
		removeQuiet(f.Name())
		return nil
	}
	return &fillResult{status: statusMiss, stream: st, stored: true}
}

// finishStream copies the body into f, reporting progress to st, then
// commits it as store does.
func (s *Server) finishStream(q *query, prev *entry, key string, names []string, f *tempFile, st *stream, resp *http.Response, now time.Time) (*entry, error) {
	buf := make([]byte, 256<<10)
	var n int64
	var err error
	for n < st.size {
		k, rerr := resp.Body.Read(buf[:min(int64(len(buf)), st.size-n)])
		if k > 0 {
			if _, werr := f.Write(buf[:k]); werr != nil {
				err = werr
				break
			}
			n += int64(k)
			st.progress(n)
		}
		if rerr != nil {
			if rerr != io.EOF || n < st.size {
				err = fmt.Errorf("%w: read %s: %d of %d bytes: %w", errOrigin, q.primary, n, st.size, rerr)
			}
			break
		}
	}
	if err == nil {
		var one [1]byte
		if k, _ := resp.Body.Read(one[:]); k > 0 {
			err = fmt.Errorf("%w: %s: body longer than its Content-Length", errOrigin, q.primary)
		}
	}
	if err := endTemp(f, err); err != nil {
		s.log.Warn("cache: streamed fill failed; nothing stored", "key", q.primary, "err", err)
		return nil, err
	}
	// Seal the stream while the temp file is renamed or removed, so no
	// reader tries to open the temp path after it is gone: from here on
	// readers open the stored version.
	st.mu.Lock()
	defer st.mu.Unlock()
	st.done = true
	if cur, _, ok := s.cache.lookup(key); ok && cur != prev {
		removeQuiet(f.Name())
		st.entry = cur
		return cur, nil
	}
	if !s.vary.learn(q.primary, names, key) {
		removeQuiet(f.Name())
		st.err = errors.New("too many variants to store")
		return nil, st.err
	}
	m := st.header
	m.Status = resp.StatusCode
	e, err := s.cache.commit(f, m)
	if err != nil {
		removeQuiet(f.Name())
		st.err = err
		return nil, err
	}
	st.entry = e
	s.surrogates.add(key, m.Header["Surrogate-Key"])
	s.log.Debug("cache: stored while streaming", "key", q.primary, "bytes", n)
	return e, nil
}

// serveStream sends a body being stored. A Range request waits for the
// stored version (it needs the whole object to answer correctly); other
// GETs and HEADs get the headers at once and the body as it arrives.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, res *fillResult) error {
	st := res.stream
	stored := func() error { // serve the stored version once there is one
		settled, err := res.settle(r.Context())
		if err != nil {
			return err
		}
		return s.serveEntry(w, r, settled)
	}
	if r.Header.Get("Range") != "" || r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
		return stored()
	}
	f, err := st.openBody()
	if errors.Is(err, errStreamDone) {
		return stored()
	}
	if err != nil {
		return err
	}
	defer f.Close()
	m := st.header
	h := w.Header()
	for k, v := range m.Header {
		if !hiddenHeaders[k] {
			h.Set(k, v)
		}
	}
	p, _ := s.propertyOfKey(primaryKey(m.Key))
	h.Set("Age", "0")
	s.decorate(h, res, ttl(m, p.lifetime(m), s.now()), true)
	h.Set("Content-Length", strconv.FormatInt(st.size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	// The last byte waits until the version is stored (or fails): a client
	// that has the whole body then finds it stored, and a fill that fails
	// to store never looks complete.
	var off int64
	for off < st.size {
		n, done, serr, ch := st.state()
		if serr != nil {
			return fmt.Errorf("streamed fill failed after %d bytes: %w: %w", off, errAbort, serr)
		}
		if !done {
			n = min(n, st.size-1)
		}
		if n > off {
			k, err := io.Copy(w, io.NewSectionReader(f, off, n-off))
			off += k
			if err != nil {
				return fmt.Errorf("stream after %d bytes: %w: %w", off, errAbort, err)
			}
			continue
		}
		if done {
			break
		}
		select {
		case <-ch:
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
	if off < st.size {
		return fmt.Errorf("stream ended at %d of %d bytes: %w", off, st.size, errAbort)
	}
	return nil
}

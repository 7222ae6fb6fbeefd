package demo

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// corruptChunks wraps a peer's handler so that every chunk it serves has one
// bit flipped: the demo's --bad-peers.
func corruptChunks(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, wire.PathChunk) {
			next.ServeHTTP(w, r)
			return
		}
		rec := &recorder{header: http.Header{}}
		next.ServeHTTP(rec, r)
		body := rec.buf.Bytes()
		if rec.code == 0 || rec.code == http.StatusOK && len(body) > 0 {
			body[len(body)/2] ^= 0x01
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		if rec.code != 0 {
			w.WriteHeader(rec.code)
		}
		w.Write(body)
	})
}

// servedChecker wraps an honest peer's handler and records the hash of
// every chunk it serves, so the run can prove afterwards that no honest peer
// ever served a bad chunk. A chunk response is its whole 200 body.
type servedChecker struct {
	next http.Handler

	mu     sync.Mutex // guards served
	served []servedChunk
}

type servedChunk struct {
	root  core.Hash
	index int
	hash  core.Hash
}

func (c *servedChecker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	root, idx, err := wire.ParseChunkPath(r.URL.Path)
	if err != nil {
		c.next.ServeHTTP(w, r)
		return
	}
	rec := &recorder{header: http.Header{}}
	c.next.ServeHTTP(rec, r)
	if (rec.code == 0 || rec.code == http.StatusOK) && rec.buf.Len() > 0 {
		c.mu.Lock()
		c.served = append(c.served, servedChunk{root, idx, core.HashBytes(rec.buf.Bytes())})
		c.mu.Unlock()
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	if rec.code != 0 {
		w.WriteHeader(rec.code)
	}
	w.Write(rec.buf.Bytes())
}

// badServed counts recorded chunks that do not match m, and how many were checked.
func (c *servedChecker) badServed(m *core.Manifest) (bad, checked int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.served {
		checked++
		if s.root != m.Root || s.index >= len(m.Hashes) || m.Hashes[s.index] != s.hash {
			bad++
		}
	}
	return bad, checked
}

// recorder buffers a response (chunks are bounded by the chunk size).
type recorder struct {
	header http.Header
	code   int
	buf    bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.buf.Write(p)
}

// auditStore wraps a peer's store and counts chunk writes whose bytes do not
// match the manifest the object was opened with, so a run can prove that no
// bad chunk was ever stored. It passes every write through unchanged.
type auditStore struct {
	chunkstore.Store
	bad, checked atomic.Int64
}

func (s *auditStore) Open(m *core.Manifest) (chunkstore.Object, error) {
	o, err := s.Store.Open(m)
	if err != nil {
		return nil, err
	}
	return &auditObject{Object: o, m: m, s: s}, nil
}

type auditObject struct {
	chunkstore.Object
	m *core.Manifest
	s *auditStore
}

func (o *auditObject) WriteChunk(i int, data []byte) error {
	o.s.checked.Add(1)
	if o.m.CheckChunk(i, data) != nil {
		o.s.bad.Add(1)
	}
	return o.Object.WriteChunk(i, data)
}

package edge

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a manual clock shared by an edge and its test origin.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// object is what the test origin serves at one path.
type object struct {
	body   []byte
	header map[string]string // e.g. Cache-Control, ETag
	status int               // 0 means 200
	// gate, when set, holds the response until it is closed.
	gate chan struct{}
	// truncateAt > 0 sends Content-Length len(body) but only this many
	// bytes, then breaks the connection.
	truncateAt int
	// fail503 answers 503 instead.
	fail503 bool
}

// origin is a hand-written origin with counters.
type origin struct {
	clk *clock
	srv *httptest.Server

	mu      sync.Mutex
	objects map[string]*object // by path and query

	requests    atomic.Int64 // every request
	conditional atomic.Int64 // requests with If-None-Match or If-Modified-Since
}

func newOrigin(t testing.TB, clk *clock) *origin {
	o := &origin{clk: clk, objects: map[string]*object{}}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *origin) set(key string, obj *object) {
	o.mu.Lock()
	o.objects[key] = obj
	o.mu.Unlock()
}

func (o *origin) serve(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
		o.conditional.Add(1)
	}
	key := r.URL.RequestURI()
	o.mu.Lock()
	obj, ok := o.objects[key]
	o.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if obj.gate != nil {
		select {
		case <-obj.gate:
		case <-r.Context().Done():
			return
		}
	}
	if obj.fail503 {
		http.Error(w, "origin overloaded", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Date", o.clk.Now().Format(http.TimeFormat))
	for k, v := range obj.header {
		h.Set(k, v)
	}
	if etag := obj.header["ETag"]; etag != "" && r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(obj.body)))
	if obj.status != 0 {
		w.WriteHeader(obj.status)
	}
	if obj.truncateAt > 0 {
		w.Write(obj.body[:obj.truncateAt])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cut the connection mid-body
	}
	w.Write(obj.body)
}

// testKey is a fixed signing key so tests are reproducible.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func randomBody(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n:n]
}

type testEdge struct {
	*Server
	url string
	hc  *http.Client
	dir string
}

// newEdge starts an edge in front of o on a loopback httptest server.
func newEdge(t testing.TB, o *origin, clk *clock, mod func(*Config)) *testEdge {
	t.Helper()
	return newEdgeDir(t, o, clk, t.TempDir(), mod)
}

func newEdgeDir(t testing.TB, o *origin, clk *clock, dir string, mod func(*Config)) *testEdge {
	t.Helper()
	return newEdgeDeps(t, o, clk, dir, Deps{}, mod)
}

// newEdgeDeps is newEdgeDir with deps (its clock and randomness set here).
func newEdgeDeps(t testing.TB, o *origin, clk *clock, dir string, deps Deps, mod func(*Config)) *testEdge {
	t.Helper()
	cfg := Config{Origin: o.srv.URL, CacheDir: dir, SigningKey: testKey}
	if mod != nil {
		mod(&cfg)
	}
	deps.Now, deps.Rand = clk.Now, rand.New(rand.NewPCG(3, 4))
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return &testEdge{Server: s, url: hs.URL, hc: hs.Client(), dir: dir}
}

// dataPath is the data file of the stored version of key.
func (e *testEdge) dataPath(t testing.TB, key string) string {
	t.Helper()
	v, _, ok := e.cache.lookup(key)
	if !ok {
		t.Fatalf("%s is not stored", key)
	}
	return e.cache.objPath(v.id, ".data")
}

type result struct {
	status int
	header http.Header
	body   []byte
	err    error // reading the body
}

func (e *testEdge) get(t testing.TB, path string, hdr ...string) result {
	t.Helper()
	return e.do(t, http.MethodGet, path, nil, hdr...)
}

func (e *testEdge) do(t testing.TB, method, path string, body []byte, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, e.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, b, rerr}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

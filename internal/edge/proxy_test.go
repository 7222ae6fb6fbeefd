package edge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// 50 concurrent GETs of a cold object behind a slow origin make exactly one
// origin request and all get identical, complete bodies.
func TestColdFillCoalesced(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(1, 1<<20+123)
	gate := make(chan struct{})
	o.set("/big.bin?v=1", &object{body: body, gate: gate, header: map[string]string{"Cache-Control": "max-age=300", "ETag": `"v1"`}})
	e := newEdge(t, o, clk, nil)

	const n = 50
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.get(t, "/big.bin?v=1")
		}()
	}
	waitFor(t, "the origin to see the fill", func() bool { return o.requests.Load() >= 1 })
	close(gate)
	wg.Wait()

	if got := o.requests.Load(); got != 1 {
		t.Fatalf("origin requests = %d, want 1", got)
	}
	for i, r := range results {
		if r.status != http.StatusOK || r.err != nil || !bytes.Equal(r.body, body) {
			t.Fatalf("client %d: status %d, err %v, %d bytes (want %d identical)", i, r.status, r.err, len(r.body), len(body))
		}
	}
	if s := e.Stats(); s.OriginFetches != 1 || s.CacheMisses+s.CacheHits != n {
		t.Errorf("stats: %+v", s)
	}
}

// A client that hangs up does not cancel the fill others depend on.
func TestFillSurvivesClientHangup(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	gate := make(chan struct{})
	o.set("/v.mp4", &object{body: randomBody(2, 300<<10), gate: gate, header: map[string]string{"Cache-Control": "max-age=60"}})
	e := newEdge(t, o, clk, nil)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/v.mp4", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := e.hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, "the origin to see the fill", func() bool { return o.requests.Load() == 1 })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled client got a response")
	}
	close(gate)
	waitFor(t, "the detached fill to store the object", func() bool { return e.Stats().CachedObjects == 1 })
	if r := e.get(t, "/v.mp4"); r.header.Get("X-Cache") != "HIT" || o.requests.Load() != 1 {
		t.Fatalf("after the fill: X-Cache %q, origin requests %d; want HIT, 1", r.header.Get("X-Cache"), o.requests.Load())
	}
}

func TestHitHeadersAndRange(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(3, 100000)
	o.set("/a.js", &object{body: body, header: map[string]string{
		"Cache-Control": "public, max-age=100", "ETag": `"abc"`, "Content-Type": "text/javascript",
		"Last-Modified": clk.Now().Add(-time.Hour).Format(http.TimeFormat), "Set-Cookie": "session=secret",
	}})
	e := newEdge(t, o, clk, nil)

	miss := e.get(t, "/a.js")
	if miss.header.Get("X-Cache") != "MISS" || !bytes.Equal(miss.body, body) {
		t.Fatalf("first GET: X-Cache %q, %d bytes", miss.header.Get("X-Cache"), len(miss.body))
	}
	clk.Advance(30 * time.Second)
	hit := e.get(t, "/a.js")
	for k, want := range map[string]string{
		"X-Cache": "HIT", "Age": "30", "ETag": `"abc"`, "Content-Type": "text/javascript",
		"Cache-Control": "public, max-age=100", "Set-Cookie": "",
	} {
		if got := hit.header.Get(k); got != want {
			t.Errorf("hit header %s = %q, want %q", k, got, want)
		}
	}
	if hit.header.Get("Last-Modified") == "" {
		t.Error("hit has no Last-Modified")
	}
	rg := e.get(t, "/a.js", "Range", "bytes=10-19")
	if rg.status != http.StatusPartialContent || !bytes.Equal(rg.body, body[10:20]) {
		t.Errorf("range: status %d, body %x", rg.status, rg.body)
	}
	cond := e.get(t, "/a.js", "If-None-Match", `"abc"`)
	if cond.status != http.StatusNotModified {
		t.Errorf("conditional GET: status %d, want 304", cond.status)
	}
	head := e.do(t, http.MethodHead, "/a.js", nil)
	if head.status != http.StatusOK || len(head.body) != 0 || head.header.Get("Content-Length") != "100000" {
		t.Errorf("HEAD: status %d, %d body bytes, Content-Length %q", head.status, len(head.body), head.header.Get("Content-Length"))
	}
	if got := o.requests.Load(); got != 1 {
		t.Errorf("origin requests = %d, want 1", got)
	}
	// An unsafe method goes to the origin and invalidates the stored copy.
	if post := e.do(t, http.MethodPost, "/a.js", []byte("x")); post.status != http.StatusOK || post.header.Get("X-Cache") != "PASS" {
		t.Errorf("POST: status %d, X-Cache %q; want the origin's 200, PASS", post.status, post.header.Get("X-Cache"))
	}
	if got := o.requests.Load(); got != 2 {
		t.Errorf("origin requests after POST = %d, want 2", got)
	}
	if r := e.get(t, "/a.js"); r.header.Get("X-Cache") != "MISS" {
		t.Errorf("GET after POST: X-Cache %q, want MISS (invalidated)", r.header.Get("X-Cache"))
	}
}

func TestUncacheablePassesThrough(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/nostore", &object{body: []byte("fresh each time"), header: map[string]string{"Cache-Control": "no-store"}})
	o.set("/private", &object{body: []byte("mine"), header: map[string]string{"Cache-Control": "private, max-age=60"}})
	o.set("/teapot", &object{body: []byte("short and stout"), status: http.StatusTeapot, header: map[string]string{"Cache-Control": "max-age=60"}})
	e := newEdge(t, o, clk, nil)
	// (A 404 is stored briefly: TestNegativeAndRedirectCaching.)
	for _, p := range []string{"/nostore", "/private", "/teapot"} {
		before := o.requests.Load()
		for range 2 {
			r := e.get(t, p)
			if r.header.Get("X-Cache") != "PASS" {
				t.Errorf("%s: X-Cache %q, want PASS", p, r.header.Get("X-Cache"))
			}
		}
		if got := o.requests.Load() - before; got != 2 {
			t.Errorf("%s: %d origin requests for 2 GETs, want 2 (nothing stored)", p, got)
		}
	}
	if r := e.get(t, "/teapot"); r.status != http.StatusTeapot || string(r.body) != "short and stout" {
		t.Errorf("teapot: %d %q", r.status, r.body)
	}
	if s := e.Stats(); s.CachedObjects != 0 {
		t.Errorf("%d objects stored, want 0", s.CachedObjects)
	}
}

// A truncated origin body is not stored, and the client never gets it as
// if it were whole.
func TestTruncatedOriginBodyNotStored(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(4, 200000)
	o.set("/t.bin", &object{body: body, truncateAt: 5000, header: map[string]string{"Cache-Control": "max-age=60"}})
	e := newEdge(t, o, clk, nil)

	r := e.get(t, "/t.bin")
	if r.status == http.StatusOK && r.err == nil && len(r.body) == len(body) {
		t.Fatal("truncated object served as whole")
	}
	if r.status != http.StatusBadGateway {
		t.Errorf("status %d, want 502", r.status)
	}
	if s := e.Stats(); s.CachedObjects != 0 {
		t.Fatalf("truncated object stored: %+v", s)
	}
	assertNoDataFiles(t, e.dir)

	o.set("/t.bin", &object{body: body, header: map[string]string{"Cache-Control": "max-age=60"}})
	if r := e.get(t, "/t.bin"); r.header.Get("X-Cache") != "MISS" || !bytes.Equal(r.body, body) {
		t.Fatalf("after the origin recovered: X-Cache %q, %d bytes", r.header.Get("X-Cache"), len(r.body))
	}
}

// An uncacheable object too large to buffer is streamed; if the origin
// cuts it short, the client's response is cut short too (an error, not a
// clean end).
func TestTruncatedPassThroughAborts(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(5, 3*passBufferLimit)
	o.set("/live", &object{body: body, truncateAt: passBufferLimit + passBufferLimit/2, header: map[string]string{"Cache-Control": "no-store"}})
	e := newEdge(t, o, clk, nil)
	r := e.get(t, "/live")
	if r.err == nil {
		t.Fatalf("client read %d of %d bytes without error; the response was completed as if whole", len(r.body), len(body))
	}
	if !bytes.Equal(r.body, body[:len(r.body)]) {
		t.Error("bytes that did arrive are wrong")
	}
	o.set("/live", &object{body: body, header: map[string]string{"Cache-Control": "no-store"}})
	if r := e.get(t, "/live"); r.err != nil || !bytes.Equal(r.body, body) {
		t.Fatalf("whole pass-through: err %v, %d bytes", r.err, len(r.body))
	}
}

func assertNoDataFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".manifest") {
			t.Errorf("unexpected file in cache: %s", p)
		}
		return nil
	})
}

func TestRevalidation(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	v1 := []byte("version one")
	o.set("/r.txt", &object{body: v1, header: map[string]string{"Cache-Control": "max-age=10", "ETag": `"1"`}})
	e := newEdge(t, o, clk, nil)

	if r := e.get(t, "/r.txt"); r.header.Get("X-Cache") != "MISS" {
		t.Fatalf("first: %q", r.header.Get("X-Cache"))
	}
	clk.Advance(11 * time.Second)
	r := e.get(t, "/r.txt")
	if r.header.Get("X-Cache") != "REVALIDATED" || !bytes.Equal(r.body, v1) || r.header.Get("Age") != "0" {
		t.Fatalf("stale GET: X-Cache %q, Age %q, body %q; want REVALIDATED, 0, v1", r.header.Get("X-Cache"), r.header.Get("Age"), r.body)
	}
	if o.conditional.Load() != 1 || o.requests.Load() != 2 {
		t.Fatalf("origin: %d requests, %d conditional; want 2, 1", o.requests.Load(), o.conditional.Load())
	}
	clk.Advance(5 * time.Second)
	if r := e.get(t, "/r.txt"); r.header.Get("X-Cache") != "HIT" {
		t.Fatalf("after 304 the object is fresh again: X-Cache %q", r.header.Get("X-Cache"))
	}

	v2 := []byte("version two, longer")
	o.set("/r.txt", &object{body: v2, header: map[string]string{"Cache-Control": "max-age=10", "ETag": `"2"`}})
	clk.Advance(10 * time.Second)
	r = e.get(t, "/r.txt")
	if r.header.Get("X-Cache") != "MISS" || !bytes.Equal(r.body, v2) || r.header.Get("ETag") != `"2"` {
		t.Fatalf("changed object: X-Cache %q, ETag %q, body %q", r.header.Get("X-Cache"), r.header.Get("ETag"), r.body)
	}
	if s := e.Stats(); s.CachedObjects != 1 || s.CachedBytes != int64(len(v2)) || s.OriginFetches != 3 {
		t.Errorf("stats after replacement: %+v", s)
	}
}

func TestStaleOnOriginFailure(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	v1 := []byte("good copy")
	o.set("/s.txt", &object{body: v1, header: map[string]string{"Cache-Control": "max-age=10", "ETag": `"1"`}})
	o.set("/strict.txt", &object{body: v1, header: map[string]string{"Cache-Control": "max-age=10, must-revalidate", "ETag": `"1"`}})
	e := newEdge(t, o, clk, nil)
	e.get(t, "/s.txt")
	e.get(t, "/strict.txt")

	clk.Advance(time.Minute)
	o.set("/s.txt", &object{fail503: true})
	o.set("/strict.txt", &object{fail503: true})
	r := e.get(t, "/s.txt")
	if r.status != http.StatusOK || r.header.Get("X-Cache") != "STALE" || !bytes.Equal(r.body, v1) {
		t.Fatalf("origin 503: status %d, X-Cache %q, body %q; want the stale copy", r.status, r.header.Get("X-Cache"), r.body)
	}
	if r := e.get(t, "/strict.txt"); r.status != http.StatusServiceUnavailable {
		t.Errorf("must-revalidate with origin 503: status %d, want the origin's 503", r.status)
	}

	// The origin's error never replaced the good object: it is served
	// stale again when the origin is unreachable altogether.
	o.srv.Close()
	r = e.get(t, "/s.txt")
	if r.header.Get("X-Cache") != "STALE" || !bytes.Equal(r.body, v1) {
		t.Fatalf("origin down: X-Cache %q, body %q", r.header.Get("X-Cache"), r.body)
	}
	if r := e.get(t, "/strict.txt"); r.status != http.StatusBadGateway {
		t.Errorf("must-revalidate with origin down: status %d, want 502", r.status)
	}
}

func TestRestartKeepsCache(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(6, 500000)
	o.set("/keep.bin", &object{body: body, header: map[string]string{"Cache-Control": "max-age=3600", "ETag": `"k"`}})
	o.set("/corrupt.bin", &object{body: randomBody(7, 1000), header: map[string]string{"Cache-Control": "max-age=3600"}})
	dir := t.TempDir()
	e1 := newEdgeDir(t, o, clk, dir, nil)
	e1.get(t, "/keep.bin")
	e1.get(t, "/corrupt.bin")
	e1.Close()

	// Damage one object and leave a stray temp file behind.
	metas, _ := filepath.Glob(filepath.Join(dir, "objects", "*", "*.data"))
	for _, p := range metas {
		if st, _ := os.Stat(p); st.Size() == 1000 {
			os.Truncate(p, 999)
		}
	}
	stray := filepath.Join(dir, "tmp", "w-123")
	os.WriteFile(stray, []byte("half written"), 0o644)

	before := o.requests.Load()
	e2 := newEdgeDir(t, o, clk, dir, nil)
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Error("stray temp file survived the restart")
	}
	r := e2.get(t, "/keep.bin")
	if r.header.Get("X-Cache") != "HIT" || !bytes.Equal(r.body, body) {
		t.Fatalf("after restart: X-Cache %q, %d bytes", r.header.Get("X-Cache"), len(r.body))
	}
	if got := o.requests.Load() - before; got != 0 {
		t.Fatalf("restart cost %d origin requests, want 0", got)
	}
	if r := e2.get(t, "/corrupt.bin"); r.header.Get("X-Cache") != "MISS" {
		t.Errorf("object with a wrong data size was not dropped: X-Cache %q", r.header.Get("X-Cache"))
	}
	e2.Close()

	// Restarting with a smaller budget trims the cache to it.
	e3 := newEdgeDir(t, o, clk, dir, func(c *Config) { c.CacheSize = 100000 })
	if s := e3.Stats(); s.CachedBytes > 100000 || s.CachedObjects != 1 {
		t.Fatalf("smaller budget after restart: %+v", s)
	}
	if disk := dataBytes(t, dir); disk > 100000 {
		t.Fatalf("%d bytes on disk, budget 100000", disk)
	}
}

// The stored total never exceeds the budget; least recently used objects
// go first; an object larger than the budget is passed through.
func TestEvictionBound(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	const budget = 1 << 20
	const size = 300 << 10
	e := newEdge(t, o, clk, func(c *Config) { c.CacheSize = budget })
	for i := range 10 {
		p := "/obj" + string(rune('0'+i))
		o.set(p, &object{body: randomBody(uint64(i), size), header: map[string]string{"Cache-Control": "max-age=3600"}})
		if r := e.get(t, p); r.status != http.StatusOK {
			t.Fatal(r.status)
		}
		if i == 5 {
			e.get(t, "/obj0") // refetched: now recently used
		}
		s := e.Stats()
		if s.CachedBytes > budget {
			t.Fatalf("after %d objects: %d bytes stored, budget %d", i+1, s.CachedBytes, budget)
		}
		if disk := dataBytes(t, e.dir); disk > budget {
			t.Fatalf("after %d objects: %d bytes on disk, budget %d", i+1, disk, budget)
		}
	}
	if r := e.get(t, "/obj9"); r.header.Get("X-Cache") != "HIT" {
		t.Errorf("most recent object: X-Cache %q, want HIT", r.header.Get("X-Cache"))
	}
	if r := e.get(t, "/obj1"); r.header.Get("X-Cache") != "MISS" {
		t.Errorf("least recent object: X-Cache %q, want MISS (evicted)", r.header.Get("X-Cache"))
	}

	huge := randomBody(99, 2*budget)
	o.set("/huge", &object{body: huge, header: map[string]string{"Cache-Control": "max-age=3600"}})
	for range 2 {
		r := e.get(t, "/huge")
		if r.header.Get("X-Cache") != "PASS" || !bytes.Equal(r.body, huge) {
			t.Fatalf("object over budget: X-Cache %q, %d bytes", r.header.Get("X-Cache"), len(r.body))
		}
	}
	if s := e.Stats(); s.CachedBytes > budget {
		t.Fatalf("%d bytes stored, budget %d", s.CachedBytes, budget)
	}
}

func dataBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	files, _ := filepath.Glob(filepath.Join(dir, "objects", "*", "*.data"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}

func TestMetricsAndHealth(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/m", &object{body: []byte("x"), header: map[string]string{"Cache-Control": "max-age=60"}})
	e := newEdge(t, o, clk, nil)
	e.get(t, "/m")
	e.get(t, "/m")
	if r := e.get(t, "/healthz"); r.status != http.StatusOK {
		t.Errorf("healthz: %d", r.status)
	}
	r := e.get(t, "/metrics")
	for _, want := range []string{
		`edgeswarm_edge_requests_total{cache_status="hit"} 1`,
		`edgeswarm_edge_requests_total{cache_status="miss"} 1`,
		`edgeswarm_edge_origin_fetches_total 1`,
		`edgeswarm_edge_bytes_served_total{kind="content"} 2`,
		`edgeswarm_edge_origin_fetch_seconds_count 1`,
		`edgeswarm_swarm_peers 0`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		io.Discard.Write(r.body)
		t.Logf("metrics:\n%s", r.body)
	}
}

// sendWhole answers a request without ranges or preconditions exactly as
// http.ServeContent does (given no modification time: the stored
// Last-Modified is passed on as it is).
func TestSendWholeMatchesServeContent(t *testing.T) {
	clk := newClock()
	c := testCache(t, t.TempDir(), clk, func(cfg *cacheConfig) { cfg.hotBudget = 1 << 20 })
	objects := map[string][]byte{
		"/html":  []byte("<!DOCTYPE html><html><body>hi</body></html>"),
		"/bin":   randomBody(1, 3000),
		"/big":   randomBody(2, smallObjectMax+5),
		"/empty": {},
	}
	for name, body := range objects {
		e := put(t, c, name, body)
		for _, hdr := range []http.Header{{}, {"Content-Type": {"text/css"}}, {"Content-Encoding": {"gzip"}}} {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				serve := func(f func(w http.ResponseWriter, r *http.Request, rd *objectReader)) *httptest.ResponseRecorder {
					rd, _, err := c.open(e)
					if err != nil {
						t.Fatal(err)
					}
					defer rd.Close()
					w := httptest.NewRecorder()
					maps.Copy(w.Header(), hdr.Clone())
					f(w, httptest.NewRequest(method, name, nil), rd)
					return w
				}
				want := serve(func(w http.ResponseWriter, r *http.Request, rd *objectReader) {
					http.ServeContent(w, r, "", time.Time{}, rd)
				})
				got := serve(func(w http.ResponseWriter, r *http.Request, rd *objectReader) { sendWhole(w, r, rd, e.size) })
				what := fmt.Sprintf("%s %s with %v", method, name, hdr)
				if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
					t.Errorf("%s: status %d, %d bytes; ServeContent %d, %d bytes", what, got.Code, got.Body.Len(), want.Code, want.Body.Len())
				}
				if !maps.EqualFunc(got.Header(), want.Header(), slices.Equal) {
					t.Errorf("%s: headers %v, ServeContent %v", what, got.Header(), want.Header())
				}
			}
		}
	}
}

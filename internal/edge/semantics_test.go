package edge

// HTTP caching semantics: the edge-cache items of the fault battery
// (collapsing, lock timeout, leader failure, stale-if-error,
// stale-while-revalidate, errors never replacing good copies, slow
// origins, poisoning, Authorization) and RFC 9111/9211/9213 behaviour.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// funcOrigin is an origin served by h, counted.
func funcOrigin(t *testing.T, clk *clock, h func(n int64, w http.ResponseWriter, r *http.Request)) (*origin, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	o := &origin{clk: clk, objects: map[string]*object{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", clk.Now().Format(http.TimeFormat))
		h(n.Add(1), w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o, &n
}

// parallel runs n copies of f, at most width at a time, and waits.
func parallel(n, width int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, width)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}()
	}
	wg.Wait()
}

func dataFiles(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "objects", "*", "*.data"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// Battery 1: 100 concurrent GETs of a cold object while the origin takes
// 1 s: all 200 with identical bodies, one origin fetch, and every request
// but the one that started the fill says "collapsed".
func TestBatteryCollapsing(t *testing.T) {
	clk := newClock()
	body := randomBody(11, 256<<10)
	o, fetches := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write(body)
	})
	e := newEdge(t, o, clk, nil)
	const n = 100
	res := make([]result, n)
	parallel(n, n, func(i int) { res[i] = e.get(t, "/cold.bin") })
	collapsed := 0
	for i, r := range res {
		if r.status != http.StatusOK || !bytes.Equal(r.body, body) {
			t.Fatalf("client %d: status %d, %d bytes", i, r.status, len(r.body))
		}
		cs := r.header.Get("Cache-Status")
		if strings.Contains(cs, "collapsed") {
			collapsed++
		} else if !strings.Contains(cs, "fwd=uri-miss") || !strings.Contains(cs, "stored") {
			t.Errorf("client %d: Cache-Status %q, want the fill's fwd=uri-miss; stored", i, cs)
		}
	}
	if got := fetches.Load(); got != 1 {
		t.Fatalf("origin fetches = %d, want 1", got)
	}
	if collapsed != n-1 {
		t.Errorf("%d responses say collapsed, want %d", collapsed, n-1)
	}
}

// Battery 2: an origin slower than the lock timeout: every client gets
// 200, at most 3 origin fetches, one response stored.
func TestBatteryCollapseTimeout(t *testing.T) {
	clk := newClock()
	body := randomBody(12, 64<<10)
	o, fetches := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		time.Sleep(600 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write(body)
	})
	e := newEdge(t, o, clk, func(c *Config) { c.LockTimeout = 150 * time.Millisecond })
	res := make([]result, 100)
	parallel(100, 100, func(i int) { res[i] = e.get(t, "/slow.bin") })
	for i, r := range res {
		if r.status != http.StatusOK || !bytes.Equal(r.body, body) {
			t.Fatalf("client %d: status %d, %d bytes", i, r.status, len(r.body))
		}
	}
	if got := fetches.Load(); got < 2 || got > 3 {
		t.Errorf("origin fetches = %d, want 2..3 (the lock timed out, bounded)", got)
	}
	if got := dataFiles(t, e.dir); got != 1 {
		t.Errorf("%d objects stored, want 1", got)
	}
	if r := e.get(t, "/slow.bin"); r.header.Get("X-Cache") != "HIT" {
		t.Errorf("after the burst: X-Cache %q, want HIT", r.header.Get("X-Cache"))
	}
}

// Battery 3: the first fetch's origin connection is reset while 50 wait:
// they retry once, together, and get 200 well within the lock timeout.
func TestBatteryLeaderFailure(t *testing.T) {
	clk := newClock()
	body := []byte("second time lucky")
	o, fetches := funcOrigin(t, clk, func(n int64, w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		if n == 1 {
			panic(http.ErrAbortHandler) // reset before any response
		}
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write(body)
	})
	const lock = 5 * time.Second
	e := newEdge(t, o, clk, func(c *Config) { c.LockTimeout = lock })
	res := make([]result, 50)
	durs := make([]time.Duration, 50)
	parallel(50, 50, func(i int) {
		start := time.Now()
		res[i] = e.get(t, "/flaky.txt")
		durs[i] = time.Since(start)
	})
	ok := 0
	for i, r := range res {
		switch {
		case r.status == http.StatusOK && bytes.Equal(r.body, body):
			ok++
		case r.status != http.StatusBadGateway:
			t.Errorf("client %d: status %d; want 200 or 502", i, r.status)
		}
		if durs[i] >= lock {
			t.Errorf("client %d waited %v, past the lock timeout", i, durs[i])
		}
	}
	if ok < 49 {
		t.Errorf("%d of 50 got the body; only the leader may see the failure", ok)
	}
	if got := fetches.Load(); got != 2 {
		t.Errorf("origin fetches = %d, want 2 (the failed one and one retry)", got)
	}
}

// Battery 4: max-age=1, stale-if-error=60; the origin dies at t=2 s: 1000
// requests all get the stale 200 with Age ≥ 2; past the window, 5xx.
func TestBatteryStaleIfError(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := []byte("keep me")
	o.set("/sie.txt", &object{body: body, header: map[string]string{"Cache-Control": "max-age=1, stale-if-error=60", "ETag": `"a"`}})
	e := newEdge(t, o, clk, nil)
	e.get(t, "/sie.txt")
	clk.Advance(2 * time.Second)
	o.srv.Close()
	var bad atomic.Int64
	parallel(1000, 32, func(int) {
		r := e.get(t, "/sie.txt")
		age := 0
		fmt.Sscan(r.header.Get("Age"), &age)
		if r.status != http.StatusOK || !bytes.Equal(r.body, body) || age < 2 || r.header.Get("X-Cache") != "STALE" {
			bad.Add(1)
		}
	})
	if bad.Load() != 0 {
		t.Fatalf("%d of 1000 requests did not get the stale copy with Age ≥ 2", bad.Load())
	}
	r := e.get(t, "/sie.txt")
	if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, "fwd=stale") || !strings.Contains(cs, `detail="stale-if-error"`) {
		t.Errorf("Cache-Status %q", cs)
	}
	clk.Advance(60 * time.Second) // 61 s stale: past the window
	if r := e.get(t, "/sie.txt"); r.status < 500 {
		t.Errorf("past stale-if-error: status %d, want 5xx", r.status)
	}
}

// Battery 5: 50 requests just after expiry under stale-while-revalidate
// are all served at once, and exactly one background revalidation runs.
func TestBatteryStaleWhileRevalidate(t *testing.T) {
	clk := newClock()
	body := []byte("swr body")
	gate := make(chan struct{})
	var conditional atomic.Int64
	o, _ := funcOrigin(t, clk, func(n int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=30")
		w.Header().Set("ETag", `"s"`)
		if r.Header.Get("If-None-Match") == `"s"` {
			conditional.Add(1)
			<-gate
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(body)
	})
	e := newEdge(t, o, clk, nil)
	e.get(t, "/swr.txt")
	clk.Advance(11 * time.Second)
	res := make([]result, 50)
	parallel(50, 50, func(i int) { res[i] = e.get(t, "/swr.txt") })
	for i, r := range res {
		if r.status != http.StatusOK || !bytes.Equal(r.body, body) || r.header.Get("X-Cache") != "STALE" ||
			!strings.Contains(r.header.Get("Cache-Status"), "stale-while-revalidate") {
			t.Fatalf("client %d: status %d X-Cache %q Cache-Status %q", i, r.status, r.header.Get("X-Cache"), r.header.Get("Cache-Status"))
		}
	}
	close(gate)
	waitFor(t, "the revalidation to refresh the copy", func() bool {
		return e.get(t, "/swr.txt").header.Get("X-Cache") == "HIT"
	})
	if got := conditional.Load(); got != 1 {
		t.Errorf("background revalidations = %d, want 1", got)
	}
}

// Battery 6: an origin 503 never replaces a good stored 200, and no error
// body is ever stored.
func TestBatteryErrorNeverReplacesGood(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	good := []byte("good")
	o.set("/g.txt", &object{body: good, header: map[string]string{"Cache-Control": "max-age=5, stale-if-error=10", "ETag": `"g"`}})
	e := newEdge(t, o, clk, nil)
	e.get(t, "/g.txt")
	o.set("/g.txt", &object{fail503: true})
	clk.Advance(6 * time.Second)
	if r := e.get(t, "/g.txt"); r.status != http.StatusOK || !bytes.Equal(r.body, good) {
		t.Fatalf("within stale-if-error: status %d body %q", r.status, r.body)
	}
	clk.Advance(20 * time.Second)
	if r := e.get(t, "/g.txt"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("past the window: status %d, want the origin's 503", r.status)
	}
	if s := e.Stats(); s.CachedObjects != 1 || s.CachedBytes != int64(len(good)) || dataFiles(t, e.dir) != 1 {
		t.Fatalf("after the 503s: %d objects, %d bytes stored; want only the good copy", s.CachedObjects, s.CachedBytes)
	}
	o.set("/g.txt", &object{body: good, header: map[string]string{"Cache-Control": "max-age=5", "ETag": `"g"`}})
	if r := e.get(t, "/g.txt"); r.header.Get("X-Cache") != "REVALIDATED" || !bytes.Equal(r.body, good) {
		t.Fatalf("origin back: X-Cache %q body %q; want the good copy revalidated", r.header.Get("X-Cache"), r.body)
	}
}

// Battery 8: an origin sending 1 byte/s hits the between-bytes timeout,
// and the edge's goroutines return to their baseline.
func TestBatterySlowOrigin(t *testing.T) {
	clk := newClock()
	o, _ := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		for range 100 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Second):
			}
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
		}
	})
	e := newEdge(t, o, clk, func(c *Config) { c.OriginIdleTimeout = 300 * time.Millisecond })
	base := runtime.NumGoroutine()
	start := time.Now()
	r := e.get(t, "/trickle")
	if r.status != http.StatusBadGateway && r.status != http.StatusGatewayTimeout {
		t.Errorf("status %d, want 502/504", r.status)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v", d)
	}
	// A pass-through (the client's own range) times out the same way.
	if r := e.get(t, "/trickle", "Cache-Control", "no-store"); r.status == http.StatusOK && r.err == nil && len(r.body) == 100 {
		t.Errorf("no-store fetch completed against a 1 byte/s origin")
	}
	e.hc.CloseIdleConnections()
	waitFor(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= base+2 })
}

// Battery 29: headers a client adds (method override, forwarded host, a
// huge header, control bytes) never reach a cached body or get an error
// cached; the next clean request gets the origin's 200.
func TestBatteryPoisoning(t *testing.T) {
	clk := newClock()
	var sawEvil atomic.Int64
	o, _ := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-HTTP-Method-Override") != "" || r.Header.Get("X-Forwarded-Host") != "" || r.Header.Get("X-Evil") != "" {
			sawEvil.Add(1)
			http.Error(w, "poisoned", http.StatusBadRequest)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "clean")
	})
	e := newEdge(t, o, clk, nil)
	serveOwn(t, e) // the edge's own header limit, not httptest's
	if r := e.get(t, "/p", "X-HTTP-Method-Override", "DELETE", "X-Forwarded-Host", "evil.example"); r.status != http.StatusOK || string(r.body) != "clean" {
		t.Fatalf("with override headers: status %d body %q", r.status, r.body)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/q", nil)
	req.Header.Set("X-Evil", strings.Repeat("a", 200<<10))
	if resp, err := e.hc.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("200 KiB header: status %d, want 431", resp.StatusCode)
		}
	}
	if r := e.get(t, "/q"); r.status != http.StatusOK || string(r.body) != "clean" || r.header.Get("X-Cache") != "MISS" {
		t.Errorf("clean request after the oversized one: status %d X-Cache %q body %q", r.status, r.header.Get("X-Cache"), r.body)
	}
	if sawEvil.Load() != 0 {
		t.Errorf("the origin saw %d requests with client-injected headers", sawEvil.Load())
	}
	if r := e.get(t, "/p"); r.header.Get("X-Cache") != "HIT" || string(r.body) != "clean" {
		t.Errorf("/p: X-Cache %q body %q", r.header.Get("X-Cache"), r.body)
	}
}

// Battery 30: responses to requests with Authorization are stored only when
// marked public/s-maxage/must-revalidate; other users never see them.
func TestBatteryAuthorization(t *testing.T) {
	clk := newClock()
	o, fetches := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		user := r.Header.Get("Authorization")
		if r.URL.Path == "/shared" {
			w.Header().Set("Cache-Control", "public, max-age=60")
		} else {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		fmt.Fprintf(w, "for %q", user)
	})
	e := newEdge(t, o, clk, nil)
	a := e.get(t, "/me", "Authorization", "Bearer alice")
	b := e.get(t, "/me", "Authorization", "Bearer bob")
	anon := e.get(t, "/me")
	if string(a.body) != `for "Bearer alice"` || string(b.body) != `for "Bearer bob"` || string(anon.body) != `for ""` {
		t.Fatalf("bodies: %q %q %q", a.body, b.body, anon.body)
	}
	if a.header.Get("X-Cache") != "PASS" || b.header.Get("X-Cache") != "PASS" {
		t.Errorf("authorized requests: X-Cache %q %q, want PASS", a.header.Get("X-Cache"), b.header.Get("X-Cache"))
	}
	if r := e.get(t, "/me", "Authorization", "Bearer bob"); string(r.body) != `for "Bearer bob"` {
		t.Errorf("bob again got %q", r.body)
	}
	// The anonymous copy was stored; an authorized request does not get it
	// (no public/s-maxage), and unkeyed headers do not change it.
	if r := e.get(t, "/me", "X-Forwarded-Host", "evil", "Cookie", "u=alice"); string(r.body) != `for ""` || r.header.Get("X-Cache") != "HIT" {
		t.Errorf("anonymous with unkeyed headers: %q %q", r.header.Get("X-Cache"), r.body)
	}
	if s := e.Stats(); s.CachedObjects != 1 {
		t.Errorf("%d objects stored, want 1 (the anonymous copy)", s.CachedObjects)
	}
	// public: a response to an authorized request may be stored, and
	// shared (the origin said so).
	if r := e.get(t, "/shared", "Authorization", "Bearer alice"); r.header.Get("X-Cache") != "MISS" {
		t.Errorf("public response to alice: X-Cache %q, want MISS (stored)", r.header.Get("X-Cache"))
	}
	before := fetches.Load()
	if r := e.get(t, "/shared", "Authorization", "Bearer bob"); r.header.Get("X-Cache") != "HIT" || string(r.body) != `for "Bearer alice"` {
		t.Errorf("public response to bob: X-Cache %q body %q", r.header.Get("X-Cache"), r.body)
	}
	if fetches.Load() != before {
		t.Error("the public copy was fetched again")
	}
}

func TestVarySecondaryKeys(t *testing.T) {
	clk := newClock()
	o, fetches := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language, Accept-Encoding")
		fmt.Fprintf(w, "lang=%s enc=%s", r.Header.Get("Accept-Language"), r.Header.Get("Accept-Encoding"))
	})
	e := newEdge(t, o, clk, nil)
	en := e.get(t, "/v", "Accept-Language", "en")
	fr := e.get(t, "/v", "Accept-Language", "fr")
	en2 := e.get(t, "/v", "Accept-Language", "en", "Accept-Encoding", "gzip")
	fr2 := e.get(t, "/v", "Accept-Language", " fr ")
	if string(en.body) != "lang=en enc=identity" || string(fr.body) != "lang=fr enc=identity" {
		t.Fatalf("bodies %q %q", en.body, fr.body)
	}
	if en2.header.Get("X-Cache") != "HIT" || string(en2.body) != string(en.body) || fr2.header.Get("X-Cache") != "HIT" {
		t.Errorf("repeat: %q %q / %q", en2.header.Get("X-Cache"), en2.body, fr2.header.Get("X-Cache"))
	}
	if !strings.Contains(fr.header.Get("Cache-Status"), "fwd=vary-miss") {
		t.Errorf("second language: Cache-Status %q, want fwd=vary-miss", fr.header.Get("Cache-Status"))
	}
	if got := fetches.Load(); got != 2 {
		t.Errorf("origin fetches = %d, want 2", got)
	}
	if en.header.Get("Vary") == "" {
		t.Error("Vary not sent to the client")
	}
	// An unsafe method invalidates every variant.
	e.do(t, http.MethodPut, "/v", []byte("new"))
	if r := e.get(t, "/v", "Accept-Language", "fr"); r.header.Get("X-Cache") != "MISS" {
		t.Errorf("after PUT: X-Cache %q, want MISS", r.header.Get("X-Cache"))
	}
}

func TestCDNCacheControlAndHeaders(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/c", &object{body: []byte("cdn"), header: map[string]string{
		"Cache-Control": "no-store", "CDN-Cache-Control": "max-age=120", "Surrogate-Key": "k1 k2", "Via": "1.1 upstream",
	}})
	e := newEdge(t, o, clk, nil)
	e.get(t, "/c")
	clk.Advance(100 * time.Second)
	r := e.get(t, "/c")
	if r.header.Get("X-Cache") != "HIT" {
		t.Fatalf("CDN-Cache-Control max-age=120 over Cache-Control no-store: X-Cache %q", r.header.Get("X-Cache"))
	}
	for name, want := range map[string]string{
		"Cache-Control": "no-store", "CDN-Cache-Control": "", "Surrogate-Key": "",
		"Via": "1.1 upstream, 1.1 edgeswarm", "Cache-Status": "edgeswarm; hit; ttl=20", "Age": "100",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestRequestDirectives(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/d", &object{body: []byte("d"), header: map[string]string{"Cache-Control": "max-age=100", "ETag": `"d"`}})
	e := newEdge(t, o, clk, nil)
	if r := e.get(t, "/d", "Cache-Control", "only-if-cached"); r.status != http.StatusGatewayTimeout {
		t.Errorf("only-if-cached, cold: status %d, want 504", r.status)
	}
	e.get(t, "/d")
	clk.Advance(50 * time.Second)
	for _, tc := range []struct {
		cc, want string
	}{
		{"only-if-cached", "HIT"},
		{"max-age=60", "HIT"},
		{"max-age=10", "REVALIDATED"},
		{"min-fresh=99", "REVALIDATED"},
		{"no-cache", "REVALIDATED"},
		{"", "HIT"},
	} {
		r := e.get(t, "/d", "Cache-Control", tc.cc)
		if got := r.header.Get("X-Cache"); got != tc.want {
			t.Errorf("Cache-Control: %s → X-Cache %q, want %q", tc.cc, got, tc.want)
		}
		clk.Advance(time.Second)
	}
	if r := e.get(t, "/d", "Pragma", "no-cache"); r.header.Get("X-Cache") != "REVALIDATED" {
		t.Errorf("Pragma: no-cache → X-Cache %q", r.header.Get("X-Cache"))
	}
	clk.Advance(200 * time.Second)
	if r := e.get(t, "/d", "Cache-Control", "max-stale=300"); r.header.Get("X-Cache") != "HIT" {
		t.Errorf("max-stale=300 on a copy stale by 100 s: X-Cache %q, want HIT", r.header.Get("X-Cache"))
	}
	if r := e.get(t, "/x", "Cache-Control", "no-store"); r.status != http.StatusNotFound {
		t.Errorf("status %d", r.status)
	}
	o.set("/ns", &object{body: []byte("ns"), header: map[string]string{"Cache-Control": "max-age=100"}})
	e.get(t, "/ns", "Cache-Control", "no-store")
	if r := e.get(t, "/ns"); r.header.Get("X-Cache") != "MISS" {
		t.Errorf("after a no-store request the response was stored: X-Cache %q", r.header.Get("X-Cache"))
	}
}

func TestCacheStatusValues(t *testing.T) {
	for _, tc := range []struct {
		res  fillResult
		ttl  int64
		copy bool
		want string
	}{
		{fillResult{status: statusHit}, 30, true, "edgeswarm; hit; ttl=30"},
		{fillResult{status: statusMiss, fwd: "uri-miss", fwdStatus: 200, stored: true, collapsed: true}, 60, true, "edgeswarm; fwd=uri-miss; fwd-status=200; stored; collapsed; ttl=60"},
		{fillResult{status: statusStale, fwd: "stale", fwdStatus: 503, detail: "stale-if-error"}, -5, true, `edgeswarm; fwd=stale; fwd-status=503; ttl=-5; detail="stale-if-error"`},
		{fillResult{status: statusPass, fwd: "method", fwdStatus: 201}, 0, false, "edgeswarm; fwd=method; fwd-status=201"},
	} {
		if got := cacheStatus(&tc.res, tc.ttl, tc.copy); got != tc.want {
			t.Errorf("cacheStatus(%+v) = %q, want %q", tc.res, got, tc.want)
		}
	}
}

// FuzzCacheControl: any Cache-Control value parses without panicking into
// non-negative durations, and the freshness decisions built on it hold.
func FuzzCacheControl(f *testing.F) {
	for _, s := range []string{
		"max-age=60", "public, s-maxage=10, stale-while-revalidate=30", `max-age="15"`, "max-stale",
		"max-stale=5, min-fresh=3, only-if-cached", "no-cache, no-store, private", "max-age=99999999999999999999",
		"stale-if-error=-1", ",,,=,", "max-age=1, max-age=100", "MUST-REVALIDATE",
	} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, v string, ageSecs int64) {
		cc := parseCacheControl(v)
		for _, d := range []time.Duration{cc.maxAge, cc.sMaxAge, cc.staleWhileRevalidate, cc.staleIfErr, cc.maxStale, cc.minFresh} {
			if d < 0 {
				t.Fatalf("%q: negative duration %v", v, d)
			}
		}
		stored := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		m := meta{Header: map[string]string{"Cache-Control": v, "CDN-Cache-Control": v}, Stored: stored}
		now := stored.Add(time.Duration(ageSecs%1e6) * time.Second)
		p := stalePolicy{defaultIfError: time.Hour, maxIfError: 24 * time.Hour, maxWhileRevalidate: time.Hour}
		if l := lifetime(m, time.Minute); l < 0 {
			t.Fatalf("%q: negative lifetime %v", v, l)
		}
		life := lifetime(m, time.Minute)
		u := p.judge(m, cc, life, now)
		if cc.noCache && u != useFetch {
			t.Fatalf("%q: a no-cache request was answered from the cache", v)
		}
		_ = p.staleOnError(m, life, now)
		_ = ttl(m, life, now)
	})
}

// Heuristically cacheable statuses are stored: a 404 briefly (no explicit
// freshness), a 301 with its Location for as long as it says; a 5xx never.
func TestNegativeAndRedirectCaching(t *testing.T) {
	clk := newClock()
	o, fetches := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			w.Header().Set("Location", "/new")
			w.Header().Set("Cache-Control", "max-age=300")
			w.WriteHeader(http.StatusMovedPermanently)
		case "/boom":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "boom")
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "no such thing")
		}
	})
	e := newEdge(t, o, clk, nil)
	e.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if r := e.get(t, "/nope"); r.status != http.StatusNotFound || r.header.Get("X-Cache") != "MISS" {
		t.Fatalf("first 404: %d %q", r.status, r.header.Get("X-Cache"))
	}
	clk.Advance(5 * time.Second)
	if r := e.get(t, "/nope"); r.status != http.StatusNotFound || r.header.Get("X-Cache") != "HIT" || string(r.body) != "no such thing" {
		t.Fatalf("404 within 10 s: %d %q %q", r.status, r.header.Get("X-Cache"), r.body)
	}
	clk.Advance(6 * time.Second)
	if r := e.get(t, "/nope"); r.header.Get("X-Cache") == "HIT" {
		t.Errorf("404 after 11 s still a hit")
	}
	e.get(t, "/moved")
	clk.Advance(time.Minute)
	if r := e.get(t, "/moved"); r.status != http.StatusMovedPermanently || r.header.Get("Location") != "/new" || r.header.Get("X-Cache") != "HIT" {
		t.Errorf("301: %d Location %q X-Cache %q", r.status, r.header.Get("Location"), r.header.Get("X-Cache"))
	}
	e.get(t, "/boom")
	if r := e.get(t, "/boom"); r.status != http.StatusInternalServerError || r.header.Get("X-Cache") == "HIT" {
		t.Errorf("500 was stored: X-Cache %q", r.header.Get("X-Cache"))
	}
	if got := fetches.Load(); got != 5 {
		t.Errorf("origin fetches %d, want 5", got)
	}
}

// A restart keeps the Vary lists: a stored variant is a hit at once.
func TestVarySurvivesRestart(t *testing.T) {
	clk := newClock()
	o, fetches := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s", r.Header.Get("Accept-Language"))
	})
	dir := t.TempDir()
	e := newEdgeDir(t, o, clk, dir, nil)
	e.get(t, "/v", "Accept-Language", "de")
	e.Close()
	e2 := newEdgeDir(t, o, clk, dir, nil)
	if r := e2.get(t, "/v", "Accept-Language", "de"); r.header.Get("X-Cache") != "HIT" || string(r.body) != "lang=de" {
		t.Errorf("after restart: X-Cache %q body %q", r.header.Get("X-Cache"), r.body)
	}
	if fetches.Load() != 1 {
		t.Errorf("origin fetches %d, want 1", fetches.Load())
	}
}

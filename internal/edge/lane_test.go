package edge

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// laneEdge serves one edge twice: through the fast lane (Serve) and through
// net/http alone (serveWith), so the two can be compared on the same cache.
func laneEdge(t *testing.T) (e *testEdge, lane, plain string, o *origin) {
	t.Helper()
	clk := newClock()
	o = newOrigin(t, clk)
	hdr := map[string]string{"Cache-Control": "max-age=3600", "ETag": `"v1"`, "Last-Modified": clk.Now().Add(-time.Hour).Format(http.TimeFormat)}
	o.set("/small.js", &object{body: randomBody(1, 1000), header: hdr})
	o.set("/typed.css", &object{body: []byte("body{}"), header: map[string]string{"Cache-Control": "max-age=60", "Content-Type": "text/css"}})
	o.set("/hot.bin", &object{body: randomBody(4, 100<<10), header: hdr})
	o.set("/mid.bin", &object{body: randomBody(2, 300<<10), header: hdr})
	o.set("/big.bin", &object{body: randomBody(3, 3<<20), header: hdr})
	e = newEdge(t, o, clk, nil)
	l1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.Serve(l1)
	go e.serveWith(l2, e.handler)
	return e, l1.Addr().String(), l2.Addr().String(), o
}

// exchange sends raw requests on one connection and reads n responses.
func exchange(t *testing.T, addr, raw string, n int) []*http.Response {
	t.Helper()
	br := bufio.NewReader(sendRaw(t, addr, raw, 5*time.Second))
	var out []*http.Response
	for range n {
		method := http.MethodGet
		if strings.HasPrefix(raw, "HEAD") && len(out) == 0 {
			method = http.MethodHead
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d of %q: %v", len(out)+1, raw, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v", len(out)+1, err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
	return out
}

// statusLine sends raw on a fresh connection and returns the first line
// of the answer.
func statusLine(t *testing.T, addr, raw string) string {
	t.Helper()
	line, _ := bufio.NewReader(sendRaw(t, addr, raw, 5*time.Second)).ReadString('\n')
	return line
}

func bodyOf(r *http.Response) []byte { b, _ := io.ReadAll(r.Body); return b }

// The lane answers as net/http does: the same status, headers (but Date)
// and body for hits, misses, HEAD, errors and everything it hands over.
func TestLaneMatchesNetHTTP(t *testing.T) {
	e, lane, plain, _ := laneEdge(t)
	req := func(method, target string, extra ...string) string {
		return method + " " + target + " HTTP/1.1\r\nHost: example.com\r\n" + strings.Join(extra, "") + "\r\n"
	}
	// Warm the cache through net/http, then ask both the same.
	for _, p := range []string{"/small.js", "/typed.css", "/hot.bin", "/mid.bin", "/big.bin"} {
		exchange(t, plain, req("GET", p), 1)
	}
	cases := []string{
		req("GET", "/small.js"),
		req("HEAD", "/small.js"),
		req("GET", "/typed.css", "Accept: */*\r\n", "User-Agent: test\r\n"),
		req("GET", "/hot.bin"),
		req("HEAD", "/hot.bin"),
		req("GET", "/hot.bin", "Range: bytes=100-70000\r\n"),
		req("GET", "/mid.bin"),
		req("GET", "/big.bin"),
		req("GET", "/small.js?v=1"),
		req("GET", "/missing"),
		req("GET", "/small.js", "If-None-Match: \"v1\"\r\n"),
		req("GET", "/big.bin", "Range: bytes=10-20\r\n"),
		req("GET", "/a/../small.js"),                           // the handler's 400
		req("GET", "/small.js", "Cache-Control: no-cache\r\n"), // revalidated
	}
	for _, raw := range cases {
		// Each side's second answer, so a miss's fill is behind both.
		exchange(t, plain, raw, 1)
		exchange(t, lane, raw, 1)
		a, b := exchange(t, plain, raw, 1)[0], exchange(t, lane, raw, 1)[0]
		name := strings.SplitN(raw, "\r\n", 2)[0]
		if a.StatusCode != b.StatusCode {
			t.Errorf("%s: status %d by net/http, %d by the lane", name, a.StatusCode, b.StatusCode)
		}
		for _, h := range []http.Header{a.Header, b.Header} {
			h.Del("Date")
			h.Del("Age")
		}
		for k := range a.Header {
			if !slices.Equal(a.Header[k], b.Header[k]) {
				t.Errorf("%s: %s %q by net/http, %q by the lane", name, k, a.Header[k], b.Header[k])
			}
		}
		for k := range b.Header {
			if _, ok := a.Header[k]; !ok {
				t.Errorf("%s: the lane adds %s %q", name, k, b.Header[k])
			}
		}
		if !bytes.Equal(bodyOf(a), bodyOf(b)) {
			t.Errorf("%s: bodies differ", name)
		}
	}
	if e.cache.hot.hits.Load() == 0 || e.cache.hot.sent.Load() == 0 {
		t.Errorf("%d hits from the hot set, %d sent from a hot file; want some of each", e.cache.hot.hits.Load(), e.cache.hot.sent.Load())
	}
	if n := e.stats.laneRequests.Load(); n < int64(2*len(cases)-6) {
		t.Errorf("the lane served %d requests, want at least %d", n, 2*len(cases)-6)
	}
}

// A connection moves from the lane to net/http at the first request the
// lane does not take, with the bytes already read, and keeps working.
func TestLaneHandOff(t *testing.T) {
	_, lane, plain, _ := laneEdge(t)
	hit := "GET /small.js HTTP/1.1\r\nHost: x\r\n\r\n"
	exchange(t, plain, hit, 1)
	body := bodyOf(exchange(t, plain, hit, 1)[0])

	// Pipelined: a hit, a range, a hit (the lane's), a POST with a body
	// (net/http's from here on), a hit — in one write.
	raw := hit +
		"GET /small.js HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n" +
		hit +
		"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
		hit
	rs := exchange(t, lane, raw, 5)
	want := []int{200, 206, 200, -1, 200}
	for i, r := range rs {
		if want[i] > 0 && r.StatusCode != want[i] {
			t.Fatalf("response %d: status %d, want %d", i+1, r.StatusCode, want[i])
		}
	}
	if b := bodyOf(rs[1]); !bytes.Equal(b, body[:10]) {
		t.Errorf("range body %q", b)
	}
	for _, i := range []int{0, 2, 4} {
		if !bytes.Equal(bodyOf(rs[i]), body) {
			t.Errorf("response %d: wrong body", i+1)
		}
	}

	// What the lane does not parse is net/http's to answer.
	for _, tc := range []struct{ name, raw, want string }{
		{"bare LF", "GET /small.js HTTP/1.1\nHost: x\n\n", "HTTP/1.1 200"},
		{"HTTP/1.0", "GET /small.js HTTP/1.0\r\nHost: x\r\n\r\n", "HTTP/1.0 200"},
		{"long head", "GET /small.js HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 6000) + "\r\n\r\n", "HTTP/1.1 200"},
		{"two hosts", "GET /small.js HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "HTTP/1.1 400"},
		{"no host", "GET /small.js HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"bad header name", "GET /small.js HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", "HTTP/1.1 400"},
		{"obs-fold", "GET /small.js HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n", "HTTP/1.1 200"},
		{"swarm path", "GET /swarm/v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404"},
		{"metrics", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200"},
	} {
		got := statusLine(t, lane, tc.raw)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: answered %.40q, want %q", tc.name, got, tc.want)
		}
	}

	// h2c with prior knowledge goes to net/http at once.
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + lane + "/small.js")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.ProtoMajor != 2 || !bytes.Equal(b, body) {
		t.Errorf("h2c: %s, %d bytes", resp.Proto, len(b))
	}
	// A TLS handshake is not HTTP/1.1 either: net/http answers it (here,
	// a plain listener, with its "HTTP request to an HTTPS server" reply).
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", lane, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		tc.Close()
		t.Error("TLS handshake succeeded on a plain listener")
	}
}

// Connection: close is honoured, and a keep-alive connection is kept.
func TestLaneConnection(t *testing.T) {
	_, lane, _, _ := laneEdge(t)
	got := rawExchange(t, lane, "GET /small.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.Contains(got, "Connection: close\r\n") {
		t.Fatalf("close request answered %.80q", got)
	}
	rs := exchange(t, lane, strings.Repeat("GET /small.js HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", 3), 3)
	if len(rs) != 3 {
		t.Fatal("keep-alive connection did not serve 3 requests")
	}
}

// Close ends Serve and cuts the connections the lane holds.
func TestLaneClose(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/a", &object{body: []byte("a"), header: map[string]string{"Cache-Control": "max-age=60"}})
	e := newEdge(t, o, clk, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.Serve(ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v", err)
	}
	io.ReadAll(resp.Body)
	e.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve returned %v after Close, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Error("idle lane connection still open after Close")
	}
}

// A response that writes nothing while the handler runs (HEAD) still gets
// a fresh send deadline, not the one a past response left on the
// connection.
func TestLaneSendDeadline(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/a", &object{body: randomBody(1, 5000), header: map[string]string{"Cache-Control": "max-age=600"}})
	e := newEdge(t, o, clk, func(c *Config) { c.ClientSendTimeout = 400 * time.Millisecond })
	ln := serveOwn(t, e)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i, method := range []string{"GET", "GET", "HEAD", "GET"} {
		if i > 0 {
			time.Sleep(600 * time.Millisecond) // past the last response's deadline
		}
		fmt.Fprintf(c, "%s /a HTTP/1.1\r\nHost: x\r\n\r\n", method)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("request %d (%s) after an idle pause: %v", i+1, method, err)
		}
		io.ReadAll(resp.Body)
	}
}

// A hot file changed on disk is not sent from: the lane sends the checked
// memory copy instead.
func TestLaneHotFileChanged(t *testing.T) {
	e, lane, _, _ := laneEdge(t)
	hit := "GET /hot.bin HTTP/1.1\r\nHost: x\r\n\r\n"
	want := bodyOf(exchange(t, lane, hit, 1)[0])
	// The copy is kept once the first response's read has been checked,
	// which may finish a moment after the client has every byte.
	waitFor(t, "the hot copy", func() bool { return e.cache.hotBytes() > 0 })
	if !bytes.Equal(bodyOf(exchange(t, lane, hit, 1)[0]), want) {
		t.Fatal("hot hit: body differs")
	}
	// Counted once the send has returned, which may be a moment after the
	// client has every byte.
	waitFor(t, "the hot hit sent from the file", func() bool { return e.cache.hot.sent.Load() == 1 })
	path := e.dataPath(t, "/hot.bin")
	before, _ := os.Stat(path)
	flipFileByte(t, path, 5000, 0x5a)
	if after, _ := os.Stat(path); before.ModTime().Equal(after.ModTime()) {
		t.Skip("this file system did not move mtime on the write; the change cannot be seen")
	}
	if got := bodyOf(exchange(t, lane, hit, 1)[0]); !bytes.Equal(got, want) {
		t.Fatal("changed file sent")
	}
	if n := e.cache.hot.sent.Load(); n != 1 {
		t.Errorf("%d responses sent from the changed file", n-1)
	}
}

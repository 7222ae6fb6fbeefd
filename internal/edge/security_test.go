package edge

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// servedEdge is an edge on its own Serve (its limits and timeouts, not
// httptest's) in front of an origin that records every path it is asked.
func servedEdge(t *testing.T) (*testEdge, func() []string) {
	t.Helper()
	clk := newClock()
	var mu sync.Mutex
	var seen []string
	o, _ := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "ok")
	})
	e := newEdge(t, o, clk, nil)
	serveOwn(t, e)
	return e, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

// serveOwn serves e on its own Serve (its limits and timeouts, not
// httptest's) on a loopback listener and points e.url at it.
func serveOwn(t *testing.T, e *testEdge) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.Serve(ln)
	e.url = "http://" + ln.Addr().String()
	return ln
}

// rawExchange writes raw to a fresh connection and returns everything the
// edge answers until it closes the connection or goes quiet.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c := sendRaw(t, addr, raw, 3*time.Second)
	b, _ := io.ReadAll(bufio.NewReader(c))
	return string(b)
}

// sendRaw writes raw to a fresh connection to addr, which it closes when
// the test ends; reads and writes on it give up after timeout.
func sendRaw(t *testing.T, addr, raw string, timeout time.Duration) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return c
}

// Battery 28: request smuggling attempts get 400 (or are refused) and the
// connection closed; the smuggled request never reaches the origin.
func TestBatterySmuggling(t *testing.T) {
	e, seen := servedEdge(t)
	addr := strings.TrimPrefix(e.url, "http://")
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for name, raw := range map[string]string{
		"CL+TE":         "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"TE obfuscated": "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\nabc" + smuggled,
		"TE list":       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled,
		"TE space":      "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"two CL":        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc" + smuggled,
		"huge chunk":    "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n" + smuggled,
		"bare LF in CL": "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"NUL in header": "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n" + smuggled,
		"space in name": "GET /a HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n" + smuggled,
		"request line":  "GET /a HTTP/1.1 extra\r\nHost: x\r\n\r\n" + smuggled,
		"missing host":  "GET /a HTTP/1.1\r\n\r\n" + smuggled,
		"absolute form": "GET http://evil.example/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
	} {
		out := rawExchange(t, addr, raw)
		status := ""
		if len(out) >= 12 {
			status = out[9:12]
		}
		if status != "400" && status != "501" && status != "" && !strings.Contains(out, "Connection: close") {
			t.Errorf("%s: answered %q and kept the connection; want 400/501, or an answer and close", name, firstLine(out))
		}
		if name == "huge chunk" && status != "400" {
			t.Errorf("%s: answered %q, want 400", name, firstLine(out))
		}
		if n := strings.Count(out, "HTTP/1.1 "); n > 1 {
			t.Errorf("%s: %d responses on one connection: the smuggled request was parsed", name, n)
		}
	}
	for _, s := range seen() {
		if strings.Contains(s, "smuggled") {
			t.Errorf("the origin received %q", s)
		}
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\r\n"); return l }

// Battery 31: path traversal in any encoding gets 400 or 404 and never
// reaches the origin as an upward path; nothing outside the cache is opened.
func TestBatteryPathTraversal(t *testing.T) {
	e, seen := servedEdge(t)
	addr := strings.TrimPrefix(e.url, "http://")
	for _, p := range []string{
		"/../etc/passwd", "/a/../../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2E%2Fetc%2Fpasswd", "/a/%2e%2e%2f%2e%2e%2fetc",
		"/..%5c..%5cwindows", "/a%00.txt", "/%252e%252e/%252e%252e/etc/passwd", "/./a", "/a/.",
	} {
		out := rawExchange(t, addr, "GET "+p+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		status := ""
		if len(out) >= 12 {
			status = out[9:12]
		}
		if p == "/%252e%252e/%252e%252e/etc/passwd" {
			// Decoded once it is a literal "%2e%2e" segment: no traversal,
			// so it may go to the origin as the same literal path.
			continue
		}
		if status != "400" && status != "404" {
			t.Errorf("GET %s: %q, want 400 or 404", p, firstLine(out))
		}
	}
	for _, s := range seen() {
		if strings.Contains(s, "..") || strings.Contains(strings.ToLower(s), "%2e%2e/") || strings.Contains(s, "%00") {
			t.Errorf("the origin received %q", s)
		}
	}
}

// A client that stops reading a large hit loses its connection after the
// send timeout; the handler returns. An oversized request body gets 413.
func TestClientSendTimeoutAndBodyLimit(t *testing.T) {
	clk := newClock()
	body := randomBody(77, 32<<20)
	o, _ := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "posted")
			return
		}
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write(body)
	})
	e := newEdge(t, o, clk, func(c *Config) { c.ClientSendTimeout = 1500 * time.Millisecond; c.MaxRequestBody = 1 << 20 })
	ln := serveOwn(t, e)
	for range 2 { // a miss, then a (trusted, sendfile) hit
		if r := e.get(t, "/big"); len(r.body) != len(body) {
			t.Fatalf("warm-up: %d bytes", len(r.body))
		}
	}
	base := runtime.NumGoroutine()
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).SetReadBuffer(4096)
		io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
		start := time.Now()
		// Read nothing: the edge's writes stall once the socket buffers fill.
		waitFor(t, "the edge to give up the stalled client", func() bool {
			return runtime.NumGoroutine() <= base+1 && time.Since(start) > 1500*time.Millisecond
		})
		if d := time.Since(start); d > 8*time.Second {
			t.Errorf("stalled client held for %v", d)
		}
		c.Close()
	}
	if r := e.do(t, http.MethodPost, "/up", bytes.Repeat([]byte("x"), 2<<20)); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body over a 1 MiB limit: status %d, want 413", r.status)
	}
	if r := e.do(t, http.MethodPost, "/up", []byte("small")); r.status != http.StatusOK || string(r.body) != "posted" {
		t.Errorf("small POST: %d %q", r.status, r.body)
	}
}

package edge

import (
	"bytes"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Battery 33: HTTP/2 rapid reset — 10,000 HEADERS each followed at once by
// RST_STREAM on one cleartext HTTP/2 connection. The handlers running at
// once stay capped, goroutines return to their baseline, the origin sees a
// bounded number of requests, and the edge keeps serving.
func TestBatteryRapidReset(t *testing.T) {
	e, seen := servedEdge(t)
	addr := strings.TrimPrefix(e.url, "http://")
	base := runtime.NumGoroutine()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// Drain what the server sends so its writes never block.
	go func() {
		rf := http2.NewFramer(nil, c)
		for {
			if _, err := rf.ReadFrame(); err != nil {
				return
			}
		}
	}()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	peak := 0
	const n = 10000
	sent := 0
	for i := range n {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/rr"}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		id := uint32(2*i + 1)
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			break // the server closed the connection: also a correct answer
		}
		if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
		sent++
		if i%500 == 0 {
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	c.Close()
	t.Logf("%d HEADERS+RST written before the server stopped reading; peak goroutines %d (baseline %d)", sent, peak, base)
	if peak > base+3*maxStreamsPerConn {
		t.Errorf("peak goroutines %d, baseline %d: handlers not capped", peak, base)
	}
	waitFor(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= base+5 })
	if got := len(seen()); got > 100 {
		t.Errorf("the origin saw %d requests for one object", got)
	}
	if r := e.get(t, "/rr"); r.status != http.StatusOK {
		t.Errorf("after the attack: status %d", r.status)
	}

}

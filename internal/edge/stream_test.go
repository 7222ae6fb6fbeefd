package edge

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A large cold object reaches its clients as the origin sends it: the
// first bytes arrive while the origin still holds the rest, a client that
// comes in mid-way reads along (one origin fetch), and the object is a hit
// afterwards.
func TestStreamWhileStoring(t *testing.T) {
	clk := newClock()
	body := randomBody(71, 6<<20)
	gate := make(chan struct{})
	o, fetches := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:2<<20])
		w.(http.Flusher).Flush()
		<-gate
		w.Write(body[2<<20:])
	})
	e := newEdge(t, o, clk, nil)
	resp, err := e.hc.Get(e.url + "/video.mp4")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("first MiB while the origin holds the rest: %v", err)
	}
	if !bytes.Equal(first, body[:1<<20]) || resp.Header.Get("X-Cache") != "MISS" || resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Fatalf("streamed start: X-Cache %q, Content-Length %q", resp.Header.Get("X-Cache"), resp.Header.Get("Content-Length"))
	}
	var wg sync.WaitGroup
	var late result
	wg.Go(func() { late = e.get(t, "/video.mp4") }) // joins mid-stream
	time.Sleep(50 * time.Millisecond)
	close(gate)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(append(first, rest...), body) {
		t.Fatalf("streamed body: err %v, %d bytes", err, len(first)+len(rest))
	}
	wg.Wait()
	if !bytes.Equal(late.body, body) || late.err != nil {
		t.Fatalf("late client: %d bytes, err %v", len(late.body), late.err)
	}
	if !strings.Contains(late.header.Get("Cache-Status"), "collapsed") {
		t.Errorf("late client's Cache-Status %q, want collapsed", late.header.Get("Cache-Status"))
	}
	if r := e.get(t, "/video.mp4"); r.header.Get("X-Cache") != "HIT" || !bytes.Equal(r.body, body) {
		t.Errorf("after the stream: X-Cache %q", r.header.Get("X-Cache"))
	}
	if got := fetches.Load(); got != 1 {
		t.Errorf("origin fetches %d, want 1", got)
	}
}

// Battery 7: the origin announces 10 MiB and closes at 5 MiB: the client
// sees an aborted transfer (a clean prefix, never a short body that looks
// whole), nothing is stored, and the next request fetches again.
func TestBatteryTruncatedWhileStreaming(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(72, 10<<20)
	o.set("/t.bin", &object{body: body, truncateAt: 5 << 20, header: map[string]string{"Cache-Control": "max-age=600"}})
	e := newEdge(t, o, clk, nil)
	r := e.get(t, "/t.bin")
	if r.err == nil {
		t.Fatalf("truncated origin body: the client got a complete-looking response (%d bytes, status %d)", len(r.body), r.status)
	}
	if len(r.body) > 5<<20 || !bytes.Equal(r.body, body[:len(r.body)]) {
		t.Fatalf("aborted transfer carried %d bytes, not a clean prefix", len(r.body))
	}
	if s := e.Stats(); s.CachedObjects != 0 || dataFiles(t, e.dir) != 0 {
		t.Fatalf("stored after a truncated body: %d objects", s.CachedObjects)
	}
	before := o.requests.Load()
	e.get(t, "/t.bin")
	if o.requests.Load() != before+1 {
		t.Errorf("the next request did not refetch")
	}
}

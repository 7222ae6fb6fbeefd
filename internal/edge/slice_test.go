package edge

import (
	"bytes"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A seek into a large object the edge does not store fetches and stores
// only the slices it needs; a later seek nearby hits them; an origin that
// ignores Range falls back to the whole object.
func TestSliceSeekIntoColdObject(t *testing.T) {
	clk := newClock()
	body := randomBody(81, 64<<20)
	var sent atomic.Int64
	o, fetches := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"v1"`)
		cw := &countingWriter{ResponseWriter: w, n: &sent}
		http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(body))
	})
	e := newEdge(t, o, clk, nil)
	r := e.get(t, "/movie.mp4", "Range", "bytes=40000000-40009999")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, body[40000000:40010000]) ||
		r.header.Get("Content-Range") != "bytes 40000000-40009999/67108864" {
		t.Fatalf("seek: status %d, %d bytes, Content-Range %q", r.status, len(r.body), r.header.Get("Content-Range"))
	}
	if got := sent.Load(); got > 2*sliceSize {
		t.Fatalf("the origin sent %d bytes for a 10 kB seek (slices of %d)", got, sliceSize)
	}
	// Across a slice boundary, and at the very end (a suffix range).
	r = e.get(t, "/movie.mp4", "Range", "bytes=41943000-41944999")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, body[41943000:41945000]) {
		t.Fatalf("across a boundary: status %d, %d bytes", r.status, len(r.body))
	}
	r = e.get(t, "/movie.mp4", "Range", "bytes=-100")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, body[len(body)-100:]) {
		t.Fatalf("suffix: status %d, %d bytes", r.status, len(r.body))
	}
	before := fetches.Load()
	r = e.get(t, "/movie.mp4", "Range", "bytes=40001000-40001999")
	if fetches.Load() != before || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Errorf("a seek into a stored slice fetched again (Cache-Status %q)", r.header.Get("Cache-Status"))
	}
	if r := e.get(t, "/movie.mp4", "Range", "bytes=99999999-"); r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("past the end: status %d, want 416", r.status)
	}
	// Purging the URL removes its slices.
	e.invalidate("/movie.mp4")
	before = fetches.Load()
	e.get(t, "/movie.mp4", "Range", "bytes=40001000-40001999")
	if fetches.Load() == before {
		t.Error("slices survived the invalidation")
	}

	// An origin that answers Range with 200: the whole-object path.
	o2, _ := funcOrigin(t, clk, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write(body[:3<<20])
	})
	e2 := newEdge(t, o2, clk, nil)
	r = e2.get(t, "/x", "Range", "bytes=100-199")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, body[100:200]) {
		t.Fatalf("no-range origin: status %d, %d bytes", r.status, len(r.body))
	}
	if r := e2.get(t, "/x"); r.header.Get("X-Cache") != "HIT" {
		t.Errorf("no-range origin: the whole object was not stored (X-Cache %q)", r.header.Get("X-Cache"))
	}
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	k, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(k))
	return k, err
}

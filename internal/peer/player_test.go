package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// TestPlayerHandler checks the local player endpoint: whole object, single
// ranges (206 with Content-Range), unsatisfiable ranges (416), HEAD, and
// errors for unknown objects and methods.
func TestPlayerHandler(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	data := testData(300_000+17, 5) // short last chunk
	e.addObject("/videos/a.mp4", data, 16<<10)
	sp := newSwarmPeer(t, e, peerOpts{name: "player"})
	ps := httptest.NewServer(sp.a.PlayerHandler())
	defer ps.Close()
	size := len(data)

	cases := []struct {
		name, method, path, rng string
		code                    int
		body                    []byte
		contentRange            string
	}{
		{"whole", "GET", "/content/videos/a.mp4", "", 200, data, ""},
		{"range", "GET", "/content/videos/a.mp4", "bytes=100-40000", 206, data[100:40001], fmt.Sprintf("bytes 100-40000/%d", size)},
		{"open range", "GET", "/content/videos/a.mp4", "bytes=299990-", 206, data[299990:], fmt.Sprintf("bytes 299990-%d/%d", size-1, size)},
		{"suffix", "GET", "/content/videos/a.mp4", "bytes=-500", 206, data[size-500:], fmt.Sprintf("bytes %d-%d/%d", size-500, size-1, size)},
		{"unsatisfiable", "GET", "/content/videos/a.mp4", fmt.Sprintf("bytes=%d-", size), 416, nil, fmt.Sprintf("bytes */%d", size)},
		{"head", "HEAD", "/content/videos/a.mp4", "", 200, nil, ""},
		{"unknown", "GET", "/content/nope.mp4", "", 502, nil, ""},
		{"bare", "GET", "/content/", "", 404, nil, ""},
		{"post", "POST", "/content/videos/a.mp4", "", 405, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ps.URL+tc.path, nil)
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.code, body)
			}
			if got := resp.Header.Get("Content-Range"); got != tc.contentRange {
				t.Fatalf("Content-Range %q, want %q", got, tc.contentRange)
			}
			if tc.code/100 != 2 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "video/mp4" {
				t.Fatalf("Content-Type %q", ct)
			}
			wantLen := len(tc.body)
			if tc.method == "HEAD" {
				wantLen = size
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(wantLen) {
				t.Fatalf("Content-Length %s, want %d", cl, wantLen)
			}
			if tc.method == "GET" && !bytes.Equal(body, tc.body) {
				t.Fatalf("body differs (%d bytes, want %d)", len(body), len(tc.body))
			}
			if tc.method == "HEAD" && len(body) != 0 {
				t.Fatal("HEAD returned a body")
			}
		})
	}
}

// TestReaderStreamsAhead checks that a reader gets the chunk it needs long
// before the download completes (the reader window outranks the edge's
// super-seeding), and that Seek/Read return the right bytes.
func TestReaderStreamsAhead(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 16e6) // 2 MB/s: the 4 MiB object takes ~2 s
	data := testData(4<<20, 9)
	e.addObject("/movie.mp4", data, 64<<10)
	sp := newSwarmPeer(t, e, peerOpts{name: "viewer"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := sp.a.Download(ctx, "/movie.mp4")
	if err != nil {
		t.Fatal(err)
	}
	r := d.NewReader(ctx)
	const off = 3<<20 + 1000
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 200<<10) // spans four chunks
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	held := d.Stats().UsefulBytes[KindEdge]
	if !bytes.Equal(buf, data[off:off+len(buf)]) {
		t.Fatal("bytes after Seek differ")
	}
	if d.Stats().Complete || held > int64(len(data))/2 {
		t.Fatalf("reader waited for %d of %d bytes: the window was not prioritized", held, len(data))
	}
	if pos, _ := r.Seek(-10, io.SeekEnd); pos != int64(len(data))-10 {
		t.Fatalf("SeekEnd gave %d", pos)
	}
	tail, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(tail, data[len(data)-10:]) {
		t.Fatalf("tail read: %v", err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("negative seek accepted")
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestChunkServer checks the peer↔peer handler: served chunks verify, a
// chunk not held is 404, a bad path 400, a full upload table 503, and
// /healthz answers — through Serve, on a real listener.
func TestChunkServer(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	o := e.addObject("/f.bin", testData(200_000, 2), 16<<10)
	store := chunkstore.NewMemory()
	defer store.Close()
	obj, _ := store.Open(o.m)
	obj.WriteChunk(3, o.data[o.m.ChunkOffset(3):o.m.ChunkOffset(4)]) // resume with chunk 3 only
	obj.Close()
	a, err := New(Config{Edge: e.srv.URL, Keys: e.keys(), MaxUploads: 1, StallTimeoutMs: 60000}, Deps{Store: store, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	// Hold the download at chunk 3 only: make the edge refuse chunks.
	e.mu.Lock()
	delete(e.byRoot, o.m.Root)
	e.mu.Unlock()
	d, err := a.Download(context.Background(), "/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	hc := &http.Client{Transport: signing{c: e.credential(t, time.Now(), time.Hour)}}
	got, err := wire.FetchChunk(context.Background(), hc, base, o.m.Root, 3, o.m.ChunkLen(3), "tester", nil)
	if err != nil || o.m.CheckChunk(3, got) != nil {
		t.Fatalf("held chunk: %v", err)
	}
	if _, err := wire.FetchChunk(context.Background(), hc, base, o.m.Root, 4, o.m.ChunkLen(4), "", nil); !errors.Is(err, wire.ErrChunkNotFound) {
		t.Fatalf("missing chunk: %v, want ErrChunkNotFound", err)
	}
	if _, err := wire.FetchChunk(context.Background(), hc, base, core.Hash{1}, 3, 100, "", nil); !errors.Is(err, wire.ErrChunkNotFound) {
		t.Fatalf("unknown object: %v", err)
	}
	for path, code := range map[string]int{
		"/healthz":                      200,
		wire.PathChunk + "zz/1":         400,
		wire.PathChunk + "abc":          400,
		"/other":                        404,
		wire.ChunkPath(o.m.Root, 1<<21): 400,
	} {
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, code)
		}
	}
	// Take the only upload slot: the next request is refused at once.
	a.uploads <- struct{}{}
	resp, err := hc.Get(base + wire.ChunkPath(o.m.Root, 3))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-a.uploads
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("full upload table: %d", resp.StatusCode)
	}
	if st := a.Stats(); st.UploadedChunks != 1 || st.UploadsRefused != 1 {
		t.Fatalf("agent stats %+v", st)
	}
	if d.Stats().ResumedBytes != int64(o.m.ChunkLen(3)) {
		t.Fatalf("resumed %d bytes", d.Stats().ResumedBytes)
	}
	a.Close()
	a.Close() // idempotent
	if err := <-served; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if err := d.Wait(context.Background()); err != ErrClosed {
		t.Fatalf("Wait after Close: %v, want ErrClosed", err)
	}
	if _, err := a.Download(context.Background(), "/f.bin"); err != ErrClosed {
		t.Fatalf("Download after Close: %v", err)
	}
	hc.CloseIdleConnections()
}

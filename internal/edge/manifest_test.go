package edge

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

func (e *testEdge) client() *wire.EdgeClient { return &wire.EdgeClient{Base: e.url, HTTP: e.hc} }

// fetchAllChunks fetches every chunk with wire.FetchChunk and checks each
// against the manifest, then that they add up to want.
func fetchAllChunks(t *testing.T, e *testEdge, m *core.Manifest, want []byte) {
	t.Helper()
	var got []byte
	buf := make([]byte, 0, m.ChunkSize+1)
	for i := range m.NumChunks() {
		b, err := wire.FetchChunk(context.Background(), e.hc, e.url, m.Root, i, m.ChunkLen(i), "", buf)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if err := m.CheckChunk(i, b); err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("chunks do not add up to the object")
	}
}

func TestManifestVerifiesAndChunksMatch(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(10, 5*16<<10+777) // 6 chunks, the last one short
	o.set("/v/a.mp4?q=1", &object{body: body, header: map[string]string{
		"Cache-Control": "max-age=600", "ETag": `"a1"`, "Content-Type": "video/mp4"}})
	e := newEdge(t, o, clk, func(c *Config) { c.ChunkSize = 16 << 10 })

	ring, err := e.client().Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.client().Manifest(context.Background(), "/v/a.mp4?q=1", ring)
	if err != nil {
		t.Fatal(err)
	}
	if m.URL != "/v/a.mp4?q=1" || m.Validator != `"a1"` || m.ContentType != "video/mp4" ||
		m.Size != int64(len(body)) || m.ChunkSize != 16<<10 || m.NumChunks() != 6 {
		t.Fatalf("manifest fields: %+v", m)
	}
	fetchAllChunks(t, e, m, body)
	// The handler counts a chunk after its last byte is written, which
	// the client may already have read: wait for the count.
	waitFor(t, "the chunk counters", func() bool { return e.Stats().ChunksServed >= 6 })
	if s := e.Stats(); s.ChunksServed != 6 || s.ChunkBytesServed != int64(len(body)) {
		t.Errorf("chunk counters: %d chunks, %d bytes", s.ChunksServed, s.ChunkBytesServed)
	}

	// The manifest is signed by this edge's key, not just any key.
	otherKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	other := core.NewKeyRing(otherKey.Public().(ed25519.PublicKey))
	if _, err := e.client().Manifest(context.Background(), "/v/a.mp4?q=1", other); err == nil {
		t.Error("manifest verified against a ring without the edge's key")
	}
	// The object behind it is the same one the proxy serves.
	if r := e.get(t, "/v/a.mp4?q=1"); r.header.Get("X-Cache") != "HIT" || !bytes.Equal(r.body, body) {
		t.Errorf("proxy after manifest: X-Cache %q", r.header.Get("X-Cache"))
	}
}

// A flash crowd of peers asking for the manifest of a cold large object
// costs one origin fetch and one manifest build.
func TestManifestFlashCrowd(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB object")
	}
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(11, 64<<20)
	gate := make(chan struct{})
	o.set("/movie.mp4", &object{body: body, gate: gate, header: map[string]string{"Cache-Control": "max-age=600", "ETag": `"m"`}})
	e := newEdge(t, o, clk, nil)
	ring := core.NewKeyRing(e.PublicKey())

	const peers = 20
	var wg sync.WaitGroup
	mans := make([]*core.Manifest, peers)
	errs := make([]error, peers)
	for i := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mans[i], errs[i] = e.client().Manifest(context.Background(), "/movie.mp4", ring)
		}()
	}
	waitFor(t, "the origin to see the fill", func() bool { return o.requests.Load() >= 1 })
	close(gate)
	wg.Wait()
	for i := range peers {
		if errs[i] != nil {
			t.Fatalf("peer %d: %v", i, errs[i])
		}
		if mans[i].Root != mans[0].Root {
			t.Fatalf("peer %d got root %s, peer 0 %s", i, mans[i].Root.Short(), mans[0].Root.Short())
		}
	}
	if s := e.Stats(); s.OriginFetches != 1 || s.ManifestBuilds != 1 {
		t.Fatalf("origin fetches %d, manifest builds %d; want 1, 1", s.OriginFetches, s.ManifestBuilds)
	}
	fetchAllChunks(t, e, mans[0], body)
}

// The manifest persists: a restarted edge serves the same manifest and its
// chunks without rebuilding it or asking the origin.
func TestManifestSurvivesRestart(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(12, 100000)
	o.set("/p.bin", &object{body: body, header: map[string]string{"Cache-Control": "max-age=600", "Last-Modified": "Mon, 02 Jan 2006 15:04:05 GMT"}})
	dir := t.TempDir()
	e1 := newEdgeDir(t, o, clk, dir, func(c *Config) { c.ChunkSize = 16 << 10 })
	ring := core.NewKeyRing(e1.PublicKey())
	m1, err := e1.client().Manifest(context.Background(), "/p.bin", ring)
	if err != nil {
		t.Fatal(err)
	}
	if m1.Validator != "Mon, 02 Jan 2006 15:04:05 GMT" {
		t.Errorf("validator without ETag = %q, want the Last-Modified", m1.Validator)
	}
	e1.Close()

	e2 := newEdgeDir(t, o, clk, dir, func(c *Config) { c.ChunkSize = 16 << 10 })
	fetchAllChunks(t, e2, m1, body) // by root, before anyone asks for the manifest
	m2, err := e2.client().Manifest(context.Background(), "/p.bin", ring)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Root != m1.Root {
		t.Fatal("root changed across restart")
	}
	if s := e2.Stats(); s.ManifestBuilds != 0 || s.OriginFetches != 0 {
		t.Fatalf("after restart: %d builds, %d origin fetches; want 0, 0", s.ManifestBuilds, s.OriginFetches)
	}
}

func TestManifestErrors(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/nostore", &object{body: []byte("x"), header: map[string]string{"Cache-Control": "no-store"}})
	o.set("/down", &object{fail503: true})
	e := newEdge(t, o, clk, nil)
	for _, tc := range []struct {
		url  string
		want int
	}{
		{"", http.StatusBadRequest},
		{"http://evil.example/x", http.StatusBadRequest},
		{"relative/path", http.StatusBadRequest},
		{"/missing", http.StatusNotFound},
		{"/nostore", http.StatusForbidden},
		{"/down", http.StatusBadGateway},
	} {
		r := e.get(t, wire.PathManifest+"?url="+url.QueryEscape(tc.url))
		if r.status != tc.want {
			t.Errorf("manifest of %q: status %d (%s), want %d", tc.url, r.status, bytes.TrimSpace(r.body), tc.want)
		}
	}
}

// TestChunkUploadCap: past MaxChunkUploads chunk responses in progress the
// edge answers 503 with Retry-After at once, and serves again once a slot
// frees.
func TestChunkUploadCap(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(11, 3*16<<10)
	o.set("/a.bin", &object{body: body, header: map[string]string{"Cache-Control": "max-age=600"}})
	e := newEdge(t, o, clk, func(c *Config) { c.ChunkSize = 16 << 10; c.MaxChunkUploads = 1 })
	ring, err := e.client().Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.client().Manifest(context.Background(), "/a.bin", ring)
	if err != nil {
		t.Fatal(err)
	}
	e.Server.uploads <- struct{}{} // another upload holds the only slot
	resp, err := e.hc.Get(e.url + wire.ChunkPath(m.Root, 0))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with the slot taken: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	if _, err := wire.FetchChunk(context.Background(), e.hc, e.url, m.Root, 0, m.ChunkLen(0), "", nil); !errors.Is(err, wire.ErrBusy) {
		t.Fatalf("FetchChunk: %v, want ErrBusy", err)
	}
	<-e.Server.uploads
	got, err := wire.FetchChunk(context.Background(), e.hc, e.url, m.Root, 1, m.ChunkLen(1), "", nil)
	if err != nil || m.CheckChunk(1, got) != nil {
		t.Fatalf("after the slot freed: %v", err)
	}
	// The handler counts a chunk after its last byte is written, which the
	// client may have read already: wait for the count, briefly.
	st := e.Stats()
	for deadline := time.Now().Add(2 * time.Second); st.ChunksServed == 0 && time.Now().Before(deadline); st = e.Stats() {
		time.Sleep(time.Millisecond)
	}
	if st.ChunksRefused != 2 || st.ChunksServed != 1 {
		t.Fatalf("stats: refused %d served %d", st.ChunksRefused, st.ChunksServed)
	}
}

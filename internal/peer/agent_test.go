package peer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
)

// TestDownloadJoins checks that concurrent Downloads of one URL share one
// manifest fetch and one Download, with keys fetched on first use.
func TestDownloadJoins(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	e.addObject("/a.bin", testData(500_000, 3), 16<<10)
	a, err := New(Config{Edge: e.srv.URL + "/", Name: "tofu"}, Deps{Logger: testLogger(t)}) // no keys: trust on first use
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	const callers = 8
	got := make([]*Download, callers)
	var wg sync.WaitGroup
	for k := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := a.Download(context.Background(), "/a.bin")
			if err != nil {
				t.Error(err)
			}
			got[k] = d
		}()
	}
	wg.Wait()
	for _, d := range got {
		if d == nil || d != got[0] {
			t.Fatal("concurrent Downloads returned different downloads")
		}
	}
	if n := e.manifests.Load(); n != 1 {
		t.Fatalf("%d manifest fetches, want 1", n)
	}
	if err := got[0].Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.PeerID() == "" {
		t.Fatal("agent did not register")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Edge: "ftp://x"},
		{Edge: "http://"},
		{Edge: "http://e:1", Advertise: "no-port"},
	} {
		if _, err := New(cfg, Deps{}); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// TestManifestRefresh checks that a manifest is reused within its TTL, that
// a new version after it starts a new download, and that an edge error
// then keeps serving the version held.
func TestManifestRefresh(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	v1 := e.addObject("/n.bin", testData(100_000, 1), 16<<10)
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	a, err := New(Config{Edge: e.srv.URL, Keys: e.keys()}, Deps{Now: clock, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	d1, err := a.Download(ctx, "/n.bin")
	if err != nil {
		t.Fatal(err)
	}
	e.addObject("/n.bin", testData(120_000, 2), 16<<10) // a new version
	if d, _ := a.Download(ctx, "/n.bin"); d != d1 || e.manifests.Load() != 1 {
		t.Fatal("manifest not reused within its TTL")
	}
	advance(31 * time.Second)
	d2, err := a.Download(ctx, "/n.bin")
	if err != nil {
		t.Fatal(err)
	}
	if d2 == d1 || d2.Manifest().Root == v1.m.Root {
		t.Fatal("new version not picked up after the TTL")
	}
	if err := d2.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	advance(31 * time.Second)
	e.mu.Lock()
	e.manifest = func(string) ([]byte, int) { return []byte("down"), 503 }
	e.mu.Unlock()
	if d, err := a.Download(ctx, "/n.bin"); err != nil || d != d2 {
		t.Fatalf("edge error: got %v, %v; want the held version", d, err)
	}
}

// TestResumeFromDisk downloads part of an object into a disk store, stops
// the agent, corrupts one stored chunk, and restarts: the new agent must
// resume the good chunks, drop the bad one and finish with the right bytes.
func TestResumeFromDisk(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	o := e.addObject("/r.bin", testData(40*16<<10, 4), 16<<10)
	dir := t.TempDir()
	evenOnly := PolicyFunc(func(in PickInput) int { // the first run fetches even chunks only
		for _, c := range in.Candidates {
			if c%2 == 0 {
				return c
			}
		}
		return -1
	})
	run := func(policy ChunkPolicy, wait func(d *Download)) Stats {
		store, err := chunkstore.NewDisk(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		a, err := New(Config{Edge: e.srv.URL, Keys: e.keys()}, Deps{Store: store, Logger: testLogger(t), Policy: policy})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		d, err := a.Download(context.Background(), "/r.bin")
		if err != nil {
			t.Fatal(err)
		}
		wait(d)
		return d.Stats()
	}
	run(evenOnly, func(d *Download) {
		deadline := time.Now().Add(10 * time.Second)
		for d.Stats().UsefulBytes[KindEdge] < 20*16<<10 {
			if time.Now().After(deadline) {
				t.Fatal("even chunks never arrived")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	// Corrupt chunk 4 on disk.
	f, err := os.OpenFile(filepath.Join(dir, "objects", o.m.Root.String(), "data"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("XXXX"), o.m.ChunkOffset(4)+100)
	f.Close()
	var got []byte
	st := run(nil, func(d *Download) {
		if err := d.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(d.NewReader(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
	})
	if want := int64(19 * 16 << 10); st.ResumedBytes != want {
		t.Fatalf("resumed %d bytes, want %d (19 good even chunks)", st.ResumedBytes, want)
	}
	if st.UsefulBytes[KindEdge] != int64(21*16<<10) {
		t.Fatalf("fetched %d bytes after restart, want 21 chunks", st.UsefulBytes[KindEdge])
	}
	if !bytes.Equal(got, o.data) {
		t.Fatal("resumed object differs")
	}
}

// TestAgentHonoursEdgeAnnounceInterval: a download announces at its own
// interval unless the edge asks for a longer one (the edge stretches it as
// a swarm grows: swarm.AnnounceInterval), and then at the edge's.
func TestAgentHonoursEdgeAnnounceInterval(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	count := func(edgeMs int) int64 {
		e := newFakeEdge(t, 0)
		e.mu.Lock()
		e.announceMs = edgeMs
		e.mu.Unlock()
		e.addObject("/a.bin", testData(40_000, 5), 16<<10)
		a, err := New(Config{Edge: e.srv.URL + "/", Keys: e.keys(), AnnounceIntervalMs: 20}, Deps{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		d, err := a.Download(context.Background(), "/a.bin")
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the completion's announce is out
		n0 := e.announces.Load()
		time.Sleep(600 * time.Millisecond)
		return e.announces.Load() - n0
	}
	// The edge's 20 ms (its own): ~30 announces in 600 ms.
	if n := count(20); n < 5 {
		t.Errorf("edge interval 20 ms: %d announces in 600 ms, want many", n)
	}
	// The edge's 2 s, longer than the agent's 20 ms: at most one.
	if n := count(2000); n > 1 {
		t.Errorf("edge interval 2 s: %d announces in 600 ms, want at most 1", n)
	}
}

// TestDemotedBounded: the agent's memory of demoted peers keeps at most
// maxDemoted entries, forgets expired ones to make room, and says once per
// demotion that a peer is newly demoted (so it is reported once).
func TestDemotedBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, err := New(Config{Edge: "http://127.0.0.1:1"}, Deps{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	until := now.Add(DemoteFor)
	if !a.demote("p", until) || a.demote("p", until) {
		t.Fatal("a peer demoted twice in a row was new both times, or never")
	}
	for i := range 2 * maxDemoted {
		a.demote(fmt.Sprint("q", i), until)
	}
	if n := len(a.demoted); n > maxDemoted {
		t.Fatalf("%d demoted peers remembered, bound %d", n, maxDemoted)
	}
	now = until.Add(time.Second) // every demotion has expired
	if !a.demote("p", now.Add(DemoteFor)) {
		t.Fatal("a peer whose demotion expired was not new again")
	}
	if !a.demote("late", now.Add(DemoteFor)) || a.demotedUntil("late").IsZero() {
		t.Fatal("expired entries were not dropped to make room")
	}
	if n := len(a.demoted); n > maxDemoted || n < 2 {
		t.Fatalf("%d entries after pruning", n)
	}
}

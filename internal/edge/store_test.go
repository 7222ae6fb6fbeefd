package edge

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// testCache opens a cache in dir with a manual clock.
func testCache(t *testing.T, dir string, clk *clock, mod func(*cacheConfig)) *cache {
	t.Helper()
	cfg := cacheConfig{dir: dir, budget: 1 << 30, maxObjects: 1000, pub: testKey.Public().(ed25519.PublicKey),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: clk.Now}
	if mod != nil {
		mod(&cfg)
	}
	c, err := openCache(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// put stores body under key the way a fill does.
func put(t *testing.T, c *cache, key string, body []byte) *entry {
	t.Helper()
	f, err := c.createTemp()
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes, so blocks are summed across write boundaries.
	for p := body; len(p) > 0; {
		n := min(len(p), 7777)
		if _, err := f.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e, err := c.commit(f, newMeta(key, "http://origin"+key, http.Header{}, time.Now(), int64(len(body))))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// flipByte inverts the byte at off of the only stored version of key's data.
func flipByte(t *testing.T, dir string, c *cache, e *entry, off int64) {
	t.Helper()
	flipFileByte(t, c.objPath(e.id, ".data"), off, 0xff)
}

func TestBlockSums(t *testing.T) {
	body := randomBody(1, 2*sumBlockSize+5)
	var whole, pieces blockSummer
	whole.write(body)
	for p := body; len(p) > 0; {
		n := min(len(p), 333333)
		pieces.write(p[:n])
		p = p[n:]
	}
	a, b := whole.finish(), pieces.finish()
	if len(a) != 3 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("sums %v and %v, want 3 equal ones", a, b)
	}
	got, err := decodeSums(encodeSums(a), int64(len(body)))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(a) {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	if _, err := decodeSums(encodeSums(a), 1); err == nil {
		t.Error("3 sums accepted for a 1-byte object")
	}
	var empty blockSummer
	if s := empty.finish(); len(s) != 0 || numBlocks(0) != 0 {
		t.Errorf("empty object: %d sums, %d blocks", len(s), numBlocks(0))
	}
}

// The reader's modes: small objects from memory, large ones checked block
// by block until every block has passed, then straight from the file
// (and offered to sendfile) until the file changes or trust expires.
func TestObjectReaderModes(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	c := testCache(t, dir, clk, nil)
	small := randomBody(2, 1000)
	large := randomBody(3, 2*sumBlockSize+12345)
	es := put(t, c, "/small", small)
	el := put(t, c, "/large", large)

	read := func(e *entry) (*objectReader, []byte) {
		t.Helper()
		r, _, err := c.open(e)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return r, b
	}
	if r, b := read(es); r.mode != modeMemory || !bytes.Equal(b, small) {
		t.Fatalf("small: mode %d, equal %v", r.mode, bytes.Equal(b, small))
	}

	// A range read covers blocks 1 and 2 only: not yet verified.
	r, _, _ := c.open(el)
	p := make([]byte, sumBlockSize)
	if n, err := r.ReadAt(p, sumBlockSize+100); err != nil || !bytes.Equal(p[:n], large[sumBlockSize+100:][:n]) {
		t.Fatalf("ReadAt across blocks: %d, %v", n, err)
	}
	r.Close()
	if r, b := read(el); r.mode != modeVerify || !bytes.Equal(b, large) {
		t.Fatalf("large, first read: mode %d, equal %v", r.mode, bytes.Equal(b, large))
	}
	r, b := read(el)
	if r.mode != modeTrusted || !bytes.Equal(b, large) {
		t.Fatalf("large, verified: mode %d, equal %v", r.mode, bytes.Equal(b, large))
	}
	if _, err := r.SyscallConn(); err != nil {
		t.Errorf("trusted reader hides its file from sendfile: %v", err)
	}
	// Seek and read the tail.
	if _, err := r.Seek(-10, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if tail, _ := io.ReadAll(r); !bytes.Equal(tail, large[len(large)-10:]) {
		t.Error("tail after Seek differs")
	}

	// Trust expires.
	clk.Advance(reverifyAfter)
	if r, _ := read(el); r.mode != modeVerify {
		t.Fatalf("after reverifyAfter: mode %d, want verify", r.mode)
	}
	if _, err := (&objectReader{mode: modeVerify}).SyscallConn(); err == nil {
		t.Error("an unverified reader offered its file to sendfile")
	}
	if c.corrupt.Load() != 0 {
		t.Fatalf("%d corrupt objects reported on clean data", c.corrupt.Load())
	}
}

func TestObjectReaderDetectsCorruption(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	c := testCache(t, dir, clk, nil)

	t.Run("small", func(t *testing.T) {
		e := put(t, c, "/s", randomBody(4, 5000))
		flipByte(t, dir, c, e, 4999)
		if _, _, err := c.open(e); !errors.Is(err, errNotCached) {
			t.Fatalf("open of a damaged small object: %v, want errNotCached", err)
		}
		if _, _, ok := c.lookup("/s"); ok {
			t.Fatal("damaged object still indexed")
		}
		if _, err := os.Stat(c.objPath(e.id, ".data")); !os.IsNotExist(err) {
			t.Fatal("damaged object's data file kept")
		}
	})
	t.Run("large", func(t *testing.T) {
		body := randomBody(5, 3*sumBlockSize)
		e := put(t, c, "/l", body)
		flipByte(t, dir, c, e, 2*sumBlockSize+7)
		r, _, err := c.open(e)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		if !errors.Is(err, errCorrupt) || !errors.Is(err, errAbort) || !errors.Is(r.Err(), errCorrupt) {
			t.Fatalf("read of a damaged large object: %v (Err %v), want errCorrupt and errAbort", err, r.Err())
		}
		if len(got) != 2*sumBlockSize || !bytes.Equal(got, body[:len(got)]) {
			t.Fatalf("returned %d bytes before the damaged block, want the %d good ones", len(got), 2*sumBlockSize)
		}
		if _, _, ok := c.lookup("/l"); ok {
			t.Fatal("damaged object still indexed")
		}
	})
	t.Run("truncated", func(t *testing.T) {
		e := put(t, c, "/t", randomBody(6, sumBlockSize+10))
		if err := os.Truncate(c.objPath(e.id, ".data"), sumBlockSize); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.open(e); !errors.Is(err, errNotCached) {
			t.Fatalf("open of a truncated object: %v, want errNotCached", err)
		}
	})
	t.Run("changed after verification", func(t *testing.T) {
		body := randomBody(7, 2*sumBlockSize)
		e := put(t, c, "/v", body)
		for range 2 { // verify, then trusted
			r, _, err := c.open(e)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, r)
			r.Close()
		}
		before, _ := os.Stat(c.objPath(e.id, ".data"))
		flipByte(t, dir, c, e, 3)
		after, _ := os.Stat(c.objPath(e.id, ".data"))
		if before.ModTime().Equal(after.ModTime()) {
			t.Skip("this file system did not move mtime on the write; the change cannot be seen")
		}
		r, _, err := c.open(e)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if r.mode != modeVerify {
			t.Fatalf("a changed file is still trusted (mode %d)", r.mode)
		}
		if _, err := io.ReadAll(r); !errors.Is(err, errCorrupt) {
			t.Fatalf("read: %v, want errCorrupt", err)
		}
	})
	if got := c.corrupt.Load(); got != 4 {
		t.Errorf("corrupt counter %d, want 4", got)
	}
}

// Objects stored before the checksums existed (meta v1) are dropped at
// startup, like any other inconsistent entry.
func TestOldMetaDropped(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	c := testCache(t, dir, clk, nil)
	e := put(t, c, "/old", []byte("hello"))
	b, _ := os.ReadFile(c.objPath(e.id, ".meta"))
	b = bytes.Replace(b, []byte(`"v":2`), []byte(`"v":1`), 1)
	os.WriteFile(c.objPath(e.id, ".meta"), b, 0o644)
	c2 := testCache(t, dir, clk, nil)
	if n, _ := c2.usage(); n != 0 {
		t.Fatalf("%d objects after reopening with a v1 meta, want 0", n)
	}
}

// Battery item 10: a flipped byte in a stored object is detected on read
// and treated as a miss; bad bodies served = 0.
func TestBattery10CorruptObjectIsMiss(t *testing.T) {
	hdr := map[string]string{"Cache-Control": "max-age=3600", "ETag": `"e"`}

	t.Run("small object refetched", func(t *testing.T) {
		clk := newClock()
		o := newOrigin(t, clk)
		body := randomBody(20, 100<<10)
		o.set("/s.js", &object{body: body, header: hdr})
		e := newEdge(t, o, clk, func(c *Config) { c.HotCacheSize = -1 })
		mustGet(t, e, "/s.js", body, statusMiss)
		flipDataByte(t, e.dir, 12345)
		mustGet(t, e, "/s.js", body, statusMiss) // detected before sending: refetched
		mustGet(t, e, "/s.js", body, statusHit)
		if got := o.requests.Load(); got != 2 {
			t.Errorf("origin requests %d, want 2", got)
		}
		assertMetric(t, e, "edgeswarm_edge_corrupt_objects_total", 1)
	})

	t.Run("small object with a hot copy", func(t *testing.T) {
		// The verified in-memory copy is what hits send, so damage on disk
		// under it is never sent; once the copy is gone (here: the hot set
		// is too small for a second object), the next read from disk
		// finds the damage and refetches.
		clk := newClock()
		o := newOrigin(t, clk)
		body, other := randomBody(24, 100<<10), randomBody(25, 100<<10)
		o.set("/s.js", &object{body: body, header: hdr})
		o.set("/o.js", &object{body: other, header: hdr})
		e := newEdge(t, o, clk, func(c *Config) { c.HotCacheSize = 150 << 10 })
		mustGet(t, e, "/s.js", body, statusMiss) // read back from disk, checked: copied
		flipFileByte(t, e.dataPath(t, "/s.js"), 12345, 0x5a)
		mustGet(t, e, "/s.js", body, statusHit) // from the copy
		assertMetric(t, e, "edgeswarm_edge_hot_hits_total", 1)
		assertMetric(t, e, "edgeswarm_edge_corrupt_objects_total", 0)
		mustGet(t, e, "/o.js", other, statusMiss) // its copy pushes out the first
		mustGet(t, e, "/s.js", body, statusMiss)  // from disk: detected, refetched
		assertMetric(t, e, "edgeswarm_edge_corrupt_objects_total", 1)
		mustGet(t, e, "/s.js", body, statusHit)
		if got := o.requests.Load(); got != 3 {
			t.Errorf("origin requests %d, want 3", got)
		}
	})

	t.Run("large object aborted then refetched", func(t *testing.T) {
		clk := newClock()
		o := newOrigin(t, clk)
		body := randomBody(21, 5*sumBlockSize+999)
		o.set("/l.mp4", &object{body: body, header: hdr})
		dir := t.TempDir()
		e1 := newEdgeDir(t, o, clk, dir, nil)
		mustGet(t, e1, "/l.mp4", body, statusMiss)
		e1.Close()
		// Damaged while the edge was down: the restarted edge trusts nothing.
		flipDataByte(t, dir, 3*sumBlockSize+17)
		e := newEdgeDir(t, o, clk, dir, nil)
		r := e.get(t, "/l.mp4")
		if r.err == nil {
			t.Fatalf("damaged large object sent whole (%d bytes), want an aborted transfer", len(r.body))
		}
		if !bytes.Equal(r.body, body[:len(r.body)]) || len(r.body) > 3*sumBlockSize {
			t.Fatalf("aborted transfer carried %d bytes, not a clean prefix before the damaged block", len(r.body))
		}
		mustGet(t, e, "/l.mp4", body, statusMiss)
		mustGet(t, e, "/l.mp4", body, statusHit)
		assertMetric(t, e, "edgeswarm_edge_corrupt_objects_total", 1)
	})

	t.Run("damaged while trusted", func(t *testing.T) {
		clk := newClock()
		o := newOrigin(t, clk)
		body := randomBody(22, 3*sumBlockSize)
		o.set("/t.bin", &object{body: body, header: hdr})
		e := newEdge(t, o, clk, nil)
		mustGet(t, e, "/t.bin", body, statusMiss) // streamed while stored
		mustGet(t, e, "/t.bin", body, statusHit)  // verified while sent
		mustGet(t, e, "/t.bin", body, statusHit)  // trusted: sendfile
		path := dataFile(t, e.dir)
		before, _ := os.Stat(path)
		flipDataByte(t, e.dir, 100)
		if after, _ := os.Stat(path); before.ModTime().Equal(after.ModTime()) {
			t.Skip("this file system did not move mtime on the write; the change cannot be seen")
		}
		// The damage is in the first block, so the response is cut before
		// any byte leaves the edge, and the client may retry it on a new
		// connection and get the refetched copy: either way, no bad byte.
		r := e.get(t, "/t.bin")
		switch {
		case r.err != nil && !bytes.Equal(r.body, body[:len(r.body)]):
			t.Fatalf("aborted transfer carried a bad byte")
		case r.err == nil && (!bytes.Equal(r.body, body) || r.header.Get("X-Cache") != statusMiss):
			t.Fatalf("complete response: X-Cache %q, equal %v; want the refetched body", r.header.Get("X-Cache"), bytes.Equal(r.body, body))
		}
		assertMetric(t, e, "edgeswarm_edge_corrupt_objects_total", 1)
		mustGet(t, e, "/t.bin", body, "")
	})

	t.Run("chunk of a damaged object", func(t *testing.T) {
		clk := newClock()
		o := newOrigin(t, clk)
		body := randomBody(23, 4*sumBlockSize)
		o.set("/c.mp4", &object{body: body, header: hdr})
		dir := t.TempDir()
		e1 := newEdgeDir(t, o, clk, dir, func(c *Config) { c.ChunkSize = 512 << 10 })
		m, err := e1.client().Manifest(t.Context(), "/c.mp4", core.NewKeyRing(e1.PublicKey()))
		if err != nil {
			t.Fatal(err)
		}
		e1.Close()
		flipDataByte(t, dir, 5*512<<10+1) // chunk 5
		e := newEdgeDir(t, o, clk, dir, func(c *Config) { c.ChunkSize = 512 << 10 })
		// Chunk 1 lies in checksum block 0; chunks 4 and 5 share block 2.
		if b, err := wire.FetchChunk(t.Context(), e.hc, e.url, m.Root, 1, m.ChunkLen(1), "", nil); err != nil || m.CheckChunk(1, b) != nil {
			t.Fatalf("good chunk 1: %v", err)
		}
		if b, err := wire.FetchChunk(t.Context(), e.hc, e.url, m.Root, 5, m.ChunkLen(5), "", nil); err == nil {
			t.Fatalf("damaged chunk 5 served (%d bytes, check: %v)", len(b), m.CheckChunk(5, b))
		}
		assertMetric(t, e, "edgeswarm_edge_corrupt_objects_total", 1)
		mustGet(t, e, "/c.mp4", body, statusMiss)
	})
}

func mustGet(t *testing.T, e *testEdge, path string, want []byte, status string) {
	t.Helper()
	r := e.get(t, path)
	if r.status != http.StatusOK || r.err != nil || !bytes.Equal(r.body, want) {
		t.Fatalf("GET %s: status %d, err %v, %d bytes, equal %v", path, r.status, r.err, len(r.body), bytes.Equal(r.body, want))
	}
	if got := r.header.Get("X-Cache"); status != "" && got != status {
		t.Fatalf("GET %s: X-Cache %q, want %q", path, got, status)
	}
}

func dataFile(t *testing.T, dir string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "objects", "*", "*.data"))
	if len(files) != 1 {
		t.Fatalf("%d data files, want 1", len(files))
	}
	return files[0]
}

// flipDataByte inverts one byte of the only data file under dir.
func flipDataByte(t *testing.T, dir string, off int64) {
	t.Helper()
	flipFileByte(t, dataFile(t, dir), off, 0x5a)
}

// flipFileByte XORs the byte at off of the file at path with mask.
func flipFileByte(t *testing.T, path string, off int64, mask byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// metric returns the value of an unlabelled metric (or one with its
// labels spelled out in name) from /metrics.
func metric(t *testing.T, e *testEdge, name string) float64 {
	t.Helper()
	r := e.get(t, "/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func assertMetric(t *testing.T, e *testEdge, name string, want float64) {
	t.Helper()
	if got := metric(t, e, name); got != want {
		t.Errorf("%s = %v, want %v", name, got, want)
	}
}

// fullDisk is a file system of a fixed capacity over a real directory:
// a write that would take the files under dir past capacity writes what
// fits and fails with ENOSPC, as a real disk does.
type fullDisk struct {
	dir      string
	capacity int64
	mu       sync.Mutex
	refused  int // writes failed
}

func (d *fullDisk) CreateTemp(dir, pattern string) (storeFile, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &fullDiskFile{File: f, d: d}, nil
}

// Free makes the fake disk's room known to the cache (freeSpacer).
func (d *fullDisk) Free(string) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return max(0, d.capacity-d.used()), nil
}

func (d *fullDisk) used() int64 {
	var n int64
	filepath.WalkDir(d.dir, func(_ string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			if fi, err := de.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

type fullDiskFile struct {
	*os.File
	d *fullDisk
}

func (f *fullDiskFile) Write(p []byte) (int, error) {
	f.d.mu.Lock() // one writer at a time, so the capacity holds
	defer f.d.mu.Unlock()
	room := f.d.capacity - f.d.used()
	if int64(len(p)) <= room {
		return f.File.Write(p)
	}
	f.d.refused++
	n := 0
	if room > 0 {
		n, _ = f.File.Write(p[:room])
	}
	return n, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

// newEdgeFS is newEdgeDir with the cache written through fsys.
func newEdgeFS(t *testing.T, o *origin, clk *clock, dir string, fsys storeFS, mod func(*Config)) *testEdge {
	t.Helper()
	return newEdgeDeps(t, o, clk, dir, Deps{storeFS: fsys}, mod)
}

// Battery item 11: the cache disk fills up → requests still 200 (the
// cache evicts to make room, or the response passes through), the
// store-error metric rises; 5xx = 0, panics (aborted responses) = 0.
func TestBattery11DiskFull(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	dir := t.TempDir()
	disk := &fullDisk{dir: dir, capacity: 2500 << 10}
	e := newEdgeFS(t, o, clk, dir, disk, func(c *Config) { c.CacheSize = 64 << 20 })
	hdr := map[string]string{"Cache-Control": "max-age=3600"}

	// The disk fills before the 64 MiB budget: evicting makes room.
	const n = 12
	bodies := make([][]byte, n)
	for i := range n {
		bodies[i] = randomBody(uint64(30+i), 400<<10)
		o.set(fmt.Sprint("/f", i), &object{body: bodies[i], header: hdr})
		mustGet(t, e, fmt.Sprint("/f", i), bodies[i], statusMiss)
	}
	mustGet(t, e, fmt.Sprint("/f", n-1), bodies[n-1], statusHit)
	if disk.refused == 0 {
		t.Fatal("the disk never refused a write; the test did not fill it")
	}
	if got := metric(t, e, "edgeswarm_edge_store_errors_total"); got < 1 {
		t.Errorf("store errors %v after %d refused writes", got, disk.refused)
	}
	if got := metric(t, e, `edgeswarm_edge_cache_evictions_total{reason="disk_full"}`); got < 1 {
		t.Errorf("disk-full evictions %v, want > 0", got)
	}
	if used := disk.used(); used > disk.capacity {
		t.Errorf("%d bytes on a %d-byte disk", used, disk.capacity)
	}

	// An object larger than the disk (not the budget): no eviction helps;
	// 30 concurrent requests all get it whole from the origin.
	huge := randomBody(99, 3<<20)
	o.set("/huge", &object{body: huge, header: hdr})
	errsBefore := metric(t, e, "edgeswarm_edge_store_errors_total")
	var wg sync.WaitGroup
	results := make([]result, 30)
	for i := range results {
		wg.Go(func() { results[i] = e.get(t, "/huge") })
	}
	wg.Wait()
	for i, r := range results {
		if r.status != http.StatusOK || r.err != nil || !bytes.Equal(r.body, huge) {
			t.Fatalf("request %d for an object larger than the disk: status %d, err %v, %d bytes", i, r.status, r.err, len(r.body))
		}
		if x := r.header.Get("X-Cache"); x != statusPass {
			t.Fatalf("request %d: X-Cache %q, want PASS", i, x)
		}
	}
	if got := metric(t, e, "edgeswarm_edge_store_errors_total"); got <= errsBefore {
		t.Errorf("store errors %v, want more than %v", got, errsBefore)
	}
	if _, _, ok := e.cache.lookup("/huge"); ok {
		t.Error("an object larger than the disk is indexed")
	}
	// Manifests of stored objects still work (kept in memory if need be).
	if _, err := e.client().Manifest(t.Context(), fmt.Sprint("/f", n-1), core.NewKeyRing(e.PublicKey())); err != nil {
		t.Errorf("manifest with a full disk: %v", err)
	}
	// And the cache still works once there is room.
	disk.mu.Lock()
	disk.capacity = 64 << 20
	disk.mu.Unlock()
	mustGet(t, e, "/huge", huge, "")
	mustGet(t, e, "/huge", huge, statusHit)
	if body := e.get(t, "/metrics").body; bytes.Contains(body, []byte(`cache_status="5`)) || strings.Contains(string(body), "panic") {
		t.Error("metrics report server errors")
	}
}

// Hits of a verified version go out through the recorder's ReadFrom (the
// sendfile path) and are still counted, byte for byte.
func TestTrustedHitCounted(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	body := randomBody(40, 2*sumBlockSize+3)
	o.set("/big", &object{body: body, header: map[string]string{"Cache-Control": "max-age=3600"}})
	e := newEdge(t, o, clk, nil)
	mustGet(t, e, "/big", body, statusMiss) // streamed while stored
	mustGet(t, e, "/big", body, statusHit)  // verified while sent
	en, _, _ := e.cache.lookup("/big")
	e.cache.mu.Lock()
	verified := !en.check.at.IsZero()
	e.cache.mu.Unlock()
	if !verified {
		t.Fatal("a version sent whole is not marked verified")
	}
	r := e.get(t, "/big", "Range", "bytes=100-199")
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, body[100:200]) {
		t.Fatalf("range of a trusted version: status %d, %d bytes", r.status, len(r.body))
	}
	if got, want := e.Stats().ContentBytesServed, int64(2*len(body)+100); got != want {
		t.Errorf("content bytes served %d, want %d", got, want)
	}
}

// The hot set holds checked copies of small versions within its budget,
// serves opens without the file, and lets a copy go with its version.
func TestHotSet(t *testing.T) {
	clk := newClock()
	c := testCache(t, t.TempDir(), clk, func(cfg *cacheConfig) { cfg.hotBudget = 350 << 10 })
	read := func(e *entry) []byte {
		t.Helper()
		r, _, err := c.open(e)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var es []*entry
	for i := range 8 {
		body := randomBody(uint64(30+i), 100<<10)
		e := put(t, c, fmt.Sprintf("/o%d", i), body)
		es = append(es, e)
		for range 2 {
			if !bytes.Equal(read(e), body) {
				t.Fatalf("object %d read back wrong", i)
			}
		}
		if n := c.hotBytes(); n > 350<<10 {
			t.Fatalf("hot set holds %d bytes, budget %d", n, 350<<10)
		}
	}
	if c.hot.hits.Load() == 0 {
		t.Fatal("no open was served from the hot set")
	}
	// The last object's copy serves its opens even with its file gone.
	last := es[len(es)-1]
	body := read(last)
	os.Remove(c.objPath(last.id, ".data"))
	if !bytes.Equal(read(last), body) {
		t.Fatal("hot copy read back wrong")
	}
	// Replaced and removed versions take their copies with them.
	before := c.hotBytes()
	put(t, c, "/o7", randomBody(99, 1000))
	if c.hotBytes() != before-100<<10 || last.hot != nil {
		t.Errorf("replaced version kept its copy: %d bytes held, was %d", c.hotBytes(), before)
	}
	var files []*hotFile
	var hotOne *entry
	for _, e := range es {
		if e.hotFile != nil {
			files = append(files, e.hotFile)
			hotOne = e
		}
	}
	if len(files) == 0 {
		t.Fatal("no hot version kept its file open")
	}
	held, _, err := c.open(hotOne)
	if err != nil || held.hf == nil {
		t.Fatalf("open of a hot version: %v, file %v", err, held != nil && held.hf != nil)
	}
	for _, e := range es {
		c.remove(e)
	}
	if n := c.hotBytes(); n != 0 {
		t.Errorf("%d hot bytes after every version went", n)
	}
	// A file goes when its version has gone and no reader holds it.
	if _, err := held.hf.f.Stat(); err != nil {
		t.Errorf("a file a reader holds was closed: %v", err)
	}
	heldFile := held.hf
	held.Close()
	// Close lets the rest go.
	again := put(t, c, "/again", randomBody(9, 100<<10))
	read(again)
	read(again)
	if again.hotFile == nil {
		t.Fatal("no hot file for a new hot version")
	}
	hf := again.hotFile
	c.closeHot()
	if _, err := hf.f.Stat(); err == nil || c.hotBytes() != 0 {
		t.Errorf("after closeHot: file open %v, %d hot bytes", err == nil, c.hotBytes())
	}
	for _, hf := range files {
		if _, err := hf.f.Stat(); err == nil {
			t.Errorf("hot file still open after its version went (held %v)", hf == heldFile)
		}
	}
	// Small objects only, and none when checking every read.
	big := put(t, c, "/big", randomBody(7, smallObjectMax+1))
	read(big)
	c.verifyEveryRead.Store(true)
	small := put(t, c, "/small", randomBody(8, 10))
	read(small)
	if n := c.hotBytes(); n != 0 {
		t.Errorf("hot set took a large object or a copy in verify-every-read mode: %d bytes", n)
	}
}

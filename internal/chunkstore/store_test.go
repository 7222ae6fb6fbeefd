package chunkstore

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

const testChunk = 16 << 10

func testObject(size int, seed byte) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*31+i>>11) ^ seed
	}
	return b
}

func testManifest(t testing.TB, data []byte) *core.Manifest {
	t.Helper()
	m, err := core.BuildManifest(bytes.NewReader(data), "/x.bin", `"v1"`, "application/octet-stream", int64(len(data)), testChunk)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))); err != nil {
		t.Fatal(err)
	}
	return m
}

func chunkOf(m *core.Manifest, data []byte, i int) []byte {
	off := m.ChunkOffset(i)
	return data[off : off+int64(m.ChunkLen(i))]
}

func TestMemory(t *testing.T) {
	testStore(t, func(t *testing.T) Store { return NewMemory() })
}

func TestDisk(t *testing.T) {
	testStore(t, func(t *testing.T) Store {
		s, err := NewDisk(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// testStore is the conformance suite every Store implementation passes.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	data := testObject(5*testChunk+1234, 1) // short last chunk
	m := testManifest(t, data)

	t.Run("WriteRead", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		o, err := s.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if got := o.Have().Count(); got != 0 {
			t.Fatalf("new object holds %d chunks", got)
		}
		if _, err := o.ReadChunk(2, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("read of missing chunk: %v, want ErrNotFound", err)
		}
		for _, i := range []int{5, 0, 2} {
			if err := o.WriteChunk(i, chunkOf(m, data, i)); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		for _, i := range []int{0, 2, 5} {
			got, err := o.ReadChunk(i, make([]byte, 3)) // too small: must grow
			if err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
			if !bytes.Equal(got, chunkOf(m, data, i)) {
				t.Fatalf("chunk %d differs", i)
			}
		}
		h := o.Have()
		if h.Count() != 3 || !h.Has(0) || !h.Has(2) || !h.Has(5) || h.Has(1) {
			t.Fatalf("have = %x", h.Bytes())
		}
		h.Set(1) // a copy: must not leak into the object
		if o.Have().Has(1) {
			t.Fatal("Have returned a shared bitfield")
		}
		// Rewriting a held chunk is a no-op.
		if err := o.WriteChunk(0, chunkOf(m, data, 0)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		o, err := s.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if err := o.WriteChunk(1, chunkOf(m, data, 1)[1:]); !errors.Is(err, core.ErrChunkLength) {
			t.Fatalf("short write: %v, want ErrChunkLength", err)
		}
		if err := o.WriteChunk(5, make([]byte, testChunk)); !errors.Is(err, core.ErrChunkLength) {
			t.Fatalf("long last chunk: %v", err)
		}
		for _, i := range []int{-1, 6, 1 << 30} {
			if err := o.WriteChunk(i, make([]byte, testChunk)); err == nil {
				t.Fatalf("write of chunk %d succeeded", i)
			}
			if _, err := o.ReadChunk(i, nil); !errors.Is(err, ErrNotFound) {
				t.Fatalf("read of chunk %d: %v", i, err)
			}
		}
		if o.Have().Count() != 0 {
			t.Fatal("bad writes marked chunks held")
		}
		if _, err := s.Open(&core.Manifest{}); err == nil {
			t.Fatal("opened a zero manifest")
		}
		if _, err := s.Open(nil); err == nil {
			t.Fatal("opened a nil manifest")
		}
	})

	t.Run("SharedHandles", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		a, err := s.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.WriteChunk(3, chunkOf(m, data, 3)); err != nil {
			t.Fatal(err)
		}
		if !b.Have().Has(3) {
			t.Fatal("second handle does not see the first's write")
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := a.ReadChunk(3, nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("read on closed handle: %v", err)
		}
		if got, err := b.ReadChunk(3, nil); err != nil || !bytes.Equal(got, chunkOf(m, data, 3)) {
			t.Fatalf("other handle after close: %v", err)
		}
		b.Close()
		// Reopening after every handle closed resumes the chunks.
		c, err := s.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := c.ReadChunk(3, nil); err != nil || !bytes.Equal(got, chunkOf(m, data, 3)) {
			t.Fatalf("reopened object lost chunk 3: %v", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		o, err := s.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		var wg sync.WaitGroup
		errc := make(chan error, 64)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() { // writers race on every chunk, duplicates included
				defer wg.Done()
				for i := 0; i < m.NumChunks(); i++ {
					if err := o.WriteChunk((i+w)%m.NumChunks(), chunkOf(m, data, (i+w)%m.NumChunks())); err != nil {
						errc <- err
					}
				}
			}()
			wg.Add(1)
			go func() { // readers see either ErrNotFound or the right bytes
				defer wg.Done()
				buf := make([]byte, testChunk)
				for k := 0; k < 200; k++ {
					i := k % m.NumChunks()
					got, err := o.ReadChunk(i, buf)
					if errors.Is(err, ErrNotFound) {
						continue
					}
					if err != nil {
						errc <- err
					} else if !bytes.Equal(got, chunkOf(m, data, i)) {
						errc <- errors.New("reader saw wrong bytes")
					}
					_ = o.Have()
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		if !o.Have().Complete() {
			t.Fatal("object incomplete after every chunk was written")
		}
	})

	t.Run("StoreClose", func(t *testing.T) {
		s := newStore(t)
		o, err := s.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := s.Open(m); !errors.Is(err, ErrClosed) {
			t.Fatalf("Open after Close: %v", err)
		}
		if err := o.WriteChunk(0, chunkOf(m, data, 0)); err == nil {
			t.Fatal("write after store Close succeeded")
		}
		o.Close()
	})
}

// TestDiskReopen restarts a disk store and checks that good chunks survive,
// a corrupted chunk and a truncated data file are dropped, and a damaged
// have-file yields an empty (not wrong) object.
func TestDiskReopen(t *testing.T) {
	data := testObject(8*testChunk, 2)
	m := testManifest(t, data)
	dir := t.TempDir()
	objDir := filepath.Join(dir, "objects", m.Root.String())

	write := func(idx ...int) {
		s, err := NewDisk(dir)
		if err != nil {
			t.Fatal(err)
		}
		o, err := s.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range idx {
			if err := o.WriteChunk(i, chunkOf(m, data, i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	reopen := func() (Object, func()) {
		s, err := NewDisk(dir)
		if err != nil {
			t.Fatal(err)
		}
		o, err := s.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		return o, func() { o.Close(); s.Close() }
	}

	write(0, 1, 4, 7)
	if st, err := os.Stat(filepath.Join(objDir, "data")); err != nil || st.Size() != m.Size {
		t.Fatalf("data file not preallocated: %v %v", st, err)
	}
	enc, _ := m.MarshalBinary()
	if got, err := os.ReadFile(filepath.Join(objDir, "manifest")); err != nil || !bytes.Equal(got, enc) {
		t.Fatalf("manifest not stored beside the data: %v", err)
	}

	o, done := reopen()
	if h := o.Have(); h.Count() != 4 || !h.Has(0) || !h.Has(1) || !h.Has(4) || !h.Has(7) {
		t.Fatalf("after reopen have = %x", h.Bytes())
	}
	for _, i := range []int{0, 1, 4, 7} {
		if got, err := o.ReadChunk(i, nil); err != nil || !bytes.Equal(got, chunkOf(m, data, i)) {
			t.Fatalf("chunk %d after reopen: %v", i, err)
		}
	}
	done()

	// Flip one byte of chunk 4 on disk: reopen must drop exactly that chunk.
	f, err := os.OpenFile(filepath.Join(objDir, "data"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{data[m.ChunkOffset(4)+10] ^ 0xff}, m.ChunkOffset(4)+10)
	f.Close()
	o, done = reopen()
	if h := o.Have(); h.Count() != 3 || h.Has(4) {
		t.Fatalf("corrupt chunk 4 survived reopen: have = %x", h.Bytes())
	}
	if _, err := o.ReadChunk(4, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read of dropped chunk: %v", err)
	}
	done()
	// The rewritten hint no longer lists chunk 4.
	raw, _ := os.ReadFile(filepath.Join(objDir, "have"))
	if hb, err := core.BitfieldFromBytes(m.NumChunks(), raw); err != nil || hb.Has(4) || hb.Count() != 3 {
		t.Fatalf("have-file after drop: %x %v", raw, err)
	}

	// A damaged have-file is no hint at all: every chunk is read and the
	// three that verify are kept (not the corrupt chunk 4, nor the six
	// never written).
	os.WriteFile(filepath.Join(objDir, "have"), []byte("garbage!!"), 0o644)
	o, done = reopen()
	if h := o.Have(); h.Count() != 3 || !h.Has(0) || !h.Has(1) || !h.Has(7) {
		t.Fatalf("damaged have-file: have = %x, want chunks 0, 1 and 7", h.Bytes())
	}
	done()

	// A process killed before its have-file caught up: chunks on disk that
	// the hint does not list are found again, and the hint is rewritten.
	write(2, 3)
	os.WriteFile(filepath.Join(objDir, "have"), core.NewBitfield(m.NumChunks()).Bytes(), 0o644)
	o, done = reopen()
	if h := o.Have(); h.Count() != 5 || !h.Has(2) || !h.Has(3) || h.Has(4) {
		t.Fatalf("unlisted chunks: have = %x, want 0, 1, 2, 3 and 7", h.Bytes())
	}
	done()
	raw, _ = os.ReadFile(filepath.Join(objDir, "have"))
	if hb, err := core.BitfieldFromBytes(m.NumChunks(), raw); err != nil || hb.Count() != 5 {
		t.Fatalf("have-file after finding unlisted chunks: %x %v", raw, err)
	}

	// No stray temp files are left behind.
	ents, _ := os.ReadDir(objDir)
	for _, e := range ents {
		if e.Name() != "data" && e.Name() != "manifest" && e.Name() != "have" {
			t.Fatalf("stray file %s", e.Name())
		}
	}
}

// TestDiskFlushesWhileOpen checks that the have-file is rewritten within
// about the flush delay while the object stays open, so a crash (no Close)
// loses at most the last fraction of a second.
func TestDiskFlushesWhileOpen(t *testing.T) {
	data := testObject(4*testChunk, 3)
	m := testManifest(t, data)
	dir := t.TempDir()
	s, err := NewDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err := s.Open(m)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	o.WriteChunk(2, chunkOf(m, data, 2))
	path := filepath.Join(dir, "objects", m.Root.String(), "have")
	deadline := time.Now().Add(5 * time.Second)
	for {
		raw, _ := os.ReadFile(path)
		if hb, err := core.BitfieldFromBytes(m.NumChunks(), raw); err == nil && hb.Has(2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("have-file not written while the object is open")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A second store on the same dir (a restarted process) sees the chunk.
	s2, _ := NewDisk(dir)
	defer s2.Close()
	o2, err := s2.Open(m)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	if !o2.Have().Has(2) {
		t.Fatal("restarted store lost chunk 2")
	}
}

// TestDiskFindsZeroChunks: a chunk whose content is all zeros is found on
// reopen though the have-file does not list it (its hash says so), while
// the zeros of chunks never written are not taken for content.
func TestDiskFindsZeroChunks(t *testing.T) {
	data := testObject(4*testChunk, 5)
	clear(data[testChunk : 2*testChunk]) // chunk 1 is zeros
	m := testManifest(t, data)
	dir := t.TempDir()
	s, err := NewDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.Open(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1} {
		if err := o.WriteChunk(i, chunkOf(m, data, i)); err != nil {
			t.Fatal(err)
		}
	}
	o.Close()
	s.Close()
	objDir := filepath.Join(dir, "objects", m.Root.String())
	if err := os.Remove(filepath.Join(objDir, "have")); err != nil {
		t.Fatal(err)
	}
	s, err = NewDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err = s.Open(m)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if h := o.Have(); h.Count() != 2 || !h.Has(0) || !h.Has(1) {
		t.Fatalf("have = %x, want chunks 0 and 1", h.Bytes())
	}
	if got, err := o.ReadChunk(1, nil); err != nil || !bytes.Equal(got, chunkOf(m, data, 1)) {
		t.Fatalf("zero chunk: %v", err)
	}
}

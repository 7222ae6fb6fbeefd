package chunkstore

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

func TestMemoryBudget(t *testing.T) {
	testBudget(t, func(t *testing.T, opts ...Option) Store { return NewMemory(opts...) })
}

func TestDiskBudget(t *testing.T) {
	testBudget(t, func(t *testing.T, opts ...Option) Store {
		s, err := NewDisk(t.TempDir(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// version is one object version of a budget test.
type version struct {
	data []byte
	m    *core.Manifest
	o    Object
}

// newVersions opens k distinct 4-chunk objects in s.
func newVersions(t *testing.T, s Store, k int) []*version {
	t.Helper()
	vs := make([]*version, k)
	for j := range vs {
		data := testObject(4*testChunk, byte(10+j))
		m := testManifestURL(t, data, fmt.Sprintf("/v%d", j))
		o, err := s.Open(m)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		vs[j] = &version{data: data, m: m, o: o}
	}
	return vs
}

func (v *version) write(t *testing.T, i int) error {
	t.Helper()
	return v.o.WriteChunk(i, chunkOf(v.m, v.data, i))
}

func (v *version) held() []int {
	var got []int
	h := v.o.Have()
	for i := 0; i < h.Len(); i++ {
		if h.Has(i) {
			got = append(got, i)
		}
	}
	return got
}

// checkUsage fails if the store's books disagree with what its open
// objects hold, or exceed the budget.
func checkUsage(t *testing.T, s Store, vs []*version) Usage {
	t.Helper()
	u := s.Usage()
	var held int64
	for _, v := range vs {
		held += int64(len(v.held())) * testChunk
	}
	if u.UsedBytes != held {
		t.Fatalf("usage %d bytes, objects hold %d", u.UsedBytes, held)
	}
	if u.BudgetBytes > 0 && u.UsedBytes > u.BudgetBytes {
		t.Fatalf("usage %d over the budget %d", u.UsedBytes, u.BudgetBytes)
	}
	return u
}

// testBudget is the budget conformance suite: LRU order between versions,
// highest index first inside one, pins, ErrFull, objects too large, and
// versions no handle holds removed whole.
func testBudget(t *testing.T, newStore func(t *testing.T, opts ...Option) Store) {
	t.Run("EvictLRU", func(t *testing.T) {
		s := newStore(t, WithBudget(8*testChunk))
		defer s.Close()
		vs := newVersions(t, s, 3)
		a, b, c := vs[0], vs[1], vs[2]
		for i := 0; i < 4; i++ {
			if err := a.write(t, i); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 4; i++ {
			if err := b.write(t, i); err != nil {
				t.Fatal(err)
			}
		}
		checkUsage(t, s, vs)
		if _, err := a.o.ReadChunk(0, nil); err != nil { // a is now the most recently used
			t.Fatal(err)
		}
		if err := c.write(t, 0); err != nil {
			t.Fatal(err)
		}
		if got := b.held(); fmt.Sprint(got) != "[0 1 2]" {
			t.Fatalf("b holds %v after one eviction, want [0 1 2] (LRU version, highest index)", got)
		}
		if b.o.Evictions() != 1 || a.o.Evictions() != 0 {
			t.Fatalf("evictions a=%d b=%d", a.o.Evictions(), b.o.Evictions())
		}
		if _, err := b.o.ReadChunk(3, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("read of an evicted chunk: %v", err)
		}
		u := checkUsage(t, s, vs)
		if u.EvictedChunks != 1 || u.EvictedBytes != testChunk {
			t.Fatalf("usage %+v", u)
		}
		// Rewriting an evicted chunk works and counts again.
		if err := b.write(t, 3); err != nil {
			t.Fatal(err)
		}
		checkUsage(t, s, vs)
	})

	t.Run("Pins", func(t *testing.T) {
		s := newStore(t, WithBudget(8*testChunk))
		defer s.Close()
		vs := newVersions(t, s, 3)
		a, b, c := vs[0], vs[1], vs[2]
		for i := 0; i < 4; i++ {
			a.write(t, i)
			b.write(t, i)
		}
		unpinA := a.o.Pin(2, 100) // clipped to chunks 2 and 3
		unpinA2 := a.o.Pin(0, 1)
		unpinB := b.o.Pin(-5, 10)
		// a is least recently used but pinned at 0, 2, 3: chunk 1 goes.
		if err := c.write(t, 0); err != nil {
			t.Fatal(err)
		}
		if got := a.held(); fmt.Sprint(got) != "[0 2 3]" {
			t.Fatalf("a holds %v, want [0 2 3]", got)
		}
		// Everything else pinned: the write fails clearly and changes nothing.
		before := s.Usage()
		err := c.write(t, 1)
		if !errors.Is(err, ErrFull) {
			t.Fatalf("write with everything pinned: %v, want ErrFull", err)
		}
		t.Logf("the error reads: %v", err)
		if c.o.Have().Has(1) {
			t.Fatal("refused write marked the chunk held")
		}
		u := checkUsage(t, s, vs)
		if u.UsedBytes != before.UsedBytes || u.RefusedWrites != 1 {
			t.Fatalf("usage after refusal %+v, before %+v", u, before)
		}
		// Pins nest: unpinning one of two pins of chunk 0 keeps it.
		unpinA3 := a.o.Pin(0, 1)
		unpinA2()
		unpinA2() // idempotent
		if err := c.write(t, 1); !errors.Is(err, ErrFull) {
			t.Fatalf("chunk 0 of a still pinned once: %v", err)
		}
		unpinA3()
		if err := c.write(t, 1); err != nil {
			t.Fatal(err)
		}
		if got := a.held(); fmt.Sprint(got) != "[2 3]" {
			t.Fatalf("a holds %v, want [2 3]", got)
		}
		unpinA()
		unpinB()
		checkUsage(t, s, vs)
	})

	t.Run("OwnChunksNotEvicted", func(t *testing.T) {
		s := newStore(t, WithBudget(6*testChunk))
		defer s.Close()
		vs := newVersions(t, s, 2)
		a, b := vs[0], vs[1]
		for i := 0; i < 4; i++ {
			a.write(t, i)
		}
		b.write(t, 0)
		b.write(t, 1)
		if err := b.write(t, 2); err != nil { // makes room from a, not from b
			t.Fatal(err)
		}
		if fmt.Sprint(a.held()) != "[0 1 2]" || fmt.Sprint(b.held()) != "[0 1 2]" {
			t.Fatalf("a holds %v, b holds %v", a.held(), b.held())
		}
		unpin := a.o.Pin(0, 4)
		defer unpin()
		if err := b.write(t, 3); !errors.Is(err, ErrFull) {
			t.Fatalf("the writer's own chunks were evictable: %v", err)
		}
		checkUsage(t, s, vs)
	})

	t.Run("TooLarge", func(t *testing.T) {
		s := newStore(t, WithBudget(3*testChunk))
		defer s.Close()
		data := testObject(4*testChunk, 1)
		_, err := s.Open(testManifestURL(t, data, "/big"))
		if err == nil {
			t.Fatal("opened an object larger than the budget")
		}
		t.Logf("the error reads: %v", err)
		if u := s.Usage(); u.Objects != 0 || u.UsedBytes != 0 {
			t.Fatalf("refused open left %+v", u)
		}
	})

	t.Run("ClosedVersionsGoWhole", func(t *testing.T) {
		s := newStore(t, WithBudget(8*testChunk))
		defer s.Close()
		vs := newVersions(t, s, 3)
		a, b, c := vs[0], vs[1], vs[2]
		for i := 0; i < 4; i++ {
			a.write(t, i)
			b.write(t, i)
		}
		b.o.ReadChunk(0, nil) // a is the least recently used
		a.o.Close()
		if err := c.write(t, 0); err != nil {
			t.Fatal(err)
		}
		u := s.Usage()
		if u.UsedBytes != 5*testChunk || u.EvictedChunks != 4 || u.Objects != 2 {
			t.Fatalf("after removing the closed version whole: %+v", u)
		}
		if got := b.held(); len(got) != 4 {
			t.Fatalf("open version lost chunks: %v", got)
		}
		again, err := s.Open(a.m)
		if err != nil {
			t.Fatal(err)
		}
		defer again.Close()
		if n := again.Have().Count(); n != 0 {
			t.Fatalf("removed version reopened with %d chunks", n)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		const budget = 6 * testChunk
		s := newStore(t, WithBudget(budget))
		defer s.Close()
		vs := newVersions(t, s, 4)
		pinned := vs[0]
		for i := 0; i < 2; i++ {
			if err := pinned.write(t, i); err != nil {
				t.Fatal(err)
			}
		}
		unpin := pinned.o.Pin(0, 2)
		defer unpin()
		var wg sync.WaitGroup
		errc := make(chan error, 1000)
		report := func(err error) { // never blocks: the first errors are enough
			select {
			case errc <- err:
			default:
			}
		}
		for _, v := range vs[1:] {
			wg.Add(2)
			go func() { // writers churn through the budget
				defer wg.Done()
				for round := 0; round < 20; round++ {
					for i := 0; i < 4; i++ {
						if err := v.write(t, i); err != nil && !errors.Is(err, ErrFull) {
							report(err)
						}
						if u := s.Usage(); u.UsedBytes > budget {
							report(fmt.Errorf("usage %d over budget %d", u.UsedBytes, budget))
						}
					}
				}
			}()
			go func() { // readers get the right bytes or ErrNotFound
				defer wg.Done()
				buf := make([]byte, testChunk)
				for k := 0; k < 200; k++ {
					i := k % 4
					got, err := v.o.ReadChunk(i, buf)
					if errors.Is(err, ErrNotFound) {
						continue
					}
					if err != nil {
						report(err)
					} else if !bytes.Equal(got, chunkOf(v.m, v.data, i)) {
						report(errors.New("reader saw wrong bytes"))
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		if got := pinned.held(); fmt.Sprint(got) != "[0 1]" {
			t.Fatalf("pinned chunks evicted: %v", got)
		}
		checkUsage(t, s, vs)
		if s.Usage().EvictedChunks == 0 {
			t.Fatal("no eviction happened: the test did not churn")
		}
	})
}

func testManifestURL(t testing.TB, data []byte, url string) *core.Manifest {
	t.Helper()
	m, err := core.BuildManifest(bytes.NewReader(data), url, `"v1"`, "application/octet-stream", int64(len(data)), testChunk)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

package cachepolicy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// budgeted is a cache around a policy, checking what the policy answers.
type budgeted struct {
	p            Policy
	budget, used int64
	sizes        map[string]int64
}

func newBudgeted(t testing.TB, name string, budget int64) *budgeted {
	t.Helper()
	p, err := New(name, Limits{Bytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	return &budgeted{p: p, budget: budget, sizes: map[string]int64{}}
}

// get requests key: a hit, or a miss that stores it. It reports a hit.
func (b *budgeted) get(t testing.TB, key string, size int64) bool {
	t.Helper()
	if _, ok := b.sizes[key]; ok {
		b.p.Hit(key)
		return true
	}
	b.sizes[key] = size
	b.used += size
	for _, k := range b.p.Add(key, size) {
		s, resident := b.sizes[k]
		if !resident || k == key {
			t.Fatalf("Add(%q) evicted %q, which is not resident or is the newcomer", key, k)
		}
		b.used -= s
		delete(b.sizes, k)
	}
	if b.used > b.budget && size <= b.budget {
		t.Fatalf("after Add(%q, %d): %d bytes resident, budget %d", key, size, b.used, b.budget)
	}
	return false
}

func drain(p Policy) []string {
	var out []string
	for {
		k, ok := p.Evict()
		if !ok {
			return out
		}
		out = append(out, k)
	}
}

// TestConformance runs one suite against every policy.
func TestConformance(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			t.Run("empty", func(t *testing.T) {
				p, _ := New(name, Limits{Bytes: 100})
				if k, ok := p.Evict(); ok {
					t.Fatalf("Evict on empty policy = %q, true", k)
				}
				p.Hit("nope")
				p.Remove("nope")
				if k, ok := p.Evict(); ok {
					t.Fatalf("unknown keys made %q resident", k)
				}
			})
			t.Run("drain", func(t *testing.T) {
				p, _ := New(name, Limits{Bytes: 100})
				for _, k := range []string{"a", "b", "c", "d", "e"} {
					p.Add(k, 10)
				}
				p.Add("b", 20) // an update, not a second copy
				p.Hit("a")
				p.Remove("c")
				got := drain(p)
				slices.Sort(got)
				if want := []string{"a", "b", "d", "e"}; !slices.Equal(got, want) {
					t.Fatalf("drained %v, want %v", got, want)
				}
			})
			t.Run("model", func(t *testing.T) {
				// Random operations against a model of the resident set.
				r := rand.New(rand.NewPCG(1, 2))
				p, _ := New(name, Limits{Bytes: 5000, Objects: 80})
				resident := map[string]bool{}
				for i := range 200000 {
					k := fmt.Sprint(r.IntN(300))
					switch op := r.IntN(10); {
					case op < 4:
						resident[k] = true
						for _, v := range p.Add(k, 1+r.Int64N(100)) {
							if !resident[v] || v == k {
								t.Fatalf("op %d: Add(%q) evicted %q, not resident or the newcomer", i, k, v)
							}
							delete(resident, v)
						}
						if len(resident) > 80 {
							t.Fatalf("op %d: %d keys resident, limit 80", i, len(resident))
						}
					case op < 7:
						p.Hit(k)
					case op < 8:
						p.Remove(k)
						delete(resident, k)
					default:
						got, ok := p.Evict()
						if ok != (len(resident) > 0) {
							t.Fatalf("op %d: Evict ok=%v with %d resident", i, ok, len(resident))
						}
						if ok && !resident[got] {
							t.Fatalf("op %d: Evict returned %q, not resident", i, got)
						}
						delete(resident, got)
					}
				}
				got := drain(p)
				if len(got) != len(resident) {
					t.Fatalf("drained %d keys, %d resident", len(got), len(resident))
				}
				for _, k := range got {
					if !resident[k] {
						t.Fatalf("drained %q, not resident", k)
					}
					delete(resident, k)
				}
			})
			t.Run("budget", func(t *testing.T) {
				// Heavy-tailed sizes, some as large as the budget.
				r := rand.New(rand.NewPCG(3, 4))
				b := newBudgeted(t, name, 1<<20)
				for range 100000 {
					size := min(int64(1<<20), int64(1024/(r.Float64()+0.001)))
					b.get(t, fmt.Sprint(r.IntN(2000)), size)
					if b.used > b.budget {
						t.Fatalf("%d bytes resident, budget %d", b.used, b.budget)
					}
				}
			})
		})
	}
}

func TestNewRefuses(t *testing.T) {
	if _, err := New("mru", Limits{Bytes: 10}); err == nil {
		t.Error("unknown policy accepted")
	}
	if _, err := New("lru", Limits{}); err == nil {
		t.Error("zero budget accepted")
	}
	if _, err := New(Default, Limits{Bytes: 1}); err != nil {
		t.Errorf("Default: %v", err)
	}
}

func TestLRUOrder(t *testing.T) {
	p := NewLRU(Limits{Bytes: 100})
	for _, k := range []string{"a", "b", "c"} {
		p.Add(k, 1)
	}
	p.Hit("a")
	if got := drain(p); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("LRU evicted %v, want [b c a]", got)
	}
}

func TestSIEVEHand(t *testing.T) {
	p := NewSIEVE(Limits{Bytes: 100})
	for _, k := range []string{"a", "b", "c", "d"} {
		p.Add(k, 1)
	}
	p.Hit("a")
	p.Hit("c")
	// The hand passes a (clearing it), evicts b, stops at c.
	if k, _ := p.Evict(); k != "b" {
		t.Fatalf("first victim %q, want b", k)
	}
	p.Add("e", 1)
	p.Hit("a")
	// From c: clear c, evict d; then e (never hit), then wrap to a.
	if got := drain(p); !slices.Equal(got, []string{"d", "e", "c", "a"}) {
		t.Fatalf("then evicted %v, want [d e c a]", got)
	}
}

// A hot set survives a long scan of one-time keys under the policies
// that claim scan resistance; under LRU it does not (so the test can tell).
func TestScanResistance(t *testing.T) {
	for _, tc := range []struct {
		name      string
		resistant bool
	}{{"lru", false}, {"sieve", true}, {"s3fifo", true}, {"tinylfu", true}} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBudgeted(t, tc.name, 1000)
			hot := []string{"h0", "h1", "h2", "h3", "h4"}
			for range 5 {
				for _, k := range hot {
					b.get(t, k, 100)
				}
			}
			for i := range 200 {
				b.get(t, fmt.Sprint("scan", i), 50)
				if i%20 == 0 {
					for _, k := range hot {
						b.get(t, k, 100)
					}
				}
			}
			kept := 0
			for _, k := range hot {
				if _, ok := b.sizes[k]; ok {
					kept++
				}
			}
			if tc.resistant && kept < len(hot) {
				t.Errorf("%d of %d hot keys kept after the scan", kept, len(hot))
			}
			if !tc.resistant && kept == len(hot) {
				t.Errorf("LRU kept every hot key; the scan is too weak to tell policies apart")
			}
		})
	}
}

func TestS3FIFOGhostGoesToMain(t *testing.T) {
	p := NewS3FIFO(Limits{Bytes: 100})
	p.Add("a", 10)
	p.Add("b", 10)
	if k, _ := p.Evict(); k != "a" {
		t.Fatalf("victim %q, want a (oldest in small, never hit)", k)
	}
	p.Add("a", 10)
	if n := p.nodes["a"]; n.where != inMain {
		t.Fatalf("a key re-added from the ghost went to queue %d, want main", n.where)
	}
	// Hit in small: promoted to main instead of evicted.
	p.Hit("b")
	p.Add("c", 10)
	if k := p.evictSmall(); k != "c" {
		t.Fatalf("victim %q, want c (b was hit)", k)
	}
	if n := p.nodes["b"]; n.where != inMain {
		t.Fatal("b was hit in small but not moved to main")
	}
}

func TestTinyLFUAdmission(t *testing.T) {
	p := NewTinyLFU(Limits{Bytes: 1000}) // window 10 bytes
	b := &budgeted{p: p, budget: 1000, sizes: map[string]int64{}}
	for i := range 99 {
		k := fmt.Sprint("m", i)
		b.get(t, k, 10)
		b.get(t, k, 10) // each main key seen twice
	}
	b.get(t, "new", 10) // seen once: loses against main's victim
	b.get(t, "next", 10)
	b.get(t, "next2", 10) // pushes "new" out of the window into the contest
	if _, ok := b.sizes["new"]; ok {
		t.Fatal("a key seen once was admitted over keys seen twice")
	}
	for range 5 {
		p.sketch.add("popular")
	}
	b.get(t, "popular", 10)
	b.get(t, "after", 10)
	b.get(t, "after2", 10)
	if _, ok := b.sizes["popular"]; !ok {
		t.Fatal("a key seen six times lost against a key seen twice")
	}
}

func TestSketchAges(t *testing.T) {
	var s sketch
	s.init(16)
	for range 12 {
		s.add("x")
	}
	if got := s.estimate("x"); got != 12 {
		t.Fatalf("estimate %d, want 12", got)
	}
	for i := range s.samples {
		s.add(fmt.Sprint(i))
	}
	if got := s.estimate("x"); got >= 12 {
		t.Fatalf("estimate %d after a reset period, want it halved", got)
	}
}

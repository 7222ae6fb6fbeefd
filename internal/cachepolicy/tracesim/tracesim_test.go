package tracesim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edgeswarm/edgeswarm/internal/cachepolicy"
)

func TestGenerateIsZipfAndReproducible(t *testing.T) {
	c := TraceConfig{Objects: 1000, Requests: 200000, Alpha: 1.0, MinSize: 100, MaxSize: 1 << 20, SizeShape: 1.2, Seed: 9}
	if testing.Short() {
		c.Requests = 50000
	}
	a, err := Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(c)
	for i := range a.Requests {
		if a.Requests[i] != b.Requests[i] {
			t.Fatal("the same config gave two traces")
		}
	}
	counts := make([]int, c.Objects)
	for _, id := range a.Requests {
		counts[id]++
	}
	top, second := 0, 0
	for _, n := range counts {
		if n > top {
			top, second = n, top
		} else if n > second {
			second = n
		}
	}
	// Zipf with alpha 1: the top object is requested about twice as often
	// as the second.
	if r := float64(top) / float64(second); r < 1.6 || r > 2.5 {
		t.Errorf("top/second popularity = %.2f, want about 2", r)
	}
	if _, err := Generate(TraceConfig{}); err == nil {
		t.Error("empty config accepted")
	}
}

func TestChurnBringsNewObjects(t *testing.T) {
	c := TraceConfig{Objects: 1000, Requests: 100000, Alpha: 1.0, MinSize: 100, MaxSize: 1 << 20, SizeShape: 1.2,
		ChurnEvery: 10000, ChurnStep: 50, Seed: 2}
	tr, err := Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	first := map[int32]int{}
	last := map[int32]int{}
	for i, id := range tr.Requests {
		if i < c.ChurnEvery {
			first[id]++
		} else if i >= c.Requests-c.ChurnEvery {
			last[id]++
		}
	}
	top := func(m map[int32]int) int32 {
		best, n := int32(-1), 0
		for id, k := range m {
			if k > n {
				best, n = id, k
			}
		}
		return best
	}
	if top(first) == top(last) {
		t.Error("the most popular object is the same at the start and the end of a churning trace")
	}
	if len(tr.Keys) != c.Objects+9*c.ChurnStep {
		t.Errorf("%d objects in the universe, want %d", len(tr.Keys), c.Objects+9*c.ChurnStep)
	}
}

// TestPolicyComparison replays Zipf traces (alpha 0.7, 0.9, 1.1) through
// every policy at 1, 5 and 10 % of the working set and prints object and
// byte hit ratios; bench/cachepolicy/run.sh prints the same as JSON on a
// larger trace. It checks that the edge's policy is at least as good as
// LRU in every cell, which is why it was chosen.
//
//	go test ./internal/cachepolicy/tracesim -run TestPolicyComparison -v
func TestPolicyComparison(t *testing.T) {
	objects, requests := 10_000, 200_000
	if testing.Short() {
		objects, requests = 5_000, 100_000
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-6s %-6s %-8s %12s %12s\n", "alpha", "cache", "policy", "object_hit", "byte_hit")
	for _, alpha := range []float64{0.7, 0.9, 1.1} {
		c := DefaultTrace(alpha)
		c.Objects, c.Requests = objects, requests
		tr, err := Generate(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, frac := range []float64{0.01, 0.05, 0.10} {
			byPolicy := map[string]Result{}
			for _, name := range cachepolicy.Names() {
				r, err := Replay(tr, name, frac)
				if err != nil {
					t.Fatal(err)
				}
				if r.ObjectHitRatio < 0 || r.ObjectHitRatio > 1 || r.ByteHitRatio < 0 || r.ByteHitRatio > 1 {
					t.Fatalf("%+v: ratio out of [0,1]", r)
				}
				byPolicy[name] = r
				fmt.Fprintf(&sb, "%-6.1f %-6s %-8s %12.4f %12.4f\n", alpha, fmt.Sprintf("%.0f%%", 100*frac), name, r.ObjectHitRatio, r.ByteHitRatio)
			}
			d, lru := byPolicy[cachepolicy.Default], byPolicy["lru"]
			if d.ObjectHitRatio < lru.ObjectHitRatio || d.ByteHitRatio < lru.ByteHitRatio {
				t.Errorf("alpha %.1f, cache %.0f%%: %s (object %.4f, byte %.4f) below lru (object %.4f, byte %.4f)",
					alpha, 100*frac, cachepolicy.Default, d.ObjectHitRatio, d.ByteHitRatio, lru.ObjectHitRatio, lru.ByteHitRatio)
			}
		}
	}
	t.Log(sb.String())
}

// BenchmarkReplay measures the per-request cost of each policy (hits and
// misses with their evictions), with the trace's map and slice work.
func BenchmarkReplay(b *testing.B) {
	c := DefaultTrace(0.9)
	c.Objects, c.Requests = 50_000, 500_000
	tr, err := Generate(c)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range cachepolicy.Names() {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Replay(tr, name, 0.05); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tr.Requests)), "ns/request")
		})
	}
}

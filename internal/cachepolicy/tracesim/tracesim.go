// Package tracesim replays synthetic request traces through the cache
// policies of internal/cachepolicy and reports object and byte hit ratios:
// the measurement behind the edge's choice of policy (docs/BENCHMARKS.md,
// bench/cachepolicy).
//
// A trace has Objects distinct objects whose popularity follows a Zipf law
// of exponent Alpha (any Alpha > 0, so the light tails of web traffic,
// 0.6–0.9, are covered as well as the steep ones of video) and whose sizes
// follow a Pareto law, independent of popularity.
package tracesim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/cachepolicy"
)

// TraceConfig describes a synthetic trace.
type TraceConfig struct {
	Objects  int     // distinct objects
	Requests int     // requests in the trace
	Alpha    float64 // Zipf exponent of popularity, > 0
	// Sizes are Pareto(MinSize, SizeShape), capped at MaxSize. Shape 1.2
	// gives the heavy tail of CDN objects: most are small, a few huge.
	MinSize, MaxSize int64
	SizeShape        float64
	// ChurnEvery > 0 makes popularity drift: every ChurnEvery requests,
	// ChurnStep objects never seen before take the top ranks and every
	// other object moves ChurnStep ranks down (new releases displacing
	// old ones). 0 keeps popularity fixed (the independent reference model).
	ChurnEvery, ChurnStep int
	Seed                  uint64
}

// DefaultTrace is the trace shape of the published comparison, for alpha.
func DefaultTrace(alpha float64) TraceConfig {
	return TraceConfig{
		Objects: 100_000, Requests: 2_000_000, Alpha: alpha,
		MinSize: 4 << 10, MaxSize: 256 << 20, SizeShape: 1.2, Seed: 1,
	}
}

// Trace is a generated request sequence.
type Trace struct {
	Config     TraceConfig
	Keys       []string // by object id
	Sizes      []int64  // by object id
	Requests   []int32  // object ids
	WorkingSet int64    // bytes of the distinct objects requested
}

// Generate builds the trace c describes; the same c gives the same trace.
func Generate(c TraceConfig) (*Trace, error) {
	if c.Objects <= 0 || c.Requests <= 0 || c.Alpha <= 0 || c.MinSize <= 0 || c.MaxSize < c.MinSize || c.SizeShape <= 0 ||
		c.ChurnEvery < 0 || c.ChurnStep < 0 {
		return nil, fmt.Errorf("tracesim: bad trace config %+v", c)
	}
	steps := 0
	if c.ChurnEvery > 0 {
		steps = (c.Requests - 1) / c.ChurnEvery
	}
	universe := c.Objects + steps*c.ChurnStep
	r := rand.New(rand.NewPCG(c.Seed, 0x7ace))
	t := &Trace{Config: c, Keys: make([]string, universe), Sizes: make([]int64, universe), Requests: make([]int32, c.Requests)}
	for i := range t.Keys {
		t.Keys[i] = fmt.Sprintf("/objects/%d", i)
		// Inverse-CDF Pareto sample.
		s := float64(c.MinSize) / math.Pow(1-r.Float64(), 1/c.SizeShape)
		t.Sizes[i] = min(c.MaxSize, int64(s))
	}
	// cdf[k] = P(rank ≤ k); rank k gets weight 1/(k+1)^alpha.
	cdf := make([]float64, c.Objects)
	sum := 0.0
	for k := range cdf {
		sum += 1 / math.Pow(float64(k+1), c.Alpha)
		cdf[k] = sum
	}
	// Popularity rank → object id through a shuffle, so that size and
	// popularity are independent. At churn step s, rank k is the object
	// at k + (steps − s)·ChurnStep: each step, new objects enter on top.
	byRank := r.Perm(universe)
	seen := make([]bool, universe)
	for i := range t.Requests {
		u := r.Float64() * sum
		k, _ := slices.BinarySearch(cdf, u)
		k = min(k, c.Objects-1)
		if c.ChurnEvery > 0 {
			k += (steps - i/c.ChurnEvery) * c.ChurnStep
		}
		id := byRank[k]
		t.Requests[i] = int32(id)
		if !seen[id] {
			seen[id] = true
			t.WorkingSet += t.Sizes[id]
		}
	}
	return t, nil
}

// Result is one policy's figures on one trace and cache size.
type Result struct {
	Policy         string  `json:"policy"`
	Trace          string  `json:"trace"` // "zipf", or "zipf+churn" when popularity drifts
	Alpha          float64 `json:"alpha"`
	CacheFraction  float64 `json:"cache_fraction"` // of the working set
	Budget         int64   `json:"budget_bytes"`
	Objects        int     `json:"objects"`
	Requests       int     `json:"requests"` // counted, after warm-up
	WorkingSet     int64   `json:"working_set_bytes"`
	ObjectHitRatio float64 `json:"object_hit_ratio"`
	ByteHitRatio   float64 `json:"byte_hit_ratio"`
	NsPerRequest   float64 `json:"ns_per_request"`
	Seed           uint64  `json:"seed"`
}

// Warmup is the share of a trace replayed before hits are counted, so
// that every policy is measured full.
const Warmup = 0.2

// Replay runs t through a fresh policy of that name with a budget of
// fraction × the working set, as the edge does: a hit is a Hit; a miss
// stores the object if it fits the budget at all, evicting what the policy
// returns.
func Replay(t *Trace, policy string, fraction float64) (Result, error) {
	budget := max(1, int64(fraction*float64(t.WorkingSet)))
	p, err := cachepolicy.New(policy, cachepolicy.Limits{Bytes: budget})
	if err != nil {
		return Result{}, err
	}
	resident := make([]bool, len(t.Keys))
	ids := make(map[string]int32, len(t.Keys))
	for i, k := range t.Keys {
		ids[k] = int32(i)
	}
	var used int64
	var hits, reqs, hitBytes, reqBytes int64
	warm := int(Warmup * float64(len(t.Requests)))
	start := time.Now()
	for i, id := range t.Requests {
		size := t.Sizes[id]
		count := i >= warm
		if count {
			reqs++
			reqBytes += size
		}
		if resident[id] {
			p.Hit(t.Keys[id])
			if count {
				hits++
				hitBytes += size
			}
			continue
		}
		if size > budget {
			continue // passed through, as the edge does
		}
		resident[id] = true
		used += size
		for _, k := range p.Add(t.Keys[id], size) {
			v := ids[k]
			if !resident[v] {
				return Result{}, fmt.Errorf("tracesim: %s evicted %q, which is not resident", policy, k)
			}
			resident[v] = false
			used -= t.Sizes[v]
		}
		if used > budget {
			return Result{}, fmt.Errorf("tracesim: %s holds %d bytes, budget %d", policy, used, budget)
		}
	}
	elapsed := time.Since(start)
	kind := "zipf"
	if t.Config.ChurnEvery > 0 {
		kind = "zipf+churn"
	}
	return Result{
		Policy: policy, Trace: kind, Alpha: t.Config.Alpha, CacheFraction: fraction, Budget: budget,
		Objects: t.Config.Objects, Requests: int(reqs), WorkingSet: t.WorkingSet,
		ObjectHitRatio: float64(hits) / float64(reqs),
		ByteHitRatio:   float64(hitBytes) / float64(reqBytes),
		NsPerRequest:   float64(elapsed.Nanoseconds()) / float64(len(t.Requests)),
		Seed:           t.Config.Seed,
	}, nil
}

package demo

import (
	"math"
	mrand "math/rand/v2"
	"slices"
	"time"
)

// never is a time no kill is due at.
const never = time.Duration(math.MaxInt64)

// churner decides which peers die when (Config.Churn, Config.ChurnEvery).
type churner struct {
	rnd   *mrand.Rand
	frac  float64
	every time.Duration
	plan  []kill // random moments: sorted by at, consumed from the front
	round int    // periodic: rounds done
}

type kill struct {
	at   time.Duration // after the crowd's start
	node int
}

// newChurner plans the kills of a crowd of n peers whose fluid bound is
// horizon: floor(Churn × n) of them at moments drawn uniformly in [5 %,
// 80 %] of it, or with ChurnEvery a round every ChurnEvery.
func newChurner(cfg Config, n int, horizon time.Duration) *churner {
	c := &churner{rnd: mrand.New(mrand.NewPCG(cfg.Seed, 0xc4a2)), frac: cfg.Churn, every: cfg.ChurnEvery}
	if cfg.Churn <= 0 || cfg.ChurnEvery > 0 {
		return c
	}
	k := min(int(cfg.Churn*float64(n)), n-1)
	for _, i := range c.rnd.Perm(n)[:k] {
		at := time.Duration((0.05 + 0.75*c.rnd.Float64()) * float64(horizon))
		c.plan = append(c.plan, kill{at: at, node: i})
	}
	slices.SortFunc(c.plan, func(a, b kill) int { return int(a.at - b.at) })
	return c
}

// next is when the next kill is due after the start, or never.
func (c *churner) next() time.Duration {
	switch {
	case c.every > 0:
		return time.Duration(c.round+1) * c.every
	case len(c.plan) > 0:
		return c.plan[0].at
	}
	return never
}

// due returns the living nodes to kill now, elapsed after the start;
// alive(i) says whether node i still lives.
func (c *churner) due(elapsed time.Duration, n int, alive func(i int) bool) []int {
	var out []int
	if c.every > 0 {
		if elapsed < c.next() {
			return nil
		}
		// One round however late: the next is the first period boundary
		// after elapsed.
		c.round = max(c.round+1, int(elapsed/c.every))
		var living []int
		for i := range n {
			if alive(i) {
				living = append(living, i)
			}
		}
		k := min(int(c.frac*float64(len(living))), len(living)-1)
		c.rnd.Shuffle(len(living), func(a, b int) { living[a], living[b] = living[b], living[a] })
		out = append(out, living[:max(k, 0)]...)
		slices.Sort(out)
		return out
	}
	for len(c.plan) > 0 && c.plan[0].at <= elapsed {
		if alive(c.plan[0].node) {
			out = append(out, c.plan[0].node)
		}
		c.plan = c.plan[1:]
	}
	return out
}

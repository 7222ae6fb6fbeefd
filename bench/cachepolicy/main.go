// Command cachepolicy replays synthetic Zipf traces through every eviction
// policy of internal/cachepolicy and prints one JSON line per (trace,
// cache size, policy, seed) on stdout and a markdown table of the means
// over seeds on stderr. bench/cachepolicy/run.sh runs it with the
// published settings; docs/BENCHMARKS.md holds the result.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/edgeswarm/edgeswarm/internal/cachepolicy"
	"github.com/edgeswarm/edgeswarm/internal/cachepolicy/tracesim"
)

func main() {
	var (
		objects   = flag.Int("objects", 100_000, "distinct objects per trace")
		requests  = flag.Int("requests", 2_000_000, "requests per trace")
		alphas    = flag.String("alphas", "0.7,0.9,1.1", "Zipf exponents of the static traces")
		churn     = flag.String("churn", "0.9", "Zipf exponents of traces whose popularity drifts (\"\" for none)")
		fractions = flag.String("fractions", "0.01,0.05,0.10", "cache sizes as fractions of the working set")
		seeds     = flag.Int("seeds", 3, "traces per setting (seeds 1..N)")
		policies  = flag.String("policies", strings.Join(cachepolicy.Names(), ","), "policies to compare")
	)
	flag.Parse()
	if err := run(*objects, *requests, *alphas, *churn, *fractions, *seeds, *policies); err != nil {
		fmt.Fprintln(os.Stderr, "cachepolicy:", err)
		os.Exit(1)
	}
}

func floats(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

type cell struct {
	trace    string
	alpha    float64
	fraction float64
}

func run(objects, requests int, alphas, churn, fractions string, seeds int, policies string) error {
	static, err := floats(alphas)
	if err != nil {
		return fmt.Errorf("-alphas: %w", err)
	}
	drifting, err := floats(churn)
	if err != nil {
		return fmt.Errorf("-churn: %w", err)
	}
	fracs, err := floats(fractions)
	if err != nil {
		return fmt.Errorf("-fractions: %w", err)
	}
	names := strings.Split(policies, ",")
	var configs []tracesim.TraceConfig
	for _, a := range static {
		c := tracesim.DefaultTrace(a)
		c.Objects, c.Requests = objects, requests
		configs = append(configs, c)
	}
	for _, a := range drifting {
		c := tracesim.DefaultTrace(a)
		c.Objects, c.Requests = objects, requests
		// 20 steps, each bringing 5 % of the catalogue in at the top.
		c.ChurnEvery, c.ChurnStep = max(1, requests/20), max(1, objects/20)
		configs = append(configs, c)
	}
	type sums struct{ obj, byt float64 }
	mean := map[cell]map[string]*sums{}
	var cells []cell
	enc := json.NewEncoder(os.Stdout)
	for _, c := range configs {
		for seed := 1; seed <= seeds; seed++ {
			c.Seed = uint64(seed)
			tr, err := tracesim.Generate(c)
			if err != nil {
				return err
			}
			for _, f := range fracs {
				for _, name := range names {
					r, err := tracesim.Replay(tr, name, f)
					if err != nil {
						return err
					}
					if err := enc.Encode(r); err != nil {
						return err
					}
					k := cell{r.Trace, r.Alpha, f}
					if mean[k] == nil {
						mean[k] = map[string]*sums{}
						cells = append(cells, k)
					}
					if mean[k][name] == nil {
						mean[k][name] = &sums{}
					}
					mean[k][name].obj += r.ObjectHitRatio / float64(seeds)
					mean[k][name].byt += r.ByteHitRatio / float64(seeds)
				}
			}
		}
	}
	// The table: one row per cell, object and byte hit ratio per policy,
	// the best byte hit ratio in bold.
	w := os.Stderr
	fmt.Fprintf(w, "| trace | alpha | cache |")
	for _, n := range names {
		fmt.Fprintf(w, " %s obj / byte |", n)
	}
	fmt.Fprintf(w, "\n|---|---|---|%s\n", strings.Repeat("---|", len(names)))
	for _, k := range cells {
		best := slices.MaxFunc(names, func(a, b string) int {
			x, y := mean[k][a].byt, mean[k][b].byt
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		})
		fmt.Fprintf(w, "| %s | %.1f | %.0f %% |", k.trace, k.alpha, 100*k.fraction)
		for _, n := range names {
			s := mean[k][n]
			if n == best {
				fmt.Fprintf(w, " %.3f / **%.3f** |", s.obj, s.byt)
			} else {
				fmt.Fprintf(w, " %.3f / %.3f |", s.obj, s.byt)
			}
		}
		fmt.Fprintln(w)
	}
	return nil
}

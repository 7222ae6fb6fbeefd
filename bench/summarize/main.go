// Command summarize reads JSON objects, one per line, from standard input —
// the runs of one benchmark — and prints one JSON object with the median,
// min and max of every numeric field (nested objects flattened with dots)
// and, for boolean fields, whether every run had them true; a human summary
// goes to standard error.
//
//	edgeswarm demo --json | go run ./bench/summarize
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "summarize:", err)
		os.Exit(1)
	}
}

func run() error {
	nums := map[string][]float64{}
	bools := map[string]bool{}
	var order []string
	seen := map[string]bool{}
	runs := 0
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal(line, &obj); err != nil {
			return fmt.Errorf("run %d: %w", runs+1, err)
		}
		if _, isSummary := obj["runs"]; isSummary {
			continue // an earlier summary line in the same stream
		}
		runs++
		flatten("", obj, func(k string, v any) {
			if !seen[k] {
				seen[k] = true
				order = append(order, k)
			}
			switch x := v.(type) {
			case float64:
				nums[k] = append(nums[k], x)
			case bool:
				if prev, ok := bools[k]; ok {
					bools[k] = prev && x
				} else {
					bools[k] = x
				}
			}
		})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if runs == 0 {
		return fmt.Errorf("no JSON runs on standard input")
	}
	slices.Sort(order)
	out := map[string]any{"runs": runs}
	for _, k := range order {
		if v, ok := nums[k]; ok {
			sort.Float64s(v)
			out[k] = map[string]float64{"median": median(v), "min": v[0], "max": v[len(v)-1]}
		} else if b, ok := bools[k]; ok {
			out[k+"_all"] = b
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		return err
	}
	// The human summary: one line per field, on stderr.
	fmt.Fprintf(os.Stderr, "%d runs (median, min–max):\n", runs)
	for _, k := range order {
		if v, ok := nums[k]; ok {
			fmt.Fprintf(os.Stderr, "  %-34s %12.4g   %.4g – %.4g\n", k, median(v), v[0], v[len(v)-1])
		} else if b, ok := bools[k]; ok {
			fmt.Fprintf(os.Stderr, "  %-34s %12v   (all runs)\n", k, b)
		}
	}
	return nil
}

func flatten(prefix string, obj map[string]any, f func(string, any)) {
	for k, v := range obj {
		if prefix != "" {
			k = prefix + "." + k
		}
		if m, ok := v.(map[string]any); ok {
			flatten(k, m, f)
			continue
		}
		f(k, v)
	}
}

func median(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

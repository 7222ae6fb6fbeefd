// Command plot draws the testbed's results (bench/testbed/run.sh's JSON
// lines) as two SVG files, written by hand with no dependencies:
//
//   - completion_cdf.svg: the completion-time CDF of every system's peers
//     (all runs pooled), with the fluid-model bound as a dashed line;
//
//   - bytes_by_source.svg: per system, the bytes peers received from the edge,
//     from other peers and from managed caches (median over runs), stacked.
//
//     plot --in results.jsonl --out DIR
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

type line struct {
	Type        string    `json:"type"`
	System      string    `json:"system"`
	Run         int       `json:"run"`
	Peers       int       `json:"peers"`
	FileBytes   int64     `json:"file_bytes"`
	FluidBoundS float64   `json:"fluid_bound_s"`
	EdgeBytes   float64   `json:"edge_bytes"`
	PeerBytes   float64   `json:"peer_bytes"`
	CacheBytes  float64   `json:"bytes_from_managed"`
	Offload     float64   `json:"offload"`
	OffloadLim  float64   `json:"offload_limit"`
	PerPeerS    []float64 `json:"per_peer_s"`
	Completed   int       `json:"completed"`
	RTTSetMs    float64   `json:"rtt_set_ms"`
	EdgeUp      float64   `json:"edge_up_mbit"`
	PeerUp      float64   `json:"peer_up_mbit"`
	PeerDown    float64   `json:"peer_down_mbit"`
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"}

func main() {
	in := flag.String("in", "", "results.jsonl")
	out := flag.String("out", ".", "directory for the SVG files")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	var runs, medians []line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if t == "" || t[0] != '{' {
			continue
		}
		var l line
		if err := json.Unmarshal([]byte(t), &l); err != nil {
			return err
		}
		switch l.Type {
		case "run":
			runs = append(runs, l)
		case "median":
			medians = append(medians, l)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(runs) == 0 {
		return fmt.Errorf("%s: no run lines", in)
	}
	cdf := cdfSVG(runs)
	bars := barsSVG(runs, medians)
	for name, body := range map[string]string{"completion_cdf.svg": cdf, "bytes_by_source.svg": bars} {
		p := filepath.Join(out, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "plot: wrote", p)
	}
	return nil
}

// niceStep picks a 1/2/5×10^k tick step giving about n ticks over [0, max].
func niceStep(max float64, n int) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

type svg struct{ b strings.Builder }

func newSVG(w, h int) *svg {
	s := &svg{}
	fmt.Fprintf(&s.b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&s.b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", w, h)
	return s
}

func (s *svg) text(x, y float64, anchor, txt string, extra string) {
	fmt.Fprintf(&s.b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`+"\n", x, y, anchor, extra, html.EscapeString(txt))
}

func (s *svg) line(x1, y1, x2, y2 float64, style string) {
	fmt.Fprintf(&s.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>`+"\n", x1, y1, x2, y2, style)
}

func (s *svg) done() string { s.b.WriteString("</svg>\n"); return s.b.String() }

func systemsInOrder(ls []line) []string {
	var order []string
	for _, l := range ls {
		if !slices.Contains(order, l.System) {
			order = append(order, l.System)
		}
	}
	return order
}

func scenario(l line) string {
	return fmt.Sprintf("%d peers, %s, edge %s / peers %s up %s down Mbit/s, RTT %s ms",
		l.Peers, sizeStr(float64(l.FileBytes)), fmtNum(l.EdgeUp), fmtNum(l.PeerUp), fmtNum(l.PeerDown), fmtNum(l.RTTSetMs))
}

func sizeStr(b float64) string {
	switch {
	case b >= 1<<30:
		return fmtNum(b/(1<<30)) + " GiB"
	case b >= 1<<20:
		return fmtNum(b/(1<<20)) + " MiB"
	default:
		return fmtNum(b/(1<<10)) + " KiB"
	}
}

func cdfSVG(runs []line) string {
	const W, H, L, R, T, B = 820, 460, 70, 230, 50, 60
	pw, ph := float64(W-L-R), float64(H-T-B)
	systems := systemsInOrder(runs)
	pooled := map[string][]float64{}
	nruns := map[string]int{}
	done, want := map[string]int{}, map[string]int{}
	xmax := runs[0].FluidBoundS
	for _, l := range runs {
		pooled[l.System] = append(pooled[l.System], l.PerPeerS...)
		nruns[l.System]++
		done[l.System] += len(l.PerPeerS)
		want[l.System] += l.Peers
		for _, v := range l.PerPeerS {
			xmax = math.Max(xmax, v)
		}
	}
	step := niceStep(xmax*1.05, 8)
	xmax = math.Ceil(xmax*1.05/step) * step
	X := func(v float64) float64 { return L + v/xmax*pw }
	Y := func(v float64) float64 { return T + ph - v*ph }
	s := newSVG(W, H)
	s.text(W/2-R/2+L/2, 22, "middle", "Completion time CDF (flash crowd)", `font-size="15" font-weight="bold"`)
	s.text(W/2-R/2+L/2, 38, "middle", scenario(runs[0]), `fill="#555"`)
	for v := 0.0; v <= xmax+1e-9; v += step {
		s.line(X(v), T, X(v), T+ph, `stroke="#e5e5e5"`)
		s.text(X(v), T+ph+16, "middle", fmtNum(v), "")
	}
	for v := 0.0; v <= 1.0001; v += 0.2 {
		s.line(L, Y(v), L+pw, Y(v), `stroke="#e5e5e5"`)
		s.text(L-6, Y(v)+4, "end", fmtNum(v), "")
	}
	s.line(L, T+ph, L+pw, T+ph, `stroke="black"`)
	s.line(L, T, L, T+ph, `stroke="black"`)
	s.text(L+pw/2, H-18, "middle", "seconds from the common start", "")
	fmt.Fprintf(&s.b, `<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">fraction of peers done</text>`+"\n", T+ph/2, T+ph/2)
	if b := runs[0].FluidBoundS; b > 0 {
		s.line(X(b), T, X(b), T+ph, `stroke="black" stroke-dasharray="5,4"`)
		s.text(X(b)+4, T+12, "start", "fluid bound "+fmtNum(math.Round(b*100)/100)+" s", `fill="#333"`)
	}
	for i, sys := range systems {
		c := palette[i%len(palette)]
		v := slices.Clone(pooled[sys])
		slices.Sort(v)
		if len(v) > 0 {
			var p strings.Builder
			fmt.Fprintf(&p, "M%.1f,%.1f", X(0), Y(0))
			for j, t := range v {
				fmt.Fprintf(&p, " H%.1f V%.1f", X(t), Y(float64(j+1)/float64(len(v))))
			}
			fmt.Fprintf(&s.b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", p.String(), c)
		}
		ly := float64(T + 10 + 22*i)
		s.line(L+pw+14, ly, L+pw+38, ly, fmt.Sprintf(`stroke="%s" stroke-width="3"`, c))
		label := fmt.Sprintf("%s (%d run%s)", sys, nruns[sys], plural(nruns[sys]))
		if done[sys] < want[sys] {
			label = fmt.Sprintf("%s (%d/%d done)", sys, done[sys], want[sys])
		}
		s.text(L+pw+44, ly+4, "start", label, "")
	}
	return s.done()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func barsSVG(runs, medians []line) string {
	const W, H, L, R, T, B = 760, 460, 80, 170, 50, 60
	pw, ph := float64(W-L-R), float64(H-T-B)
	src := medians
	label := "median over runs"
	if len(src) == 0 {
		src = runs
		label = "run lines"
	}
	// One bar per system (the first line of each).
	var bars []line
	for _, sys := range systemsInOrder(src) {
		for _, l := range src {
			if l.System == sys {
				bars = append(bars, l)
				break
			}
		}
	}
	const mib = 1 << 20
	ymax := 0.0
	for _, l := range bars {
		ymax = math.Max(ymax, (l.EdgeBytes+l.PeerBytes+l.CacheBytes)/mib)
	}
	need := float64(bars[0].Peers) * float64(bars[0].FileBytes) / mib
	ymax = math.Max(ymax, need)
	step := niceStep(ymax*1.08, 6)
	ymax = math.Ceil(ymax*1.08/step) * step
	Y := func(v float64) float64 { return T + ph - v/ymax*ph }
	s := newSVG(W, H)
	s.text(W/2-R/2+L/2, 22, "middle", "Bytes received by source ("+label+")", `font-size="15" font-weight="bold"`)
	s.text(W/2-R/2+L/2, 38, "middle", scenario(bars[0]), `fill="#555"`)
	for v := 0.0; v <= ymax+1e-9; v += step {
		s.line(L, Y(v), L+pw, Y(v), `stroke="#e5e5e5"`)
		s.text(L-6, Y(v)+4, "end", fmtNum(v), "")
	}
	s.line(L, T+ph, L+pw, T+ph, `stroke="black"`)
	s.line(L, T, L, T+ph, `stroke="black"`)
	fmt.Fprintf(&s.b, `<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">MiB received by all peers</text>`+"\n", T+ph/2, T+ph/2)
	s.line(L, Y(need), L+pw, Y(need), `stroke="black" stroke-dasharray="5,4"`)
	s.text(L+6, Y(need)-5, "start", "peers × file", `fill="#333"`)
	slot := pw / float64(len(bars))
	bw := math.Min(90, slot*0.6)
	for i, l := range bars {
		x := L + slot*float64(i) + (slot-bw)/2
		e, p, c := l.EdgeBytes/mib, l.PeerBytes/mib, l.CacheBytes/mib
		fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#1f77b4"/>`+"\n", x, Y(e), bw, Y(0)-Y(e))
		fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#ff7f0e"/>`+"\n", x, Y(e+p), bw, Y(e)-Y(e+p))
		if c > 0 {
			fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2ca02c"/>`+"\n", x, Y(e+p+c), bw, Y(e+p)-Y(e+p+c))
		}
		s.text(x+bw/2, T+ph+16, "middle", l.System, "")
		if e+p+c > 0 {
			s.text(x+bw/2, Y(e+p+c)+16, "middle", fmt.Sprintf("offload %.0f%%", l.Offload*100), `fill="white" font-weight="bold"`)
		} else {
			s.text(x+bw/2, Y(0)-6, "middle", "no data", `fill="#555"`)
		}
		// The least the edge must send (fluid model): (1 - offload_limit) of all bytes.
		if l.OffloadLim > 0 {
			m := (1 - l.OffloadLim) * need
			s.line(x-6, Y(m), x+bw+6, Y(m), `stroke="black" stroke-width="2" stroke-dasharray="3,2"`)
		}
	}
	legend := []struct{ c, t string }{{"#1f77b4", "from the edge"}, {"#ff7f0e", "from peers"}}
	for _, l := range bars {
		if l.CacheBytes > 0 {
			legend = append(legend, struct{ c, t string }{"#2ca02c", "from managed caches"})
			break
		}
	}
	for i, it := range legend {
		ly := float64(T + 10 + 22*i)
		fmt.Fprintf(&s.b, `<rect x="%.1f" y="%.1f" width="16" height="12" fill="%s"/>`+"\n", L+pw+14, ly-8, it.c)
		s.text(L+pw+36, ly+3, "start", it.t, "")
	}
	ly := float64(T + 10 + 22*len(legend))
	s.line(L+pw+12, ly-2, L+pw+32, ly-2, `stroke="black" stroke-width="2" stroke-dasharray="3,2"`)
	s.text(L+pw+36, ly+3, "start", "edge bytes at the", "")
	s.text(L+pw+36, ly+17, "start", "offload limit", "")
	return s.done()
}

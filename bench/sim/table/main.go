// Command table reads `edgeswarm sim --json` results, one per line, and
// prints them as a table: how completion against the fluid bound, offload
// and the simulator's own cost scale with the swarm.
//
//	bench/sim/scale.sh 2>/dev/null | go run ./bench/sim/table
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
)

type run struct {
	Peers      int     `json:"peers"`
	ChunkSize  int     `json:"chunk_size"`
	EdgeChunk  int     `json:"edge_chunk_size"`
	Sample     int     `json:"handout_sample"`
	Every      int     `json:"rerank_every"`
	AnnounceMs int     `json:"announce_interval_max_ms"`
	Completed  int     `json:"completed"`
	Failed     int     `json:"failed"`
	Unfinished int     `json:"unfinished"`
	Bound      float64 `json:"fluid_bound_s"`
	Completion struct {
		Median float64 `json:"median"`
		Max    float64 `json:"max"`
	} `json:"completion_s"`
	Ratio        float64 `json:"ratio_to_bound"`
	Offload      float64 `json:"offload"`
	OffloadLimit float64 `json:"offload_limit"`
	EdgeBytes    int64   `json:"edge_bytes"`
	PeerBytes    int64   `json:"peer_bytes"`
	CrossISP     int64   `json:"cross_isp_bytes"`
	Timeouts     int64   `json:"timeouts"`
	Busy         int64   `json:"busy"`
	SimS         float64 `json:"sim_s"`
	Events       uint64  `json:"events"`
	WallS        float64 `json:"wall_s"`
	CPUS         float64 `json:"cpu_s"`
	MaxRSSKB     int64   `json:"max_rss_kb"`
	ElapsedS     float64 `json:"elapsed_s"` // the whole process, by scale.sh
}

func main() {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "peers\tchunk KiB\t(edge)\tsample\tevery\tannounce ms\tdone\tfailed\tT* s\tmedian s\tmax s\tmax/T*\toffload\tlimit\tedge GiB\tcross-ISP\ttimeouts\tbusy\tsim s\tevents\telapsed s\tCPU s\tRSS MiB\t")
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r run
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Peers == 0 {
			continue
		}
		cross := 0.0
		if r.PeerBytes > 0 {
			cross = float64(r.CrossISP) / float64(r.PeerBytes)
		}
		elapsed := r.ElapsedS
		if elapsed == 0 {
			elapsed = r.WallS
		}
		fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.3f\t%.3f\t%.3f\t%.2f\t%.2f\t%d\t%d\t%.1f\t%d\t%.1f\t%.1f\t%d\t\n",
			r.Peers, r.ChunkSize>>10, r.EdgeChunk>>10, r.Sample, r.Every, r.AnnounceMs, r.Completed, r.Failed+r.Unfinished, r.Bound, r.Completion.Median, r.Completion.Max,
			r.Ratio, r.Offload, r.OffloadLimit, float64(r.EdgeBytes)/(1<<30), cross, r.Timeouts, r.Busy,
			r.SimS, r.Events, elapsed, r.CPUS, r.MaxRSSKB>>10)
	}
	w.Flush()
}

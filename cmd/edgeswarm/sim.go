package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeswarm/edgeswarm/internal/sim"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
	"github.com/edgeswarm/edgeswarm/internal/units"
)

func newSimCmd(*globalFlags) *cobra.Command {
	var (
		cfg                 sim.Config
		cf                  crowdFlags
		rttMs, arrivalS     float64
		asJSON              bool
		cpuProfile, handout string
	)
	cmd := &cobra.Command{
		Use:   "sim [--peers N] [--size BYTES] [--scenario flashcrowd|churn] [--json]",
		Short: "Simulate a swarm of up to 100k peers with the real scheduling and hand-out policies",
		Long: "sim runs the peer scheduler's chunk policy and pacing rules and the tracker's hand-out\n" +
			"policy — the same code the agent and the edge run — over a simulated network: one edge\n" +
			"and N peers with upload and download capacities and a round-trip time, bandwidth shared\n" +
			"between the transfers of each link, on a virtual clock. It reports what the testbed\n" +
			"reports: completion times against the fluid bound, offload against its limit, cross-ISP\n" +
			"bytes (peers alternate between two ISPs). The same --seed gives the same result.\n" +
			"Rates are in Mbit/s unless a unit is given (e.g. 500kbit, 1Gbit).",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, err := cf.parse()
			if err != nil {
				return err
			}
			cfg.Size, cfg.EdgeUp, cfg.PeerUp, cfg.PeerDown, cfg.ChunkSize = c.size, c.edgeUp, c.peerUp, c.peerDown, c.chunk
			if rttMs < 0 || arrivalS < 0 {
				return fmt.Errorf("--rtt and --arrival must not be negative")
			}
			if cfg.Handout, err = swarm.PolicyByName(handout); err != nil {
				return fmt.Errorf("--handout: %w", err)
			}
			cfg.RTT = time.Duration(rttMs * float64(time.Millisecond))
			cfg.Arrival = time.Duration(arrivalS * float64(time.Second))
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			res, err := sim.Run(cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(os.Stdout).Encode(res)
			}
			printSimSummary(res)
			if res.ChunkSize > res.EdgeChunkSize && cfg.ChunkSize == 0 {
				fmt.Printf("\nchunks coarsened from the edge's %s to keep peers × chunks within --chunk-budget (--chunk-size overrides);\n"+
					"the agents' request and stall timeouts scaled with them (%.0fs, %.0fs); see docs/SIM.md\n",
					units.Bytes(int64(res.EdgeChunkSize)), float64(res.FetchTimeoutMs)/1000, float64(res.StallTimeoutMs)/1000)
			}
			if res.Completed == 0 {
				fmt.Println("\nno peer completed: ratio_to_bound and offload are reported as 0")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Scenario, "scenario", sim.Flashcrowd, "flashcrowd (all peers start at once) or churn (peers arrive over --arrival, a --churn share leave)")
	f.IntVar(&cfg.Peers, "peers", 20, "number of peers")
	f.StringVar(&cf.size, "size", "64MiB", "size of the object")
	f.StringVar(&cf.edgeUp, "edge-up", "100", "edge upload rate, Mbit/s")
	f.StringVar(&cf.peerUp, "peer-up", "20", "peer upload rate, Mbit/s")
	f.StringVar(&cf.peerDown, "peer-down", "100", "peer download rate, Mbit/s")
	f.Float64Var(&rttMs, "rtt", 20, "round-trip time between any two nodes, ms")
	f.StringVar(&cf.chunk, "chunk-size", "0", "chunk size, a power of two such as 128KiB; 0 picks the edge's choice, doubled while peers × chunks exceeds --chunk-budget")
	f.Int64Var(&cfg.ChunkBudget, "chunk-budget", 0, "with --chunk-size 0, the bound on peers × chunks past which chunks are made coarser (and the agents' request and stall timeouts scaled with them, unless set); 0 means "+strconv.Itoa(sim.ChunkBudget)+", -1 never coarsen")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of every random choice")
	f.Float64Var(&cfg.Churn, "churn", 0.2, "churn: share of peers that leave (half mid-download, half once complete)")
	f.Float64Var(&arrivalS, "arrival", 0, "churn: seconds over which peers arrive; 0 means the fluid bound")
	f.IntVar(&cfg.AnnounceBudget, "announce-budget", 0, "the edge's announces per second per object (swarm announce_budget): peers announce at the interval the edge stretches to members / budget; 0 means its default ("+strconv.Itoa(swarm.DefaultAnnounceBudget)+"), -1 none (every 500 ms)")
	f.IntVar(&cfg.EdgeMaxUploads, "edge-max-uploads", 64, "chunk uploads the edge serves at once, refusing more with 503 (the real edge's --max-chunk-uploads default); 0 means unlimited")
	f.IntVar(&cfg.SwarmCap, "swarm-cap", 0, "peers the tracker records per object (swarm max_peers_per_object); 0 means its default ("+strconv.Itoa(swarm.DefaultMaxPeersPerObject)+"), -1 no bound")
	f.StringVar(&handout, "handout", swarm.DefaultPolicy, "the tracker's hand-out policy: weighted, useful-first or random")
	f.IntVar(&cfg.HandoutSample, "handout-sample", 0, "members the tracker draws at random and ranks per fresh hand-out (swarm handout_sample; ≤ 50: drawn, not ranked); 0 means its default ("+strconv.Itoa(swarm.DefaultHandoutSample)+") unless the run's ranked candidates exceed "+strconv.Itoa(sim.RankBudget/1_000_000)+"M, -1 every member")
	f.IntVar(&cfg.Agent.MaxUploads, "max-uploads", 0, "chunk uploads a peer serves at once (peer max_uploads); 0 means the agent's default (16)")
	f.IntVar(&cfg.Agent.FetchTimeoutMs, "fetch-timeout-ms", 0, "the agents' request timeout floor (peer fetch_timeout_ms); 0 means the agent's default (3000)")
	f.IntVar(&cfg.RerankEvery, "rerank-every", 0, "give a requester a fresh hand-out every this many announces (and when the holders have doubled), its previous one with fresh bitfields in between; 0 means every announce (the real tracker) unless the run's fresh hand-outs × chunks exceed "+strconv.Itoa(sim.DrawBudget/1_000_000)+"M")
	f.BoolVar(&asJSON, "json", false, "print exactly one JSON object with the results")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	return cmd
}

func printSimSummary(r sim.Result) {
	chunks := units.Bytes(int64(r.ChunkSize)) + " chunks"
	if r.ChunkSize != r.EdgeChunkSize && r.EdgeChunkSize > 0 {
		chunks += fmt.Sprintf(" (the edge picks %s; request timeout floor %.1fs)", units.Bytes(int64(r.EdgeChunkSize)), float64(r.FetchTimeoutMs)/1000)
	}
	fmt.Printf(`edgeswarm sim (%s): %d peers, %s file in %s, seed %d
links: edge up %.0f Mbit/s, peer up %.0f / down %.0f Mbit/s, rtt %.0f ms

completion   min %.1fs  median %.1fs  max %.1fs   (%d completed, %d failed, %d left, %d unfinished)
fluid bound  T* = %.1fs   max/T* = %.3f
bytes        edge %s, peers %s (cross-ISP %s), duplicates %s
offload      %.3f  (limit %.3f at T*)
requests     %d  (timeouts %d, refused busy %d); hand-outs %d (%d ranked)
run          %d events, %.1fs simulated in %.1fs wall, %.1fs CPU
`, r.Scenario, r.Peers, units.Bytes(r.FileBytes), chunks, r.Seed,
		r.EdgeUpMbit, r.PeerUpMbit, r.PeerDownMbit, r.RTTMs,
		r.Completion.Min, r.Completion.Median, r.Completion.Max, r.Completed, r.Failed, r.Left, r.Unfinished,
		r.FluidBound, r.RatioToBound,
		units.Bytes(r.EdgeBytes), units.Bytes(r.PeerBytes), units.Bytes(r.CrossISPBytes), units.Bytes(r.DuplicateBytes),
		r.Offload, r.OffloadLimit,
		r.Requests, r.Timeouts, r.Busy, r.Handouts, r.Ranked,
		r.Events, r.SimS, r.WallS, r.CPUS)
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/edgeswarm/edgeswarm/internal/demo"
	"github.com/edgeswarm/edgeswarm/internal/units"
)

func newDemoCmd(g *globalFlags) *cobra.Command {
	var (
		cfg       demo.Config
		cf        crowdFlags
		managedUp string
		stream    string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "demo [--peers N] [--size BYTES] [--churn F] [--json]",
		Short: "Run origin, edges and a flash crowd of peers in one process on loopback",
		Long: "demo starts an origin with a generated file, E edges and N peers in one process, with\n" +
			"every node's access link rate-limited in process, and has all peers request the file\n" +
			"at once (a flash crowd). It reports completion times against the fluid-model bound\n" +
			"T* = max(F/u_edge, F/d, N·F/(u_edge+Σu_peer)), the share of bytes peers carried\n" +
			"(offload) against its limit, and whether every peer's bytes match the origin's.\n" +
			"With --churn F, a fraction F of the peers is killed abruptly during the crowd (their\n" +
			"connections reset and ports closed, no goodbye to the edge; they do not come back)\n" +
			"and the figures are the survivors'.\n" +
			"With --stream BITRATE the peers are viewers of a stream instead: they press play one\n" +
			"after another (--stream-join-every), their agents in stream mode, and the demo reports\n" +
			"time to first byte, start-up and the rebuffer ratio, beside a plain HTTP player's time\n" +
			"to first byte on the idle edge.\n" +
			"Rates are in Mbit/s unless a unit is given (e.g. 500kbit, 1Gbit).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.parse()
			if err != nil {
				return err
			}
			cfg.Size, cfg.EdgeUp, cfg.PeerUp, cfg.PeerDown, cfg.ChunkSize = c.size, c.edgeUp, c.peerUp, c.peerDown, c.chunk
			if cfg.ManagedUp, err = units.ParseRate(managedUp); err != nil || cfg.ManagedUp == 0 {
				return fmt.Errorf("--managed-up %q: want a finite rate such as 200 (Mbit/s) or 1Gbit", managedUp)
			}
			if stream != "" && stream != "0" {
				if cfg.Stream, err = units.ParseRate(stream); err != nil {
					return fmt.Errorf("--stream: %w", err)
				}
			}
			if !cmd.Flags().Changed("log-level") {
				g.logLevel = "warn" // the progress line and summary are the demo's output
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			if !asJSON {
				cfg.Progress = progressPrinter(term.IsTerminal(int(os.Stderr.Fd())))
			}
			ctx, stop := signalContext()
			defer stop()
			res, err := demo.Run(ctx, cfg, log)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(os.Stdout).Encode(res)
			}
			printSummary(res)
			if !res.SHA256Match {
				return fmt.Errorf("some peer's bytes differ from the origin's")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Peers, "peers", 20, "number of peers in the flash crowd")
	f.StringVar(&cf.size, "size", "64MiB", "size of the generated file")
	f.IntVar(&cfg.Edges, "edges", 1, "number of edges (peers are spread over them)")
	f.StringVar(&cf.edgeUp, "edge-up", "100", "edge upload rate, Mbit/s")
	f.StringVar(&cf.peerUp, "peer-up", "20", "peer upload rate, Mbit/s")
	f.StringVar(&cf.peerDown, "peer-down", "100", "peer download rate, Mbit/s")
	f.StringVar(&cf.chunk, "chunk-size", "0", "chunk size, a power of two such as 64KiB; 0 picks one")
	f.IntVar(&cfg.BadPeers, "bad-peers", 0, "peers that corrupt every chunk they serve")
	f.IntVar(&cfg.PIDs, "pids", 1, "network locations the peers are spread over (each its own loopback address in the edges' network map)")
	f.StringVar(&cfg.CrossPID, "cross-pid", "allow", "whether peers may be handed peers in other locations (allow), only their own (deny), or others only if managed caches (managed-only)")
	f.IntVar(&cfg.Managed, "managed", 0, "managed caches (cache j in location j mod --pids), ordered by their edge to fetch the file before the crowd starts")
	f.StringVar(&managedUp, "managed-up", "200", "managed cache link rate (both ways), Mbit/s")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed for the generated content and scheduling randomness")
	f.BoolVar(&cfg.MemoryStore, "memory-store", false, "keep peer chunks in memory instead of on disk")
	f.Float64Var(&cfg.Churn, "churn", 0, "fraction of the peers (0 to below 1) killed at seeded random moments between 5% and 80% of the fluid bound")
	f.DurationVar(&cfg.ChurnEvery, "churn-every", 0, "with --churn: instead, kill that fraction of the living peers every this long (e.g. --churn 0.5 --churn-every 10s)")
	f.StringVar(&stream, "stream", "", "make the peers viewers of a stream of this bitrate, e.g. 4Mbit, joining one after another")
	f.StringVar(&cfg.FastStart, "fast-start", "auto", "with --stream: hand players the edge's bytes of the first chunks before each chunk is verified: on, off, or auto (off here: the demo's edges speak plain HTTP)")
	f.DurationVar(&cfg.StreamJoinEvery, "stream-join-every", time.Second, "with --stream: time between two viewers pressing play")
	f.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "give up after this long")
	f.BoolVar(&asJSON, "json", false, "print exactly one JSON object with the results")
	return cmd
}

// progressPrinter draws a one-line progress display on stderr; on a
// terminal it redraws in place, elsewhere it prints a line every 2 s.
func progressPrinter(tty bool) func(demo.Progress) {
	var last time.Duration = -time.Hour
	return func(p demo.Progress) {
		if !tty && p.Elapsed-last < 2*time.Second && p.Done < p.Peers {
			return
		}
		last = p.Elapsed
		got := p.BytesEdge + p.BytesPeers
		frac := 0.0
		if p.BytesTotal > 0 {
			frac = min(1, float64(got)/float64(p.BytesTotal))
		}
		off := 0.0
		if got > 0 {
			off = float64(p.BytesPeers) / float64(got)
		}
		const width = 30
		bar := strings.Repeat("█", int(frac*width)) + strings.Repeat("░", width-int(frac*width))
		line := fmt.Sprintf("%6.1fs %s %3.0f%%  done %d/%d  edge %s  peers %s  offload %.2f",
			p.Elapsed.Seconds(), bar, 100*frac, p.Done, p.Peers, units.Bytes(p.BytesEdge), units.Bytes(p.BytesPeers), off)
		if p.Killed > 0 {
			line += fmt.Sprintf("  killed %d", p.Killed)
		}
		if p.CorruptChunks > 0 {
			line += fmt.Sprintf("  corrupt %d", p.CorruptChunks)
		}
		if tty {
			fmt.Fprintf(os.Stderr, "\r%s\x1b[K", line)
			if p.Done == p.Peers {
				fmt.Fprintln(os.Stderr)
			}
		} else {
			fmt.Fprintln(os.Stderr, line)
		}
	}
}

func printSummary(r demo.Result) {
	ok := func(b bool) string {
		if b {
			return "yes"
		}
		return "NO"
	}
	fmt.Printf(`edgeswarm demo: %d peers (%d bad), %d edge(s), %s file in %s chunks
links: edge up %.0f Mbit/s, peer up %.0f / down %.0f Mbit/s

completion   min %.1fs  median %.1fs  max %.1fs
fluid bound  T* = %.1fs   max/T* = %.2f
bytes        edge %s, peers %s, managed caches %s (%d, pre-positioned in %.1fs)
offload      %.3f  (limit %.3f at T*)
integrity    every (surviving) peer's SHA-256 matches the origin's: %s
origin       %d fetch(es)
bad peers    %d corrupt chunks detected, %d peer(s) banned; bad chunks stored: %d, served by honest peers: %d
locations    %d PID(s), cross_pid %s: %s of peer and cache bytes crossed locations, %.1f%% stayed in one
churn        %d peer(s) killed (%d of them seeding), %d survivor(s); sources demoted by survivors: %d
`, r.Peers, r.BadPeers, r.Edges, units.Bytes(r.FileBytes), units.Bytes(int64(r.ChunkSize)),
		r.EdgeUpMbit, r.PeerUpMbit, r.PeerDownMbit,
		r.Completion.Min, r.Completion.Median, r.Completion.Max,
		r.FluidBound, r.RatioToBound,
		units.Bytes(r.BytesFromEdge), units.Bytes(r.BytesFromPeers), units.Bytes(r.BytesFromManaged), r.Managed, r.PrePositionS,
		r.Offload, r.OffloadLimit, ok(r.SHA256Match), r.OriginFetches,
		r.CorruptChunksDetected, r.PeersBanned, r.BadChunksStored, r.BadChunksServedHonest,
		r.PIDs, r.CrossPID, units.Bytes(r.CrossPIDBytes), 100*r.SamePIDShare,
		r.Churned, r.ChurnedSeeders, r.Survivors, r.SourcesDemoted)
	if r.TTFB != nil {
		fmt.Printf("stream       %.1f Mbit/s, a viewer every %.1fs: ttfb median %.3fs p95 %.3fs (edge-only %.3fs, ratio %.2f), start-up median %.3fs (edge-only %.3fs); rebuffer ratio %.4f (%d stalls); %d late chunks from the edge\n",
			r.StreamMbit, r.StreamJoinS, r.TTFB.Median, r.TTFB.P95, r.EdgeOnlyTTFB, r.TTFBRatio, r.Startup.Median, r.EdgeOnlyStartup,
			r.RebufferRatio, r.Stalls, r.EdgeRescues)
	}
}

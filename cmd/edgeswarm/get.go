package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/units"
)

// getResult is what `get --json` prints.
type getResult struct {
	URL            string  `json:"url"`
	Output         string  `json:"output"`
	Bytes          int64   `json:"bytes"`
	SHA256         string  `json:"sha256"`
	BytesFromEdge  int64   `json:"bytes_from_edge"`
	BytesFromPeers int64   `json:"bytes_from_peers"`
	BytesFromCache int64   `json:"bytes_from_managed"` // from managed caches
	Offload        float64 `json:"offload"`
	// ChunkSize is the manifest's; ResumedBytes were already verified in
	// --data-dir (a download resumed after a restart); PartialBytes were
	// received in responses that broke off or were abandoned, and thrown away.
	ChunkSize     int     `json:"chunk_size"`
	ResumedBytes  int64   `json:"resumed_bytes"`
	PartialBytes  int64   `json:"partial_bytes"`
	Seconds       float64 `json:"seconds"`
	CorruptChunks int     `json:"corrupt_chunks_detected"`
	PeersBanned   int     `json:"peers_banned"`
	// Scheduler counters, for diagnosing a run.
	Requests int `json:"requests"`
	Timeouts int `json:"timeouts"`
	Failures int `json:"failures"`
	Busy     int `json:"busy"`
	// EdgeRequests, EdgeFailures and EdgeRateBps describe the edge source.
	EdgeRequests int     `json:"edge_requests"`
	EdgeFailures int     `json:"edge_failures"`
	EdgeRateBps  float64 `json:"edge_rate_bps"`
}

func newGetCmd(g *globalFlags) *cobra.Command {
	var (
		out          string
		osf          oneShotFlags
		asJSON, seed bool
	)
	cmd := &cobra.Command{
		Use:   "get URL -o FILE [--edge URL] [--json]",
		Short: "Download one object through the swarm (a one-shot peer), like curl",
		Long: "get downloads URL through the swarm as a temporary peer: chunks come in parallel from\n" +
			"the edge and from the peers it hands out, each verified against the signed manifest,\n" +
			"and are written in order to FILE (- for standard output).\n" +
			"URL is http://EDGE/path; --edge overrides which edge coordinates the download.\n" +
			"With --listen the temporary peer also serves its chunks to others while it runs.\n" +
			"With --data-dir an interrupted get run again resumes: the chunks already there are\n" +
			"verified again and kept, only the rest is fetched.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			o, err := startOneShot(args[0], osf, peer.Config{}, log)
			if err != nil {
				return err
			}
			defer o.Close()
			a, object := o.agent, o.object

			ctx, stop := signalContext()
			defer stop()
			start := time.Now()
			dl, err := a.Download(ctx, object)
			if err != nil {
				return err
			}
			var w io.Writer = os.Stdout
			var f *os.File
			if out != "-" {
				if f, err = os.CreateTemp(filepath.Dir(out), ".edgeswarm-get-*"); err != nil {
					return err
				}
				defer os.Remove(f.Name())
				defer f.Close()
				w = f
			}
			// A file is written once every chunk is held: a reader at the
			// start would make the scheduler favour the first chunks, which
			// costs a swarm its diversity. Standard output streams in order.
			if out != "-" {
				if err := dl.Wait(ctx); err != nil {
					return err
				}
			}
			elapsed := time.Since(start)
			h := sha256.New()
			n, err := io.Copy(io.MultiWriter(w, h), dl.NewReader(ctx))
			if err != nil {
				return fmt.Errorf("download %s: %w", object, err)
			}
			if err := dl.Wait(ctx); err != nil {
				return err
			}
			if out == "-" {
				elapsed = time.Since(start)
			}
			if f != nil {
				if err := f.Sync(); err != nil {
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
				if err := os.Rename(f.Name(), out); err != nil {
					return err
				}
			}
			st := dl.Stats()
			res := getResult{URL: args[0], Output: out, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil)),
				BytesFromEdge: st.Bytes[peer.KindEdge], BytesFromPeers: st.Bytes[peer.KindPeer], BytesFromCache: st.Bytes[peer.KindCache],
				Seconds: elapsed.Seconds(), CorruptChunks: st.CorruptChunks, PeersBanned: len(st.Banned)}
			res.Requests, res.Timeouts, res.Failures, res.Busy = st.Requests, st.Timeouts, st.Failures, st.Busy
			res.ChunkSize, res.ResumedBytes, res.PartialBytes = dl.Manifest().ChunkSize, st.ResumedBytes, st.PartialBytes
			for _, src := range st.Sources {
				if src.Kind == peer.KindEdge {
					res.EdgeRequests += src.Requests
					res.EdgeFailures += src.Failures
					res.EdgeRateBps += src.RateBps
				}
			}
			if t := res.BytesFromEdge + res.BytesFromPeers + res.BytesFromCache; t > 0 {
				res.Offload = float64(res.BytesFromPeers+res.BytesFromCache) / float64(t)
			}
			if asJSON {
				enc := json.NewEncoder(os.Stderr)
				if out != "-" {
					enc = json.NewEncoder(os.Stdout)
				}
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(os.Stderr, "%s: %s in %.2fs (edge %s, peers %s), sha256 %s\n", out, units.Bytes(n), res.Seconds,
					units.Bytes(res.BytesFromEdge), units.Bytes(res.BytesFromPeers), res.SHA256)
			}
			if seed && o.serving {
				// Keep serving the chunks to the swarm until told to stop.
				<-ctx.Done()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "file to write (- for standard output) (required)")
	f.BoolVar(&asJSON, "json", false, "print download statistics as one JSON object")
	f.BoolVar(&seed, "seed", false, "with --listen: after the download, keep serving its chunks until SIGINT/SIGTERM")
	osf.add(f, "download")
	cmd.MarkFlagRequired("output")
	return cmd
}

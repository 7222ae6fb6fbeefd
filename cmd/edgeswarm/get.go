package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
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
		out, listen, dataDir string
		advertise            string
		edges, trustKeys     []string
		asJSON, seed         bool
		upLimit, downLimit   string
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
			u, err := url.Parse(args[0])
			if err != nil || u.Path == "" || !strings.HasPrefix(u.Path, "/") {
				return fmt.Errorf("URL %q: want http://edge/path/to/object", args[0])
			}
			if len(edges) == 0 {
				if u.Host == "" {
					return fmt.Errorf("URL %q has no host: give --edge", args[0])
				}
				edges = []string{u.Scheme + "://" + u.Host}
			}
			object := u.EscapedPath()
			if u.RawQuery != "" {
				object += "?" + u.RawQuery
			}
			ring, err := trustRing(trustKeys)
			if err != nil {
				return err
			}
			upBps, link, err := peerLink(upLimit, downLimit)
			if err != nil {
				return err
			}
			if dataDir == "" {
				if dataDir, err = os.MkdirTemp("", "edgeswarm-get-"); err != nil {
					return err
				}
				defer os.RemoveAll(dataDir)
			}
			store, err := chunkstore.NewDisk(dataDir)
			if err != nil {
				return err
			}
			defer store.Close()

			var adv string
			var ln net.Listener
			if listen != "" {
				if ln, err = net.Listen("tcp", listen); err != nil {
					return err
				}
				adv = ln.Addr().String()
				if advertise != "" {
					adv = advertise
				}
			}
			a, err := peer.New(peer.Config{Edge: edges[0], Fallbacks: edges[1:], Advertise: adv, Keys: ring, UploadLimitBps: upBps},
				peer.Deps{Store: store, HTTP: peerHTTPClient(link), Logger: log})
			if err != nil {
				if ln != nil {
					ln.Close()
				}
				return err
			}
			defer a.Close()
			if ln != nil {
				go a.Serve(link.Listener(ln))
			}

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
			if seed && ln != nil {
				// Keep serving the chunks to the swarm until told to stop.
				<-ctx.Done()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "file to write (- for standard output) (required)")
	f.StringArrayVar(&edges, "edge", nil, "edge base URL (default: the URL's scheme and host); repeat to list fallback edges (used when the edge fails, also mid-download)")
	f.BoolVar(&asJSON, "json", false, "print download statistics as one JSON object")
	f.StringVar(&listen, "listen", "", "also serve chunks to other peers on this address while downloading")
	f.BoolVar(&seed, "seed", false, "with --listen: after the download, keep serving its chunks until SIGINT/SIGTERM")
	f.StringVar(&advertise, "advertise", "", "with --listen: host:port announced to the edge (default: the listen address)")
	f.StringVar(&dataDir, "data-dir", "", "where chunks are kept while downloading; a get interrupted and run again with the same directory resumes (default: a temporary directory)")
	f.StringArrayVar(&trustKeys, "trust-key", nil, "edge-tier public key (hex or file); repeatable (default: fetch from the edge)")
	f.StringVar(&upLimit, "upload-limit", "0", "cap on upload, e.g. 20Mbit (0 = none)")
	f.StringVar(&downLimit, "download-limit", "0", "cap on download, e.g. 100Mbit (0 = none)")
	cmd.MarkFlagRequired("output")
	return cmd
}

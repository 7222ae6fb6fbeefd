package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/playback"
	"github.com/edgeswarm/edgeswarm/internal/units"
)

// playResult is what `play --json` prints: the player's measurements, and
// for a swarm playback where the bytes came from.
type playResult struct {
	URL     string `json:"url"`
	Source  string `json:"source"` // "swarm" or "direct"
	Bitrate int64  `json:"bitrate_bps"`
	// FastStart is the agent's setting (swarm playback only).
	FastStart string `json:"fast_start,omitempty"`
	playback.Result
	BytesFromEdge  int64   `json:"bytes_from_edge"`
	BytesFromPeers int64   `json:"bytes_from_peers"`
	BytesFromCache int64   `json:"bytes_from_managed"`
	Offload        float64 `json:"offload"`
	EdgeRescues    int     `json:"edge_rescues"`
	ChunkSize      int     `json:"chunk_size,omitempty"`
}

func newPlayCmd(g *globalFlags) *cobra.Command {
	var (
		osf                        oneShotFlags
		asJSON, seed, direct       bool
		bitrate, fastStart         string
		startBuf, maxBuf, duration time.Duration
	)
	cmd := &cobra.Command{
		Use:   "play URL [--bitrate 4Mbit] [--json]",
		Short: "Play a stream through the swarm (or straight from the edge) and measure start-up and rebuffering",
		Long: "play emulates a video player on URL (http://EDGE/path): it reads ahead into a buffer of\n" +
			"--max-buffer, starts playing once --start-buffer is in, consumes the stream at --bitrate,\n" +
			"stalls when the buffer runs dry, and reports time to first byte, start-up time and the\n" +
			"rebuffer ratio (stall time / (play + stall time)).\n" +
			"By default the stream comes through a temporary peer agent in stream mode (as `peer\n" +
			"--mode stream` serves players): chunks in order before their deadlines, the first ones and\n" +
			"any about to be late from the edge, the rest from peers, every chunk verified. With\n" +
			"--direct the player reads URL over plain HTTP instead, as a CDN-only player would.\n" +
			"With --listen the agent serves its chunks to other viewers; --seed keeps it serving\n" +
			"after playback until SIGINT/SIGTERM.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			u, err := url.Parse(args[0])
			if err != nil || u.Host == "" || u.Path == "" || !strings.HasPrefix(u.Path, "/") {
				return fmt.Errorf("URL %q: want http://edge/path/to/object", args[0])
			}
			rate, err := streamRate(bitrate)
			if err != nil {
				return err
			}
			pcfg := playback.Config{RateBps: rate, StartBuffer: startBuf, MaxBuffer: maxBuf, Duration: duration}
			if startBuf <= 0 || maxBuf < startBuf || duration < 0 {
				return fmt.Errorf("want 0 < --start-buffer ≤ --max-buffer and --duration ≥ 0")
			}
			ctx, stop := signalContext()
			defer stop()
			res := playResult{URL: args[0], Bitrate: rate * 8}
			if direct {
				res.Source = "direct"
				res.Result, err = playback.Play(ctx, playback.HTTP(&http.Client{}, args[0]), pcfg)
				if err != nil {
					return err
				}
				return printPlay(res, asJSON)
			}

			res.Source, res.FastStart = "swarm", fastStart
			o, err := startOneShot(args[0], osf, peer.Config{Mode: peer.ModeStream, StreamRateBps: rate, FastStart: fastStart}, log)
			if err != nil {
				return err
			}
			defer o.Close()
			a := o.agent
			// A viewer's agent is a daemon, registered long before the
			// viewer presses play: register before the player's clock starts.
			if err := a.Register(ctx); err != nil {
				return err
			}
			var dl *peer.Download
			res.Result, err = playback.Play(ctx, func(ctx context.Context) (io.ReadCloser, error) {
				if dl, err = a.Download(ctx, o.object); err != nil {
					return nil, err
				}
				return io.NopCloser(dl.NewReader(ctx)), nil
			}, pcfg)
			if err != nil {
				return err
			}
			st := dl.Stats()
			res.BytesFromEdge, res.BytesFromPeers, res.BytesFromCache = st.Bytes[peer.KindEdge], st.Bytes[peer.KindPeer], st.Bytes[peer.KindCache]
			res.EdgeRescues, res.ChunkSize = st.EdgeRescues, dl.Manifest().ChunkSize
			if t := res.BytesFromEdge + res.BytesFromPeers + res.BytesFromCache; t > 0 {
				res.Offload = float64(res.BytesFromPeers+res.BytesFromCache) / float64(t)
			}
			if err := printPlay(res, asJSON); err != nil {
				return err
			}
			if seed && o.serving {
				<-ctx.Done() // keep serving the chunks to the other viewers
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&bitrate, "bitrate", "4Mbit", "the stream's bitrate: the player consumes it at this rate")
	f.DurationVar(&startBuf, "start-buffer", time.Second, "play time buffered before playback starts, and before it resumes after a stall")
	f.DurationVar(&maxBuf, "max-buffer", 30*time.Second, "play time the player reads ahead at most")
	f.DurationVar(&duration, "duration", 0, "stop after playing this long (0 = the whole stream)")
	f.StringVar(&fastStart, "fast-start", "auto", "hand the player the edge's bytes of the first chunks as they arrive, before each chunk is verified (verified when whole; wrong bytes end playback with an error): on, off, or auto (on when the edge URL is https)")
	f.BoolVar(&direct, "direct", false, "read URL over plain HTTP (a CDN-only player) instead of through a peer agent")
	f.BoolVar(&asJSON, "json", false, "print the results as one JSON object")
	osf.add(f, "playback")
	f.BoolVar(&seed, "seed", false, "with --listen: after playback, keep serving until SIGINT/SIGTERM")
	return cmd
}

func printPlay(res playResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Fprintf(os.Stderr, "%s (%s): ttfb %.3fs, start-up %.3fs, %d stalls (%.2fs), rebuffer ratio %.4f, played %.1fs, %s",
		res.URL, res.Source, res.TTFB, res.Startup, res.Stalls, res.StallTime, res.RebufferRatio, res.Played, units.Bytes(res.Bytes))
	if res.Source == "swarm" {
		fmt.Fprintf(os.Stderr, " (edge %s, peers %s, managed %s, offload %.3f)", units.Bytes(res.BytesFromEdge),
			units.Bytes(res.BytesFromPeers), units.Bytes(res.BytesFromCache), res.Offload)
	}
	fmt.Fprintln(os.Stderr)
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/netem"
	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/units"
)

type peerFlags struct {
	listen, advertise, player, dataDir string
	edges, trustKeys, prefetch         []string
	upLimit, downLimit                 string
	maxUploads                         int
}

func newPeerCmd(g *globalFlags) *cobra.Command {
	var pf peerFlags
	cmd := &cobra.Command{
		Use:   "peer --edge URL --listen ADDR --data-dir DIR",
		Short: "Run a peer agent: download from the edge and peers, serve chunks onward",
		Long: "peer registers with --edge, downloads objects in parallel from the edge and from the\n" +
			"peers the edge hands out, verifies every chunk against the signed manifest, stores\n" +
			"chunks under --data-dir and serves them to other peers on --listen.\n\n" +
			"Players and browsers use the local endpoint on --player-listen:\n" +
			"  curl http://127.0.0.1:7070/content/videos/a.mp4   (Range and seeking work)\n" +
			"which streams the object in order while it downloads.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			return runPeer(ctx, pf, log)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&pf.edges, "edge", nil, "edge base URL, e.g. http://127.0.0.1:8080 (required); repeat to list fallback edges, tried in order when a manifest fails or the edge serving a download stops serving it")
	f.StringVar(&pf.listen, "listen", "127.0.0.1:7001", "address of the chunk server other peers use")
	f.StringVar(&pf.advertise, "advertise", "", "host:port announced to the edge (default: the --listen address)")
	f.StringVar(&pf.player, "player-listen", "127.0.0.1:7070", "address of the local player endpoint; empty disables it")
	f.StringVar(&pf.dataDir, "data-dir", "", "directory for verified chunks (required)")
	f.StringArrayVar(&pf.trustKeys, "trust-key", nil, "edge-tier public key (hex or file) to verify manifests; repeatable (default: fetch from the edge)")
	f.StringArrayVar(&pf.prefetch, "prefetch", nil, "object path to download at start, e.g. /videos/a.mp4; repeatable")
	f.StringVar(&pf.upLimit, "upload-limit", "0", "cap on upload to other peers, e.g. 20Mbit (0 = none)")
	f.StringVar(&pf.downLimit, "download-limit", "0", "cap on download, e.g. 100Mbit (0 = none)")
	f.IntVar(&pf.maxUploads, "max-uploads", 16, "concurrent chunk uploads served")
	cmd.MarkFlagRequired("edge")
	cmd.MarkFlagRequired("data-dir")
	return cmd
}

// peerLink turns the --upload-limit/--download-limit flags into a link that
// shapes the agent's connections.
func peerLink(up, down string) (netem.Link, error) {
	u, err := units.ParseRate(up)
	if err != nil {
		return netem.Link{}, fmt.Errorf("--upload-limit: %w", err)
	}
	d, err := units.ParseRate(down)
	if err != nil {
		return netem.Link{}, fmt.Errorf("--download-limit: %w", err)
	}
	return netem.NewLink(u, d), nil
}

func peerHTTPClient(link netem.Link) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           link.DialContext(nil),
		MaxIdleConnsPerHost:   16,
		MaxConnsPerHost:       32,
		IdleConnTimeout:       60 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}}
}

func runPeer(ctx context.Context, pf peerFlags, log *slog.Logger) error {
	ring, err := trustRing(pf.trustKeys)
	if err != nil {
		return err
	}
	link, err := peerLink(pf.upLimit, pf.downLimit)
	if err != nil {
		return err
	}
	store, err := chunkstore.NewDisk(pf.dataDir)
	if err != nil {
		return err
	}
	defer store.Close()
	ln, err := net.Listen("tcp", pf.listen)
	if err != nil {
		return err
	}
	adv := pf.advertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	a, err := peer.New(peer.Config{Edge: pf.edges[0], Fallbacks: pf.edges[1:], Advertise: adv, Keys: ring, MaxUploads: pf.maxUploads,
		UploadBps: int64(link.Up.BytesPerSec())},
		peer.Deps{Store: store, HTTP: peerHTTPClient(link), Logger: log})
	if err != nil {
		ln.Close()
		return err
	}
	if pf.player != "" {
		pln, err := net.Listen("tcp", pf.player)
		if err != nil {
			ln.Close()
			a.Close()
			return fmt.Errorf("--player-listen: %w", err)
		}
		psrv := &http.Server{Handler: a.PlayerHandler(), ReadHeaderTimeout: 10 * time.Second}
		go psrv.Serve(pln)
		defer psrv.Close()
		log.Info("player endpoint", "url", "http://"+pln.Addr().String()+"/content/")
	}
	for _, p := range pf.prefetch {
		if _, err := a.Download(ctx, p); err != nil {
			log.Error("prefetch", "object", p, "err", err)
		}
	}
	log.Info("peer serving", "addr", ln.Addr().String(), "advertise", adv, "edges", pf.edges)
	err = serveUntilDone(ctx, link.Listener(ln), a.Serve, a.Close)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/keyfile"
	"github.com/edgeswarm/edgeswarm/internal/netem"
	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/units"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// A managed cache's defaults for --max-uploads and --max-conns: it is a
// server, with the upload of one.
const (
	managedMaxUploads = 64
	managedMaxConns   = 2048
)

type peerFlags struct {
	listen, advertise, player, dataDir string
	keyFile                            string
	edges, trustKeys, prefetch         []string
	upLimit, downLimit, diskBudget     string
	upload                             string
	idleAfter, statusEvery             time.Duration
	idleCPU                            int
	maxUploads, maxConns, maxPeers     int
	managed                            bool
	managedTokenFile                   string
	mode, streamBitrate, fastStart     string
}

func newPeerCmd(g *globalFlags) *cobra.Command {
	var pf peerFlags
	cmd := &cobra.Command{
		Use:   "peer --edge URL --listen ADDR --data-dir DIR",
		Short: "Run a peer agent: download from the edge and peers, serve chunks onward",
		Long: "peer registers with --edge, downloads objects in parallel from the edge and from the\n" +
			"peers the edge hands out, verifies every chunk against the signed manifest, stores\n" +
			"chunks under --data-dir and serves them to other peers on --listen.\n" +
			"The peer's identity is the ed25519 key in --key-file (created if absent): the edge\n" +
			"names the peer after it and issues the tickets other peers ask for before serving it.\n\n" +
			"Players and browsers use the local endpoint on --player-listen:\n" +
			"  curl http://127.0.0.1:7070/content/videos/a.mp4   (Range and seeking work)\n" +
			"which streams the object in order while it downloads; GET /status there reports the\n" +
			"agent's caps and usage as JSON.\n\n" +
			"Caps and consent: --upload-limit caps upload to other peers, --max-uploads,\n" +
			"--max-conns and --max-peers cap connections, --disk-budget bounds the chunks kept\n" +
			"(least recently used versions are evicted, never a chunk being played or served),\n" +
			"--upload off never uploads and --upload idle uploads only while the user is idle.\n\n" +
			"--mode stream schedules for playback: the chunks just ahead of each player come in\n" +
			"order, before their deadlines at --stream-bitrate; the edge sends the first chunks\n" +
			"and any about to be late, peers the rest (see also `edgeswarm play`).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			if pf.managed && !cmd.Flags().Changed("max-uploads") {
				pf.maxUploads = managedMaxUploads
			}
			if pf.managed && !cmd.Flags().Changed("max-conns") {
				pf.maxConns = managedMaxConns
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
	f.StringVar(&pf.keyFile, "key-file", "", "ed25519 identity key file (default DATA-DIR/peer.key; created with mode 0600 if absent)")
	f.StringArrayVar(&pf.trustKeys, "trust-key", nil, "edge-tier public key (hex or file) to verify manifests; repeatable (default: fetch from the edge)")
	f.StringArrayVar(&pf.prefetch, "prefetch", nil, "object path to download at start, e.g. /videos/a.mp4; repeatable")
	f.StringVar(&pf.upLimit, "upload-limit", "0", "cap on chunk upload to other peers, all uploads together, e.g. 20Mbit; also advertised to the edge (0 = none)")
	f.StringVar(&pf.downLimit, "download-limit", "0", "cap on download, e.g. 100Mbit (0 = none)")
	f.IntVar(&pf.maxUploads, "max-uploads", 16, "concurrent chunk uploads served; more are refused with 503 (default 64 with --managed)")
	f.IntVar(&pf.maxConns, "max-conns", 256, "open inbound connections to the chunk server; more are closed at once (default 2048 with --managed)")
	f.IntVar(&pf.maxPeers, "max-peers", 50, fmt.Sprintf("peers one download fetches from at most (1 to %d)", wire.MaxHandout))
	f.StringVar(&pf.diskBudget, "disk-budget", "0", "most chunk bytes kept under --data-dir, all objects together, e.g. 10GiB; past it the least recently used objects' chunks are evicted (0 = no bound)")
	f.StringVar(&pf.upload, "upload", "on", "upload to other peers: on, off (leech only) or idle (only while this machine's user is idle)")
	f.DurationVar(&pf.idleAfter, "idle-after", 30*time.Second, "with --upload idle: idle once no player read and no own download for this long")
	f.IntVar(&pf.idleCPU, "idle-cpu", 50, "with --upload idle: idle only while the CPUs are busy less than this percent (Linux; 100 = no CPU check)")
	f.DurationVar(&pf.statusEvery, "status-every", time.Minute, "log a status summary (uploads, caps, disk) this often, and at exit (0 = only at exit)")
	f.BoolVar(&pf.managed, "managed", false, "run as a managed cache (an ISP's or customer's cache): register with the edge's managed-cache token, be handed out first in this network location, and fetch the edge's pre-positioning orders")
	f.StringVar(&pf.mode, "mode", "download", "how downloads are scheduled: download (whole objects as fast as the swarm allows) or stream (players on --player-listen read in order: chunks due soon come first, the edge sends the start-up chunks and those about to miss their deadline)")
	f.StringVar(&pf.fastStart, "fast-start", "auto", "with --mode stream: hand players the edge's bytes of the first chunks as they arrive, before each chunk is verified (verified when whole; a player that got wrong bytes gets an error): on, off, or auto (on when the edge URL is https)")
	f.StringVar(&pf.streamBitrate, "stream-bitrate", "4Mbit", "with --mode stream: the streams' bitrate, from which chunk deadlines follow")
	f.StringVar(&pf.managedTokenFile, "managed-token-file", "", "with --managed: file holding the edge's managed-cache token (default: $EDGESWARM_MANAGED_TOKEN)")
	cmd.MarkFlagRequired("edge")
	cmd.MarkFlagRequired("data-dir")
	return cmd
}

// peerConfig checks the caps and consent flags and builds the agent's
// config from them (all but the addresses and keys), and the link that
// shapes downloads. Upload is capped by the agent itself (UploadLimitBps),
// so the link leaves it alone: shaping it twice would cost throughput.
func peerConfig(pf peerFlags) (peer.Config, netem.Link, int64, error) {
	var cfg peer.Config
	upBps, link, err := peerLink(pf.upLimit, pf.downLimit)
	if err != nil {
		return cfg, netem.Link{}, 0, err
	}
	budget, err := units.ParseBytes(pf.diskBudget)
	if err != nil {
		return cfg, netem.Link{}, 0, fmt.Errorf("--disk-budget: %w", err)
	}
	mode, err := peer.ParseUploadMode(pf.upload)
	if err != nil {
		return cfg, netem.Link{}, 0, fmt.Errorf("--upload: %w", err)
	}
	for _, c := range []struct {
		flag string
		v    int
	}{{"--max-uploads", pf.maxUploads}, {"--max-conns", pf.maxConns}, {"--max-peers", pf.maxPeers}} {
		if c.v < 1 {
			return cfg, netem.Link{}, 0, fmt.Errorf("%s %d: want at least 1", c.flag, c.v)
		}
	}
	if pf.maxPeers > wire.MaxHandout {
		return cfg, netem.Link{}, 0, fmt.Errorf("--max-peers %d: at most %d (the largest hand-out an edge gives)", pf.maxPeers, wire.MaxHandout)
	}
	if pf.idleAfter < time.Second {
		return cfg, netem.Link{}, 0, fmt.Errorf("--idle-after %v: want at least 1s", pf.idleAfter)
	}
	if pf.idleCPU < 1 || pf.idleCPU > 100 {
		return cfg, netem.Link{}, 0, fmt.Errorf("--idle-cpu %d: want a percent from 1 to 100", pf.idleCPU)
	}
	if pf.statusEvery < 0 {
		return cfg, netem.Link{}, 0, fmt.Errorf("--status-every %v: want 0 or more", pf.statusEvery)
	}
	switch pf.fastStart {
	case "", peer.FastStartAuto, peer.FastStartOn, peer.FastStartOff:
	default:
		return cfg, netem.Link{}, 0, fmt.Errorf("--fast-start %q: want auto, on or off", pf.fastStart)
	}
	dlMode, err := peer.ParseMode(pf.mode)
	if err != nil {
		return cfg, netem.Link{}, 0, fmt.Errorf("--mode: %w", err)
	}
	var streamBps int64
	if pf.streamBitrate != "" {
		if streamBps, err = streamRate(pf.streamBitrate); err != nil {
			return cfg, netem.Link{}, 0, err
		}
	}
	cfg = peer.Config{
		Mode:           dlMode,
		FastStart:      pf.fastStart,
		StreamRateBps:  streamBps,
		UploadLimitBps: upBps,
		MaxUploads:     pf.maxUploads,
		MaxConns:       pf.maxConns,
		MaxPeers:       pf.maxPeers,
		Upload:         mode,
		IdleAfterMs:    int(pf.idleAfter / time.Millisecond),
		IdleCPUPercent: pf.idleCPU,
	}
	return cfg, link, budget, nil
}

// streamRate parses --stream-bitrate into bytes/s.
func streamRate(v string) (int64, error) {
	r, err := units.ParseRate(v)
	if err != nil {
		return 0, fmt.Errorf("--stream-bitrate: %w", err)
	}
	if r < 8000 || r > 100e9 {
		return 0, fmt.Errorf("--stream-bitrate %s: want 8kbit to 100Gbit", v)
	}
	return int64(r / 8), nil
}

// peerLink parses --upload-limit and --download-limit: the upload cap in
// bytes/s, which the agent enforces (Config.UploadLimitBps), and a link
// that shapes downloads.
func peerLink(up, down string) (int64, netem.Link, error) {
	u, err := units.ParseRate(up)
	if err != nil {
		return 0, netem.Link{}, fmt.Errorf("--upload-limit: %w", err)
	}
	if u > 0 && u < 8 {
		return 0, netem.Link{}, fmt.Errorf("--upload-limit %s: below 8 bit/s", up)
	}
	d, err := units.ParseRate(down)
	if err != nil {
		return 0, netem.Link{}, fmt.Errorf("--download-limit: %w", err)
	}
	return int64(u / 8), netem.NewLink(0, d), nil
}

// logPeerStatus logs the agent's caps and usage in one line.
func logPeerStatus(log *slog.Logger, msg string, st peer.AgentStats) {
	attrs := []any{
		"upload_mode", st.UploadMode, "offering", st.Offering,
		"uploaded", units.Bytes(st.UploadedBytes), "uploaded_chunks", st.UploadedChunks,
		"upload_rate", units.Bytes(int64(st.UploadRateBps)) + "/s", "upload_limit", units.Bytes(st.UploadLimitBps) + "/s",
		"refused", st.Refused, "inbound_conns", st.InboundConns, "conns_refused", st.ConnsRefused,
		"disk_used", units.Bytes(st.Disk.UsedBytes), "disk_budget", units.Bytes(st.Disk.BudgetBytes),
		"evicted_chunks", st.Disk.EvictedChunks, "downloads", st.Downloads,
	}
	if st.Idle != nil {
		attrs = append(attrs, "idle", st.Idle.Idle, "idle_reason", st.Idle.Reason)
	}
	log.Info(msg, attrs...)
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
	cfg, link, budget, err := peerConfig(pf)
	if err != nil {
		return err
	}
	keyPath := pf.keyFile
	if keyPath == "" {
		keyPath = filepath.Join(pf.dataDir, "peer.key")
	}
	identity, err := keyfile.LoadOrCreate(keyPath)
	if err != nil {
		return fmt.Errorf("--key-file: %w", err)
	}
	store, err := chunkstore.NewDisk(pf.dataDir, chunkstore.WithBudget(budget))
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
	var managedTok string
	if pf.managed {
		if managedTok, err = managedToken(pf.managedTokenFile); err != nil {
			ln.Close()
			return err
		}
		if managedTok == "" {
			ln.Close()
			return errors.New("--managed needs the edge's managed-cache token: --managed-token-file FILE or $EDGESWARM_MANAGED_TOKEN")
		}
	}
	cfg.Edge, cfg.Fallbacks, cfg.Advertise, cfg.Keys = pf.edges[0], pf.edges[1:], adv, ring
	cfg.Identity, cfg.Managed, cfg.ManagedToken = identity, pf.managed, managedTok
	a, err := peer.New(cfg, peer.Deps{Store: store, HTTP: peerHTTPClient(link), Logger: log})
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
	go func() {
		// Register now, so that a player's first request does not wait for
		// it; a failure here is retried by the first download.
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := a.Register(rctx); err != nil && ctx.Err() == nil {
			log.Warn("could not register with the edge yet; the first download will retry", "err", err)
		}
	}()
	for _, p := range pf.prefetch {
		if _, err := a.Download(ctx, p); err != nil {
			log.Error("prefetch", "object", p, "err", err)
		}
	}
	if pf.managed {
		go func() {
			if err := a.RunOrders(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("pre-positioning orders", "err", err)
			}
		}()
	}
	log.Info("peer serving", "addr", ln.Addr().String(), "advertise", adv, "edges", pf.edges, "peer_id", a.Identity(), "key_file", keyPath,
		"managed", pf.managed, "mode", cfg.Mode, "upload", cfg.Upload, "upload_limit", units.Bytes(cfg.UploadLimitBps)+"/s", "disk_budget", units.Bytes(budget))
	if pf.statusEvery > 0 {
		stopStatus := make(chan struct{})
		defer close(stopStatus)
		go func() {
			t := time.NewTicker(pf.statusEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					logPeerStatus(log, "peer status", a.Stats())
				case <-stopStatus:
					return
				}
			}
		}()
	}
	err = serveUntilDone(ctx, link.Listener(ln), a.Serve, a.Close)
	logPeerStatus(log, "peer final status", a.Stats())
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

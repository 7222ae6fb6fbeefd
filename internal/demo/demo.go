// Package demo runs a whole edgeswarm network in one process on loopback:
// an origin with a generated file, E edges and N peers whose access links
// are emulated with netem, all peers starting at once (a flash crowd),
// optionally with churn (peers killed abruptly while the crowd downloads).
// It reports what `edgeswarm demo` prints: completion times against the
// fluid bound, offload against its physical limit, and integrity.
package demo

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/edge"
	"github.com/edgeswarm/edgeswarm/internal/fluid"
	"github.com/edgeswarm/edgeswarm/internal/netem"
	"github.com/edgeswarm/edgeswarm/internal/netmap"
	"github.com/edgeswarm/edgeswarm/internal/origin"
	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/playback"
)

// Config describes one demo run. Rates are in bit/s.
type Config struct {
	Peers     int     // 0 means 20
	Size      int64   // object size in bytes; 0 means 64 MiB
	Edges     int     // 0 means 1
	EdgeUp    float64 // edge upload; 0 means 100 Mbit/s
	PeerUp    float64 // peer upload; 0 means 20 Mbit/s
	PeerDown  float64 // peer download; 0 means 100 Mbit/s
	ChunkSize int     // 0 means core.ChooseChunkSize
	BadPeers  int     // peers that flip a bit in every chunk they serve
	// PIDs splits the peers over this many network locations (peer i in
	// location i mod PIDs, each its own loopback address under the edges'
	// network map); 0 or 1 means one location and no map.
	PIDs int
	// CrossPID is the edges' cross_pid policy: "allow" ("" too), "deny" or
	// "managed-only".
	CrossPID string
	// Managed starts this many managed caches before the crowd (cache j in
	// location j mod PIDs), which the edges order to fetch the object
	// (pre-positioning); ManagedUp is their link rate both ways, 0 meaning
	// 200 Mbit/s.
	Managed   int
	ManagedUp float64
	Seed      uint64 // content and scheduling randomness; 0 means 1
	// Dir holds the origin file, caches and peer stores; "" means a
	// temporary directory removed at the end.
	Dir string
	// MemoryStore keeps peer chunks in memory instead of on disk.
	MemoryStore bool
	// Churn is the fraction of the peers killed during the crowd, in [0, 1):
	// a killed peer's agent and chunk server vanish from the network at
	// once (connections reset, port closed), without leaving the swarm,
	// and do not come back. Without ChurnEvery the victims are drawn at
	// random (Seed) and each dies at a random moment between 5 % and 80 %
	// of the fluid bound T*. Results are the survivors'.
	Churn float64
	// ChurnEvery > 0 kills, every ChurnEvery, Churn of the peers still
	// alive (drawn at random, downloading or seeding, never the last one)
	// until every survivor has the file.
	ChurnEvery time.Duration
	// Stream > 0 makes the peers viewers of a stream of this bitrate
	// (bit/s): each plays the object through its agent in stream mode
	// (peer.ModeStream) with a player emulator (playback), joining
	// StreamJoinEvery after the previous one (0 means 1 s); the result
	// reports time to first byte, start-up and rebuffering, and a
	// CDN-only player's time to first byte on the idle edge.
	Stream          float64
	StreamJoinEvery time.Duration
	// FastStart is the viewers' agents' peer.Config.FastStart ("" auto:
	// off on the demo's plain-HTTP edges).
	FastStart string
	// Timeout bounds the whole run; 0 means 10 minutes.
	Timeout time.Duration
	// Progress, if set, is called about twice a second while peers download.
	Progress func(Progress)
}

func (c Config) applyDefaults() Config {
	if c.Peers == 0 {
		c.Peers = 20
	}
	if c.Size == 0 {
		c.Size = 64 << 20
	}
	if c.Edges == 0 {
		c.Edges = 1
	}
	if c.EdgeUp == 0 {
		c.EdgeUp = 100e6
	}
	if c.PeerUp == 0 {
		c.PeerUp = 20e6
	}
	if c.PeerDown == 0 {
		c.PeerDown = 100e6
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.ManagedUp == 0 {
		c.ManagedUp = 200e6
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.StreamJoinEvery == 0 {
		c.StreamJoinEvery = time.Second
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Peers < 1 || c.Peers > 500:
		return fmt.Errorf("peers %d: want 1..500 in one process", c.Peers)
	case c.Edges < 1 || c.Edges > 16:
		return fmt.Errorf("edges %d: want 1..16", c.Edges)
	case c.Size < 1 || c.Size > 16<<30:
		return fmt.Errorf("size %d: want 1 B..16 GiB", c.Size)
	case c.BadPeers < 0 || c.BadPeers >= c.Peers:
		return fmt.Errorf("bad peers %d: want 0..peers-1", c.BadPeers)
	case c.ChunkSize != 0 && !core.ValidChunkSize(c.ChunkSize):
		return fmt.Errorf("chunk size %d: want a power of two in [%d, %d]", c.ChunkSize, core.MinChunkSize, core.MaxChunkSize)
	case c.EdgeUp < 0 || c.PeerUp < 0 || c.PeerDown < 0:
		return errors.New("rates must not be negative")
	case c.PIDs < 0 || c.PIDs > 200:
		return fmt.Errorf("pids %d: want 0..200 (one loopback address each)", c.PIDs)
	case c.CrossPID != "" && c.CrossPID != edge.CrossPIDAllow && c.CrossPID != edge.CrossPIDDeny && c.CrossPID != edge.CrossPIDManagedOnly:
		return fmt.Errorf("cross-pid %q: want %q, %q or %q", c.CrossPID, edge.CrossPIDAllow, edge.CrossPIDDeny, edge.CrossPIDManagedOnly)
	case c.Managed < 0 || c.Managed > 50:
		return fmt.Errorf("managed %d: want 0..50", c.Managed)
	case c.ManagedUp < 0:
		return errors.New("rates must not be negative")
	case !(c.Churn >= 0 && c.Churn < 1): // NaN fails too
		return fmt.Errorf("churn %v: want a fraction of the peers in [0, 1) (one must survive)", c.Churn)
	case c.ChurnEvery < 0:
		return fmt.Errorf("churn-every %v: must not be negative", c.ChurnEvery)
	case c.ChurnEvery > 0 && c.Churn == 0:
		return errors.New("churn-every needs a churn fraction above 0")
	case !(c.Stream == 0 || c.Stream >= 8000 && c.Stream <= 100e9):
		return fmt.Errorf("stream bitrate %v bit/s: want 8 kbit/s to 100 Gbit/s", c.Stream)
	case c.StreamJoinEvery < 0:
		return fmt.Errorf("stream join interval %v: must not be negative", c.StreamJoinEvery)
	}
	return nil
}

// Progress is a snapshot while the crowd downloads.
type Progress struct {
	Elapsed       time.Duration
	Done, Peers   int // Peers counts the living
	Killed        int
	BytesEdge     int64
	BytesPeers    int64
	BytesTotal    int64 // N × object size
	CorruptChunks int
}

// Stats summarises a distribution of seconds.
type Stats struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

// Result is the demo's report; its JSON is what `edgeswarm demo --json` prints.
type Result struct {
	Peers          int     `json:"peers"`
	Edges          int     `json:"edges"`
	BadPeers       int     `json:"bad_peers"`
	FileBytes      int64   `json:"file_bytes"`
	ChunkSize      int     `json:"chunk_size"`
	EdgeUpMbit     float64 `json:"edge_up_mbit"`
	PeerUpMbit     float64 `json:"peer_up_mbit"`
	PeerDownMbit   float64 `json:"peer_down_mbit"`
	BytesFromEdge  int64   `json:"bytes_from_edge"`
	BytesFromPeers int64   `json:"bytes_from_peers"`
	// Managed caches (Config.Managed): how many, the bytes the crowd got
	// from them, and how long pre-positioning took before the crowd.
	Managed               int     `json:"managed"`
	BytesFromManaged      int64   `json:"bytes_from_managed"`
	PrePositionS          float64 `json:"preposition_s"`
	Offload               float64 `json:"offload"`
	OffloadLimit          float64 `json:"offload_limit"`
	Completion            Stats   `json:"completion_s"`
	FluidBound            float64 `json:"fluid_bound_s"`
	RatioToBound          float64 `json:"ratio_to_bound"`
	SHA256Match           bool    `json:"sha256_match"`
	OriginFetches         int64   `json:"origin_fetches"`
	CorruptChunksDetected int     `json:"corrupt_chunks_detected"`
	PeersBanned           int     `json:"peers_banned"`
	BadPeersBanned        int     `json:"bad_peers_banned"`
	HonestPeersBanned     int     `json:"honest_peers_banned"`
	BadChunksServedHonest int64   `json:"bad_chunks_served_by_honest_peers"`
	ChunksServedChecked   int64   `json:"chunks_served_checked"`
	BadChunksStored       int64   `json:"bad_chunks_stored"`
	ChunksStoredChecked   int64   `json:"chunks_stored_checked"`
	// Network locations (Config.PIDs): peer bytes between peers in
	// different locations, and the share of peer bytes that stayed in one.
	PIDs          int     `json:"pids"`
	CrossPID      string  `json:"cross_pid"`
	CrossPIDBytes int64   `json:"cross_pid_bytes"`
	SamePIDShare  float64 `json:"same_pid_peer_share"`
	// Churn (Config.Churn): peers killed, how many of them had the whole
	// file by then, and the survivors, whose downloads every other figure
	// describes (bytes, times, integrity). SourcesDemoted counts the
	// sources survivors stopped asking because they refused connections or
	// kept failing (a dead peer is demoted at its first refused connection).
	Churn          float64 `json:"churn"`
	ChurnEveryS    float64 `json:"churn_every_s"`
	Churned        int     `json:"churned"`
	ChurnedSeeders int     `json:"churned_after_completing"`
	Survivors      int     `json:"survivors"`
	SourcesDemoted int     `json:"sources_demoted"`
	// EdgeUsage is the edges' own account of the delivery (their GET /usage
	// totals): bytes they sent, and the peer bytes peers reported to them.
	EdgeUsage edge.UsageTotals `json:"edge_usage"`
	// Streaming (Config.Stream): the bitrate, the viewers' join interval,
	// their time to first byte and start-up (from pressing play, the
	// agent already registered), and rebuffering: the stall time of all
	// viewers over their play plus stall time. EdgeOnlyTTFB is a plain
	// HTTP player's time to first byte from the idle edge, over the same
	// emulated link; TTFBRatio is the viewers' median over it.
	StreamMbit      float64    `json:"stream_mbit,omitempty"`
	FastStart       string     `json:"fast_start,omitempty"`
	StreamJoinS     float64    `json:"stream_join_every_s,omitempty"`
	TTFB            *Quantiles `json:"ttfb_s,omitempty"`
	Startup         *Quantiles `json:"startup_s,omitempty"`
	RebufferRatio   float64    `json:"rebuffer_ratio"`
	Stalls          int        `json:"stalls"`
	EdgeRescues     int        `json:"edge_rescues"`
	EdgeOnlyTTFB    float64    `json:"edge_only_ttfb_s,omitempty"`
	EdgeOnlyStartup float64    `json:"edge_only_startup_s,omitempty"`
	TTFBRatio       float64    `json:"ttfb_ratio_to_edge_only,omitempty"`
	WallS           float64    `json:"wall_s"`
}

// Quantiles summarises a distribution of seconds by its median and 95th
// percentile.
type Quantiles struct {
	Median float64 `json:"median"`
	P95    float64 `json:"p95"`
}

type node struct {
	agent   *peer.Agent
	id      int
	pid     int // network location (Config.PIDs)
	bad     bool
	checker *servedChecker // nil for bad peers
	audit   *auditStore
	plug    *netem.Plug // the node's network attachment: Pull kills it
	ctx     context.Context
	cancel  context.CancelFunc // ends the node's wait when it is killed
	dl      atomic.Pointer[peer.Download]
	err     error           // written by the node's goroutine; read after it ends
	killed  bool            // owned by Run's goroutine
	play    playback.Result // stream mode: what the node's player measured
	joined  time.Time       // stream mode: when it pressed play
}

// Run builds the network, runs the flash crowd and tears everything down.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (res Result, err error) {
	cfg = cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return res, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	wallStart := time.Now()

	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "edgeswarm-demo-"); err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
	}
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	// Origin with a generated file.
	const objectURL = "/files/demo.bin"
	sum, err := writeObject(filepath.Join(dir, "origin", "files", "demo.bin"), cfg.Size, cfg.Seed)
	if err != nil {
		return res, err
	}
	org, err := origin.New(origin.Config{Dir: filepath.Join(dir, "origin")}, log.With("role", "origin"))
	if err != nil {
		return res, err
	}
	originURL, err := serve(org.Serve, netem.Link{})
	if err != nil {
		return res, err
	}
	closers = append(closers, org.Close)

	// Edges share the tier's signing key.
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return res, err
	}
	ring := core.NewKeyRing(key.Public().(ed25519.PublicKey))
	token := managedToken()
	nm, err := demoNetworkMap(cfg.PIDs)
	if err != nil {
		return res, err
	}
	edgeURLs := make([]string, cfg.Edges)
	edges := make([]*edge.Server, cfg.Edges)
	for i := range edges {
		e, err := edge.New(edge.Config{
			Origin:             originURL,
			CacheDir:           filepath.Join(dir, fmt.Sprintf("edge-%d", i)),
			CacheSize:          max(4*cfg.Size, 1<<30),
			ChunkSize:          cfg.ChunkSize,
			SigningKey:         key,
			NetworkMap:         nm,
			CrossPID:           cfg.CrossPID,
			ManagedToken:       token,
			OrdersPollInterval: 100 * time.Millisecond,
		}, edge.Deps{Logger: log.With("role", "edge", "node", i), Rand: mrand.New(mrand.NewPCG(cfg.Seed, uint64(i)))})
		if err != nil {
			return res, fmt.Errorf("edge %d: %w", i, err)
		}
		closers = append(closers, e.Close)
		edges[i] = e
		if edgeURLs[i], err = serve(e.Serve, netem.NewLink(cfg.EdgeUp, 0)); err != nil {
			return res, err
		}
	}

	// Managed caches hold the object before the crowd starts.
	prepos, cachePIDs, err := startManaged(ctx, cfg, dir, token, objectURL, edges, edgeURLs, ring, log, &closers)
	if err != nil {
		return res, err
	}

	// Peers: the first BadPeers corrupt what they serve.
	nodes := make([]*node, cfg.Peers)
	for i := range nodes {
		n := &node{id: i, bad: i < cfg.BadPeers, plug: &netem.Plug{}}
		n.ctx, n.cancel = context.WithCancel(ctx)
		defer n.cancel()
		link := netem.NewLink(cfg.PeerUp, cfg.PeerDown)
		hc := &http.Client{Transport: &http.Transport{
			DialContext:         link.DialContext(n.plug.DialContext(nil)),
			MaxIdleConnsPerHost: 16,
			MaxConnsPerHost:     32,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		}}
		var store chunkstore.Store
		if cfg.MemoryStore {
			store = chunkstore.NewMemory()
		} else if store, err = chunkstore.NewDisk(filepath.Join(dir, fmt.Sprintf("peer-%d", i))); err != nil {
			return res, err
		}
		n.audit = &auditStore{Store: store}
		n.pid = pidOf(i, cfg.PIDs)
		ln, err := net.Listen("tcp", pidAddr(n.pid)+":0")
		if err != nil {
			return res, err
		}
		pcfg := peer.Config{
			Edge:      edgeURLs[i%cfg.Edges],
			Advertise: ln.Addr().String(),
			Name:      fmt.Sprintf("peer-%d", i),
			Keys:      ring,
			UploadBps: int64(cfg.PeerUp / 8),
		}
		if cfg.Stream > 0 {
			pcfg.Mode, pcfg.StreamRateBps, pcfg.FastStart = peer.ModeStream, int64(cfg.Stream/8), cfg.FastStart
		}
		a, err := peer.New(pcfg, peer.Deps{
			Store:  n.audit,
			HTTP:   hc,
			Logger: log.With("role", "peer", "node", i),
			Rand:   mrand.New(mrand.NewPCG(cfg.Seed, 1000+uint64(i))),
		})
		if err != nil {
			ln.Close()
			return res, fmt.Errorf("peer %d: %w", i, err)
		}
		n.agent = a
		closers = append(closers, func() error { a.Close(); hc.CloseIdleConnections(); return store.Close() })
		h := a.Handler()
		if n.bad {
			h = corruptChunks(h)
		} else {
			n.checker = &servedChecker{next: h}
			h = n.checker
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(n.plug.Listener(link.Listener(ln)))
		closers = append(closers, srv.Close)
		nodes[i] = n
	}

	if cfg.Stream > 0 {
		// Viewers' agents are daemons, registered before anyone presses play.
		for _, n := range nodes {
			if err := n.agent.Register(ctx); err != nil {
				return res, fmt.Errorf("peer %d: %w", n.id, err)
			}
		}
	}

	// The flash crowd: every peer asks at once (or, streaming, viewers
	// join one after another).
	start := time.Now()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cfg.Stream > 0 {
				n.err = watch(n, start.Add(time.Duration(n.id)*cfg.StreamJoinEvery), objectURL, cfg)
				return
			}
			dl, err := n.agent.Download(n.ctx, objectURL)
			if err == nil {
				n.dl.Store(dl)
				err = dl.Wait(n.ctx)
			}
			n.err = err
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	horizon := time.Duration(fluid.Bound(cfg.Peers, cfg.Size, cfg.EdgeUp*float64(cfg.Edges), cfg.PeerUp, cfg.PeerDown) * float64(time.Second))
	ch := newChurner(cfg, len(nodes), horizon)
	churnTimer := time.NewTimer(ch.next())
	defer churnTimer.Stop()
	var closing sync.WaitGroup // killed agents being closed
	defer closing.Wait()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-ticker.C:
			if cfg.Progress != nil {
				cfg.Progress(progress(nodes, start, cfg))
			}
		case <-churnTimer.C:
			for _, i := range ch.due(time.Since(start), len(nodes), func(i int) bool { return !nodes[i].killed }) {
				n := nodes[i]
				n.killed = true
				if dl := n.dl.Load(); dl != nil && dl.Stats().Complete {
					res.ChurnedSeeders++
				}
				n.plug.Pull() // gone from the network: no leave reaches the edge
				n.cancel()
				closing.Add(1)
				go func() { defer closing.Done(); n.agent.Close() }()
				log.Info("peer killed", "peer", n.id, "after", time.Since(start).Round(time.Millisecond))
			}
			churnTimer.Reset(max(0, ch.next()-time.Since(start)))
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(progress(nodes, start, cfg))
	}
	var alive []*node
	for _, n := range nodes {
		if n.killed {
			res.Churned++
			continue
		}
		if n.err != nil {
			return res, fmt.Errorf("peer %d: %w", n.id, n.err)
		}
		alive = append(alive, n)
	}

	// Integrity: every survivor's bytes equal the origin's.
	res.SHA256Match = true
	for _, n := range alive {
		h := sha256.New()
		if _, err := io.Copy(h, n.dl.Load().NewReader(ctx)); err != nil {
			return res, fmt.Errorf("peer %d: read back: %w", n.id, err)
		}
		if [32]byte(h.Sum(nil)) != sum {
			res.SHA256Match = false
			log.Error("peer bytes differ from the origin's", "peer", n.id)
		}
	}

	// Figures.
	banned := map[string]bool{}
	var times []float64
	for _, n := range nodes {
		res.BadChunksStored += n.audit.bad.Load()
		res.ChunksStoredChecked += n.audit.checked.Load()
		dl := n.dl.Load()
		if n.checker != nil && dl != nil {
			bad, checked := n.checker.badServed(dl.Manifest())
			res.BadChunksServedHonest += bad
			res.ChunksServedChecked += checked
		}
		if n.killed || dl == nil {
			continue
		}
		st := dl.Stats()
		res.BytesFromEdge += st.Bytes[peer.KindEdge]
		res.BytesFromPeers += st.Bytes[peer.KindPeer]
		res.BytesFromManaged += st.Bytes[peer.KindCache]
		res.CorruptChunksDetected += st.CorruptChunks
		res.SourcesDemoted += st.Demotions
		for _, id := range st.Banned {
			banned[id] = true
		}
		if cfg.Stream > 0 {
			times = append(times, st.Finished.Sub(n.joined).Seconds())
			res.EdgeRescues += st.EdgeRescues
		} else {
			times = append(times, st.Finished.Sub(start).Seconds())
		}
	}
	for _, n := range nodes {
		if banned[n.agent.PeerID()] {
			if n.bad {
				res.BadPeersBanned++
			} else {
				res.HonestPeersBanned++
			}
		}
	}
	res.PIDs, res.CrossPID = max(cfg.PIDs, 1), cmp.Or(cfg.CrossPID, edge.CrossPIDAllow)
	res.CrossPIDBytes, res.SamePIDShare = crossPID(nodes, alive, cachePIDs)
	sort.Float64s(times)
	res.Peers, res.Edges, res.BadPeers, res.FileBytes = cfg.Peers, cfg.Edges, cfg.BadPeers, cfg.Size
	res.Churn, res.ChurnEveryS, res.Survivors = cfg.Churn, cfg.ChurnEvery.Seconds(), len(alive)
	res.ChunkSize = alive[0].dl.Load().Manifest().ChunkSize
	res.EdgeUpMbit, res.PeerUpMbit, res.PeerDownMbit = cfg.EdgeUp/1e6, cfg.PeerUp/1e6, cfg.PeerDown/1e6
	if total := res.BytesFromEdge + res.BytesFromPeers + res.BytesFromManaged; total > 0 {
		res.Offload = float64(res.BytesFromPeers+res.BytesFromManaged) / float64(total)
	}
	res.Managed, res.PrePositionS = cfg.Managed, prepos.Seconds()
	res.Completion = Stats{Min: times[0], Median: median(times), Max: times[len(times)-1]}
	// The edge tier's capacity is every edge's uplink together, and the
	// managed caches' (they hold the whole object from the start).
	edgeTier := cfg.EdgeUp*float64(cfg.Edges) + cfg.ManagedUp*float64(cfg.Managed)
	res.FluidBound = fluid.Bound(cfg.Peers, cfg.Size, edgeTier, cfg.PeerUp, cfg.PeerDown)
	res.OffloadLimit = fluid.OffloadLimit(cfg.Peers, cfg.Size, edgeTier, res.FluidBound)
	if res.FluidBound > 0 {
		res.RatioToBound = res.Completion.Max / res.FluidBound
	}
	if cfg.Stream > 0 {
		// Viewers play at the stream's rate: the flash-crowd bound does not apply.
		res.FluidBound, res.RatioToBound, res.OffloadLimit = 0, 0, 0
		if err := streamFigures(ctx, &res, cfg, alive, edgeURLs[0]+objectURL); err != nil {
			return res, err
		}
	}
	// Peers report the last bytes they received when they leave; then the
	// edges' usage is complete.
	var leave sync.WaitGroup
	for _, n := range nodes {
		leave.Add(1)
		go func() { defer leave.Done(); n.agent.Close() }()
	}
	leave.Wait()
	for _, e := range edges {
		t := e.Usage("").Total
		res.EdgeUsage.EdgeBytes += t.EdgeBytes
		res.EdgeUsage.CacheBytes += t.CacheBytes
		res.EdgeUsage.PeerBytes += t.PeerBytes
		res.EdgeUsage.CrossPIDBytes += t.CrossPIDBytes
	}
	if all := res.EdgeUsage.EdgeBytes + res.EdgeUsage.CacheBytes + res.EdgeUsage.PeerBytes; all > 0 {
		res.EdgeUsage.Offload = float64(res.EdgeUsage.CacheBytes+res.EdgeUsage.PeerBytes) / float64(all)
	}
	res.OriginFetches = org.Stats().Fetches
	res.PeersBanned = len(banned)
	for _, e := range edges {
		res.PeersBanned = max(res.PeersBanned, e.Stats().PeersBanned)
	}
	res.WallS = time.Since(wallStart).Seconds()
	return res, nil
}

func progress(nodes []*node, start time.Time, cfg Config) Progress {
	p := Progress{Elapsed: time.Since(start)}
	for _, n := range nodes {
		if n.killed {
			p.Killed++
			continue
		}
		p.Peers++
		p.BytesTotal += cfg.Size
		dl := n.dl.Load()
		if dl == nil {
			continue
		}
		st := dl.Stats()
		p.BytesEdge += st.Bytes[peer.KindEdge]
		p.BytesPeers += st.Bytes[peer.KindPeer]
		p.CorruptChunks += st.CorruptChunks
		if st.Complete {
			p.Done++
		}
	}
	return p
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// serve starts serveFn on a fresh loopback listener shaped by link and
// returns its base URL.
func serve(serveFn func(net.Listener) error, link netem.Link) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go serveFn(link.Listener(ln))
	return "http://" + ln.Addr().String(), nil
}

// writeObject writes size deterministic pseudo-random bytes and returns their SHA-256.
func writeObject(path string, size int64, seed uint64) ([32]byte, error) {
	var sum [32]byte
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return sum, err
	}
	f, err := os.Create(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	h := sha256.New()
	w := io.MultiWriter(f, h)
	if _, err := io.CopyN(w, mrand.NewChaCha8(s), size); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, f.Close()
}

// pidOf is peer i's location among k.
func pidOf(i, k int) int {
	if k <= 1 {
		return 0
	}
	return i % k
}

// pidAddr is the loopback address of location pid: 127.0.1.(pid+1), so
// that the edges (on 127.0.0.1) are in none of them.
func pidAddr(pid int) string { return fmt.Sprintf("127.0.1.%d", pid+1) }

// demoNetworkMap places location i at pidAddr(i), every pair of
// locations at cost 10; nil for one location.
func demoNetworkMap(k int) (*netmap.Map, error) {
	if k <= 1 {
		return nil, nil
	}
	var b strings.Builder
	b.WriteString("pids:\n")
	for i := range k {
		fmt.Fprintf(&b, "  pid-%d: [%s/32]\n", i, pidAddr(i))
	}
	b.WriteString("default_cost: 10\n")
	return netmap.Parse([]byte(b.String()))
}

// crossPID sums the peer and managed-cache bytes each receiver (of nodes)
// got from another location, and the share of those bytes that came from
// its own; caches maps the managed caches' peer IDs to their locations.
func crossPID(nodes, receivers []*node, caches map[string]int) (cross int64, sameShare float64) {
	pidByID := map[string]int{}
	for id, pid := range caches {
		pidByID[id] = pid
	}
	for _, n := range nodes {
		pidByID[n.agent.PeerID()] = n.pid
	}
	var same int64
	for _, n := range receivers {
		for _, src := range n.dl.Load().Stats().Sources {
			if src.Kind == peer.KindEdge {
				continue
			}
			if p, ok := pidByID[src.ID]; ok && p == n.pid {
				same += src.Bytes
			} else {
				cross += src.Bytes
			}
		}
	}
	if same+cross > 0 {
		sameShare = float64(same) / float64(same+cross)
	}
	return cross, sameShare
}

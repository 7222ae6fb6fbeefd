// Package peer is the edgeswarm peer agent: it downloads objects in parallel
// from the edge and from other peers, verifies every chunk against the
// edge-signed manifest, keeps what it holds in a chunkstore, serves verified
// chunks to other peers (Handler, Serve) and streams objects in order to
// local players while they download (PlayerHandler).
//
// Each download runs one event loop (scheduler.go) that owns its state and
// hands work to Sources (source.go) through a pure ChunkPolicy (policy.go).
package peer

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/cpustat"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// ErrClosed is returned by an Agent (and its downloads) after Close.
var ErrClosed = errors.New("peer: agent closed")

// Agent is one peer: its session with the edge, its downloads (which keep
// seeding once complete) and its chunk server.
type Agent struct {
	cfg      Config
	store    chunkstore.Store
	ownStore bool // the agent made store and closes it
	hc       *http.Client
	ownHC    bool
	edge     *wire.EdgeClient   // the home edge: keys, registration, announces, reports
	edges    []*wire.EdgeClient // the home edge then Config.Fallbacks: manifests
	edgeSrcs []Source           // edge chunk sources, parallel to edges
	log      *slog.Logger
	now      func() time.Time
	policy   ChunkPolicy
	// fastStart: stream-mode readers may play start-up chunks from the
	// edge before they are verified (Config.FastStart).
	fastStart bool

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the agent starts; Add only under mu while !closed, or from a counted goroutine

	uploads     chan struct{} // upload slots; never closed
	upBytes     atomic.Int64
	upChunks    atomic.Int64
	upBusy      atomic.Int64
	upUnauth    atomic.Int64   // chunk requests refused 401
	upForbidden atomic.Int64   // chunk requests refused 403 (revoked peers)
	upLimit     *uploadLimiter // nil: no upload cap
	upRate      rateMeter
	idle        *idleGate     // nil unless Config.Upload is UploadIdle
	conns       chan struct{} // inbound connection slots of Serve; never closed
	connsOff    atomic.Int64  // inbound connections refused

	refuseMu  sync.Mutex
	refusedBy map[string]int64 // guarded by refuseMu: chunk requests refused, by reason

	identity ed25519.PrivateKey // never changes
	edgeHost string             // the home edge's host, which registrations are signed for

	regMu     sync.Mutex // serializes key fetch and registration
	lastRegMs int64      // guarded by regMu: time of the last signed registration

	clock   func() time.Time // time of day for order windows (Deps.Clock)
	orderMu sync.Mutex
	orders  OrderStats // guarded by orderMu; a managed cache's pre-positioning

	mu      sync.Mutex
	rnd     *mrand.Rand               // guarded by mu
	keys    core.KeyRing              // guarded by mu
	sess    *session                  // guarded by mu; nil until registered
	byURL   map[string]*Download      // guarded by mu: current version of each object URL
	byRoot  map[core.Hash]*Download   // guarded by mu: every live download, served to peers
	flights map[string]*resolveFlight // guarded by mu: manifest fetches in progress
	banned  map[string]bool           // guarded by mu: peer IDs and "addr:"+addr
	servers []*http.Server            // guarded by mu
	closed  bool                      // guarded by mu
	ticket  *heldTicket               // guarded by mu; nil until registered
	renew   bool                      // guarded by mu: a peer refused the ticket
	// revoked maps revoked peer IDs to when the revocation lapses (Unix
	// ms), and revokedAt is the newest revocation time held. Guarded by mu.
	revoked   map[string]int64
	revokedAt int64
	proofs    authCache[madeProof]   // guarded by mu: by peer host
	checked   authCache[checkedAuth] // guarded by mu: by Host and Authorization
	once      sync.Once

	// demoted maps the peers some download demoted (DemoteAfter) to when
	// they may be asked again; at most maxDemoted entries.
	demoted map[string]time.Time // guarded by mu
}

// session is the agent's identity on its edge.
type session struct {
	peerID, token string
	intervalMs    int // the edge's announce interval, 0 if none
}

// resolveFlight coalesces concurrent Download calls for one URL.
type resolveFlight struct {
	done chan struct{} // closed when d/err are set
	d    *Download
	err  error
}

// New returns an agent for cfg. It does no I/O: the agent registers with
// the edge at its first download.
func New(cfg Config, deps Deps) (*Agent, error) {
	for _, e := range append([]string{cfg.Edge}, cfg.Fallbacks...) {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("peer: edge URL %q: want http(s)://host[:port]", e)
		}
	}
	if cfg.Advertise != "" {
		if _, _, err := net.SplitHostPort(cfg.Advertise); err != nil {
			return nil, fmt.Errorf("peer: advertise address %q: %w", cfg.Advertise, err)
		}
	}
	if cfg.Identity != nil && len(cfg.Identity) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("peer: identity key of %d bytes, want an ed25519 private key", len(cfg.Identity))
	}
	if _, err := ParseUploadMode(string(cfg.Upload)); err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	if cfg.UploadLimitBps < 0 || cfg.UploadBps < 0 {
		return nil, fmt.Errorf("peer: upload rate %d or limit %d bytes/s: want ≥ 0", cfg.UploadBps, cfg.UploadLimitBps)
	}
	cfg.Upload, _ = ParseUploadMode(string(cfg.Upload))
	if cfg.Mode != "" {
		if _, err := ParseMode(string(cfg.Mode)); err != nil {
			return nil, fmt.Errorf("peer: %w", err)
		}
	}
	fast, err := fastStartFor(cfg.FastStart, cfg.Edge)
	if err != nil {
		return nil, fmt.Errorf("peer: %w", err)
	}
	if cfg.StreamRateBps < 0 {
		return nil, fmt.Errorf("peer: stream rate %d bytes/s: want ≥ 0", cfg.StreamRateBps)
	}
	cfg = cfg.applyDefaults()
	a := &Agent{
		fastStart: fast && cfg.Mode == ModeStream,
		cfg:       cfg,
		store:     deps.Store,
		hc:        deps.HTTP,
		log:       deps.Logger,
		now:       deps.Now,
		rnd:       deps.Rand,
		policy:    deps.Policy,
		keys:      cfg.Keys,
		uploads:   make(chan struct{}, cfg.MaxUploads),
		conns:     make(chan struct{}, cfg.MaxConns),
		refusedBy: map[string]int64{},
		byURL:     map[string]*Download{},
		byRoot:    map[core.Hash]*Download{},
		flights:   map[string]*resolveFlight{},
		banned:    map[string]bool{},
		revoked:   map[string]int64{},
		demoted:   map[string]time.Time{},
		proofs:    authCache[madeProof]{limit: maxAuthCache},
		checked:   authCache[checkedAuth]{limit: maxAuthCache},
	}
	u, _ := url.Parse(cfg.Edge) // checked above
	a.edgeHost, a.identity = u.Host, cfg.Identity
	if a.identity == nil {
		var err error
		if _, a.identity, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return nil, fmt.Errorf("peer: identity key: %w", err)
		}
	}
	if a.store == nil {
		a.store, a.ownStore = chunkstore.NewMemory(), true
	}
	if a.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 32
		a.hc, a.ownHC = &http.Client{Transport: t}, true
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Name != "" {
		a.log = a.log.With("peer", cfg.Name)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.clock = deps.Clock; a.clock == nil {
		a.clock = a.now
	}
	if a.rnd == nil {
		a.rnd = mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	}
	if a.policy == nil {
		a.policy = DefaultPolicy{}
	}
	a.upLimit = newUploadLimiter(cfg.UploadLimitBps, a.now)
	if cfg.Upload == UploadIdle {
		a.idle = &idleGate{after: ms(cfg.IdleAfterMs), maxBusy: float64(cfg.IdleCPUPercent) / 100, cpu: deps.CPUBusy, now: a.now}
		if a.idle.cpu == nil && runtime.GOOS == "linux" {
			s := &cpustat.Sampler{}
			if _, _, err := s.Busy(); err != nil {
				a.log.Warn("idle-only uploading without the CPU check", "err", err)
			} else {
				a.idle.cpu = func() (float64, bool) { b, ok, _ := s.Busy(); return b, ok }
			}
		}
	}
	for i, e := range append([]string{cfg.Edge}, cfg.Fallbacks...) {
		base := strings.TrimSuffix(e, "/")
		id := "edge"
		if i > 0 {
			id = "edge:" + base
		}
		a.edges = append(a.edges, &wire.EdgeClient{Base: base, HTTP: a.hc})
		a.edgeSrcs = append(a.edgeSrcs, &httpSource{id: id, kind: KindEdge, base: base, hc: a.hc, self: a.PeerID})
	}
	a.edge = a.edges[0]
	a.ctx, a.cancel = context.WithCancel(context.Background())
	return a, nil
}

// PeerID returns the ID the edge gave this peer, or "" before registration.
func (a *Agent) PeerID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess == nil {
		return ""
	}
	return a.sess.peerID
}

// AgentStats counts what the agent served to other peers, and reports its
// caps and how much of them is in use.
type AgentStats struct {
	PeerID         string `json:"peer_id"`
	UploadedBytes  int64  `json:"uploaded_bytes"` // chunk payload bytes served
	UploadedChunks int64  `json:"uploaded_chunks"`
	UploadsRefused int64  `json:"uploads_refused"` // 503s for want of an upload slot
	// UploadsUnauthorized counts chunk requests refused 401 (no ticket, or
	// one that does not verify, has expired or is not the requester's),
	// UploadsForbidden those refused 403 (a revoked peer).
	UploadsUnauthorized int64 `json:"uploads_unauthorized"`
	UploadsForbidden    int64 `json:"uploads_forbidden"`
	// Refused counts refused chunk requests by reason (RefusedSlots,
	// RefusedOff, RefusedNotIdle).
	Refused map[string]int64 `json:"refused"`
	// UploadMode is on, off or idle; Offering says whether chunks are
	// offered to other peers right now (announced and served).
	UploadMode UploadMode `json:"upload_mode"`
	Offering   bool       `json:"offering"`
	// UploadLimitBps is the upload cap (0: none), UploadRateBps the rate
	// uploaded over the last few seconds, both in bytes/s.
	UploadLimitBps int64   `json:"upload_limit_bps"`
	UploadRateBps  float64 `json:"upload_rate_bps"`
	// ActiveUploads is the uploads in progress, MaxUploads their cap.
	ActiveUploads int `json:"active_uploads"`
	MaxUploads    int `json:"max_uploads"`
	// InboundConns is the chunk server's open connections (through Serve),
	// MaxConns their cap, ConnsRefused the connections closed past it.
	InboundConns int   `json:"inbound_conns"`
	MaxConns     int   `json:"max_conns"`
	ConnsRefused int64 `json:"conns_refused"`
	// MaxPeers caps the peer sources of each download.
	MaxPeers int `json:"max_peers"`
	// Downloads counts live object versions (downloading or seeding).
	Downloads int `json:"downloads"`
	// Disk is the chunk store's usage against its budget.
	Disk chunkstore.Usage `json:"disk"`
	// Idle is the idle gate's verdict; nil unless the mode is idle.
	Idle *IdleStatus `json:"idle,omitempty"`
}

// Stats returns the agent's upload counters, caps and usage.
func (a *Agent) Stats() AgentStats {
	st := AgentStats{
		PeerID:         a.PeerID(),
		UploadedBytes:  a.upBytes.Load(),
		UploadedChunks: a.upChunks.Load(),
		UploadsRefused: a.upBusy.Load(),
		Refused:        map[string]int64{},
		UploadMode:     a.cfg.Upload,
		UploadLimitBps: a.cfg.UploadLimitBps,
		UploadRateBps:  a.upRate.rate(a.now()),
		ActiveUploads:  len(a.uploads),
		MaxUploads:     a.cfg.MaxUploads,
		InboundConns:   len(a.conns),
		MaxConns:       a.cfg.MaxConns,
		ConnsRefused:   a.connsOff.Load(),
		MaxPeers:       a.cfg.MaxPeers,
		Disk:           a.store.Usage(),

		UploadsUnauthorized: a.upUnauth.Load(),
		UploadsForbidden:    a.upForbidden.Load(),
	}
	a.refuseMu.Lock()
	for k, v := range a.refusedBy {
		st.Refused[k] = v
	}
	a.refuseMu.Unlock()
	st.Refused[RefusedSlots] = st.UploadsRefused
	switch a.cfg.Upload {
	case UploadOn:
		st.Offering = true
	case UploadIdle:
		is := a.idle.state()
		st.Idle, st.Offering = &is, is.Idle
	}
	a.mu.Lock()
	st.Downloads = len(a.byRoot)
	a.mu.Unlock()
	return st
}

// session returns the agent's registration and trusted keys, fetching keys
// (trust on first use) and registering when needed.
func (a *Agent) session(ctx context.Context) (session, core.KeyRing, error) {
	a.regMu.Lock()
	defer a.regMu.Unlock()
	a.mu.Lock()
	sess, keys := a.sess, a.keys
	a.mu.Unlock()
	if keys == nil {
		k, err := a.edge.Keys(ctx)
		if err != nil {
			return session{}, nil, fmt.Errorf("fetch edge keys: %w", err)
		}
		ids := make([]string, 0, len(k))
		for id := range k {
			ids = append(ids, id)
		}
		a.log.Warn("trusting edge keys on first use; configure keys to pin them", "edge", a.cfg.Edge, "keys", ids)
		keys = k
	}
	if sess == nil {
		addr := a.cfg.Advertise
		if a.cfg.Upload == UploadOff {
			addr = "" // leech only: never handed out
		}
		req := wire.RegisterRequest{Addr: addr, UploadBps: a.cfg.UploadBps, Name: a.cfg.Name,
			Managed: a.cfg.Managed, ManagedToken: a.cfg.ManagedToken}
		a.signRegister(&req)
		r, err := a.edge.Register(ctx, req)
		if err != nil {
			return session{}, nil, fmt.Errorf("register with edge: %w", err)
		}
		if r.PeerID == "" {
			return session{}, nil, errors.New("register with edge: empty peer id")
		}
		sess = &session{peerID: r.PeerID, token: r.Token, intervalMs: r.AnnounceIntervalMs}
		a.log.Info("registered", "peer_id", r.PeerID, "edge", a.cfg.Edge)
		if len(r.Ticket) == 0 {
			a.log.Warn("the edge issued no ticket: other peers will refuse this peer's chunk requests", "edge", a.cfg.Edge)
		} else {
			a.setTicket(r.Ticket, keys)
		}
	}
	a.mu.Lock()
	a.keys, a.sess = keys, sess
	a.mu.Unlock()
	return *sess, keys, nil
}

// Register fetches the edge's keys (unless configured) and registers with
// the edge now, instead of at the first download; a daemon calls it at
// start so that a player's first request does not wait for it. It is
// idempotent.
func (a *Agent) Register(ctx context.Context) error {
	_, _, err := a.session(ctx)
	return err
}

// renewSession drops the registration peerID so the next session call
// registers again (the edge may have restarted and forgotten us).
func (a *Agent) renewSession(peerID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess != nil && a.sess.peerID == peerID {
		a.sess = nil
	}
}

// currentSession returns the registration without I/O.
func (a *Agent) currentSession() (session, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sess == nil {
		return session{}, false
	}
	return *a.sess, true
}

// Download starts, or joins, the download of objectURL (a path such as
// "/videos/a.mp4") and returns once its manifest is verified. Concurrent
// calls for one URL share one manifest fetch; ctx bounds only the wait.
func (a *Agent) Download(ctx context.Context, objectURL string) (*Download, error) {
	if !strings.HasPrefix(objectURL, "/") || len(objectURL) > core.MaxURLLen {
		return nil, fmt.Errorf("download %q: want an absolute path of at most %d bytes", objectURL, core.MaxURLLen)
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, ErrClosed
	}
	old := a.byURL[objectURL]
	if old != nil && (a.cfg.ManifestTTLMs < 0 || a.now().Sub(old.checkedAt) < ms(a.cfg.ManifestTTLMs)) {
		a.mu.Unlock()
		if old.partial() {
			return a.refill(old)
		}
		return old, nil
	}
	f := a.flights[objectURL]
	if f == nil {
		f = &resolveFlight{done: make(chan struct{})}
		a.flights[objectURL] = f
		a.wg.Add(1)
		go a.resolve(objectURL, old, f)
	}
	a.mu.Unlock()
	select {
	case <-f.done:
		return f.d, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("download %s: %w", objectURL, ctx.Err())
	}
}

// resolve fetches the manifest of objectURL and finds or starts its
// download. On failure it falls back to old, the version already held.
func (a *Agent) resolve(objectURL string, old *Download, f *resolveFlight) {
	defer a.wg.Done()
	ctx, cancel := context.WithTimeout(a.ctx, 30*time.Second)
	defer cancel()
	d, err := a.start(ctx, objectURL)
	if err != nil && old != nil && !old.failed() {
		a.log.Warn("manifest refresh failed; serving the version held", "url", objectURL, "err", err)
		d, err = old, nil
	}
	a.mu.Lock()
	delete(a.flights, objectURL)
	if err == nil && !a.closed {
		a.byURL[objectURL] = d
		d.checkedAt = a.now()
	}
	a.mu.Unlock()
	f.d, f.err = d, err
	close(f.done)
}

func (a *Agent) start(ctx context.Context, objectURL string) (*Download, error) {
	_, keys, err := a.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", objectURL, err)
	}
	m, edgeIdx, err := a.manifest(ctx, objectURL, keys)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", objectURL, err)
	}
	if d := a.liveDownload(m.Root); d != nil {
		if d.partial() {
			return a.refill(d)
		}
		return d, nil
	}
	obj, err := a.store.Open(m)
	if err != nil {
		return nil, fmt.Errorf("download %s: open store: %w", objectURL, err)
	}
	d := newDownload(a, objectURL, m, obj, edgeIdx)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		obj.Close()
		return nil, ErrClosed
	}
	if other := a.byRoot[m.Root]; other != nil && !other.failed() {
		obj.Close()
		return other, nil
	}
	a.byRoot[m.Root] = d
	d.launch() // adds to wg under mu while !closed
	return d, nil
}

// manifest fetches and verifies objectURL's manifest from the home edge,
// then from each fallback edge in turn, and returns it with the index (in
// a.edges) of the edge that gave it. The error names every edge's failure.
func (a *Agent) manifest(ctx context.Context, objectURL string, keys core.KeyRing) (*core.Manifest, int, error) {
	var errs []error
	for i, e := range a.edges {
		m, err := e.Manifest(ctx, objectURL, keys)
		if err == nil {
			if i > 0 {
				a.log.Warn("manifest taken from a fallback edge", "url", objectURL, "edge", e.Base, "failed", errors.Join(errs...))
			}
			return m, i, nil
		}
		errs = append(errs, fmt.Errorf("edge %s: %w", e.Base, err))
		if ctx.Err() != nil {
			break
		}
		if i+1 < len(a.edges) {
			a.log.Warn("manifest refused; trying the next edge", "url", objectURL, "edge", e.Base, "err", err)
		}
	}
	return nil, 0, errors.Join(errs...)
}

func (a *Agent) liveDownload(root core.Hash) *Download {
	a.mu.Lock()
	defer a.mu.Unlock()
	if d := a.byRoot[root]; d != nil && !d.failed() {
		return d
	}
	return nil
}

// forget removes a failed download so that a later Download starts afresh.
func (a *Agent) forget(d *Download) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byRoot[d.m.Root] == d {
		delete(a.byRoot, d.m.Root)
	}
	if a.byURL[d.url] == d {
		delete(a.byURL, d.url)
	}
}

// newRand returns an independent generator seeded from the agent's.
func (a *Agent) newRand() *mrand.Rand {
	a.mu.Lock()
	defer a.mu.Unlock()
	return mrand.New(mrand.NewPCG(a.rnd.Uint64(), a.rnd.Uint64()))
}

// ban records that a peer sent a bad chunk; no download asks it again.
func (a *Agent) ban(id, addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.banned[id] = true
	if addr != "" {
		a.banned["addr:"+addr] = true
	}
}

func (a *Agent) isBanned(id, addr string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.banned[id] || (addr != "" && a.banned["addr:"+addr])
}

// maxDemoted bounds Agent.demoted.
const maxDemoted = 4096

// demote records that peer id is not to be asked before until, by any
// download of this agent. It reports whether the peer was not demoted
// already (so that it is reported to the edge once per demotion).
func (a *Agent) demote(id string, until time.Time) bool {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Before(a.demoted[id]) {
		return false
	}
	if len(a.demoted) >= maxDemoted {
		for k, u := range a.demoted {
			if !now.Before(u) {
				delete(a.demoted, k)
			}
		}
	}
	if len(a.demoted) < maxDemoted {
		a.demoted[id] = until
	}
	return true
}

// demotedUntil is when a demoted peer may be asked again (zero if never demoted).
func (a *Agent) demotedUntil(id string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.demoted[id]
}

// report tells the edge about offender (best effort): kind is
// wire.ReportBadChunk (chunk index failed verification) or
// wire.ReportUnresponsive.
func (a *Agent) report(root core.Hash, offender, kind string, index int, reason string) {
	defer a.wg.Done()
	sess, ok := a.currentSession()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
	defer cancel()
	err := a.edge.Report(ctx, wire.ReportRequest{
		PeerID: sess.peerID, Token: sess.token, Root: root.String(),
		Offender: offender, Kind: kind, Index: index, Reason: reason,
	})
	if err != nil {
		a.log.Debug("report peer to edge", "offender", offender, "kind", kind, "err", err)
	}
}

// Close stops every download, announces leaving, stops the chunk servers
// and waits for every goroutine the agent started. It is idempotent.
func (a *Agent) Close() error {
	a.once.Do(func() {
		a.mu.Lock()
		a.closed = true
		servers := a.servers
		var downloads []*Download
		for _, d := range a.byRoot {
			downloads = append(downloads, d)
		}
		a.mu.Unlock()

		a.cancel()
		a.wg.Wait()

		// Leave every swarm so the edge stops handing us out, then stop
		// serving.
		if sess, ok := a.currentSession(); ok && len(downloads) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			var wg sync.WaitGroup
			for _, d := range downloads {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := d.leave(ctx, sess); err != nil {
						a.log.Debug("announce leaving", "root", d.m.Root.Short(), "err", err)
					}
				}()
			}
			wg.Wait()
			cancel()
		}
		for _, srv := range servers {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
			cancel()
		}
		for _, d := range downloads {
			d.obj.Close()
		}
		if a.ownStore {
			a.store.Close()
		}
		if a.ownHC {
			a.hc.CloseIdleConnections()
		}
	})
	return nil
}

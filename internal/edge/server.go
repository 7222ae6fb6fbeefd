// Package edge is the edge server: a caching reverse proxy in front of one
// origin with a disk cache, a manifest signer and chunk server for the
// objects it stores, and the swarm coordinator (tracker) for the peers
// registered with it. It does not listen on its own: New builds a Server,
// Handler serves everything on one http.Handler, Serve runs it on a
// listener.
package edge

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/netmap"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// ErrClosed is returned for work asked of a closed Server.
var ErrClosed = errors.New("edge: server closed")

// Config configures an edge. Fields marked required have no default.
type Config struct {
	// Origin is the origin's base URL, e.g. "http://127.0.0.1:9000": the
	// one-origin shortcut for a single property "default" answering every
	// host. Object paths are appended to it. Give Origin or Properties.
	Origin string `yaml:"origin"`
	// CrossPID is the one-origin property's Property.CrossPID.
	CrossPID string `yaml:"cross_pid"`
	// NetworkMap places peers in network locations (PIDs) and prices
	// traffic between them (internal/netmap): hand-outs rank peers in the
	// requester's PID first, then by cost; nil puts everyone in one place.
	NetworkMap *netmap.Map `yaml:"-"`
	// Properties are the tenants of a shared edge: hostnames, origin and
	// cache policy overrides each (see Property). The first one's keys are
	// plain paths (the swarm and manifests of single-origin edges).
	Properties []Property `yaml:"properties"`
	// CacheDir holds the disk cache (required); created if missing.
	CacheDir string `yaml:"cache_dir"`
	// CacheSize is the byte budget of stored objects; 0 means 10 GiB.
	CacheSize int64 `yaml:"cache_size"`
	// MaxObjects bounds the number of stored objects; 0 means 1,000,000.
	MaxObjects int `yaml:"max_objects"`
	// DisableFastLane makes Serve hand every connection to net/http
	// instead of serving plain HTTP/1.1 content requests itself (lane.go).
	DisableFastLane bool `yaml:"disable_fast_lane"`
	// HotCacheSize is the memory budget for verified copies of small
	// stored objects (≤ 256 KiB), served without touching the disk; 0
	// means 64 MiB, -1 turns it off.
	HotCacheSize int64 `yaml:"hot_cache_size"`
	// MaxObjectSize is the largest object stored; larger ones are passed
	// through. 0 means CacheSize.
	MaxObjectSize int64 `yaml:"max_object_size"`
	// ChunkSize is the manifest chunk size; 0 means
	// core.ChooseChunkSize(object size).
	ChunkSize int `yaml:"chunk_size"`
	// DefaultTTL is the freshness of responses without explicit expiry or
	// Last-Modified; 0 means 60s.
	DefaultTTL time.Duration `yaml:"default_ttl"`
	// LockTimeout is how long requests collapsed onto a fill wait for it
	// before one of them starts another (at most 3 fetches per burst; the
	// last is waited for until FillTimeout). 0 means 10s.
	LockTimeout time.Duration `yaml:"lock_timeout"`
	// StaleIfError is how long past its freshness a stored response with
	// no stale-if-error directive may be served when the origin fails or
	// answers 5xx; -1 means never. 0 means 1h.
	StaleIfError time.Duration `yaml:"stale_if_error"`
	// MaxStaleIfError and MaxStaleWhileRevalidate cap the origin's
	// stale-if-error and stale-while-revalidate (RFC 5861). 0 means 24h and
	// 1h.
	MaxStaleIfError         time.Duration `yaml:"max_stale_if_error"`
	MaxStaleWhileRevalidate time.Duration `yaml:"max_stale_while_revalidate"`
	// OriginIdleTimeout gives up an origin response whose body sends
	// nothing for this long (between bytes). 0 means 30s.
	OriginIdleTimeout time.Duration `yaml:"origin_idle_timeout"`
	// ClientSendTimeout closes a client connection whose writes make no
	// progress for this long (a client that stopped reading). 0 means 60s.
	ClientSendTimeout time.Duration `yaml:"client_send_timeout"`
	// MaxRequestBody bounds the body of a request passed to the origin
	// (POST, PUT, …); larger ones get 413. 0 means 1 GiB.
	MaxRequestBody int64 `yaml:"max_request_body"`
	// FillTimeout bounds one origin fetch into the cache (it runs detached
	// from the clients waiting on it); 0 means 10m.
	FillTimeout time.Duration `yaml:"fill_timeout"`
	// AnnounceInterval is how often peers are told to announce; 0 means
	// 500ms. An object's swarm is told a longer one once its members
	// would exceed the tracker's announce budget
	// (Swarm.AnnounceBudget; swarm.AnnounceInterval).
	AnnounceInterval time.Duration `yaml:"announce_interval"`
	// MaxChunkUploads caps chunk responses in progress at once; past it the
	// edge answers 503 at once and agents back off and ask again. It keeps a
	// flash crowd's first wave from queueing behind itself until every
	// request times out. 0 means 64.
	MaxChunkUploads int `yaml:"max_chunk_uploads"`
	// AdminToken authorizes the purge API (AdminHandler); empty refuses
	// every admin request.
	AdminToken string `yaml:"-"`
	// ManagedToken is the secret a managed cache (peer --managed) presents
	// when it registers; empty refuses every managed registration.
	ManagedToken string `yaml:"-"`
	// OrdersPollInterval is how often managed caches ask for their
	// pre-positioning orders. 0 means 30s.
	OrdersPollInterval time.Duration `yaml:"orders_poll_interval"`
	// SigningKey signs manifests and peer tickets (required).
	SigningKey ed25519.PrivateKey `yaml:"-"`
	// TicketTTL is how long a peer ticket is valid (peers renew theirs
	// in announces once half of it has passed), and so how long a
	// revoked peer's last ticket may still be shown to peers that have
	// not heard of the revocation. 0 means 10m; at most 24h.
	TicketTTL time.Duration `yaml:"ticket_ttl"`
	// Swarm configures the tracker; the zero value means its defaults.
	Swarm swarm.Config `yaml:"swarm"`
}

func (c Config) applyDefaults() Config {
	if c.CacheSize == 0 {
		c.CacheSize = 10 << 30
	}
	if c.MaxObjects == 0 {
		c.MaxObjects = 1_000_000
	}
	if c.MaxObjectSize == 0 {
		c.MaxObjectSize = c.CacheSize
	}
	switch c.HotCacheSize {
	case 0:
		c.HotCacheSize = 64 << 20
	case -1:
		c.HotCacheSize = 0
	}
	if c.DefaultTTL == 0 {
		c.DefaultTTL = 60 * time.Second
	}
	if c.FillTimeout == 0 {
		c.FillTimeout = 10 * time.Minute
	}
	if c.OriginIdleTimeout == 0 {
		c.OriginIdleTimeout = 30 * time.Second
	}
	if c.ClientSendTimeout == 0 {
		c.ClientSendTimeout = 60 * time.Second
	}
	if c.MaxRequestBody == 0 {
		c.MaxRequestBody = 1 << 30
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = 10 * time.Second
	}
	switch c.StaleIfError {
	case 0:
		c.StaleIfError = time.Hour
	case -1:
		c.StaleIfError = -1 // staleness is never ≤ −1ns
	}
	if c.MaxStaleIfError == 0 {
		c.MaxStaleIfError = 24 * time.Hour
	}
	if c.MaxStaleWhileRevalidate == 0 {
		c.MaxStaleWhileRevalidate = time.Hour
	}
	if c.AnnounceInterval == 0 {
		c.AnnounceInterval = 500 * time.Millisecond
	}
	if c.MaxChunkUploads == 0 {
		c.MaxChunkUploads = 64
	}
	if c.TicketTTL == 0 {
		c.TicketTTL = 10 * time.Minute
	}
	return c
}

func (c Config) validate() error {
	if _, err := buildProperties(c.applyDefaults()); err != nil {
		return err
	}
	switch {
	case c.CacheDir == "":
		return errors.New("edge config: CacheDir is required")
	case len(c.SigningKey) != ed25519.PrivateKeySize:
		return fmt.Errorf("edge config: SigningKey has %d bytes, want an ed25519 private key", len(c.SigningKey))
	case c.CacheSize < 0 || c.MaxObjects < 0 || c.MaxObjectSize < 0 || c.HotCacheSize < -1:
		return errors.New("edge config: negative cache limit")
	case c.ChunkSize != 0 && !core.ValidChunkSize(c.ChunkSize):
		return fmt.Errorf("edge config: ChunkSize %d is not a power of two in [%d,%d]", c.ChunkSize, core.MinChunkSize, core.MaxChunkSize)
	case c.DefaultTTL < 0 || c.FillTimeout < 0 || c.AnnounceInterval < 0 || c.LockTimeout < 0 || c.OriginIdleTimeout < 0 || c.ClientSendTimeout < 0 || c.MaxRequestBody < 0 ||
		c.StaleIfError < -1 || c.MaxStaleIfError < 0 || c.MaxStaleWhileRevalidate < 0:
		return errors.New("edge config: negative duration")
	case c.TicketTTL != 0 && (c.TicketTTL < time.Second || c.TicketTTL > core.MaxTicketLifetime):
		return fmt.Errorf("edge config: TicketTTL %v outside [1s, %v]", c.TicketTTL, core.MaxTicketLifetime)
	}
	return nil
}

// Deps are the Server's injected collaborators.
type Deps struct {
	Logger *slog.Logger     // nil = discard
	Now    func() time.Time // nil = time.Now
	Rand   *rand.Rand       // nil = seeded from crypto/rand
	// OriginTransport carries origin requests; nil = a tuned *http.Transport.
	OriginTransport http.RoundTripper

	// storeFS creates the disk cache's files; nil = the OS. Tests inject
	// write failures (a full disk) through it.
	storeFS storeFS
}

// Stats are the Server's counters.
type Stats struct {
	OriginFetches      int64 // origin requests made, revalidations included
	CacheHits          int64 // content requests answered from the cache (HIT, REVALIDATED, STALE)
	CacheMisses        int64 // content requests whose body came from the origin into the cache (MISS)
	Passes             int64 // content requests passed through without storing (PASS)
	ManifestBuilds     int64
	ChunksServed       int64 // chunk requests completed
	ChunksRefused      int64 // chunk requests answered 503 (MaxChunkUploads in progress)
	ChunkBytesServed   int64
	ContentBytesServed int64 // body bytes of content responses
	CachedObjects      int
	CachedBytes        int64
	PeersRegistered    int
	PeersBanned        int // banned peers the tracker remembers
	PeersRevoked       int // revocations in force (operators' and bans)
	PeersSuspended     int // peers left out of hand-outs now for being reported unresponsive
}

// Server is one edge. Create it with New.
type Server struct {
	cfg     Config
	uploads chan struct{} // chunk upload slots, cfg.MaxChunkUploads; never closed
	log     *slog.Logger
	now     func() time.Time
	props   []*property // the first answers keys without a prefix
	client  *http.Client
	pub     ed25519.PublicKey
	keyID   string
	cache   *cache
	tracker *swarm.Tracker
	metrics *metrics
	handler http.Handler

	vary        varyIndex
	surrogates  surrogateIndex
	streams     streams
	slices      surrogateIndex // stored slices by sliceTag(key)
	noSlices    passMemo       // keys whose origin answered a slice without 206
	purgedTotal prometheus.Counter
	fills       group[*fillResult]   // by query.flightKey
	builds      group[builtManifest] // by version id
	passMemo    passMemo
	usage       usage
	orders      *orderBook
	stats       counters
	revMu       sync.Mutex // serializes revocation changes and their saving

	ctx    context.Context // ends at Close; parent of fills and builds
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool                   // guarded by mu
	servers map[io.Closer]struct{} // guarded by mu: http.Servers and lanes
	wg      sync.WaitGroup         // fills and builds; Add under mu while !closed
	once    sync.Once
}

// New opens the cache in cfg.CacheDir (rebuilding its index) and returns a
// Server ready to serve.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.applyDefaults()
	s := &Server{
		cfg:     cfg,
		uploads: make(chan struct{}, cfg.MaxChunkUploads),
		log:     deps.Logger,
		now:     deps.Now,
		pub:     cfg.SigningKey.Public().(ed25519.PublicKey),
		servers: make(map[io.Closer]struct{}),
	}
	s.keyID = core.KeyIDOf(s.pub)
	s.props, _ = buildProperties(cfg) // validated above
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	rng := deps.Rand
	if rng == nil {
		var seed [32]byte
		crand.Read(seed[:])
		rng = rand.New(rand.NewChaCha8(seed))
	}
	tr := deps.OriginTransport
	if tr == nil {
		tr = newOriginTransport()
	}
	s.client = &http.Client{
		Transport: tr,
		// A redirect is the origin's answer, passed to the client as is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var err error
	if s.orders, err = loadOrders(cfg.CacheDir); err != nil {
		return nil, err
	}
	if s.cache, err = openCache(cacheConfig{
		dir: cfg.CacheDir, budget: cfg.CacheSize, maxObjects: cfg.MaxObjects, hotBudget: cfg.HotCacheSize,
		pub: s.pub, log: s.log, now: s.now, fs: deps.storeFS,
	}); err != nil {
		return nil, err
	}
	// Locality also puts managed caches first, with or without a map.
	inner, err := swarm.PolicyByName(cfg.Swarm.Policy)
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	policy := swarm.Locality{Inner: inner}
	if m := cfg.NetworkMap; m != nil {
		policy.Cost = m.Cost
	}
	s.tracker, err = swarm.New(cfg.Swarm, swarm.Deps{Now: s.now, Rand: rng, Logger: s.log.With("component", "swarm"), Policy: policy})
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	if err := s.loadRevocations(); err != nil {
		s.tracker.Close()
		return nil, err
	}
	s.metrics = newMetrics(s)
	s.metrics.reg.MustRegister(s.cache.collectors()...)
	s.metrics.reg.MustRegister(s.revokedGauge())
	s.surrogates.limit = 16 * cfg.MaxObjects
	s.slices.limit = cfg.MaxObjects
	s.indexStored()
	s.purgedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "edgeswarm_edge_purged_total",
		Help: "Stored object versions removed or marked stale by the purge API.",
	})
	s.metrics.reg.MustRegister(s.purgedTotal)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.handler = http.HandlerFunc(s.route)
	return s, nil
}

func newOriginTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
	}
}

// Handler returns the handler for everything the edge serves: proxied
// content, the swarm API (/swarm/v1/), /metrics and /healthz.
func (s *Server) Handler() http.Handler { return s.handler }

// routeKind names what a request path is: "manifest", "chunk", "swarm",
// "metrics", "health" or "content".
func routeKind(p string) string {
	switch {
	case p == wire.PathManifest:
		return "manifest"
	case strings.HasPrefix(p, wire.PathChunk):
		return "chunk"
	case p == wire.PathKey || p == wire.PathRegister || p == wire.PathAnnounce || p == wire.PathReport,
		strings.HasPrefix(p, "/swarm/v1/") || p == "/swarm/v1":
		return "swarm"
	case p == "/metrics":
		return "metrics"
	case p == "/healthz":
		return "health"
	}
	return "content"
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	var h func(http.ResponseWriter, *http.Request) error
	kind := routeKind(p)
	switch {
	case p == wire.PathManifest:
		h = s.handleManifest
	case strings.HasPrefix(p, wire.PathChunk):
		h = s.handleChunk
	case p == wire.PathKey:
		h = s.handleKey
	case p == wire.PathRegister:
		h = s.handleRegister
	case p == wire.PathAnnounce:
		h = s.handleAnnounce
	case p == wire.PathReport:
		h = s.handleReport
	case p == wire.PathOrders:
		h = s.handleOrders
	case kind == "swarm":
		h = func(http.ResponseWriter, *http.Request) error {
			return errorf(http.StatusNotFound, "no swarm endpoint %s", truncate(p, 80))
		}
	case kind == "metrics":
		s.metrics.http.ServeHTTP(w, r)
		return
	case kind == "health":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
		return
	default:
		h = s.handleContent
	}
	s.serve(w, r, kind, h)
}

// maxStreamsPerConn bounds the HTTP/2 streams one connection may have open,
// and so the handlers it can keep busy.
const maxStreamsPerConn = 100

// serverProtocols: HTTP/1.1, HTTP/2 over TLS (when ln is a TLS listener
// offering "h2") and cleartext HTTP/2 with prior knowledge (h2c).
func serverProtocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

// Serve accepts connections on ln until Close; it returns nil after Close.
// Plain HTTP/1.1 content requests are served by the fast lane (lane.go)
// unless Config.DisableFastLane; everything else by net/http.
func (s *Server) Serve(ln net.Listener) error {
	if !s.cfg.DisableFastLane {
		return s.serveLane(ln)
	}
	return s.serveWith(ln, s.handler)
}

// ServeAdmin serves AdminHandler (the purge API) on ln until Close. Give it
// a listener of its own, reachable only by operators.
func (s *Server) ServeAdmin(ln net.Listener) error { return s.serveWith(ln, s.AdminHandler()) }

func (s *Server) serveWith(ln net.Listener, h http.Handler) error {
	srv := s.newHTTPServer(h)
	if !s.track(srv) {
		ln.Close()
		return nil
	}
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		Protocols:         serverProtocols(),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          maxStreamsPerConn,
			MaxReceiveBufferPerConnection: 1 << 20,
			MaxReceiveBufferPerStream:     256 << 10,
		},
	}
}

// track registers what Close must close; false once closed.
func (s *Server) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.servers[c] = struct{}{}
	return true
}

// Close stops every Serve, cancels fills and manifest builds, stops the
// tracker and waits for all of them. It is idempotent.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		servers := s.servers
		s.servers = nil
		s.mu.Unlock()
		s.cancel()
		for srv := range servers {
			srv.Close()
		}
		s.tracker.Close()
	})
	s.wg.Wait()
	s.client.CloseIdleConnections()
	s.cache.closeHot()
	return nil
}

// spawn runs f in a goroutine that Close waits for, unless closed.
func (s *Server) spawn(f func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	objs, bytes := s.cache.usage()
	ts := s.tracker.Stats()
	return Stats{
		OriginFetches:      s.stats.originFetches.Load(),
		CacheHits:          s.stats.cacheHits.Load(),
		CacheMisses:        s.stats.cacheMisses.Load(),
		Passes:             s.stats.passes.Load(),
		ManifestBuilds:     s.stats.manifestBuilds.Load(),
		ChunksServed:       s.stats.chunks.Load(),
		ChunkBytesServed:   s.stats.chunkBytes.Load(),
		ChunksRefused:      s.stats.chunksRefused.Load(),
		ContentBytesServed: s.stats.contentBytes.Load(),
		CachedObjects:      objs,
		CachedBytes:        bytes,
		PeersRegistered:    ts.Peers,
		PeersBanned:        ts.Banned,
		PeersRevoked:       ts.Revoked,
		PeersSuspended:     ts.Suspended,
	}
}

// ChunkUsage returns the chunk bytes served per requesting peer id; bytes
// for unregistered or missing ids are under "".
func (s *Server) ChunkUsage() map[string]int64 { return s.usage.peerSnapshot() }

// PublicKey returns the manifest-signing public key.
func (s *Server) PublicKey() ed25519.PublicKey { return s.pub }

// Tracker returns the swarm tracker, for inspection (demo, tests).
func (s *Server) Tracker() *swarm.Tracker { return s.tracker }

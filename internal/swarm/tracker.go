// Package swarm tracks, per object version (manifest root), which registered
// peers hold which chunks, and hands requesters a ranked list of other peers
// to fetch from. An edge embeds one Tracker and serves it over the swarm API
// (wire.PathRegister, wire.PathAnnounce, wire.PathReport). The tracker also
// bans peers that several distinct peers report for sending bad chunks, and
// leaves out of hand-outs for a while peers that several distinct peers
// could not get chunks from (gone, or lying about what they hold).
//
// Peers enroll with an identity key (RegisterPeer: the ID stands for the
// key), and an operator can revoke an identity (Revoke): a revoked peer
// cannot register, announce or be handed out until the revocation
// expires, and a ban counts as a revocation. The edge hands the recent
// revocations on to peers (RevokedSince) so they refuse the revoked
// peer's chunk requests too.
//
// All state is in memory and bounded: registered peers, tracked objects,
// peers per object, objects per peer and revocations. Peers that stop
// announcing expire.
package swarm

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// Errors returned by the Tracker. Callers map them to protocol statuses.
var (
	ErrUnknownPeer     = errors.New("swarm: unknown peer")
	ErrBanned          = errors.New("swarm: peer is banned")
	ErrTooManyPeers    = errors.New("swarm: too many registered peers")
	ErrTooManyObjects  = errors.New("swarm: too many tracked objects")
	ErrBitfieldLength  = errors.New("swarm: bitfield length does not match the object's chunk count")
	ErrInvalidArgument = errors.New("swarm: invalid argument")
	ErrRevoked         = errors.New("swarm: peer identity is revoked")
	// ErrStaleRegistration: a registration signed no later than the
	// identity's previous one (a replay, or a clock gone backwards).
	ErrStaleRegistration = errors.New("swarm: registration is not newer than the peer's last one")
	ErrTooManyRevoked    = errors.New("swarm: revocation list is full")
)

// Limits on what a peer may register.
const (
	MaxAddrLen   = 256
	MaxNameLen   = 128
	MaxReasonLen = 256
)

// Defaults of Config fields that other packages (the simulator) mirror.
const (
	DefaultMaxPeersPerObject = 100000
	DefaultHandoutSample     = 1000
	DefaultAnnounceBudget    = 2000
	DefaultPeerTTL           = 10 * time.Second
)

// Config tunes a Tracker. The zero value is usable.
type Config struct {
	// MaxPeers bounds registered peers; 0 means 100000.
	MaxPeers int `yaml:"max_peers"`
	// MaxObjects bounds objects with a live swarm; 0 means 10000.
	MaxObjects int `yaml:"max_objects"`
	// MaxPeersPerObject bounds one object's swarm; 0 means 100000 (a
	// member costs about one bitfield, at most 256 bytes, plus ~200 bytes
	// of bookkeeping). Announces of new members past it are not recorded
	// (the peer still gets a hand-out).
	MaxPeersPerObject int `yaml:"max_peers_per_object"`
	// HandoutSample bounds the candidates ranked per hand-out; 0 means
	// 1000. A swarm with more members holding chunks is sampled uniformly
	// at random, so a hand-out costs O(HandoutSample) however large the
	// swarm grows, and requesters see different parts of it.
	HandoutSample int `yaml:"handout_sample"`
	// AnnounceBudget is how many announces per second one object's swarm
	// may cost the edge: the announce interval the edge tells a swarm's
	// peers (AnnounceInterval) is stretched from the configured one to
	// members / AnnounceBudget seconds once the swarm is that large, but
	// never past PeerTTL / 2, so that a live member never expires between
	// two announces (past PeerTTL / 2 × AnnounceBudget members the budget
	// is exceeded; raise PeerTTL to keep it). 0 means 2000; negative means
	// no budget: the configured interval whatever the swarm's size.
	AnnounceBudget int `yaml:"announce_budget"`
	// MaxObjectsPerPeer bounds the swarms one peer is a member of; 0 means
	// 1000.
	MaxObjectsPerPeer int `yaml:"max_objects_per_peer"`
	// PeerTTL: a peer not seen in an object's swarm for this long is no
	// longer handed out and is dropped; 0 means 10s.
	PeerTTL time.Duration `yaml:"peer_ttl"`
	// RegistrationTTL: a registered peer that has not announced or
	// registered for this long is forgotten (its token stops working); 0
	// means 30m.
	RegistrationTTL time.Duration `yaml:"registration_ttl"`
	// SweepInterval is how often expired state is dropped from memory; 0
	// means PeerTTL, negative disables the sweep goroutine (expired peers
	// are still skipped and dropped lazily; call Sweep to force).
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// BanThreshold is the number of distinct peers that must report a peer
	// before it is banned; 0 means 2.
	BanThreshold int `yaml:"ban_threshold"`
	// UnresponsiveThreshold is the number of distinct members of a swarm
	// that must report a peer unresponsive (wire.ReportUnresponsive),
	// within PeerTTL, before it is suspended; 0 means 2. One reporter alone
	// never suspends a peer.
	UnresponsiveThreshold int `yaml:"unresponsive_threshold"`
	// SuspendFor is how long a suspended peer is left out of every
	// hand-out (it may still announce and download); 0 means 1m. A peer
	// that vanished expires meanwhile (PeerTTL); one that is alive but
	// does not serve is reported, and suspended, again.
	SuspendFor time.Duration `yaml:"suspend_for"`
	// DefaultWant is the hand-out size when the requester asks for 0; 0
	// means 50. Hand-outs never exceed wire.MaxHandout.
	DefaultWant int `yaml:"default_want"`
	// Policy names the hand-out policy (PolicyByName); "" means
	// DefaultPolicy ("weighted").
	Policy string `yaml:"policy"`
	// MaxRevoked bounds the revocations (operators' and bans) kept at
	// once; 0 means 100000. Past it Revoke fails until some expire.
	MaxRevoked int `yaml:"max_revoked"`
	// RevocationTTL is how long an operator's revocation lasts unless
	// lifted; 0 means 30 days. A ban lasts RegistrationTTL.
	RevocationTTL time.Duration `yaml:"revocation_ttl"`
}

func (c Config) applyDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MaxPeers, 100000)
	def(&c.MaxObjects, 10000)
	def(&c.MaxPeersPerObject, DefaultMaxPeersPerObject)
	def(&c.HandoutSample, DefaultHandoutSample)
	def(&c.MaxObjectsPerPeer, 1000)
	def(&c.BanThreshold, 2)
	def(&c.UnresponsiveThreshold, 2)
	if c.SuspendFor == 0 {
		c.SuspendFor = time.Minute
	}
	def(&c.DefaultWant, 50)
	def(&c.AnnounceBudget, DefaultAnnounceBudget)
	def(&c.MaxRevoked, 100000)
	if c.RevocationTTL == 0 {
		c.RevocationTTL = 30 * 24 * time.Hour
	}
	if c.PeerTTL == 0 {
		c.PeerTTL = DefaultPeerTTL
	}
	if c.RegistrationTTL == 0 {
		c.RegistrationTTL = 30 * time.Minute
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = c.PeerTTL
	}
	if c.Policy == "" {
		c.Policy = DefaultPolicy
	}
	c.DefaultWant = min(c.DefaultWant, wire.MaxHandout)
	return c
}

func (c Config) validate() error {
	if c.MaxPeers < 0 || c.MaxObjects < 0 || c.MaxPeersPerObject < 0 || c.MaxObjectsPerPeer < 0 || c.HandoutSample < 0 ||
		c.BanThreshold < 0 || c.UnresponsiveThreshold < 0 || c.SuspendFor < 0 || c.DefaultWant < 0 || c.PeerTTL < 0 || c.RegistrationTTL < 0 ||
		c.MaxRevoked < 0 || c.RevocationTTL < 0 {
		return fmt.Errorf("swarm config: negative limit in %+v", c)
	}
	return nil
}

// Deps are the Tracker's injected collaborators.
type Deps struct {
	Now    func() time.Time // nil = time.Now
	Rand   *mrand.Rand      // nil = seeded from crypto/rand; breaks hand-out ties
	Logger *slog.Logger     // nil = discard
	// Policy overrides Config.Policy when non-nil.
	Policy HandoutPolicy
}

// Stats are the Tracker's counters.
type Stats struct {
	Peers            int   // registered now
	Objects          int   // objects with a swarm now
	Members          int   // (peer, object) memberships now
	Banned           int   // banned peers still remembered
	Revoked          int   // revocations in force (operators' and bans)
	BansTotal        int64 // peers ever banned
	Registrations    int64
	Announces        int64
	AnnouncesDropped int64 // announces of new members into a full swarm
	Reports          int64
	// Suspended are the peers left out of hand-outs now for being reported
	// unresponsive; SuspensionsTotal counts every suspension.
	Suspended        int
	SuspensionsTotal int64
	UnresponsiveSeen int64 // unresponsive reports received
	Handouts         int64
	Expired          int64 // memberships and registrations dropped by age
}

// Tracker is the swarm bookkeeping of one edge. It is safe for concurrent
// use.
type Tracker struct {
	cfg    Config
	now    func() time.Time
	log    *slog.Logger
	policy HandoutPolicy

	mu      sync.Mutex
	rng     *mrand.Rand           // guarded by mu (math/rand is not goroutine-safe)
	peers   map[string]*peer      // guarded by mu; by peer id
	objects map[core.Hash]*object // guarded by mu
	stats   Stats                 // guarded by mu; gauges filled in by Stats
	banned  map[string]struct{}   // guarded by mu; ids of banned, still-registered peers
	// bannedAddrs holds the advertised addresses of banned peers with the ban
	// time, so a banned peer cannot come back under a fresh id by registering
	// again; entries expire after RegistrationTTL. Guarded by mu.
	bannedAddrs map[string]time.Time
	// managed are the ids of registered managed caches: few, and always
	// candidates of the hand-outs of objects they hold. Guarded by mu.
	managed map[string]struct{}
	// revoked holds the revocations in force by peer id, and revOrder
	// their ids by At, oldest first, with stale entries (lifted or
	// replaced) skipped and compacted away. Guarded by mu.
	revoked  map[string]*Revocation
	revOrder []revRef

	stop      chan struct{} // closed by Close
	closeOnce sync.Once
	done      chan struct{} // closed when the sweep goroutine ends
}

type peer struct {
	id        string
	key       ed25519.PublicKey // identity key; nil for a peer registered without one
	signedAt  time.Time         // when the peer signed its latest registration
	tokenHash [32]byte          // SHA-256 of the token: the token itself is not kept
	addr      string
	name      string
	pid       string // network location; "" unknown
	managed   bool   // a managed cache (domain 2), not an end user's machine
	uploadBps int64
	lastSeen  time.Time // registration or latest announce
	banned    bool
	revoked   bool // by an operator (Revoke)
	// reporters are the distinct peers that reported this one; at most
	// BanThreshold entries (the ban happens at the threshold).
	reporters map[string]struct{}
	// unresponsive are the distinct peers that reported this one
	// unresponsive, with when; at most UnresponsiveThreshold entries, none
	// older than PeerTTL counts.
	unresponsive map[string]time.Time
	// suspendedUntil: not handed out before this (ReportUnresponsive).
	suspendedUntil time.Time
	objects        map[core.Hash]struct{} // swarms this peer is a member of
}

type object struct {
	numChunks int
	members   map[string]*member // by peer id
	// holders are the ids of the members that hold at least one chunk and
	// are reachable (the only ones ever handed out), in no order; hand-outs
	// sample it by index.
	holders []string
}

type member struct {
	have     core.Bitfield // replaced on announce, never mutated
	lastSeen time.Time
	pos      int    // index in object.holders, -1 if not there
	report   uint64 // sequence number of the last usage report applied
}

// setHave records m's new bitfield and keeps o.holders in step.
func (o *object) setHave(id string, m *member, have core.Bitfield, reachable bool) {
	m.have = have
	switch hold := reachable && have.Count() > 0; {
	case hold && m.pos < 0:
		m.pos = len(o.holders)
		o.holders = append(o.holders, id)
	case !hold && m.pos >= 0:
		o.dropHolder(m)
	}
}

// dropHolder removes m from o.holders (swap with the last).
func (o *object) dropHolder(m *member) {
	last := len(o.holders) - 1
	moved := o.holders[last]
	o.holders[m.pos] = moved
	o.members[moved].pos = m.pos
	o.holders = o.holders[:last]
	m.pos = -1
}

// New returns a Tracker and starts its sweep goroutine (see
// Config.SweepInterval); call Close to stop it.
func New(cfg Config, deps Deps) (*Tracker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.applyDefaults()
	pol := deps.Policy
	if pol == nil {
		var err error
		if pol, err = PolicyByName(cfg.Policy); err != nil {
			return nil, err
		}
	}
	t := &Tracker{
		cfg:         cfg,
		now:         deps.Now,
		log:         deps.Logger,
		policy:      pol,
		rng:         deps.Rand,
		peers:       make(map[string]*peer),
		objects:     make(map[core.Hash]*object),
		banned:      make(map[string]struct{}),
		bannedAddrs: make(map[string]time.Time),
		managed:     make(map[string]struct{}),
		revoked:     make(map[string]*Revocation),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	if t.now == nil {
		t.now = time.Now
	}
	if t.log == nil {
		t.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if t.rng == nil {
		var seed [32]byte
		rand.Read(seed[:])
		t.rng = mrand.New(mrand.NewChaCha8(seed))
	}
	if cfg.SweepInterval > 0 {
		go t.sweepLoop(cfg.SweepInterval)
	} else {
		close(t.done)
	}
	return t, nil
}

// Config returns the effective configuration (defaults applied).
func (t *Tracker) Config() Config { return t.cfg }

// Close stops the sweep goroutine and waits for it. It is idempotent. The
// tracker stays usable afterwards (expiry is then lazy only).
func (t *Tracker) Close() error {
	t.closeOnce.Do(func() { close(t.stop) })
	<-t.done
	return nil
}

func (t *Tracker) sweepLoop(every time.Duration) {
	defer close(t.done)
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tk.C:
			t.Sweep()
		}
	}
}

// Register enrolls a peer reachable at addr ("host:port", or "" for a
// leech-only peer) and returns its id and a secret token.
func (t *Tracker) Register(addr, name string, uploadBps int64) (peerID, token string, err error) {
	return t.RegisterAt(addr, name, "", uploadBps)
}

// RegisterAt is Register for a peer at network location pid (a PID of
// the edge's network map, internal/netmap; "" when unknown), which
// hand-outs rank by and HandoutOptions.SamePID filters on.
func (t *Tracker) RegisterAt(addr, name, pid string, uploadBps int64) (peerID, token string, err error) {
	token, err = t.register(Registration{Addr: addr, Name: name, PID: pid, UploadBps: uploadBps}, &peerID)
	return peerID, token, err
}

// Registration is a peer enrolling with an identity key it has proven to
// hold (the edge checks the proof).
type Registration struct {
	// ID names the peer: core.PeerIDOf(Key).
	ID  string
	Key ed25519.PublicKey
	// Addr, Name, PID and UploadBps are as for RegisterAt.
	Addr, Name, PID string
	UploadBps       int64
	// SignedAt is when the peer signed the registration; it must be later
	// than the identity's previous registration, so a replayed one is
	// refused (ErrStaleRegistration).
	SignedAt time.Time
}

// RegisterPeer enrolls r and returns a fresh secret token. A peer already
// registered under r.ID (the same key: a restarted agent) is registered
// afresh: new token and address, and it leaves every swarm until it
// announces again. A revoked or banned identity is refused.
func (t *Tracker) RegisterPeer(r Registration) (token string, err error) {
	switch {
	case !core.ValidPeerID(r.ID):
		return "", fmt.Errorf("%w: register: peer id %q", ErrInvalidArgument, truncate(r.ID, 80))
	case len(r.Key) != ed25519.PublicKeySize:
		return "", fmt.Errorf("%w: register: identity key of %d bytes", ErrInvalidArgument, len(r.Key))
	}
	return t.register(r, nil)
}

// register enrolls r; with newID set it draws a random id for a peer
// without an identity key and stores it there.
func (t *Tracker) register(r Registration, newID *string) (token string, err error) {
	if len(r.Addr) > MaxAddrLen || len(r.Name) > MaxNameLen || len(r.PID) > MaxNameLen || r.UploadBps < 0 {
		return "", fmt.Errorf("%w: register: addr of %d bytes (max %d), name of %d bytes (max %d), upload %d B/s",
			ErrInvalidArgument, len(r.Addr), MaxAddrLen, len(r.Name), MaxNameLen, r.UploadBps)
	}
	if r.Addr != "" {
		if host, port, err := net.SplitHostPort(r.Addr); err != nil || host == "" || port == "" {
			return "", fmt.Errorf("%w: register: addr %q is not host:port", ErrInvalidArgument, r.Addr)
		}
	}
	token = randomHex(16)
	now := t.now()

	t.mu.Lock()
	defer t.mu.Unlock()
	if rev := t.liveRevocationLocked(r.ID, now); rev != nil {
		if rev.Ban {
			return "", fmt.Errorf("register %s: %w", r.ID, ErrBanned)
		}
		return "", fmt.Errorf("register %s: %w since %s (%s)", r.ID, ErrRevoked, rev.At.UTC().Format(time.RFC3339), rev.Reason)
	}
	if at, ok := t.bannedAddrs[r.Addr]; ok && r.Addr != "" {
		if now.Sub(at) <= t.cfg.RegistrationTTL {
			return "", fmt.Errorf("register %s: %w", r.Addr, ErrBanned)
		}
		delete(t.bannedAddrs, r.Addr)
	}
	if old := t.peers[r.ID]; old != nil && newID == nil {
		switch {
		case old.banned:
			return "", fmt.Errorf("register %s: %w", r.ID, ErrBanned)
		case old.revoked:
			return "", fmt.Errorf("register %s: %w", r.ID, ErrRevoked)
		case !bytes.Equal(old.key, r.Key):
			return "", fmt.Errorf("%w: register: peer id %s is bound to another key", ErrInvalidArgument, r.ID)
		case !r.SignedAt.After(old.signedAt):
			return "", fmt.Errorf("register %s signed at %s, last one at %s: %w", r.ID,
				r.SignedAt.UTC().Format(time.RFC3339Nano), old.signedAt.UTC().Format(time.RFC3339Nano), ErrStaleRegistration)
		}
		for root := range old.objects {
			t.removeMemberLocked(r.ID, root)
		}
		old.tokenHash = sha256.Sum256([]byte(token))
		old.addr, old.name, old.pid, old.uploadBps = r.Addr, r.Name, r.PID, r.UploadBps
		old.lastSeen, old.signedAt = now, r.SignedAt
		t.stats.Registrations++
		t.log.Debug("peer registered again", "peer", r.ID, "name", r.Name, "addr", r.Addr)
		return token, nil
	}
	if len(t.peers) >= t.cfg.MaxPeers {
		t.expireLocked(now)
		if len(t.peers) >= t.cfg.MaxPeers {
			return "", fmt.Errorf("%w: limit %d reached", ErrTooManyPeers, t.cfg.MaxPeers)
		}
	}
	if newID != nil {
		for {
			r.ID = randomHex(8)
			if _, dup := t.peers[r.ID]; !dup {
				break
			}
		}
		*newID = r.ID
	}
	t.peers[r.ID] = &peer{
		id:        r.ID,
		key:       bytes.Clone(r.Key),
		signedAt:  r.SignedAt,
		tokenHash: sha256.Sum256([]byte(token)),
		addr:      r.Addr,
		name:      r.Name,
		pid:       r.PID,
		uploadBps: r.UploadBps,
		lastSeen:  now,
	}
	t.stats.Registrations++
	t.log.Debug("peer registered", "peer", r.ID, "name", r.Name, "addr", r.Addr)
	return token, nil
}

// PublicKey returns the identity key peerID registered with (nil for a
// peer registered without one) and whether it is registered.
func (t *Tracker) PublicKey(peerID string) (ed25519.PublicKey, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.peers[peerID]
	if !ok {
		return nil, false
	}
	return p.key, true
}

// Authenticate reports whether token is the one issued to peerID. The token
// comparison takes constant time.
func (t *Tracker) Authenticate(peerID, token string) bool {
	h := sha256.Sum256([]byte(token))
	t.mu.Lock()
	p, ok := t.peers[peerID]
	var want [32]byte
	if ok {
		want = p.tokenHash
	}
	t.mu.Unlock()
	return subtle.ConstantTimeCompare(h[:], want[:]) == 1 && ok
}

// Location returns the network location of peerID and whether it is
// registered (banned or not).
func (t *Tracker) Location(peerID string) (pid string, known bool) {
	pid, known, _ = t.Describe(peerID)
	return pid, known
}

// Describe returns the network location of peerID, whether it is
// registered (banned or not) and whether it is a managed cache.
func (t *Tracker) Describe(peerID string) (pid string, known, managed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[peerID]; p != nil {
		return p.pid, true, p.managed
	}
	return "", false, false
}

// SetManaged marks peerID as a managed cache (domain 2): hand-outs rank it
// before the end-user peers of its location, always consider it (large
// swarms are sampled), and HandoutOptions.CrossManagedOnly lets only such
// peers cross locations. The edge calls it for a registration that proved
// it is one. ErrUnknownPeer if peerID is not registered.
func (t *Tracker) SetManaged(peerID string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[peerID]
	if p == nil {
		return fmt.Errorf("set managed %q: %w", peerID, ErrUnknownPeer)
	}
	p.managed = true
	t.managed[peerID] = struct{}{}
	return nil
}

// Touch refreshes peerID's registration without an announce (a managed
// cache polling for orders while it holds nothing yet). It reports whether
// peerID is registered and not banned.
func (t *Tracker) Touch(peerID string) bool {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[peerID]
	if p == nil || p.banned {
		return false
	}
	p.lastSeen = now
	return true
}

// Holders returns the ids of the peers that hold every chunk of root
// (complete copies), sorted.
func (t *Tracker) Holders(root core.Hash) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.objects[root]
	if o == nil {
		return nil
	}
	var out []string
	for id, m := range o.members {
		if m.have.Complete() {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// FreshReport reports whether a usage report numbered seq from peerID for
// root is new: not one already applied (a retry of a report whose answer
// was lost). It records seq. A peer that is not a member of root's swarm
// (it left, or expired) cannot be checked, and its report counts as new.
func (t *Tracker) FreshReport(peerID string, root core.Hash, seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.objects[root]
	if o == nil {
		return true
	}
	m := o.members[peerID]
	if m == nil {
		return true
	}
	if seq <= m.report {
		return false
	}
	m.report = seq
	return true
}

// Known reports whether peerID is registered (banned or not).
func (t *Tracker) Known(peerID string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.peers[peerID]
	return ok
}

// Announce records that peerID holds have of the object root, whose manifest
// has numChunks chunks, and refreshes the peer's last-seen time. A banned
// peer's announce is ignored and reported as ErrBanned.
func (t *Tracker) Announce(peerID string, root core.Hash, numChunks int, have core.Bitfield) error {
	if numChunks < 0 || numChunks > core.MaxChunks || have.Len() != numChunks {
		return fmt.Errorf("%w: %d bits for %d chunks of %s", ErrBitfieldLength, have.Len(), numChunks, root.Short())
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.peers[peerID]
	if !ok {
		return fmt.Errorf("announce %s: %w", root.Short(), ErrUnknownPeer)
	}
	if p.banned {
		return fmt.Errorf("announce %s by %s: %w", root.Short(), peerID, ErrBanned)
	}
	if p.revoked {
		return fmt.Errorf("announce %s by %s: %w", root.Short(), peerID, ErrRevoked)
	}
	o, ok := t.objects[root]
	if ok && o.numChunks != numChunks {
		return fmt.Errorf("%w: %d chunks announced for %s, tracked with %d", ErrBitfieldLength, numChunks, root.Short(), o.numChunks)
	}
	t.stats.Announces++
	p.lastSeen = now
	if ok {
		if m, isMember := o.members[peerID]; isMember {
			o.setHave(peerID, m, have, p.addr != "")
			m.lastSeen = now
			return nil
		}
	}
	// A new membership: check every bound before changing anything.
	if len(p.objects) >= t.cfg.MaxObjectsPerPeer {
		t.stats.AnnouncesDropped++
		return fmt.Errorf("announce %s by %s: member of %d objects already: %w", root.Short(), peerID, len(p.objects), ErrTooManyObjects)
	}
	if !ok {
		if len(t.objects) >= t.cfg.MaxObjects {
			t.expireLocked(now)
		}
		if len(t.objects) >= t.cfg.MaxObjects {
			return fmt.Errorf("announce %s: %w (limit %d)", root.Short(), ErrTooManyObjects, t.cfg.MaxObjects)
		}
		o = &object{numChunks: numChunks, members: make(map[string]*member)}
		t.objects[root] = o
	}
	if len(o.members) >= t.cfg.MaxPeersPerObject {
		t.expireObjectLocked(root, o, now)
		if len(o.members) >= t.cfg.MaxPeersPerObject {
			// The swarm is full of live peers: the newcomer still gets
			// hand-outs, it just is not handed out itself.
			t.stats.AnnouncesDropped++
			return nil
		}
	}
	m := &member{lastSeen: now, pos: -1}
	o.members[peerID] = m
	o.setHave(peerID, m, have, p.addr != "")
	if p.objects == nil {
		p.objects = make(map[core.Hash]struct{})
	}
	p.objects[root] = struct{}{}
	return nil
}

// AnnounceInterval is how often the peers of a swarm of members peers
// should announce, given the configured interval base: base, or
// members / cfg.AnnounceBudget seconds if that is longer (so that the
// swarm costs the edge at most AnnounceBudget announces per second), but
// never longer than PeerTTL / 2 (a member must announce before it
// expires) unless base itself is. It is in whole milliseconds, rounded up,
// as the wire carries it. Zero fields of cfg mean their defaults; the
// simulator calls it too, so that simulated peers announce as the edge
// would tell them.
func AnnounceInterval(cfg Config, base time.Duration, members int) time.Duration {
	cfg = cfg.applyDefaults()
	if cfg.AnnounceBudget <= 0 || members <= 0 {
		return base
	}
	iv := time.Duration((int64(members)*1000+int64(cfg.AnnounceBudget)-1)/int64(cfg.AnnounceBudget)) * time.Millisecond
	iv = min(iv, cfg.PeerTTL/2/time.Millisecond*time.Millisecond)
	return max(base, iv)
}

// AnnounceInterval is AnnounceInterval for root's swarm as it is now (its
// members, expired ones included until they are swept): O(1).
func (t *Tracker) AnnounceInterval(root core.Hash, base time.Duration) time.Duration {
	t.mu.Lock()
	members := 0
	if o, ok := t.objects[root]; ok {
		members = len(o.members)
	}
	t.mu.Unlock()
	return AnnounceInterval(t.cfg, base, members)
}

// PeerPID is a registered peer's network location ("" unknown).
func (t *Tracker) PeerPID(peerID string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[peerID]; p != nil {
		return p.pid
	}
	return ""
}

// Leave removes peerID from root's swarm. Unknown peers or objects are not
// an error: leaving is idempotent.
func (t *Tracker) Leave(peerID string, root core.Hash) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeMemberLocked(peerID, root)
}

// Handout returns up to want (0 means Config.DefaultWant; at most
// wire.MaxHandout) other live, non-banned peers of root's swarm that hold
// at least one chunk and are reachable, ranked by the policy.
func (t *Tracker) Handout(root core.Hash, peerID string, want int) []Candidate {
	return t.HandoutWith(root, peerID, want, HandoutOptions{})
}

// HandoutOptions are an object's hand-out rules (its property's).
type HandoutOptions struct {
	// SamePID hands out only peers in the requester's network location
	// (a property's cross_pid: deny); a requester of unknown location
	// gets none.
	SamePID bool
	// CrossManagedOnly hands out peers in other locations only if they are
	// managed caches (a property's cross_pid: managed-only).
	CrossManagedOnly bool
}

// candidateOf is member m of an object's swarm, the peer p, as a hand-out
// policy sees it.
func candidateOf(id string, p *peer, m *member) Candidate {
	return Candidate{
		PeerID: id, Addr: p.addr, Name: p.name, PID: p.pid, Have: m.have,
		UploadBps: p.uploadBps, LastSeen: m.lastSeen, Managed: p.managed,
	}
}

// allows reports whether a requester in location reqPID may be handed p.
func (opt HandoutOptions) allows(reqPID string, p *peer) bool {
	same := p.pid == reqPID && reqPID != ""
	switch {
	case same:
		return true
	case opt.SamePID:
		return false
	case opt.CrossManagedOnly:
		return p.managed
	}
	return true
}

// HandoutWith is Handout under opt.
func (t *Tracker) HandoutWith(root core.Hash, peerID string, want int, opt HandoutOptions) []Candidate {
	if want <= 0 {
		want = t.cfg.DefaultWant
	}
	want = min(want, wire.MaxHandout)
	now := t.now()

	t.mu.Lock()
	t.stats.Handouts++
	o, ok := t.objects[root]
	if !ok {
		t.mu.Unlock()
		return nil
	}
	req := Request{Root: root, PeerID: peerID, Want: want}
	if m, ok := o.members[peerID]; ok {
		req.Have = m.have
	}
	if p := t.peers[peerID]; p != nil {
		req.PID = p.pid
	}
	sample := t.sampleLocked(o)
	cands := make([]Candidate, 0, len(sample))
	var expired []string
	for _, id := range sample {
		m := o.members[id]
		if now.Sub(m.lastSeen) > t.cfg.PeerTTL {
			expired = append(expired, id)
			continue
		}
		p := t.peers[id]
		if id == peerID || p == nil || p.banned || p.revoked || now.Before(p.suspendedUntil) || !opt.allows(req.PID, p) {
			continue
		}
		cands = append(cands, candidateOf(id, p, m))
	}
	if len(sample) < len(o.holders) {
		// A sampled hand-out still considers every managed cache that holds
		// something of the object.
		for id := range t.managed {
			m, p := o.members[id], t.peers[id]
			if m == nil || p == nil || id == peerID || p.banned || p.revoked || now.Before(p.suspendedUntil) || m.have.Count() == 0 || !opt.allows(req.PID, p) ||
				now.Sub(m.lastSeen) > t.cfg.PeerTTL || slices.Contains(sample, id) {
				continue
			}
			cands = append(cands, candidateOf(id, p, m))
		}
	}
	for _, id := range expired {
		t.removeMemberLocked(id, root)
		t.stats.Expired++
	}
	req.Rand = mrand.New(mrand.NewPCG(t.rng.Uint64(), t.rng.Uint64()))
	t.mu.Unlock()

	// Rank outside the lock: it is the only part that grows with the swarm.
	cands = t.policy.Rank(req, cands)
	if len(cands) > want {
		cands = cands[:want]
	}
	return cands
}

// sampleLocked returns the holders of o a hand-out ranks: all of them, or
// HandoutSample drawn uniformly without replacement (Floyd's algorithm).
func (t *Tracker) sampleLocked(o *object) []string {
	n, k := len(o.holders), t.cfg.HandoutSample
	if n <= k {
		return slices.Clone(o.holders)
	}
	picked := make(map[int]struct{}, k)
	out := make([]string, 0, k)
	for j := n - k; j < n; j++ {
		i := t.rng.IntN(j + 1)
		if _, dup := picked[i]; dup {
			i = j
		}
		picked[i] = struct{}{}
		out = append(out, o.holders[i])
	}
	return out
}

// Report records that reporter received a chunk of root (index) from
// offender that failed verification. Once Config.BanThreshold distinct peers
// have reported the offender it is banned: removed from every swarm, never
// handed out again, its announces refused. Reports by banned peers and
// repeated reports by the same peer do not count.
func (t *Tracker) Report(reporter, offender string, root core.Hash, index int) error {
	if reporter == offender {
		return fmt.Errorf("%w: a peer cannot report itself", ErrInvalidArgument)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.peers[reporter]
	if !ok {
		return fmt.Errorf("report by %s: %w", reporter, ErrUnknownPeer)
	}
	o, ok := t.peers[offender]
	if !ok {
		return fmt.Errorf("report of %q: %w", offender, ErrUnknownPeer)
	}
	t.stats.Reports++
	if r.banned || r.revoked || o.banned || o.revoked {
		return nil
	}
	if o.reporters == nil {
		o.reporters = make(map[string]struct{})
	}
	o.reporters[reporter] = struct{}{}
	t.log.Info("peer reported", "offender", offender, "reporter", reporter, "root", root.Short(), "chunk", index,
		"reports", len(o.reporters), "threshold", t.cfg.BanThreshold)
	if len(o.reporters) < t.cfg.BanThreshold {
		return nil
	}
	now := t.now()
	o.banned = true
	t.banned[offender] = struct{}{}
	if o.addr != "" && len(t.bannedAddrs) < t.cfg.MaxPeers {
		t.bannedAddrs[o.addr] = now
	}
	// The ban is a revocation too, so that peers refuse the offender's
	// chunk requests and its identity cannot register again.
	ban := Revocation{PeerID: offender, Reason: fmt.Sprintf("banned: %d peers reported bad chunks", len(o.reporters)),
		At: now, Until: now.Add(t.cfg.RegistrationTTL), Ban: true}
	if _, err := t.revokeLocked(ban, now); err != nil {
		t.log.Warn("ban not listed as a revocation", "peer", offender, "err", err)
	}
	o.reporters = nil
	t.stats.BansTotal++
	for root := range o.objects {
		t.removeMemberLocked(offender, root)
	}
	t.log.Warn("peer banned", "peer", offender, "name", o.name, "addr", o.addr)
	return nil
}

// ReportUnresponsive records that reporter, a member of root's swarm,
// could not get chunks from offender: its connections were refused, or its
// requests timed out again and again, although hand-outs list it (it
// vanished, or advertises chunks it never sends). Once
// Config.UnresponsiveThreshold distinct members have reported it within
// PeerTTL, it is suspended: left out of every hand-out for SuspendFor. One
// reporter alone cannot suspend anyone; reports by non-members or banned
// peers, and repeated reports by one peer, do not count more.
func (t *Tracker) ReportUnresponsive(reporter, offender string, root core.Hash) error {
	if reporter == offender {
		return fmt.Errorf("%w: a peer cannot report itself", ErrInvalidArgument)
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.peers[reporter]
	if !ok {
		return fmt.Errorf("report by %s: %w", reporter, ErrUnknownPeer)
	}
	o, ok := t.peers[offender]
	if !ok {
		return fmt.Errorf("report of %q: %w", offender, ErrUnknownPeer)
	}
	t.stats.UnresponsiveSeen++
	obj := t.objects[root]
	if r.banned || o.banned || obj == nil || obj.members[reporter] == nil || now.Before(o.suspendedUntil) {
		return nil
	}
	for id, at := range o.unresponsive {
		if now.Sub(at) > t.cfg.PeerTTL {
			delete(o.unresponsive, id)
		}
	}
	if o.unresponsive == nil {
		o.unresponsive = make(map[string]time.Time)
	}
	o.unresponsive[reporter] = now
	if len(o.unresponsive) < t.cfg.UnresponsiveThreshold {
		return nil
	}
	o.unresponsive = nil
	o.suspendedUntil = now.Add(t.cfg.SuspendFor)
	t.stats.SuspensionsTotal++
	t.log.Info("peer suspended from hand-outs: reported unresponsive", "peer", offender, "name", o.name, "addr", o.addr,
		"root", root.Short(), "for", t.cfg.SuspendFor)
	return nil
}

// IsSuspended reports whether peerID is left out of hand-outs now for
// being reported unresponsive.
func (t *Tracker) IsSuspended(peerID string) bool {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[peerID]
	return p != nil && now.Before(p.suspendedUntil)
}

// IsBanned reports whether peerID is banned.
func (t *Tracker) IsBanned(peerID string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.banned[peerID]
	return ok
}

// Banned returns the ids of the banned peers the tracker remembers, sorted.
// A banned peer is forgotten with its registration (RegistrationTTL).
func (t *Tracker) Banned() []string {
	t.mu.Lock()
	out := make([]string, 0, len(t.banned))
	for id := range t.banned {
		out = append(out, id)
	}
	t.mu.Unlock()
	sort.Strings(out)
	return out
}

// Stats returns a snapshot of the counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Peers, s.Objects, s.Banned, s.Revoked = len(t.peers), len(t.objects), len(t.banned), len(t.revoked)
	now := t.now()
	for _, p := range t.peers {
		if now.Before(p.suspendedUntil) {
			s.Suspended++
		}
	}
	for _, o := range t.objects {
		s.Members += len(o.members)
	}
	return s
}

// Sweep drops expired memberships, empty swarms and stale registrations.
// The sweep goroutine calls it; tests call it to force expiry.
func (t *Tracker) Sweep() {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
}

func (t *Tracker) expireLocked(now time.Time) {
	for root, o := range t.objects {
		t.expireObjectLocked(root, o, now)
	}
	for id, p := range t.peers {
		if now.Sub(p.lastSeen) <= t.cfg.RegistrationTTL {
			continue
		}
		for root := range p.objects {
			t.removeMemberLocked(id, root)
		}
		delete(t.peers, id)
		delete(t.banned, id)
		delete(t.managed, id)
		t.stats.Expired++
	}
	for addr, at := range t.bannedAddrs {
		if now.Sub(at) > t.cfg.RegistrationTTL {
			delete(t.bannedAddrs, addr)
		}
	}
	t.expireRevocationsLocked(now)
}

func (t *Tracker) expireObjectLocked(root core.Hash, o *object, now time.Time) {
	for id, m := range o.members {
		if now.Sub(m.lastSeen) > t.cfg.PeerTTL {
			t.removeMemberLocked(id, root)
			t.stats.Expired++
		}
	}
}

func (t *Tracker) removeMemberLocked(peerID string, root core.Hash) {
	if o, ok := t.objects[root]; ok {
		if m, ok := o.members[peerID]; ok && m.pos >= 0 {
			o.dropHolder(m)
		}
		delete(o.members, peerID)
		if len(o.members) == 0 {
			delete(t.objects, root)
		}
	}
	if p, ok := t.peers[peerID]; ok {
		delete(p.objects, root)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}

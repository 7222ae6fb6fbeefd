// Package sim is a discrete-event simulator of an edgeswarm flash crowd for
// swarms far larger than one machine can run for real (10k–100k peers). It
// drives the project's own policies — the peer scheduler's ChunkPolicy and
// pacing rules (internal/peer) and the tracker's HandoutPolicy
// (internal/swarm), the same Go code, not a copy — over a simulated network
// of access links with upload and download capacities and latency, at chunk
// granularity, on a virtual clock. A run is a pure function of its Config:
// the same seed gives the same Result. Its cost is per chunk request and per
// hand-out: past ChunkBudget it coarsens the chunks (Config.ChunkSize), and
// past DrawBudget and RankBudget it repeats hand-outs between fresh ones
// (Config.RerankEvery, HandoutSample).
//
// Each file opens with what it models and where it departs from the real
// system: net.go (links and bandwidth sharing), loop.go (one peer's
// download, a transcription of the agent's scheduler loop around the real
// policy and rules), admit.go (upload slots), tracker.go (announces and
// hand-outs). docs/SIM.md has the validation and the findings.
package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/fluid"
	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// Scenarios.
const (
	// Flashcrowd: every peer starts at t = 0 and stays.
	Flashcrowd = "flashcrowd"
	// Churn: peers arrive uniformly over Config.Arrival; a Config.Churn
	// share of them leave, half abruptly at a random point of their
	// download, half gracefully as soon as they complete. Every other peer
	// must complete.
	Churn = "churn"
)

// Config describes one simulation. Rates are in bit/s. Each field's comment
// says what its zero value means.
type Config struct {
	Scenario string  // "" means Flashcrowd
	Peers    int     // 0 means 20
	Size     int64   // object size in bytes; 0 means 64 MiB
	EdgeUp   float64 // 0 means 100 Mbit/s
	PeerUp   float64 // 0 means 20 Mbit/s
	PeerDown float64 // 0 means 100 Mbit/s
	// RTT is the round-trip time between any two nodes (each node is RTT/4
	// from the core); 0 means none.
	RTT time.Duration
	// ChunkSize 0 means what the edge picks (core.ChooseChunkSize), made
	// coarser (doubled) while peers × chunks exceeds ChunkBudget, with the
	// agents' request timeout floor (Agent.FetchTimeoutMs, unless set)
	// scaled by the same factor: the simulator's cost is per chunk
	// request. The agents' timeouts are otherwise absolute
	// (StallTimeoutMs, the backoffs): larger chunks change how the swarm
	// behaves, not just how fast the simulation runs (docs/SIM.md).
	ChunkSize int
	Seed      uint64 // 0 means 1
	// Churn is the share of peers that leave (Churn scenario); 0 means 0.2.
	Churn float64
	// Arrival is the window over which peers arrive (Churn scenario); 0
	// means the fluid bound of the whole crowd.
	Arrival time.Duration

	// Agent is the peers' configuration; zero fields take the agent's
	// defaults (peer.Config.WithDefaults). Upload slots (MaxUploads), the
	// hand-out size (MaxPeers), the announce interval and the scheduler's
	// pacing all come from here.
	Agent peer.Config
	// Policy picks chunks; nil means peer.DefaultPolicy.
	Policy peer.ChunkPolicy
	// Handout ranks hand-outs; nil means the tracker's default
	// (swarm.Weighted).
	Handout swarm.HandoutPolicy
	// SwarmCap bounds the peers the tracker records per object, as
	// swarm.Config.MaxPeersPerObject (later announcers get hand-outs but
	// are never handed out); 0 means the tracker's default (swarm.DefaultMaxPeersPerObject),
	// negative means no bound.
	SwarmCap int
	// HandoutSample is how many members holding a chunk the tracker draws
	// at random and ranks for one hand-out, as swarm.Config.HandoutSample
	// (the real tracker's sampleLocked); no more than the hand-out size
	// means drawn but not ranked. 0 means the tracker's default
	// (swarm.DefaultHandoutSample) if the run's ranked candidates fit
	// RankBudget, else as many as fit; negative means every member.
	HandoutSample int
	// RerankEvery: a requester gets a freshly drawn hand-out at every this
	// many announces (and whenever the members it could be drawn from
	// have doubled since its last one), and its previous hand-out again,
	// with the bitfields its members announced since, in between. The
	// real tracker draws one at every announce. 0 means 1, raised (up to
	// 50) while the run's fresh hand-outs × chunks exceed DrawBudget.
	RerankEvery int
	// AnnounceBudget is the edge's announce budget per object, as
	// swarm.Config.AnnounceBudget: peers announce at the interval
	// swarm.AnnounceInterval gives for the tracker's members at each
	// announce (the agent's announce interval stretched as the swarm
	// grows), as the edge tells them. 0 means the tracker's default
	// (swarm.DefaultAnnounceBudget); negative means none (the agent's
	// interval whatever the swarm's size).
	AnnounceBudget int
	// EdgeMaxUploads bounds the chunk uploads the edge serves at once,
	// refusing more with 503 as peers do past MaxUploads (the real edge's
	// MaxChunkUploads). 0 means unlimited.
	EdgeMaxUploads int
	// MaxTime stops a run that has not ended after this much simulated
	// time; 0 means 50 fluid bounds plus 10 minutes.
	MaxTime time.Duration

	// ChunkBudget bounds peers × chunks when ChunkSize is 0; 0 means the
	// package's ChunkBudget, negative means no bound (the edge's chunk
	// size whatever the cost).
	ChunkBudget int64

	edgeChunk int // what the edge would pick
}

// ChunkBudget is the default bound on peers × chunks when Config.ChunkSize
// is 0: past it the simulator doubles the edge's chunk size until the run
// fits (a chunk request costs a few µs of CPU, all included).
const ChunkBudget = 16 << 20

// Budgets of the simulated tracker's default (Config.HandoutSample and
// RerankEvery 0). swarm.Weighted costs 0.5–1 µs per candidate ranked (a
// hand-out from the real tracker's 1000 candidates about 0.7 ms), so
// RankBudget is 10–20 s of CPU. A fresh hand-out replaces most of a
// download's sources, which costs about a chunk count's worth of
// bookkeeping per source, and the refusals of the new sources' busy upload
// slots: DrawBudget bounds fresh hand-outs × chunks.
const (
	RankBudget = 20_000_000
	DrawBudget = 200_000_000
	maxRerank  = 50
)

func (c Config) withDefaults() Config {
	if c.Scenario == "" {
		c.Scenario = Flashcrowd
	}
	if c.Peers == 0 {
		c.Peers = 20
	}
	if c.Size == 0 {
		c.Size = 64 << 20
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
	if c.Size > 0 {
		c.edgeChunk = core.ChooseChunkSize(c.Size)
	}
	if c.ChunkSize == 0 && c.Size > 0 {
		if c.ChunkBudget == 0 {
			c.ChunkBudget = ChunkBudget
		}
		c.ChunkSize = coarseChunk(c.Peers, c.Size, c.edgeChunk, c.ChunkBudget)
		if k := c.ChunkSize / c.edgeChunk; k > 1 {
			def := (peer.Config{}).WithDefaults()
			if c.Agent.FetchTimeoutMs == 0 {
				c.Agent.FetchTimeoutMs = k * def.FetchTimeoutMs
			}
			if c.Agent.StallTimeoutMs == 0 {
				c.Agent.StallTimeoutMs = k * def.StallTimeoutMs
			}
		}
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Churn == 0 {
		c.Churn = 0.2
	}
	if c.Policy == nil {
		c.Policy = peer.DefaultPolicy{}
	}
	if c.Handout == nil {
		c.Handout = swarm.Weighted{}
	}
	if c.SwarmCap == 0 {
		c.SwarmCap = swarm.DefaultMaxPeersPerObject
	}
	c.Agent = c.Agent.WithDefaults()
	if c.Peers > 0 && c.Size > 0 && c.ChunkSize > 0 {
		c.autoHandouts()
	}
	return c
}

// coarseChunk is the edge's chunk size cs, doubled while peers × chunks
// exceeds budget (if positive).
func coarseChunk(peers int, size int64, cs int, budget int64) int {
	for budget > 0 && cs < core.MaxChunkSize && int64(peers)*((size+int64(cs)-1)/int64(cs)) > budget {
		cs <<= 1
	}
	return cs
}

// autoHandouts sets RerankEvery and HandoutSample when they are 0, for a
// flash crowd of Peers: each peer announces about bound / interval + 2
// times (the interval the tracker gives a swarm of Peers members) and gets a fresh hand-out at every RerankEvery-th of them, plus
// one each time the swarm's holders double (about log2(peers / hand-out
// size) times); RerankEvery is the smallest (up to 50) that keeps fresh
// hand-outs × chunks within DrawBudget, then HandoutSample the largest
// (up to the tracker's default) that keeps their ranked candidates within
// RankBudget.
func (c *Config) autoHandouts() {
	want := min(c.Agent.MaxPeers, wire.MaxHandout)
	bound := fluid.Bound(c.Peers, c.Size, c.EdgeUp, c.PeerUp, c.PeerDown)
	members := c.Peers
	if c.SwarmCap > 0 {
		members = min(members, c.SwarmCap)
	}
	iv := swarm.AnnounceInterval(c.swarmConfig(), time.Duration(c.Agent.AnnounceIntervalMs)*time.Millisecond, members)
	perPeer := bound/iv.Seconds() + 2
	growth := 1 + math.Ceil(math.Log2(max(float64(c.Peers)/float64(want), 1)))
	chunks := float64((c.Size + int64(c.ChunkSize) - 1) / int64(c.ChunkSize))
	draws := func(every int) float64 { return float64(c.Peers) * (perPeer/float64(every) + growth) }
	if c.RerankEvery == 0 {
		k := 1
		for k < maxRerank && draws(k)*chunks > DrawBudget {
			k++
		}
		c.RerankEvery = k
	}
	if c.HandoutSample == 0 {
		c.HandoutSample = swarm.DefaultHandoutSample
		if fit := int(RankBudget / draws(c.RerankEvery)); fit < c.HandoutSample {
			c.HandoutSample = max(fit, want) // ≤ want: drawn, not ranked
		}
	}
}

// swarmConfig is the tracker configuration the simulated one mirrors.
func (c Config) swarmConfig() swarm.Config {
	return swarm.Config{AnnounceBudget: c.AnnounceBudget}
}

func (c Config) validate() error {
	switch {
	case c.Scenario != Flashcrowd && c.Scenario != Churn:
		return fmt.Errorf("scenario %q: want %q or %q", c.Scenario, Flashcrowd, Churn)
	case c.Peers < 1 || c.Peers > 1_000_000:
		return fmt.Errorf("peers %d: want 1..1000000", c.Peers)
	case c.Size < 1 || c.Size > 1<<40:
		return fmt.Errorf("size %d: want 1 B..1 TiB", c.Size)
	case !core.ValidChunkSize(c.ChunkSize):
		return fmt.Errorf("chunk size %d: want a power of two in [%d, %d]", c.ChunkSize, core.MinChunkSize, core.MaxChunkSize)
	case (c.Size+int64(c.ChunkSize)-1)/int64(c.ChunkSize) > core.MaxChunks:
		return fmt.Errorf("size %d in chunks of %d: more than %d chunks", c.Size, c.ChunkSize, core.MaxChunks)
	case c.EdgeUp <= 0 || c.PeerUp <= 0 || c.PeerDown <= 0:
		return errors.New("rates must be positive")
	case c.RTT < 0 || c.Arrival < 0 || c.MaxTime < 0:
		return errors.New("durations must not be negative")
	case c.Churn < 0 || c.Churn > 1:
		return fmt.Errorf("churn %g: want a fraction in [0, 1]", c.Churn)
	case c.RerankEvery < 0:
		return fmt.Errorf("rerank every %d: want ≥ 0", c.RerankEvery)
	case c.EdgeMaxUploads < 0:
		return fmt.Errorf("edge max uploads %d: want ≥ 0", c.EdgeMaxUploads)
	}
	return nil
}

// Stats summarises a distribution of seconds.
type Stats struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

// Result is a run's report; its JSON has the testbed's fields.
type Result struct {
	System    string `json:"system"` // "edgeswarm-sim"
	Scenario  string `json:"scenario"`
	Peers     int    `json:"peers"`
	FileBytes int64  `json:"file_bytes"`
	ChunkSize int    `json:"chunk_size"`
	// EdgeChunkSize is what the edge picks for the object; ChunkSize is
	// larger when the simulator coarsened it (Config.ChunkSize).
	EdgeChunkSize int     `json:"edge_chunk_size"`
	EdgeUpMbit    float64 `json:"edge_up_mbit"`
	PeerUpMbit    float64 `json:"peer_up_mbit"`
	PeerDownMbit  float64 `json:"peer_down_mbit"`
	RTTMs         float64 `json:"rtt_ms"`
	// Completion is over the peers that completed, each from the moment
	// it started its download.
	Completion   Stats   `json:"completion_s"`
	FluidBound   float64 `json:"fluid_bound_s"`
	RatioToBound float64 `json:"ratio_to_bound"` // max completion / fluid bound; 0 if no peer completed
	// EdgeBytes and PeerBytes count every chunk response received in
	// full, duplicates included, as the agent's stats do.
	EdgeBytes     int64   `json:"edge_bytes"`
	PeerBytes     int64   `json:"peer_bytes"`
	Offload       float64 `json:"offload"`
	OffloadLimit  float64 `json:"offload_limit"`
	CrossISPBytes int64   `json:"cross_isp_bytes"` // peer bytes between the two ISPs
	CPUS          float64 `json:"cpu_s"`           // process CPU time during the run
	Events        uint64  `json:"events"`
	WallS         float64 `json:"wall_s"`

	Seed      uint64  `json:"seed"`
	SimS      float64 `json:"sim_s"`     // virtual time when the run ended
	Completed int     `json:"completed"` // downloads that completed
	// Failed downloads hit the agent's stall timeout; Unfinished were
	// still running at MaxTime; Left left mid-download (churn).
	Failed         int   `json:"failed"`
	Unfinished     int   `json:"unfinished"`
	Left           int   `json:"left"`
	DuplicateBytes int64 `json:"duplicate_bytes"`
	Requests       int64 `json:"requests"`
	Timeouts       int64 `json:"timeouts"`
	Busy           int64 `json:"busy"` // requests refused for load (503)
	Handouts       int64 `json:"handouts"`
	Ranked         int64 `json:"handouts_ranked"` // hand-outs the policy ranked
	RerankEvery    int   `json:"rerank_every"`
	HandoutSample  int   `json:"handout_sample"`  // members drawn per fresh hand-out (-1: all)
	AnnounceBudget int   `json:"announce_budget"` // the tracker's announces per second per object (-1: none)
	// AnnounceMaxMs is the longest announce interval the tracker gave
	// (swarm.AnnounceInterval).
	AnnounceMaxMs  int `json:"announce_interval_max_ms"`
	FetchTimeoutMs int `json:"fetch_timeout_ms"` // the agents' request timeout floor
	StallTimeoutMs int `json:"stall_timeout_ms"` // the agents' stall timeout
}

// Peer states.
const (
	psWaiting = iota // not started
	psActive         // downloading
	psDone           // complete, seeding
	psFailed         // stalled out
	psGone           // left
)

// Sim is one simulation run; New builds it, Run runs it once.
type Sim struct {
	cfg       Config
	pc        peer.Config
	nChunks   int
	cs        int
	maxFlight int
	stall     float64
	tick      float64
	announce  time.Duration // the agents' announce interval
	bound     float64
	maxTime   float64

	now   float64
	q     queue
	nodes []node    // 0 is the edge, 1..N the peers
	xs    []float64 // each node's uplink share (x)
	ys    []float64 // each node's downlink share (y)
	isps  []uint8   // each node's ISP
	pools []pool
	fl    []flight
	free  []int32
	peers []peerState // indexed like nodes; peers[0] unused
	tr    tracker
	rng   *rand.Rand
	minY  float64

	touchMark  []uint32
	touchStamp uint32
	touched    []int32

	running int // peers not yet done, failed or gone
	waitSeq uint64
	// waitDead marks, by sequence number, waits whose requester no longer
	// waits (forgetWait).
	waitDead []uint64
	res      Result

	keys []uint64 // each peer's ID order (peerState.key)
	// log holds, for each node, the chunks it received in order
	// (nChunks entries each): what a peer announced is a prefix of it.
	log []int32

	// scratch
	cands      []int
	order      []int32
	schedBuf   []schedEntry
	schedEmpty []schedEntry
	entries    []egEntry
	egMark     []uint32 // endgame: a chunk's stamp
	egAt       []int32  // endgame: a chunk's place in entries
	egStamp    uint32
	srcBuf     []src
}

// New checks cfg and builds the network, the tracker and the peers.
func New(cfg Config) (*Sim, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Sim{
		cfg:  cfg,
		pc:   cfg.Agent,
		cs:   cfg.ChunkSize,
		rng:  rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		tick: peer.TickInterval.Seconds(),
	}
	s.nChunks = int((cfg.Size + int64(s.cs) - 1) / int64(s.cs))
	s.maxFlight = peer.MaxFlights(s.pc, s.cs)
	s.stall = time.Duration(s.pc.StallTimeoutMs * int(time.Millisecond)).Seconds()
	s.announce = time.Duration(s.pc.AnnounceIntervalMs) * time.Millisecond
	s.bound = fluid.Bound(cfg.Peers, cfg.Size, cfg.EdgeUp, cfg.PeerUp, cfg.PeerDown)
	s.maxTime = cfg.MaxTime.Seconds()
	if s.maxTime == 0 {
		s.maxTime = 50*s.bound + 600
	}
	n := cfg.Peers + 1
	lat := cfg.RTT.Seconds() / 4
	s.nodes = make([]node, n)
	s.xs, s.ys, s.isps = make([]float64, n), make([]float64, n), make([]uint8, n)
	s.pools = make([]pool, 2*n)
	s.touchMark = make([]uint32, 2*n)
	s.touchStamp = 1
	for i := range s.nodes {
		nd := &s.nodes[i]
		nd.lat = lat
		if i == 0 {
			nd.up, nd.down = cfg.EdgeUp/8, math.Inf(1)
			nd.maxUploads = int32(cfg.EdgeMaxUploads)
		} else {
			nd.up, nd.down = cfg.PeerUp/8, cfg.PeerDown/8
			nd.maxUploads = int32(s.pc.MaxUploads)
			nd.isp = uint8(i % 2)
		}
		s.isps[i] = nd.isp
		s.setShares(int32(i))
		nd.admitEv = s.q.alloc(evAdmit, int32(i))
		s.pools[senderPool(int32(i))].ev = s.q.alloc(evPool, senderPool(int32(i)))
		s.pools[receiverPool(int32(i))].ev = s.q.alloc(evPool, receiverPool(int32(i)))
	}
	// No receiver ever has more flows than a download's flights.
	s.minY = cfg.PeerDown / 8 / float64(s.maxFlight)

	want := min(s.pc.MaxPeers, wire.MaxHandout)
	s.tr = newTracker(s, cfg.Handout, want, cfg.HandoutSample, cfg.SwarmCap, cfg.RerankEvery, rand.New(rand.NewPCG(cfg.Seed, 0x74726b)))

	s.peers = make([]peerState, n)
	s.keys = make([]uint64, n)
	s.log = make([]int32, n*s.nChunks)
	arrival := cfg.Arrival.Seconds()
	if arrival == 0 {
		arrival = s.bound
	}
	for i := 1; i < n; i++ {
		p := &s.peers[i]
		p.node = int32(i)
		p.rng = rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		p.key = s.rng.Uint64() // stands for the random peer ID's order
		s.keys[i] = p.key
		p.wakeEv = s.q.alloc(evWake, int32(i))
		p.annEv = s.q.alloc(evAnnounce, int32(i))
		p.hoEv = s.q.alloc(evHandout, int32(i))
		p.leaveEv = s.q.alloc(evLeave, int32(i))
		joinEv := s.q.alloc(evJoin, int32(i))
		join := 0.0
		if cfg.Scenario == Churn {
			join = s.rng.Float64() * arrival
			if s.rng.Float64() < cfg.Churn {
				if s.rng.IntN(2) == 0 {
					p.leave = leaveMid
					p.leaveAfter = s.rng.Float64() * s.bound
				} else {
					p.leave = leaveDone
				}
			}
		}
		s.q.schedule(joinEv, join)
	}
	s.tr.index()
	s.running = cfg.Peers
	return s, nil
}

// Run simulates until every peer has completed, failed or left, or until
// MaxTime.
func Run(cfg Config) (Result, error) {
	s, err := New(cfg)
	if err != nil {
		return Result{}, err
	}
	return s.Run(), nil
}

// Run runs the simulation; call it once.
func (s *Sim) Run() Result {
	wall := time.Now()
	cpu0 := cpuSeconds()
	for s.running > 0 {
		h, ok := s.q.pop()
		if !ok {
			break
		}
		e := s.q.ev[h]
		if e.at > s.maxTime {
			s.now = s.maxTime
			break
		}
		s.now = e.at
		s.dispatch(e.kind, e.obj)
	}
	s.finishResult()
	s.res.CPUS = cpuSeconds() - cpu0
	s.res.WallS = time.Since(wall).Seconds()
	return s.res
}

func (s *Sim) dispatch(kind evKind, obj int32) {
	switch kind {
	case evPool:
		s.onPool(obj)
	case evWake:
		s.onWake(&s.peers[obj])
	case evAnnounce:
		s.doAnnounce(&s.peers[obj])
	case evHandout:
		s.onHandoutEvent(&s.peers[obj])
	case evArrive:
		s.arrive(obj)
	case evDeliver:
		s.deliver(obj)
	case evJoin:
		s.join(&s.peers[obj])
	case evLeave:
		s.leaveNow(&s.peers[obj])
	case evAdmit:
		s.admit(obj)
	}
}

func (s *Sim) finishResult() {
	c := s.cfg
	r := &s.res
	r.System, r.Scenario, r.Seed = "edgeswarm-sim", c.Scenario, c.Seed
	r.Peers, r.FileBytes, r.ChunkSize, r.EdgeChunkSize = c.Peers, c.Size, s.cs, c.edgeChunk
	r.EdgeUpMbit, r.PeerUpMbit, r.PeerDownMbit = c.EdgeUp/1e6, c.PeerUp/1e6, c.PeerDown/1e6
	r.RTTMs = float64(c.RTT) / float64(time.Millisecond)
	r.FluidBound = s.bound
	r.OffloadLimit = fluid.OffloadLimit(c.Peers, c.Size, c.EdgeUp, s.bound)
	r.SimS = s.now
	r.Events = s.q.pops
	var times []float64
	for i := 1; i < len(s.peers); i++ {
		p := &s.peers[i]
		r.EdgeBytes += p.edgeBytes
		r.PeerBytes += p.peerBytes
		r.CrossISPBytes += p.crossBytes
		r.DuplicateBytes += p.dupBytes
		r.Requests += int64(p.requests)
		r.Timeouts += int64(p.timeouts)
		r.Busy += int64(p.busy)
		switch {
		case p.state == psDone || (p.state == psGone && p.completed):
			r.Completed++
			times = append(times, p.endAt-p.joinAt)
		case p.state == psFailed:
			r.Failed++
		case p.state == psGone:
			r.Left++
		default:
			r.Unfinished++
		}
	}
	r.Handouts, r.Ranked, r.RerankEvery, r.HandoutSample = s.tr.handouts, s.tr.ranked, c.RerankEvery, c.HandoutSample
	r.FetchTimeoutMs, r.StallTimeoutMs = s.pc.FetchTimeoutMs, s.pc.StallTimeoutMs
	r.AnnounceBudget, r.AnnounceMaxMs = c.AnnounceBudget, s.tr.maxIvMs
	if r.AnnounceBudget == 0 {
		r.AnnounceBudget = swarm.DefaultAnnounceBudget
	} else if r.AnnounceBudget < 0 {
		r.AnnounceBudget = -1
	}
	if len(times) > 0 {
		slices.Sort(times)
		r.Completion = Stats{Min: times[0], Median: median(times), Max: times[len(times)-1]}
		if s.bound > 0 {
			r.RatioToBound = r.Completion.Max / s.bound
		}
	}
	if t := r.EdgeBytes + r.PeerBytes; t > 0 {
		r.Offload = float64(r.PeerBytes) / float64(t)
	}
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

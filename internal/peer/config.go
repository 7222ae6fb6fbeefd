package peer

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// Config configures an Agent. Each field's comment says what its zero value
// means; applyDefaults fills them in.
type Config struct {
	// Edge is the base URL of the edge this peer registers with, e.g.
	// "http://127.0.0.1:8080". Required.
	Edge string `yaml:"edge"`
	// Fallbacks are other edges of the same CDN, tried in order when the
	// edge's manifest fails (unreachable, malformed, badly signed); the edge
	// that gave the manifest then serves the download's edge chunks. When
	// that edge fails mid-download (EdgeFailoverAfter), the download moves
	// its edge chunks to the next edge of Edge and Fallbacks that serves
	// the same version. The swarm is still coordinated by Edge. Empty
	// means none.
	Fallbacks []string `yaml:"fallbacks"`
	// Advertise is the host:port other peers use to reach this peer's chunk
	// server. "" means leech only: the edge does not hand this peer out.
	Advertise string `yaml:"advertise"`
	// Name is a label for logs and stats; "" means none.
	Name string `yaml:"name"`
	// Keys are the trusted edge-tier manifest keys. nil means fetch them
	// from the edge at the first download (trust on first use, logged at Warn).
	// They also verify the tickets other peers show.
	Keys core.KeyRing `yaml:"-"`
	// Identity is the agent's long-lived ed25519 identity key: the edge
	// names the peer after it (core.PeerIDOf) and issues tickets for it.
	// nil means a fresh key in memory, a new identity at each start.
	Identity ed25519.PrivateKey `yaml:"-"`
	// UploadBps is the upload budget (bytes/s) advertised to the edge for
	// its hand-out ranking; 0 means UploadLimitBps (0 too: unknown). The
	// agent does not shape to it: the demo sets it to its emulated link.
	UploadBps int64 `yaml:"upload_bps"`
	// UploadLimitBps caps the chunk bytes per second the agent uploads to
	// other peers, all uploads together (a token bucket the agent enforces
	// as it writes). 0 means no cap.
	UploadLimitBps int64 `yaml:"upload_limit_bps"`
	// MaxUploads bounds the chunk uploads served at once; past it requests
	// get 503 at once. 0 means 16.
	MaxUploads int `yaml:"max_uploads"`
	// MaxConns bounds the open inbound connections of the chunk server
	// (Serve); past it a new connection is closed as soon as it is
	// accepted. 0 means 256.
	MaxConns int `yaml:"max_conns"`
	// Upload is the upload mode: UploadOn, UploadOff (leech only) or
	// UploadIdle (only while this machine's user is idle, see idle.go).
	// "" means on.
	Upload UploadMode `yaml:"upload"`
	// IdleAfterMs: with UploadIdle, the user counts as idle once no local
	// player has read and no download of this agent's own has run for
	// this long. 0 means 30000.
	IdleAfterMs int `yaml:"idle_after_ms"`
	// IdleCPUPercent: with UploadIdle, the user also counts as idle only
	// while the CPUs were busy less than this share over the last second
	// (Linux /proc/stat or Deps.CPUBusy; not checked elsewhere). 0 means
	// 50; 100 or more turns the CPU check off.
	IdleCPUPercent int `yaml:"idle_cpu_percent"`

	// Managed registers this peer as a managed cache (domain 2) with the
	// edge's ManagedToken: it is handed out before end-user peers of its
	// location and carries out pre-positioning orders (RunOrders).
	Managed      bool   `yaml:"managed"`
	ManagedToken string `yaml:"-"`

	// MaxPeers bounds the peer sources of one download (and is the hand-out
	// size asked of the edge). 0 means 50.
	MaxPeers int `yaml:"max_peers"`
	// AnnounceIntervalMs is how often each download announces its bitfield
	// and refreshes its hand-out. 0 means 500; a longer interval asked by
	// the edge wins.
	AnnounceIntervalMs int `yaml:"announce_interval_ms"`
	// PipelineMs is how much data the scheduler keeps requested from each
	// source, in milliseconds of that source's measured rate: a source gets
	// about rate × PipelineMs / chunk size concurrent requests. 0 means 300.
	PipelineMs int `yaml:"pipeline_ms"`
	// MaxPeerSlots and MaxEdgeSlots cap the concurrent requests to one peer
	// and to the edge. 0 means 8 each.
	MaxPeerSlots int `yaml:"max_peer_slots"`
	MaxEdgeSlots int `yaml:"max_edge_slots"`
	// MaxInFlight caps the concurrent chunk requests of one download, and
	// MaxInFlightBytes the chunk buffers they hold. 0 means 64 and 64 MiB.
	MaxInFlight      int   `yaml:"max_in_flight"`
	MaxInFlightBytes int64 `yaml:"max_in_flight_bytes"`
	// FetchTimeoutMs is the floor of the per-request timeout (the timeout
	// grows with a source's queue and shrinks with its measured rate). A
	// request is given up when no byte of it has arrived for that long (at
	// most StallFactor timeouts after it started), so it is also how soon a
	// silent peer's chunks go back to the edge. 0 means 3000.
	FetchTimeoutMs int `yaml:"fetch_timeout_ms"`
	// ReaderWindow is how many chunks ahead of an active reader's position
	// are fetched first. 0 means 16.
	ReaderWindow int `yaml:"reader_window"`
	// RescueMs: a chunk a reader is blocked on that has been in flight from
	// a peer this long is also asked of the edge. 0 means 1000.
	RescueMs int `yaml:"rescue_ms"`
	// EndgameCopies caps the concurrent requests for one chunk once every
	// missing chunk is in flight. 0 means 2.
	EndgameCopies int `yaml:"endgame_copies"`
	// StallTimeoutMs fails a download when no chunk verified for this long.
	// 0 means 60000.
	StallTimeoutMs int `yaml:"stall_timeout_ms"`
	// Mode is how downloads are scheduled: ModeDownload (the whole object
	// as fast as the swarm allows, the edge super-seeding) or ModeStream
	// (players read it in order at StreamRateBps: the chunks ahead of each
	// reader come in order with deadlines; the edge sends the start-up
	// chunks, the chunks no peer holds and the chunks about to miss their
	// deadline, and nothing past the window). "" means download.
	Mode Mode `yaml:"mode"`
	// StreamRateBps is the stream's playback rate in bytes/s (its bitrate
	// / 8), from which stream mode derives deadlines. 0 means 500000 (4
	// Mbit/s).
	StreamRateBps int64 `yaml:"stream_rate_bps"`
	// StreamWindowMs: in stream mode, the chunks due within this long are
	// the reader's window, fetched in order. 0 means 10000.
	StreamWindowMs int `yaml:"stream_window_ms"`
	// StreamLeadMs: in stream mode, a chunk of the window due within this
	// long that no peer will deliver in time is fetched from the edge
	// (again, if a peer has it in flight). 0 means 2000.
	StreamLeadMs int `yaml:"stream_lead_ms"`
	// StreamStartMs: in stream mode, the chunks covering this much play
	// time from where a reader starts or seeks come from the edge, so that
	// start-up is not slower than from the edge alone. 0 means 1000.
	StreamStartMs int `yaml:"stream_start_ms"`
	// FastStart: in stream mode, whether a player may be handed the bytes
	// of a start-up chunk from the edge as they arrive, before the chunk
	// is whole and verified (it is verified when whole, and a reader
	// moves past it only if the verified chunk begins with what it
	// played; see faststart.go): its first byte then comes as soon as from
	// the edge alone. FastStartOn, FastStartOff, or FastStartAuto: on when
	// the edge is reached over HTTPS, whose authentication makes the
	// edge's bytes as trusted as its manifest signature. "" means auto.
	FastStart string `yaml:"fast_start"`
	// ManifestTTLMs is how long a manifest is reused before Download asks
	// the edge again (a new version starts a new download; on an edge
	// error the old version is served). 0 means 30000; negative means never.
	ManifestTTLMs int `yaml:"manifest_ttl_ms"`
}

// applyDefaults returns a copy of c with zero values replaced.
func (c Config) applyDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxUploads, 16)
	def(&c.MaxConns, 256)
	if c.Upload == "" {
		c.Upload = UploadOn
	}
	def(&c.IdleAfterMs, 30000)
	def(&c.IdleCPUPercent, 50)
	if c.UploadBps <= 0 {
		c.UploadBps = max(c.UploadLimitBps, 0)
	}
	def(&c.MaxPeers, 50)
	c.MaxPeers = min(c.MaxPeers, wire.MaxHandout)
	def(&c.AnnounceIntervalMs, 500)
	def(&c.PipelineMs, 300)
	def(&c.MaxPeerSlots, 8)
	def(&c.MaxEdgeSlots, 8)
	def(&c.MaxInFlight, 64)
	if c.MaxInFlightBytes <= 0 {
		c.MaxInFlightBytes = 64 << 20
	}
	def(&c.FetchTimeoutMs, 3000)
	def(&c.ReaderWindow, 16)
	def(&c.RescueMs, 1000)
	def(&c.EndgameCopies, 2)
	def(&c.StallTimeoutMs, 60000)
	if c.Mode == "" {
		c.Mode = ModeDownload
	}
	if c.StreamRateBps <= 0 {
		c.StreamRateBps = 500_000
	}
	def(&c.StreamWindowMs, 10000)
	def(&c.StreamLeadMs, 2000)
	def(&c.StreamStartMs, 1000)
	if c.ManifestTTLMs == 0 {
		c.ManifestTTLMs = 30000
	}
	return c
}

// Mode is how an agent schedules its downloads (Config.Mode).
type Mode string

// The modes.
const (
	ModeDownload Mode = "download"
	ModeStream   Mode = "stream"
)

// ParseMode parses a mode name; "" is download.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeDownload, nil
	case ModeDownload, ModeStream:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: want download or stream", s)
}

func ms(v int) time.Duration { return time.Duration(v) * time.Millisecond }

// Deps are the agent's injected dependencies; every field may be nil.
type Deps struct {
	// Store keeps verified chunks; nil means a memory store owned (and
	// closed) by the agent. A given store is not closed by the agent.
	Store chunkstore.Store
	// HTTP is used for edge and peer requests alike; the demo passes one
	// whose dialer is shaped as this peer's download link. nil means a
	// client with a pooled transport. Give it MaxIdleConnsPerHost ≥ 8: the
	// scheduler keeps up to MaxEdgeSlots requests open to the edge.
	HTTP *http.Client
	// Logger nil means discard.
	Logger *slog.Logger
	// Now nil means time.Now. It stamps stats and drives the scheduler's
	// rate estimates.
	Now func() time.Time
	// Rand seeds per-download randomness (tie-breaks); nil means seeded
	// from the runtime's random source.
	Rand *rand.Rand
	// Policy picks the next chunk to ask each source for; nil means
	// DefaultPolicy.
	Policy ChunkPolicy
	// Clock reads the local time of day that pre-positioning windows
	// (RunOrders) are in; nil means Now.
	Clock func() time.Time
	// CPUBusy reports the share of CPU time the whole system was busy
	// since its previous call, in [0, 1], for idle-only uploading; ok is
	// false while it has no figure. nil means /proc/stat on Linux and no
	// CPU check elsewhere. The agent calls it at most once a second.
	CPUBusy func() (busy float64, ok bool)
}

// Package wire defines the HTTP paths and JSON messages that edgeswarm roles
// exchange (peer ↔ edge swarm API, peer ↔ peer chunk transfer) and the small
// clients that speak them. Roles import wire, never each other's servers.
package wire

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// Paths served by edges (all of them) and peers (PathChunk only).
const (
	// PathManifest: GET ?url=/object/path → the signed manifest of the
	// object's current version (ContentTypeManifest), filling the edge if needed.
	PathManifest = "/swarm/v1/manifest"
	// PathKey: GET → the edge tier's ed25519 public key(s), KeyResponse.
	PathKey = "/swarm/v1/key"
	// PathRegister: POST RegisterRequest → RegisterResponse.
	PathRegister = "/swarm/v1/register"
	// PathAnnounce: POST AnnounceRequest → AnnounceResponse (the hand-out).
	PathAnnounce = "/swarm/v1/announce"
	// PathReport: POST ReportRequest → 204. A peer reports a peer that sent
	// a bad chunk, or that it could not get chunks from.
	PathReport = "/swarm/v1/report"
	// PathOrders: POST OrdersRequest → OrdersResponse. A managed cache asks
	// for its pre-positioning orders and reports the ones it has carried out.
	PathOrders = "/swarm/v1/orders"
	// PathChunk: GET PathChunk + "{root hex}/{index}" → the raw chunk bytes
	// (application/octet-stream, exact Content-Length).
	PathChunk = "/swarm/v1/chunk/"
)

// ContentTypeManifest is the media type of an encoded core.Manifest.
const ContentTypeManifest = "application/vnd.edgeswarm.manifest"

// Header names.
const (
	// HeaderPeerID names the requesting peer on peer ↔ peer requests so the
	// server can attribute its upload.
	HeaderPeerID = "X-Edgeswarm-Peer"
)

// Limits on bodies a server or client reads.
const (
	MaxJSONBody     = 1 << 20
	MaxManifestBody = 64 << 20
	MaxHandout      = 200
	// MaxReceived bounds AnnounceRequest.Received: a download keeps at most
	// MaxHandout peer sources, and a few it has dropped may still be owed.
	MaxReceived = 2 * MaxHandout
	// MaxOrders and MaxOrderURLs bound the pre-positioning orders an edge
	// keeps and the objects of one order.
	MaxOrders    = 1000
	MaxOrderURLs = 1000
	// MaxRevocations bounds the revocations one announce response lists.
	MaxRevocations = 1000
)

// ChunkPath returns the request path of chunk index of the object root.
func ChunkPath(root core.Hash, index int) string {
	return PathChunk + root.String() + "/" + strconv.Itoa(index)
}

// ParseChunkPath parses what ChunkPath produced (the path after the host).
func ParseChunkPath(p string) (core.Hash, int, error) {
	rest, ok := strings.CutPrefix(p, PathChunk)
	if !ok {
		return core.Hash{}, 0, fmt.Errorf("chunk path %q: want prefix %s", p, PathChunk)
	}
	rootHex, idx, ok := strings.Cut(rest, "/")
	if !ok {
		return core.Hash{}, 0, fmt.Errorf("chunk path %q: want %s{root}/{index}", p, PathChunk)
	}
	root, err := core.ParseHash(rootHex)
	if err != nil {
		return core.Hash{}, 0, fmt.Errorf("chunk path: %w", err)
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 || i >= core.MaxChunks {
		return core.Hash{}, 0, fmt.Errorf("chunk path %q: bad index", p)
	}
	return root, i, nil
}

// KeyResponse lists the edge tier's manifest-signing public keys.
type KeyResponse struct {
	Keys []KeyInfo `json:"keys"`
}

// KeyInfo is one public key; PublicKey is base64 of the 32 raw bytes.
type KeyInfo struct {
	ID        string `json:"id"`
	PublicKey []byte `json:"public_key"`
}

// RegisterRequest enrolls a peer with an edge.
type RegisterRequest struct {
	// Addr is where other peers reach this peer's chunk server ("host:port");
	// empty for a leech-only peer.
	Addr string `json:"addr,omitempty"`
	// UploadBps is the peer's upload budget in bytes/s; 0 means unknown.
	UploadBps int64 `json:"upload_bps,omitempty"`
	// Name is a free-form label for logs and the demo.
	Name string `json:"name,omitempty"`
	// Managed registers a managed cache (domain 2); ManagedToken proves it
	// (the edge's managed-cache token). A managed registration without the
	// right token is refused with 403.
	Managed      bool   `json:"managed,omitempty"`
	ManagedToken string `json:"managed_token,omitempty"`

	// PublicKey is the peer's ed25519 identity key (32 bytes); the edge
	// names the peer core.PeerIDOf(PublicKey). Time (Unix milliseconds,
	// within RequestSkew of the edge's clock and later than the peer's
	// previous registration) and Signature (by that key over the request
	// and the edge's host, SignRegister) prove the peer holds the key now.
	PublicKey []byte `json:"public_key,omitempty"`
	Time      int64  `json:"time,omitempty"`
	Signature []byte `json:"signature,omitempty"`
}

// RegisterResponse gives the peer its identity on this edge.
type RegisterResponse struct {
	PeerID string `json:"peer_id"`
	// Token authenticates the peer's later swarm requests.
	Token string `json:"token"`
	// AnnounceIntervalMs is how often the peer should announce.
	AnnounceIntervalMs int `json:"announce_interval_ms"`
	// Ticket is the peer's ticket (core.Ticket encoding), shown to other
	// peers on chunk requests.
	Ticket []byte `json:"ticket,omitempty"`
}

// AnnounceRequest tells the edge what the peer holds of one object and asks
// for a hand-out of peers.
type AnnounceRequest struct {
	PeerID string `json:"peer_id"`
	Token  string `json:"token"`
	Root   string `json:"root"`
	// Have is the bitfield (core.Bitfield.Bytes) of verified chunks held.
	Have []byte `json:"have"`
	// Want is the number of peers the requester wants; 0 means the default.
	Want int `json:"want,omitempty"`
	// Leaving removes the peer from this object's swarm.
	Leaving bool `json:"leaving,omitempty"`
	// Received reports the chunk bytes this peer received from other peers
	// of the object since its last accepted announce, one entry per source
	// (at most MaxReceived), for the edge's usage counters. Bytes from
	// edges are not reported: edges count what they send.
	Received []Received `json:"received,omitempty"`
	// ReceivedSeq numbers the Received report, from 1 up per download; a
	// report whose answer was lost is sent again with the same number, and
	// the edge applies each number once.
	ReceivedSeq uint64 `json:"received_seq,omitempty"`
	// RenewTicket asks for a fresh ticket in the response.
	RenewTicket bool `json:"renew_ticket,omitempty"`
	// RevokedSince is the newest Revocation.At the peer holds (Unix
	// milliseconds); the response lists only revocations from then on. 0
	// means every revocation still in force.
	RevokedSince int64 `json:"revoked_since,omitempty"`
}

// Received is the bytes received from one source peer.
type Received struct {
	From  string `json:"from"` // the source's peer ID
	Bytes int64  `json:"bytes"`
}

// AnnounceResponse is the hand-out: peers that hold chunks of the object,
// with what they hold, ranked best first.
type AnnounceResponse struct {
	Peers              []PeerInfo `json:"peers"`
	AnnounceIntervalMs int        `json:"announce_interval_ms"`
	// Ticket is a fresh ticket when the request asked for one.
	Ticket []byte `json:"ticket,omitempty"`
	// Revoked lists peer identities whose tickets must be refused, newest
	// first, at most MaxRevocations.
	Revoked []Revocation `json:"revoked,omitempty"`
}

// Revocation tells peers to refuse PeerID's chunk requests until Until
// (Unix milliseconds), by when every ticket the peer was given has
// expired. At is when the edge revoked it.
type Revocation struct {
	PeerID string `json:"peer_id"`
	At     int64  `json:"at"`
	Until  int64  `json:"until"`
}

// PeerInfo is one handed-out peer.
type PeerInfo struct {
	PeerID string `json:"peer_id"`
	Addr   string `json:"addr"`
	Have   []byte `json:"have"`
	// Cost is the network cost from the requester's location to this
	// peer's (the edge's cost map); 0 means the same location, or no map.
	// A peer agent asks a peer of non-zero cost only for chunks no peer of
	// cost 0 holds.
	Cost int `json:"cost,omitempty"`
	// Managed: the peer is a managed cache (its bytes count as "cache").
	Managed bool `json:"managed,omitempty"`
}

// OrdersRequest asks the edge for a managed cache's pre-positioning orders;
// Done lists the ids of orders whose every object it now holds.
type OrdersRequest struct {
	PeerID string   `json:"peer_id"`
	Token  string   `json:"token"`
	Done   []string `json:"done,omitempty"`
}

// OrdersResponse lists the orders for the asking cache's location.
type OrdersResponse struct {
	Orders []Order `json:"orders"`
	// PollIntervalMs is how often the cache should ask again.
	PollIntervalMs int `json:"poll_interval_ms"`
}

// Order asks managed caches to fetch objects ahead of demand.
type Order struct {
	ID   string   `json:"id"`
	URLs []string `json:"urls"`
	// Window, if set, is "HH:MM-HH:MM" in the cache's local time (ParseWindow):
	// transfers run only inside it. "" means at once.
	Window string `json:"window,omitempty"`
	// PIDs are the network locations whose managed caches carry out the
	// order; empty means every managed cache.
	PIDs []string `json:"pids,omitempty"`
}

// ReportRequest tells the edge that Offender misbehaved in the swarm of
// Root: what it did is Kind.
type ReportRequest struct {
	PeerID   string `json:"peer_id"`
	Token    string `json:"token"`
	Root     string `json:"root"`
	Offender string `json:"offender"`
	// Kind is ReportBadChunk ("" means it too) or ReportUnresponsive.
	Kind string `json:"kind,omitempty"`
	// Index is the bad chunk (ReportBadChunk).
	Index int `json:"index"`
	// Reason is a free-form detail for the edge's log.
	Reason string `json:"reason"`
}

// Report kinds.
const (
	// ReportBadChunk: Offender sent chunk Index and it failed verification.
	// Enough distinct reporters get it banned.
	ReportBadChunk = "bad_chunk"
	// ReportUnresponsive: the reporter could not get chunks from Offender
	// (refused connections, or requests timed out again and again) although
	// the hand-out listed it. Enough distinct reporters get it left out of
	// hand-outs for a while.
	ReportUnresponsive = "unresponsive"
)

package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// SourceKind says what kind of place a chunk came from; stats are keyed by it.
type SourceKind string

// Source kinds.
const (
	KindEdge  SourceKind = "edge"
	KindPeer  SourceKind = "peer"
	KindCache SourceKind = "cache" // managed caches (domain 2)
)

// Source is any place a chunk can come from: the edge, another peer, later
// a managed cache. The scheduler treats every Source alike.
type Source interface {
	// ID names the source: a peer ID, or "edge".
	ID() string
	Kind() SourceKind
	// Fetch returns chunk index of the object root, exactly size bytes,
	// read into buf (grown if needed). It does not verify the hash. It
	// returns wire.ErrChunkNotFound when the source lacks the chunk and an
	// error wrapping ErrSourceBusy when the source refuses for load. If
	// progress is not nil, Fetch calls it as wire.FetchChunkProgress does:
	// with 0 when the response starts, then with the bytes received so far
	// (the scheduler tells slow transfers from stalled ones by it, and
	// measures the source's time to first byte).
	Fetch(ctx context.Context, root core.Hash, index, size int, buf []byte, progress func(n int)) ([]byte, error)
}

// ErrSourceBusy: the source refused the request for load (HTTP 503); ask
// again later, the source is not at fault.
var ErrSourceBusy = wire.ErrBusy

// httpSource fetches chunks over wire's chunk path from an edge or a peer.
type httpSource struct {
	id   string
	kind SourceKind
	base string // e.g. "http://10.0.0.2:7001"
	hc   *http.Client
	self func() string // this peer's ID, sent for attribution
	// sign, if not nil, sets the request's Authorization (peers only);
	// refused, if not nil, hears of a 401 or 403 answer.
	sign    func(*http.Request)
	refused func(id string, code int, err error)
}

func (s *httpSource) ID() string       { return s.id }
func (s *httpSource) Kind() SourceKind { return s.kind }

func (s *httpSource) Fetch(ctx context.Context, root core.Hash, index, size int, buf []byte, progress func(n int)) ([]byte, error) {
	data, err := wire.FetchChunkAuth(ctx, s.hc, s.base, root, index, size, s.self(), s.sign, buf, progress)
	if err != nil {
		code := wire.StatusCode(err)
		if s.refused != nil && (code == http.StatusUnauthorized || code == http.StatusForbidden) {
			s.refused(s.id, code, err)
		}
		if code == http.StatusUnauthorized {
			// Our ticket was refused and is being renewed: like a busy
			// answer, the source is not at fault and is asked again shortly.
			return nil, fmt.Errorf("%s %s: %w (%w)", s.kind, s.id, err, ErrSourceBusy)
		}
		return nil, fmt.Errorf("%s %s: %w", s.kind, s.id, err)
	}
	return data, nil
}

// unreachable reports whether err says that the source could not be
// connected to at all (a refused, unroutable or timed-out dial): the peer
// is gone, or never was where it said.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

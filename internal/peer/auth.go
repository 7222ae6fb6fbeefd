package peer

// Peer authentication: the agent's identity key, the ticket its edge
// issued for it (shown, with a proof by the key, on every chunk request
// to another peer, and renewed in announces), the check of other peers'
// tickets before a chunk is served, and the revocation list the edge
// hands on.

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// maxRevocationsHeld bounds the revocations an agent keeps; past it the
// ones that lapse first are dropped. maxAuthCache bounds the proofs an
// agent keeps for reuse and the Authorizations it has checked.
const (
	maxRevocationsHeld = 10 * wire.MaxRevocations
	maxAuthCache       = 4096
)

// authCache is a bounded map; past its limit it starts afresh (a miss
// only costs a signature or a check). Its owner guards it.
type authCache[V any] struct {
	m     map[string]V
	limit int
}

func (c *authCache[V]) get(k string) (V, bool) {
	v, ok := c.m[k]
	return v, ok
}

func (c *authCache[V]) put(k string, v V) {
	if c.m == nil {
		c.m = make(map[string]V)
	}
	if len(c.m) >= c.limit {
		clear(c.m)
	}
	c.m[k] = v
}

// madeProof is an Authorization made for one peer, reused for
// wire.ProofReuse while the ticket it shows is held.
type madeProof struct {
	value  string
	at     time.Time
	ticket *heldTicket
}

// checkedAuth is an Authorization (for one Host) whose ticket and proof
// verified; later requests with it only have their times checked.
type checkedAuth struct {
	peerID           string
	expires, proofAt time.Time
}

// heldTicket is the agent's current ticket.
type heldTicket struct {
	raw             []byte
	issued, expires time.Time
}

// Identity returns the agent's peer ID: that of its identity key, which
// its edge names it by (core.PeerIDOf).
func (a *Agent) Identity() string { return core.PeerIDOf(a.identity.Public().(ed25519.PublicKey)) }

// signRegister signs a registration for the home edge, never twice with
// the same time (the edge refuses a registration not later than the
// last). Callers hold regMu.
func (a *Agent) signRegister(r *wire.RegisterRequest) {
	at := a.now()
	if ms := at.UnixMilli(); ms <= a.lastRegMs {
		at = time.UnixMilli(a.lastRegMs + 1)
	}
	a.lastRegMs = at.UnixMilli()
	wire.SignRegister(r, a.identity, a.edgeHost, at)
}

// setTicket keeps a ticket the edge just issued, in place of the one
// held, if it is one for this agent's key. A ticket the trusted keys do
// not verify is kept with a warning: peers will refuse it, and their 401s
// make the agent ask for another.
func (a *Agent) setTicket(raw []byte, keys core.KeyRing) {
	var t core.Ticket
	if err := t.UnmarshalBinary(raw); err != nil {
		a.log.Warn("the edge sent a ticket that does not decode; peers will refuse our requests", "err", err)
		return
	}
	if !t.PublicKey.Equal(a.identity.Public()) {
		a.log.Warn("the edge sent a ticket for another key; ignored", "ticket_peer", t.PeerID)
		return
	}
	if err := t.Verify(keys, a.now()); err != nil {
		a.log.Warn("the edge's ticket does not verify against the trusted keys; peers will refuse our requests", "err", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ticket = &heldTicket{raw: bytes.Clone(raw), issued: t.Issued, expires: t.Expires}
	a.renew = false
}

// wantTicket reports whether the next announce should ask for a ticket:
// none yet, half of its lifetime gone, or a peer refused it.
func (a *Agent) wantTicket() bool {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.ticket
	return t == nil || a.renew || !now.Before(t.issued.Add(t.expires.Sub(t.issued)/2))
}

// takeAnnounce keeps what an announce response carries for
// authentication: a renewed ticket and revocations.
func (a *Agent) takeAnnounce(resp wire.AnnounceResponse) {
	if len(resp.Ticket) > 0 {
		a.mu.Lock()
		keys := a.keys
		a.mu.Unlock()
		a.setTicket(resp.Ticket, keys)
	}
	if len(resp.Revoked) > 0 {
		a.addRevocations(resp.Revoked)
	}
}

// revokedSince is the announce cursor: the newest revocation time held.
func (a *Agent) revokedSince() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.revokedAt
}

// addRevocations merges revocations from the edge; at most
// maxRevocationsHeld are kept.
func (a *Agent) addRevocations(list []wire.Revocation) {
	now := a.now().UnixMilli()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range list[:min(len(list), wire.MaxRevocations)] {
		if !core.ValidPeerID(r.PeerID) || r.Until <= now {
			continue
		}
		a.revokedAt = max(a.revokedAt, r.At)
		if old, ok := a.revoked[r.PeerID]; ok {
			a.revoked[r.PeerID] = max(old, r.Until)
			continue
		}
		if len(a.revoked) >= maxRevocationsHeld {
			a.dropRevocationLocked(now)
		}
		a.revoked[r.PeerID] = r.Until
	}
}

// dropRevocationLocked makes room: lapsed revocations go, or else the
// tenth that lapses first (so a full list costs one sort per tenth of it).
func (a *Agent) dropRevocationLocked(now int64) {
	for id, until := range a.revoked {
		if until <= now {
			delete(a.revoked, id)
		}
	}
	if len(a.revoked) < maxRevocationsHeld {
		return
	}
	ids := make([]string, 0, len(a.revoked))
	for id := range a.revoked {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y string) int { return cmp.Compare(a.revoked[x], a.revoked[y]) })
	for _, id := range ids[:max(1, len(ids)/10)] {
		delete(a.revoked, id)
	}
}

func (a *Agent) isRevoked(peerID string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	until, ok := a.revoked[peerID]
	return ok && now.UnixMilli() < until
}

// signChunkRequest sets the Authorization of a chunk request to another
// peer, reusing the proof made for that peer within wire.ProofReuse;
// without a ticket it sends none (and the peer's 401 asks for one).
func (a *Agent) signChunkRequest(req *http.Request) {
	host, now := wire.RequestHost(req), a.now()
	a.mu.Lock()
	t := a.ticket
	p, ok := a.proofs.get(host)
	a.mu.Unlock()
	if t == nil {
		return
	}
	if !ok || p.ticket != t || now.Before(p.at) || now.Sub(p.at) >= wire.ProofReuse {
		p = madeProof{value: wire.NewChunkAuth(t.raw, a.identity, host, now).String(), at: now, ticket: t}
		a.mu.Lock()
		a.proofs.put(host, p)
		a.mu.Unlock()
	}
	req.Header.Set("Authorization", p.value)
}

// peerRefused hears that a peer answered 401 or 403 to a chunk request.
// A 401 means it does not take our ticket (expired, or issued under a key
// it does not trust yet): the next announce asks for a fresh one. The
// peer itself is not at fault and is not banned.
func (a *Agent) peerRefused(peerID string, code int, err error) {
	if code == http.StatusUnauthorized {
		a.mu.Lock()
		a.renew = true
		a.mu.Unlock()
	}
	a.log.Debug("peer refused our chunk request", "peer", peerID, "status", code, "err", err)
}

// peerSource is the Source for a handed-out peer.
func (a *Agent) peerSource(peerID, addr string, kind SourceKind) Source {
	return &httpSource{id: peerID, kind: kind, base: "http://" + addr, hc: a.hc, self: a.PeerID,
		sign: a.signChunkRequest, refused: a.peerRefused}
}

// authorize checks a chunk request's ticket, its proof of the ticket's
// key, that it was meant for this peer and that the requester is not
// revoked: 401 (with WWW-Authenticate) or 403, counted, and no chunk.
func (a *Agent) authorize(w http.ResponseWriter, r *http.Request) error {
	now := a.now()
	peerID, err := a.checkTicket(r, now)
	if err != nil {
		a.upUnauth.Add(1)
		w.Header().Set("WWW-Authenticate", wire.AuthScheme)
		return &httpError{code: http.StatusUnauthorized, msg: "chunk request refused: " + err.Error()}
	}
	if a.isRevoked(peerID, now) {
		a.upForbidden.Add(1)
		return &httpError{code: http.StatusForbidden, msg: fmt.Sprintf("chunk request refused: peer %s is revoked", peerID)}
	}
	return nil
}

// checkTicket returns the requester's peer ID if the request carries a
// valid ticket with a proof for this peer. An Authorization checked before
// (for the same Host) only has its times checked again.
func (a *Agent) checkTicket(r *http.Request, now time.Time) (string, error) {
	if adv := a.cfg.Advertise; adv != "" && !strings.EqualFold(r.Host, adv) {
		return "", errors.New("request for " + truncate(r.Host, 80) + ", this peer is " + adv)
	}
	v := r.Header.Get("Authorization")
	cacheKey := r.Host + "\x00" + v
	a.mu.Lock()
	ca, ok := a.checked.get(cacheKey)
	keys := a.keys
	a.mu.Unlock()
	if ok {
		if !now.Before(ca.expires.Add(core.TicketSkew)) {
			return "", fmt.Errorf("%w: at %s", core.ErrTicketExpired, ca.expires.Format(time.RFC3339))
		}
		if err := (wire.ChunkAuth{Time: ca.proofAt}).CheckTime(now); err != nil {
			return "", err
		}
		return ca.peerID, nil
	}
	c, err := wire.ParseChunkAuth(v)
	if err != nil {
		return "", err
	}
	t, err := core.ParseTicket(c.Ticket, keys, now)
	if err != nil {
		return "", err
	}
	if err := c.VerifyProof(t.PublicKey, r.Host, now); err != nil {
		return "", err
	}
	a.mu.Lock()
	a.checked.put(cacheKey, checkedAuth{peerID: t.PeerID, expires: t.Expires, proofAt: c.Time})
	a.mu.Unlock()
	return t.PeerID, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

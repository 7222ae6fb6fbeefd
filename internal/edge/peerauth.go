package edge

// Peer authentication: the edge checks a registering peer's proof of its
// identity key, issues it tickets (signed with the manifest key, which
// peers already trust) and renews them in announce responses, and hands
// peers the recent revocations so that they refuse a revoked identity's
// chunk requests before its last ticket expires. Operators revoke
// identities through the admin API; their revocations survive restarts
// in CacheDir/revoked.json.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// revokedFile holds the operator's revocations under CacheDir, and
// maxRevokedFile bounds what is read of it.
const (
	revokedFile    = "revoked.json"
	maxRevokedFile = 64 << 20
)

// verifyRegistration checks the proof in a registration that reached the
// edge as host; the error is a 401 naming what is wrong.
func (s *Server) verifyRegistration(req wire.RegisterRequest, host string) (ed25519.PublicKey, time.Time, error) {
	pub, at, err := wire.VerifyRegister(req, host, s.now())
	if err != nil {
		return nil, time.Time{}, errorf(http.StatusUnauthorized, "register: %v", err)
	}
	return pub, at, nil
}

// issueTicket returns a ticket for peerID's key, valid Config.TicketTTL.
func (s *Server) issueTicket(peerID string, pub ed25519.PublicKey) ([]byte, error) {
	t, err := core.IssueTicket(s.cfg.SigningKey, peerID, pub, s.now(), s.cfg.TicketTTL)
	if err != nil {
		return nil, fmt.Errorf("issue ticket for %s: %w", peerID, err)
	}
	return t, nil
}

// addPeerAuth puts into an announce response a fresh ticket, when asked
// for one, and the revocations the peer has not seen that still matter:
// those made less than a ticket's lifetime ago (a revoked peer's tickets
// are never renewed, so older ones have expired everywhere).
func (s *Server) addPeerAuth(resp *wire.AnnounceResponse, req wire.AnnounceRequest) error {
	if req.RenewTicket {
		if pub, ok := s.tracker.PublicKey(req.PeerID); ok && pub != nil {
			t, err := s.issueTicket(req.PeerID, pub)
			if err != nil {
				return err
			}
			resp.Ticket = t
		}
	}
	now := s.now()
	window := s.cfg.TicketTTL + core.TicketSkew
	since := now.Add(-window)
	if req.RevokedSince > 0 && time.UnixMilli(req.RevokedSince).After(since) {
		since = time.UnixMilli(req.RevokedSince)
	}
	for _, r := range s.tracker.RevokedSince(since, wire.MaxRevocations) {
		until := r.At.Add(window)
		if r.Until.Before(until) {
			until = r.Until
		}
		if !until.After(now) {
			continue
		}
		resp.Revoked = append(resp.Revoked, wire.Revocation{PeerID: r.PeerID, At: r.At.UnixMilli(), Until: until.UnixMilli()})
	}
	return nil
}

// RevokeRequest is the body of the admin API's POST /peers/revoke and
// POST /peers/unrevoke (where Reason is not used).
type RevokeRequest struct {
	PeerID string `json:"peer_id"`
	Reason string `json:"reason"`
}

// RevocationInfo is one revocation as the admin API shows it.
type RevocationInfo struct {
	PeerID string    `json:"peer_id"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
	Until  time.Time `json:"until"`
	// Ban is true for a ban for bad chunks, false for an operator's
	// revocation.
	Ban bool `json:"ban"`
}

// RevokeResponse answers the admin API's /peers/ requests.
type RevokeResponse struct {
	Status string `json:"status"` // "ok"
	// Revoked is the stored revocation (POST /peers/revoke) or every
	// revocation in force, newest first (GET /peers/revoked).
	Revoked []RevocationInfo `json:"revoked"`
	// Lifted tells, for POST /peers/unrevoke, whether there was a
	// revocation or ban to lift.
	Lifted bool `json:"lifted,omitempty"`
}

func revocationInfo(r swarm.Revocation) RevocationInfo {
	return RevocationInfo{PeerID: r.PeerID, Reason: r.Reason, At: r.At.UTC(), Until: r.Until.UTC(), Ban: r.Ban}
}

// handlePeersAdmin serves the admin API's peer revocation:
//
//	POST /peers/revoke    {"peer_id": "...", "reason": "..."}
//	POST /peers/unrevoke  {"peer_id": "..."}
//	GET  /peers/revoked
func (s *Server) handlePeersAdmin(w http.ResponseWriter, r *http.Request) error {
	var resp RevokeResponse
	switch {
	case r.URL.Path == "/peers/revoked" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		for _, rv := range s.tracker.Revocations() {
			resp.Revoked = append(resp.Revoked, revocationInfo(rv))
		}
	case (r.URL.Path == "/peers/revoke" || r.URL.Path == "/peers/unrevoke") && r.Method == http.MethodPost:
		var req RevokeRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, wire.MaxJSONBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return errorf(http.StatusBadRequest, "%s body: %v", r.URL.Path, err)
		}
		if !core.ValidPeerID(req.PeerID) {
			return errorf(http.StatusBadRequest, "peer_id %q: want 1 to %d letters, digits, '-', '_' or '.'", truncate(req.PeerID, 80), core.MaxPeerIDLen)
		}
		s.revMu.Lock()
		defer s.revMu.Unlock()
		if r.URL.Path == "/peers/unrevoke" {
			resp.Lifted = s.tracker.Unrevoke(req.PeerID)
		} else {
			rv, err := s.tracker.Revoke(swarm.Revocation{PeerID: req.PeerID, Reason: req.Reason})
			if err != nil {
				return err
			}
			resp.Revoked = []RevocationInfo{revocationInfo(rv)}
		}
		if err := s.saveRevocations(); err != nil {
			return err
		}
		s.log.Warn("admin: peer revocation changed", "path", r.URL.Path, "peer", req.PeerID, "reason", truncate(req.Reason, 200), "lifted", resp.Lifted)
	default:
		return errorf(http.StatusNotFound, "admin: %s %s: want POST /peers/revoke, POST /peers/unrevoke or GET /peers/revoked", r.Method, truncate(r.URL.Path, 80))
	}
	resp.Status = "ok"
	if resp.Revoked == nil {
		resp.Revoked = []RevocationInfo{}
	}
	return writeJSON(w, resp)
}

// revokedState is the JSON of CacheDir/revoked.json.
type revokedState struct {
	Revoked []RevocationInfo `json:"revoked"`
}

// saveRevocations writes the operator's revocations (not bans, which
// are the tracker's own) to CacheDir/revoked.json: temp file, fsync,
// rename. Callers hold revMu.
func (s *Server) saveRevocations() error {
	st := revokedState{Revoked: []RevocationInfo{}}
	for _, r := range s.tracker.Revocations() {
		if !r.Ban {
			st.Revoked = append(st.Revoked, revocationInfo(r))
		}
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.cfg.CacheDir, ".revoked-*")
	if err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(s.cfg.CacheDir, revokedFile))
	}
	if err != nil {
		return fmt.Errorf("save revocations: %w", err)
	}
	return nil
}

// loadRevocations restores the operator's revocations saved in
// CacheDir/revoked.json; lapsed ones are dropped. A file that cannot be
// read whole is an error: starting without the revocations would let
// revoked peers back in.
func (s *Server) loadRevocations() error {
	path := filepath.Join(s.cfg.CacheDir, revokedFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("edge: revocations: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRevokedFile+1))
	if err != nil {
		return fmt.Errorf("edge: revocations %s: %w", path, err)
	}
	if len(b) > maxRevokedFile {
		return fmt.Errorf("edge: revocations %s: larger than %d bytes", path, maxRevokedFile)
	}
	var st revokedState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return fmt.Errorf("edge: revocations %s: %w (fix or remove the file)", path, err)
	}
	sort.Slice(st.Revoked, func(i, j int) bool { return st.Revoked[i].At.Before(st.Revoked[j].At) })
	now, n := s.now(), 0
	for _, r := range st.Revoked {
		if !now.Before(r.Until) || r.Ban {
			continue
		}
		if _, err := s.tracker.Revoke(swarm.Revocation{PeerID: r.PeerID, Reason: r.Reason, At: r.At, Until: r.Until}); err != nil {
			return fmt.Errorf("edge: revocations %s: %w", path, err)
		}
		n++
	}
	if n > 0 {
		s.log.Info("peer revocations restored", "file", path, "revoked", n)
	}
	return nil
}

// revokedGauge reports the revocations in force.
func (s *Server) revokedGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "edgeswarm_swarm_revoked_peers",
		Help: "Peer identities revoked (by an operator, or banned for bad chunks) and not yet lapsed.",
	}, func() float64 { return float64(s.tracker.Stats().Revoked) })
}

package edge

// The swarm API: key, register, announce, report.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

func (s *Server) handleKey(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	return writeJSON(w, wire.KeyResponse{Keys: []wire.KeyInfo{{ID: s.keyID, PublicKey: s.pub}}})
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) error {
	var req wire.RegisterRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if req.Managed && !s.managedAuthorized(req.ManagedToken) {
		return errorf(http.StatusForbidden, "managed cache registration refused: missing or wrong managed-cache token")
	}
	pub, signedAt, err := s.verifyRegistration(req, r.Host)
	if err != nil {
		return err
	}
	id := core.PeerIDOf(pub)
	tok, err := s.tracker.RegisterPeer(swarm.Registration{ID: id, Key: pub, Addr: req.Addr, Name: req.Name,
		PID: s.pidOf(req.Addr, r.RemoteAddr), UploadBps: req.UploadBps, SignedAt: signedAt})
	if err != nil {
		return err
	}
	if req.Managed {
		if err := s.tracker.SetManaged(id); err != nil {
			return err
		}
		s.log.Info("managed cache registered", "peer", id, "name", truncate(req.Name, 64), "addr", req.Addr, "pid", s.tracker.PeerPID(id))
	}
	ticket, err := s.issueTicket(id, pub)
	if err != nil {
		return err
	}
	return writeJSON(w, wire.RegisterResponse{PeerID: id, Token: tok, AnnounceIntervalMs: s.announceMs(), Ticket: ticket})
}

func (s *Server) handleAnnounce(w http.ResponseWriter, r *http.Request) error {
	var req wire.AnnounceRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	root, err := s.authRoot(req.PeerID, req.Token, req.Root)
	if err != nil {
		return err
	}
	if req.Want < 0 {
		return errorf(http.StatusBadRequest, "want %d is negative", req.Want)
	}
	if err := checkReceived(req.Received, req.ReceivedSeq, req.PeerID); err != nil {
		return err
	}
	man, ok := s.cache.manifestByRoot(root)
	if req.Leaving {
		if ok && len(req.Received) > 0 && s.tracker.FreshReport(req.PeerID, root, req.ReceivedSeq) {
			s.usageReported(man, req.PeerID, req.Received)
		}
		s.tracker.Leave(req.PeerID, root)
		return writeJSON(w, wire.AnnounceResponse{Peers: []wire.PeerInfo{}, AnnounceIntervalMs: s.announceMs()})
	}
	if !ok {
		return errorf(http.StatusNotFound, "no manifest with root %s on this edge", root.Short())
	}
	have, err := core.BitfieldFromBytes(man.NumChunks(), req.Have)
	if err != nil {
		return errorf(http.StatusBadRequest, "have: %v", err)
	}
	if err := s.tracker.Announce(req.PeerID, root, man.NumChunks(), have); err != nil {
		return err
	}
	if len(req.Received) > 0 && s.tracker.FreshReport(req.PeerID, root, req.ReceivedSeq) {
		s.usageReported(man, req.PeerID, req.Received)
	}
	cands := s.tracker.HandoutWith(root, req.PeerID, req.Want, s.handoutOptions(root))
	// The interval grows with the swarm (swarm.Config.AnnounceBudget).
	iv := s.tracker.AnnounceInterval(root, s.cfg.AnnounceInterval)
	resp := wire.AnnounceResponse{Peers: make([]wire.PeerInfo, 0, len(cands)), AnnounceIntervalMs: int(iv.Milliseconds())}
	var reqPID string
	if s.cfg.NetworkMap != nil {
		reqPID = s.tracker.PeerPID(req.PeerID)
	}
	for _, c := range cands {
		pi := wire.PeerInfo{PeerID: c.PeerID, Addr: c.Addr, Have: c.Have.Bytes(), Managed: c.Managed}
		if s.cfg.NetworkMap != nil && c.PID != reqPID {
			pi.Cost = max(1, s.cfg.NetworkMap.Cost(reqPID, c.PID)) // another location is never free
		}
		resp.Peers = append(resp.Peers, pi)
	}
	if err := s.addPeerAuth(&resp, req); err != nil {
		return err
	}
	return writeJSON(w, resp)
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) error {
	var req wire.ReportRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	root, err := s.authRoot(req.PeerID, req.Token, req.Root)
	if err != nil {
		return err
	}
	if req.Index < 0 || req.Index >= core.MaxChunks {
		return errorf(http.StatusBadRequest, "index %d out of range", req.Index)
	}
	if req.Offender == "" {
		return errorf(http.StatusBadRequest, "missing offender")
	}
	switch req.Kind {
	case "", wire.ReportBadChunk:
		err = s.tracker.Report(req.PeerID, req.Offender, root, req.Index)
	case wire.ReportUnresponsive:
		err = s.tracker.ReportUnresponsive(req.PeerID, req.Offender, root)
	default:
		return errorf(http.StatusBadRequest, "report kind %q: want %q or %q", truncate(req.Kind, 40), wire.ReportBadChunk, wire.ReportUnresponsive)
	}
	if errors.Is(err, swarm.ErrUnknownPeer) {
		return errorf(http.StatusNotFound, "unknown offender %q", truncate(req.Offender, 40))
	}
	if err != nil {
		return err
	}
	if req.Kind == wire.ReportUnresponsive {
		s.log.Debug("unresponsive peer reported", "reporter", req.PeerID, "offender", req.Offender,
			"root", root.Short(), "reason", truncate(req.Reason, 200))
	} else {
		s.log.Info("bad chunk reported", "reporter", req.PeerID, "offender", req.Offender,
			"root", root.Short(), "chunk", req.Index, "reason", truncate(req.Reason, 200))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) announceMs() int { return int(s.cfg.AnnounceInterval.Milliseconds()) }

// readJSON decodes one JSON value from a POST body of at most
// wire.MaxJSONBody bytes.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, wire.MaxJSONBody))
	err := dec.Decode(v)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("trailing data after the JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return errorf(http.StatusRequestEntityTooLarge, "body larger than %d bytes", wire.MaxJSONBody)
	case err != nil:
		return errorf(http.StatusBadRequest, "bad JSON body: %v", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(append(b, '\n'))
	return err
}

// authRoot authenticates a swarm request and parses the object root it
// names: 401 for a bad id or token, 400 for a malformed root.
func (s *Server) authRoot(peerID, token, rootHex string) (core.Hash, error) {
	if !s.tracker.Authenticate(peerID, token) {
		return core.Hash{}, errorf(http.StatusUnauthorized, "unknown peer id or bad token")
	}
	root, err := core.ParseHash(rootHex)
	if err != nil {
		return core.Hash{}, errorf(http.StatusBadRequest, "root: %v", err)
	}
	return root, nil
}

// pidOf is the network location of a registering peer: where other peers
// reach it (its advertised address), else where it connects from; "" with
// no network map.
func (s *Server) pidOf(advertised, remote string) string {
	m := s.cfg.NetworkMap
	if m == nil {
		return ""
	}
	if advertised != "" {
		return m.LookupHostPort(advertised)
	}
	return m.LookupHostPort(remote)
}

// handoutOptions are the hand-out rules of the property root's object
// belongs to.
func (s *Server) handoutOptions(root core.Hash) swarm.HandoutOptions {
	key, ok := s.cache.keyOfRoot(root)
	if !ok {
		return swarm.HandoutOptions{}
	}
	p, _ := s.propertyOfKey(primaryKey(key))
	if s.cfg.NetworkMap == nil || p == nil {
		return swarm.HandoutOptions{}
	}
	return swarm.HandoutOptions{SamePID: p.CrossPID == CrossPIDDeny, CrossManagedOnly: p.CrossPID == CrossPIDManagedOnly}
}

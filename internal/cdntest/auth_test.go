package cdntest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/edge"
	"github.com/edgeswarm/edgeswarm/internal/netem"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// rawPeer is a peer spoken by hand with the wire package, so a test can
// choose what it shows: its identity key and what the edge gave it.
type rawPeer struct {
	key ed25519.PrivateKey
	ec  *wire.EdgeClient
	reg wire.RegisterResponse
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// register signs a registration with p's key, as an agent does.
func (p *rawPeer) register(ctx context.Context) (wire.RegisterResponse, error) {
	req := wire.RegisterRequest{Name: "raw"}
	wire.SignRegister(&req, p.key, strings.TrimPrefix(p.ec.Base, "http://"), time.Now())
	return p.ec.Register(ctx, req)
}

func (p *rawPeer) announce(ctx context.Context, m *core.Manifest) (wire.AnnounceResponse, error) {
	return p.ec.Announce(ctx, wire.AnnounceRequest{PeerID: p.reg.PeerID, Token: p.reg.Token, Root: m.Root.String(),
		Have: core.NewBitfield(m.NumChunks()).Bytes()})
}

// fetch asks the peer at addr for chunk i, showing ticket with a proof by
// key (no Authorization at all when ticket is nil).
func fetch(ctx context.Context, addr string, m *core.Manifest, i int, ticket []byte, key ed25519.PrivateKey) error {
	var sign func(*http.Request)
	if ticket != nil {
		sign = func(r *http.Request) { wire.SignChunkRequest(r, ticket, key, time.Now()) }
	}
	b, err := wire.FetchChunkAuth(ctx, http.DefaultClient, "http://"+addr, m.Root, i, m.ChunkLen(i), "", sign, nil, nil)
	if err == nil {
		err = m.CheckChunk(i, b)
	}
	return err
}

// TestBattery21_UnauthenticatedOrRevokedPeerRefused: a peer serving
// chunks refuses a request without a ticket, with a forged or tampered
// ticket, with an expired one, with someone else's ticket, and — once its
// edge has told it — from a revoked peer; every refusal is a 401 or 403
// and the serving agent counts 0 chunks served for them. The revoked
// peer's announces and registrations are refused (403) by the edge.
func TestBattery21_UnauthenticatedOrRevokedPeerRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obj := RandomBytes(1<<20, 21)
	_, originURL := Origin(t, map[string][]byte{"/f.bin": obj})
	tierKey, ring := Key(t)
	const adminToken = "battery-21-admin-token"
	e, edgeURL := EdgeWith(t, edge.Config{Origin: originURL, ChunkSize: 64 << 10, SigningKey: tierKey, AdminToken: adminToken}, netem.Link{}, nil)
	adminURL := Serve(t, e.ServeAdmin, netem.Link{})

	// The serving agent: it holds the whole object and seeds it.
	seeder := Peer(t, edgeURL, ring, netem.Link{}, 1, nil)
	dl, err := seeder.Download(ctx, "/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := dl.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	m := dl.Manifest()

	// An honest peer, registered through the edge: it is handed the
	// seeder and served by it (the control: refusals below mean something).
	ec := &wire.EdgeClient{Base: edgeURL, HTTP: http.DefaultClient}
	honest := &rawPeer{key: newKey(t), ec: ec}
	if honest.reg, err = honest.register(ctx); err != nil {
		t.Fatal(err)
	}
	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		resp, err := honest.announce(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range resp.Peers {
			if p.PeerID == seeder.PeerID() {
				addr = p.Addr
			}
		}
		if addr == "" && time.Now().After(deadline) {
			t.Fatal("the seeder is never handed out")
		}
	}
	if err := fetch(ctx, addr, m, 0, honest.reg.Ticket, honest.key); err != nil {
		t.Fatalf("honest peer with its ticket: %v", err)
	}
	// The client has the whole chunk a moment before the server counts it.
	base := seeder.Stats()
	for wait := time.Now().Add(5 * time.Second); base.UploadedChunks == 0 && time.Now().Before(wait); base = seeder.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	if base.UploadedChunks != 1 || base.UploadsUnauthorized != 0 {
		t.Fatalf("after the control request: %+v", base)
	}

	// Unauthenticated: every one of these is a 401 and no chunk.
	intruder := newKey(t)
	intruderPub := intruder.Public().(ed25519.PublicKey)
	otherTier := newKey(t)
	forged, err := core.IssueTicket(otherTier, core.PeerIDOf(intruderPub), intruderPub, time.Now(), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(honest.reg.Ticket)
	tampered[6] ^= 1 // a character of the peer id, under the signature
	expired, err := core.IssueTicket(tierKey, core.PeerIDOf(intruderPub), intruderPub, time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		ticket []byte
		key    ed25519.PrivateKey
	}{
		{"no ticket", nil, nil},
		{"ticket signed by a key outside the tier", forged, intruder},
		{"tampered ticket", tampered, honest.key},
		{"expired ticket signed by the tier", expired, intruder},
		{"another peer's ticket", honest.reg.Ticket, intruder},
	} {
		err := fetch(ctx, addr, m, 1, tc.ticket, tc.key)
		if wire.StatusCode(err) != http.StatusUnauthorized {
			t.Errorf("%s: %v, want 401", tc.name, err)
		}
	}
	st := seeder.Stats()
	t.Logf("unauthenticated: %d refused 401, chunks served %d", st.UploadsUnauthorized-base.UploadsUnauthorized, st.UploadedChunks-base.UploadedChunks)
	if st.UploadedChunks != base.UploadedChunks || st.UploadsUnauthorized != base.UploadsUnauthorized+5 {
		t.Fatalf("unauthenticated requests: %+v, want 5 refused and 0 chunks served", st)
	}

	// Revoked: the operator revokes a registered peer that holds a valid
	// ticket. The edge refuses its announces and registrations; once the
	// seeder has announced, it refuses the peer's requests with 403.
	revoked := &rawPeer{key: newKey(t), ec: ec}
	if revoked.reg, err = revoked.register(ctx); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(edge.RevokeRequest{PeerID: revoked.reg.PeerID, Reason: "battery 21"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, adminURL+"/peers/revoke", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin revoke: %s", resp.Status)
	}
	if _, err := revoked.announce(ctx, m); wire.StatusCode(err) != http.StatusForbidden {
		t.Fatalf("revoked peer's announce: %v, want 403", err)
	}
	if _, err := revoked.register(ctx); wire.StatusCode(err) != http.StatusForbidden {
		t.Fatalf("revoked peer's registration: %v, want 403", err)
	}
	// Two more announces by the seeder (the only agent announcing) mean
	// the first of them, made after the revocation, has been answered.
	announces := e.Tracker().Stats().Announces
	for e.Tracker().Stats().Announces < announces+2 {
		if ctx.Err() != nil {
			t.Fatal("the seeder stopped announcing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := seeder.Stats()
	for i := range 3 {
		if err := fetch(ctx, addr, m, i, revoked.reg.Ticket, revoked.key); wire.StatusCode(err) != http.StatusForbidden {
			t.Fatalf("revoked peer's chunk request %d: %v, want 403", i, err)
		}
	}
	st = seeder.Stats()
	t.Logf("revoked: %d refused 403, chunks served %d", st.UploadsForbidden-before.UploadsForbidden, st.UploadedChunks-before.UploadedChunks)
	if st.UploadedChunks != base.UploadedChunks || st.UploadsForbidden != before.UploadsForbidden+3 {
		t.Fatalf("revoked peer's requests: %+v, want 3 refused and 0 chunks served", st)
	}
	// The honest peer is still served: the refusals are about the peers,
	// not the seeder.
	if err := fetch(ctx, addr, m, 2, honest.reg.Ticket, honest.key); err != nil {
		t.Fatalf("honest peer after the refusals: %v", err)
	}
}

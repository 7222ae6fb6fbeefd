package edge

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

func newIdentity() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// host is the Host a peer's requests to e carry.
func (e *testEdge) host() string { return strings.TrimPrefix(e.url, "http://") }

// signedFor returns r signed with a fresh identity key for host at at.
func (e *testEdge) signedFor(host string, at time.Time, r wire.RegisterRequest) wire.RegisterRequest {
	wire.SignRegister(&r, newIdentity(), host, at)
	return r
}

// signed returns r signed with a fresh identity key, as an agent would at
// the edge's clock.
func (e *testEdge) signed(r wire.RegisterRequest) wire.RegisterRequest {
	return e.signedFor(e.host(), e.now(), r)
}

// register enrolls a peer with a fresh identity key.
func (e *testEdge) register(ctx context.Context, r wire.RegisterRequest) (wire.RegisterResponse, error) {
	return e.client().Register(ctx, e.signed(r))
}

// A registration proves the key: the peer is named after it and given a
// ticket the tier's ring verifies; the same signed request again (a
// replay) is refused, a later one from the same key is the same peer.
func TestRegisterIssuesTicket(t *testing.T) {
	f := newSwarmFixture(t)
	e := f.e
	ring := core.NewKeyRing(e.PublicKey())
	key := newIdentity()
	req := wire.RegisterRequest{Addr: "127.0.0.1:7300", Name: "me"}
	wire.SignRegister(&req, key, e.host(), e.now())
	ctx := context.Background()
	r, err := e.client().Register(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	if r.PeerID != core.PeerIDOf(pub) {
		t.Fatalf("peer id %s, want the key's %s", r.PeerID, core.PeerIDOf(pub))
	}
	tk, err := core.ParseTicket(r.Ticket, ring, e.now())
	if err != nil {
		t.Fatal(err)
	}
	if tk.PeerID != r.PeerID || !tk.PublicKey.Equal(pub) || tk.Expires.Sub(tk.Issued) != 10*time.Minute {
		t.Fatalf("ticket %+v", tk)
	}
	if _, err := e.client().Register(ctx, req); wire.StatusCode(err) != http.StatusUnauthorized {
		t.Fatalf("replayed registration: %v, want 401", err)
	}
	again := wire.RegisterRequest{Addr: "127.0.0.1:7301"}
	wire.SignRegister(&again, key, e.host(), e.now().Add(time.Millisecond))
	r2, err := e.client().Register(ctx, again)
	if err != nil || r2.PeerID != r.PeerID || r2.Token == r.Token {
		t.Fatalf("registering again: %+v, %v", r2, err)
	}
}

func revokeVia(t *testing.T, admin, token, path string, body any) (int, RevokeResponse) {
	t.Helper()
	var rd *strings.Reader
	method := http.MethodGet
	if body != nil {
		b, _ := json.Marshal(body)
		rd, method = strings.NewReader(string(b)), http.MethodPost
	} else {
		rd = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, admin+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rr RevokeResponse
	json.NewDecoder(resp.Body).Decode(&rr)
	return resp.StatusCode, rr
}

// An operator revokes a peer through the admin API: its announces and
// registrations get 403, other peers' announce responses list the
// revocation (once per cursor, until a ticket's lifetime has passed), and
// announces renew tickets only when asked.
func TestRevokeThroughAdminAPI(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/s.bin", &object{body: randomBody(20, 4*16<<10), header: map[string]string{"Cache-Control": "max-age=6000"}})
	e := newEdge(t, o, clk, func(c *Config) { c.ChunkSize, c.AdminToken = 16<<10, "admin-token-0123456789" })
	admin := httptest.NewServer(e.AdminHandler())
	t.Cleanup(admin.Close)
	ctx := context.Background()
	m, err := e.client().Manifest(ctx, "/s.bin", core.NewKeyRing(e.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	badKey := newIdentity()
	badReq := wire.RegisterRequest{Addr: "127.0.0.1:7400"}
	wire.SignRegister(&badReq, badKey, e.host(), e.now())
	bad, err := e.client().Register(ctx, badReq)
	if err != nil {
		t.Fatal(err)
	}
	good, err := e.register(ctx, wire.RegisterRequest{Addr: "127.0.0.1:7401"})
	if err != nil {
		t.Fatal(err)
	}
	announce := func(p wire.RegisterResponse, renew bool, since int64) (wire.AnnounceResponse, error) {
		return e.client().Announce(ctx, wire.AnnounceRequest{PeerID: p.PeerID, Token: p.Token, Root: m.Root.String(),
			Have: core.NewBitfield(m.NumChunks()).Bytes(), RenewTicket: renew, RevokedSince: since})
	}
	resp, err := announce(good, false, 0)
	if err != nil || resp.Ticket != nil || len(resp.Revoked) != 0 {
		t.Fatalf("plain announce: ticket %d bytes, revoked %v, %v", len(resp.Ticket), resp.Revoked, err)
	}
	clk.Advance(6 * time.Minute)
	resp, err = announce(good, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tk, err := core.ParseTicket(resp.Ticket, core.NewKeyRing(e.PublicKey()), clk.Now()); err != nil || !tk.Issued.Equal(clk.Now()) || tk.PeerID != good.PeerID {
		t.Fatalf("renewed ticket: %+v, %v", tk, err)
	}

	// The admin API wants its token and a well-formed id.
	if code, _ := revokeVia(t, admin.URL, "wrong", "/peers/revoke", RevokeRequest{PeerID: bad.PeerID}); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	if code, _ := revokeVia(t, admin.URL, "admin-token-0123456789", "/peers/revoke", RevokeRequest{PeerID: "a/b"}); code != http.StatusBadRequest {
		t.Fatalf("bad id: %d", code)
	}
	if code, _ := revokeVia(t, admin.URL, "admin-token-0123456789", "/peers/revoke", map[string]string{"peer": bad.PeerID}); code != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", code)
	}
	if s := e.Stats(); s.PeersRevoked != 0 {
		t.Fatalf("bad admin requests revoked something: %+v", s)
	}
	code, rr := revokeVia(t, admin.URL, "admin-token-0123456789", "/peers/revoke", RevokeRequest{PeerID: bad.PeerID, Reason: "abuse"})
	if code != http.StatusOK || len(rr.Revoked) != 1 || rr.Revoked[0].PeerID != bad.PeerID || rr.Revoked[0].Reason != "abuse" {
		t.Fatalf("revoke: %d %+v", code, rr)
	}
	revokedAt := clk.Now()

	if _, err := announce(bad, true, 0); wire.StatusCode(err) != http.StatusForbidden {
		t.Fatalf("revoked peer's announce: %v, want 403", err)
	}
	again := wire.RegisterRequest{Addr: "127.0.0.1:7402"}
	wire.SignRegister(&again, badKey, e.host(), e.now().Add(time.Second))
	if _, err := e.client().Register(ctx, again); wire.StatusCode(err) != http.StatusForbidden {
		t.Fatalf("revoked peer's registration: %v, want 403", err)
	}
	resp, err = announce(good, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	window := 10*time.Minute + core.TicketSkew
	want := wire.Revocation{PeerID: bad.PeerID, At: revokedAt.UnixMilli(), Until: revokedAt.Add(window).UnixMilli()}
	if len(resp.Revoked) != 1 || resp.Revoked[0] != want {
		t.Fatalf("revocations in the announce response: %+v, want %+v", resp.Revoked, want)
	}
	if resp, _ := announce(good, false, revokedAt.UnixMilli()+1); len(resp.Revoked) != 0 {
		t.Fatalf("revocations past the cursor: %+v", resp.Revoked)
	}
	clk.Advance(window)
	if resp, _ := announce(good, false, 0); len(resp.Revoked) != 0 {
		t.Fatalf("revocation still listed once every ticket of the peer has expired: %+v", resp.Revoked)
	}
	wire.SignRegister(&again, badKey, e.host(), e.now())
	if _, err := e.client().Register(ctx, again); wire.StatusCode(err) != http.StatusForbidden {
		t.Fatalf("revoked peer registered once the list moved on: %v", err)
	}

	code, rr = revokeVia(t, admin.URL, "admin-token-0123456789", "/peers/revoked", nil)
	if code != http.StatusOK || len(rr.Revoked) != 1 || rr.Revoked[0].Ban {
		t.Fatalf("list: %d %+v", code, rr)
	}
	code, rr = revokeVia(t, admin.URL, "admin-token-0123456789", "/peers/unrevoke", RevokeRequest{PeerID: bad.PeerID})
	if code != http.StatusOK || !rr.Lifted {
		t.Fatalf("unrevoke: %d %+v", code, rr)
	}
	lifted := wire.RegisterRequest{Addr: "127.0.0.1:7402"}
	wire.SignRegister(&lifted, badKey, e.host(), e.now().Add(time.Second))
	if _, err := e.client().Register(ctx, lifted); err != nil {
		t.Fatalf("registration after the revocation was lifted: %v", err)
	}
}

// Operator revocations survive a restart (CacheDir/revoked.json); a
// damaged file stops the edge from starting rather than forget them.
func TestRevocationsSurviveRestart(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	dir := t.TempDir()
	e := newEdgeDir(t, o, clk, dir, func(c *Config) { c.AdminToken = "admin-token-0123456789" })
	admin := httptest.NewServer(e.AdminHandler())
	t.Cleanup(admin.Close)
	key := newIdentity()
	id := core.PeerIDOf(key.Public().(ed25519.PublicKey))
	if code, _ := revokeVia(t, admin.URL, "admin-token-0123456789", "/peers/revoke", RevokeRequest{PeerID: id, Reason: "stolen box"}); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	// A ban is not saved: it is the tracker's own, for RegistrationTTL.
	if _, err := e.Tracker().Revoke(swarm.Revocation{PeerID: "banned-one", Ban: true}); err != nil {
		t.Fatal(err)
	}
	e.Close()

	e2 := newEdgeDir(t, o, clk, dir, nil)
	got := e2.Tracker().Revocations()
	if len(got) != 1 || got[0].PeerID != id || got[0].Reason != "stolen box" {
		t.Fatalf("restored %+v", got)
	}
	req := wire.RegisterRequest{}
	wire.SignRegister(&req, key, e2.host(), e2.now())
	if _, err := e2.client().Register(context.Background(), req); wire.StatusCode(err) != http.StatusForbidden {
		t.Fatalf("revoked key registered after a restart: %v", err)
	}
	e2.Close()

	if err := os.WriteFile(filepath.Join(dir, revokedFile), []byte(`{"revoked": [{"peer_id": 5}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{Origin: o.srv.URL, CacheDir: dir, SigningKey: testKey}, Deps{Now: clk.Now})
	if err == nil || !strings.Contains(err.Error(), revokedFile) {
		t.Fatalf("damaged revocation file: %v, want an error naming it", err)
	}
	var se *statusError
	if errors.As(err, &se) {
		t.Fatalf("start-up error is an HTTP status: %v", err)
	}
}

package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/netmap"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// swarmFixture is an edge holding one object with a manifest and three
// registered peers.
type swarmFixture struct {
	e     *testEdge
	m     *core.Manifest
	peers []wire.RegisterResponse
}

func newSwarmFixture(t testing.TB) *swarmFixture {
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/s.bin", &object{body: randomBody(20, 10*16<<10), header: map[string]string{"Cache-Control": "max-age=600", "ETag": `"s"`}})
	e := newEdge(t, o, clk, func(c *Config) { c.ChunkSize = 16 << 10 })
	ctx := context.Background()
	m, err := e.client().Manifest(ctx, "/s.bin", core.NewKeyRing(e.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	f := &swarmFixture{e: e, m: m}
	for i := range 3 {
		r, err := e.register(ctx, wire.RegisterRequest{Addr: fmt.Sprintf("127.0.0.1:%d", 7100+i), Name: fmt.Sprint("peer", i), UploadBps: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		f.peers = append(f.peers, r)
	}
	return f
}

func (f *swarmFixture) announce(t testing.TB, i int, have ...int) (wire.AnnounceResponse, error) {
	t.Helper()
	bf := core.NewBitfield(f.m.NumChunks())
	for _, c := range have {
		bf.Set(c)
	}
	p := f.peers[i]
	return f.e.client().Announce(context.Background(), wire.AnnounceRequest{
		PeerID: p.PeerID, Token: p.Token, Root: f.m.Root.String(), Have: bf.Bytes()})
}

func TestSwarmAnnounceHandoutBan(t *testing.T) {
	f := newSwarmFixture(t)
	if f.peers[0].AnnounceIntervalMs != 500 {
		t.Errorf("announce interval %d ms, want 500", f.peers[0].AnnounceIntervalMs)
	}
	if _, err := f.announce(t, 1, 0, 1, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := f.announce(t, 2, 3); err != nil {
		t.Fatal(err)
	}
	resp, err := f.announce(t, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range resp.Peers {
		got = append(got, p.PeerID)
	}
	if want := []string{f.peers[1].PeerID, f.peers[2].PeerID}; !slices.Equal(got, want) {
		t.Fatalf("hand-out %v, want %v (most useful first)", got, want)
	}
	if resp.Peers[0].Addr != "127.0.0.1:7101" || len(resp.Peers[0].Have) != (f.m.NumChunks()+7)/8 {
		t.Errorf("peer info: %+v", resp.Peers[0])
	}

	// Two distinct reporters ban peer 1.
	ctx := context.Background()
	for _, r := range []int{0, 2} {
		err := f.e.client().Report(ctx, wire.ReportRequest{PeerID: f.peers[r].PeerID, Token: f.peers[r].Token,
			Root: f.m.Root.String(), Offender: f.peers[1].PeerID, Index: 1, Reason: "hash mismatch"})
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := f.e.Stats(); s.PeersBanned != 1 || s.PeersRegistered != 3 {
		t.Fatalf("stats: %+v", s)
	}
	resp, _ = f.announce(t, 0)
	for _, p := range resp.Peers {
		if p.PeerID == f.peers[1].PeerID {
			t.Fatal("banned peer handed out")
		}
	}
	if _, err := f.announce(t, 1, 0); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("banned peer's announce: %v, want 403", err)
	}

	// Leaving removes peer 2 from hand-outs.
	p := f.peers[2]
	if _, err := f.e.client().Announce(ctx, wire.AnnounceRequest{PeerID: p.PeerID, Token: p.Token, Root: f.m.Root.String(), Leaving: true}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := f.announce(t, 0); len(resp.Peers) != 0 {
		t.Errorf("after leave: %d peers handed out", len(resp.Peers))
	}
}

// TestSwarmUnresponsiveReports: peers reported unresponsive by two
// distinct members of the swarm are left out of hand-outs at once, without
// a ban (they may announce); one reporter alone changes nothing.
func TestSwarmUnresponsiveReports(t *testing.T) {
	f := newSwarmFixture(t)
	for i := range 3 {
		if _, err := f.announce(t, i, i); err != nil {
			t.Fatal(err)
		}
	}
	report := func(reporter, offender int) {
		t.Helper()
		r := f.peers[reporter]
		err := f.e.client().Report(context.Background(), wire.ReportRequest{PeerID: r.PeerID, Token: r.Token,
			Root: f.m.Root.String(), Offender: f.peers[offender].PeerID, Kind: wire.ReportUnresponsive, Reason: "connection refused"})
		if err != nil {
			t.Fatal(err)
		}
	}
	handedOut := func(asker, id int) bool {
		t.Helper()
		resp, err := f.announce(t, asker, asker)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(resp.Peers, func(p wire.PeerInfo) bool { return p.PeerID == f.peers[id].PeerID })
	}
	report(0, 1)
	report(0, 1)
	if !handedOut(2, 1) {
		t.Fatal("one reporter got a peer left out of hand-outs")
	}
	report(2, 1)
	if handedOut(0, 1) || handedOut(2, 1) {
		t.Fatal("peer reported by two members still handed out")
	}
	if _, err := f.announce(t, 1, 1); err != nil {
		t.Fatalf("suspended peer's announce refused: %v", err)
	}
	if s := f.e.Stats(); s.PeersSuspended != 1 || s.PeersBanned != 0 {
		t.Fatalf("stats: %+v", s)
	}
}

// Every kind of bad input gets a 4xx with a one-line plain-text reason and
// changes nothing.
func TestBadInputs(t *testing.T) {
	f := newSwarmFixture(t)
	p := f.peers[0]
	root := f.m.Root.String()
	n := f.m.NumChunks()
	js := func(v any) []byte { b, _ := json.Marshal(v); return b }
	okHave := make([]byte, (n+7)/8)
	tests := []struct {
		name, method, path string
		body               []byte
		want               int
	}{
		{"announce not JSON", "POST", wire.PathAnnounce, []byte("{"), 400},
		{"announce two values", "POST", wire.PathAnnounce, []byte(`{} {}`), 400},
		{"announce wrong type", "POST", wire.PathAnnounce, []byte(`{"peer_id": 5}`), 400},
		{"announce too large", "POST", wire.PathAnnounce, bytes.Repeat([]byte(" "), wire.MaxJSONBody+10), 413},
		{"announce GET", "GET", wire.PathAnnounce, nil, 405},
		{"announce bad token", "POST", wire.PathAnnounce, js(wire.AnnounceRequest{PeerID: p.PeerID, Token: "x", Root: root, Have: okHave}), 401},
		{"announce unknown peer", "POST", wire.PathAnnounce, js(wire.AnnounceRequest{PeerID: "nobody", Token: p.Token, Root: root, Have: okHave}), 401},
		{"announce bad root", "POST", wire.PathAnnounce, js(wire.AnnounceRequest{PeerID: p.PeerID, Token: p.Token, Root: "zz", Have: okHave}), 400},
		{"announce unknown root", "POST", wire.PathAnnounce, js(wire.AnnounceRequest{PeerID: p.PeerID, Token: p.Token, Root: core.HashBytes(nil).String(), Have: okHave}), 404},
		{"announce short bitfield", "POST", wire.PathAnnounce, js(wire.AnnounceRequest{PeerID: p.PeerID, Token: p.Token, Root: root, Have: []byte{1}}), 400},
		{"announce bits past end", "POST", wire.PathAnnounce, js(wire.AnnounceRequest{PeerID: p.PeerID, Token: p.Token, Root: root, Have: []byte{0, 0xff}}), 400},
		{"announce negative want", "POST", wire.PathAnnounce, js(wire.AnnounceRequest{PeerID: p.PeerID, Token: p.Token, Root: root, Have: okHave, Want: -1}), 400},
		{"register bad addr", "POST", wire.PathRegister, js(f.e.signed(wire.RegisterRequest{Addr: "no-port"})), 400},
		{"register negative upload", "POST", wire.PathRegister, js(f.e.signed(wire.RegisterRequest{UploadBps: -5})), 400},
		{"register unsigned", "POST", wire.PathRegister, js(wire.RegisterRequest{Addr: "127.0.0.1:7199"}), 401},
		{"register signed for another edge", "POST", wire.PathRegister, js(f.e.signedFor("other:8080", f.e.now(), wire.RegisterRequest{Addr: "127.0.0.1:7199"})), 401},
		{"register signed an hour ago", "POST", wire.PathRegister, js(f.e.signedFor(f.e.host(), f.e.now().Add(-time.Hour), wire.RegisterRequest{Addr: "127.0.0.1:7199"})), 401},
		{"register short key", "POST", wire.PathRegister, js(wire.RegisterRequest{PublicKey: []byte{1, 2}, Signature: make([]byte, 64), Time: 1}), 401},
		{"report bad token", "POST", wire.PathReport, js(wire.ReportRequest{PeerID: p.PeerID, Token: "", Root: root, Offender: f.peers[1].PeerID}), 401},
		{"report bad root", "POST", wire.PathReport, js(wire.ReportRequest{PeerID: p.PeerID, Token: p.Token, Root: "00", Offender: f.peers[1].PeerID}), 400},
		{"report no offender", "POST", wire.PathReport, js(wire.ReportRequest{PeerID: p.PeerID, Token: p.Token, Root: root}), 400},
		{"report self", "POST", wire.PathReport, js(wire.ReportRequest{PeerID: p.PeerID, Token: p.Token, Root: root, Offender: p.PeerID}), 400},
		{"report unknown offender", "POST", wire.PathReport, js(wire.ReportRequest{PeerID: p.PeerID, Token: p.Token, Root: root, Offender: "ghost"}), 404},
		{"report negative index", "POST", wire.PathReport, js(wire.ReportRequest{PeerID: p.PeerID, Token: p.Token, Root: root, Offender: f.peers[1].PeerID, Index: -1}), 400},
		{"report unknown kind", "POST", wire.PathReport, js(wire.ReportRequest{PeerID: p.PeerID, Token: p.Token, Root: root, Offender: f.peers[1].PeerID, Kind: "rude"}), 400},
		{"chunk bad hex", "GET", wire.PathChunk + "zz/1", nil, 400},
		{"chunk no index", "GET", wire.PathChunk + root, nil, 400},
		{"chunk negative index", "GET", wire.PathChunk + root + "/-1", nil, 400},
		{"chunk index not a number", "GET", wire.PathChunk + root + "/one", nil, 400},
		{"chunk index out of range", "GET", wire.ChunkPath(f.m.Root, n), nil, 404},
		{"chunk unknown root", "GET", wire.ChunkPath(core.HashBytes([]byte("?")), 0), nil, 404},
		{"chunk POST", "POST", wire.ChunkPath(f.m.Root, 0), nil, 405},
		{"unknown swarm endpoint", "GET", "/swarm/v1/nope", nil, 404},
		{"key POST", "POST", wire.PathKey, nil, 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.e.do(t, tc.method, tc.path, tc.body)
			if r.status != tc.want {
				t.Fatalf("status %d (%s), want %d", r.status, bytes.TrimSpace(r.body), tc.want)
			}
			msg := strings.TrimSuffix(string(r.body), "\n")
			if msg == "" || strings.Contains(msg, "\n") || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
				t.Errorf("error body %q (%s): want one line of plain text", r.body, r.header.Get("Content-Type"))
			}
		})
	}
	if s := f.e.Tracker().Stats(); s.Peers != 3 || s.Members != 0 || s.Banned != 0 {
		t.Errorf("bad input changed the tracker: %+v", s)
	}
}

// A long-lived edge served on a real listener leaves no goroutine behind
// after Close, even with fills, manifest builds and the tracker's sweeper
// having run.
func TestServeCloseNoLeak(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/x.bin", &object{body: randomBody(30, 200000), header: map[string]string{"Cache-Control": "max-age=60"}})
	gate := make(chan struct{})
	o.set("/slow", &object{body: []byte("never"), gate: gate})
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	s, err := New(Config{Origin: o.srv.URL, CacheDir: t.TempDir(), SigningKey: testKey,
		Swarm: swarmConfigFastSweep()}, Deps{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	ec := &wire.EdgeClient{Base: "http://" + ln.Addr().String(), HTTP: hc}
	ctx := context.Background()
	if _, err := ec.Manifest(ctx, "/x.bin", core.NewKeyRing(s.PublicKey())); err != nil {
		t.Fatal(err)
	}
	reg := wire.RegisterRequest{Addr: "127.0.0.1:1"}
	wire.SignRegister(&reg, newIdentity(), ln.Addr().String(), clk.Now())
	if _, err := ec.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	// A fill still waiting on the origin at Close is cancelled, not leaked.
	slowErr := make(chan error, 1)
	go func() {
		resp, err := hc.Get(ec.Base + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		slowErr <- err
	}()
	waitFor(t, "the slow fill to reach the origin", func() bool { return o.requests.Load() == 2 })

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v after Close, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	<-slowErr
	close(gate)
	o.srv.Close()
}

func swarmConfigFastSweep() swarm.Config { return swarm.Config{SweepInterval: time.Millisecond} }

// The announce response carries the tracker's interval for the object's
// swarm: the configured one while the swarm is small, stretched to
// members / Swarm.AnnounceBudget as it grows (swarm.AnnounceInterval).
func TestSwarmAnnounceIntervalGrows(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/s.bin", &object{body: randomBody(21, 4*16<<10), header: map[string]string{"Cache-Control": "max-age=600", "ETag": `"s"`}})
	e := newEdge(t, o, clk, func(c *Config) {
		c.ChunkSize = 16 << 10
		c.AnnounceInterval = 400 * time.Millisecond
		c.Swarm.AnnounceBudget = 2 // announces per second
	})
	ctx := context.Background()
	m, err := e.client().Manifest(ctx, "/s.bin", core.NewKeyRing(e.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	// 1 member at 2 per s: 500 ms, more than the configured 400; then 1 s,
	// 1.5 s, 2 s.
	for i, want := range []int{500, 1000, 1500, 2000} {
		r, err := e.register(ctx, wire.RegisterRequest{Addr: fmt.Sprintf("127.0.0.1:%d", 7200+i)})
		if err != nil {
			t.Fatal(err)
		}
		if r.AnnounceIntervalMs != 400 {
			t.Errorf("register: interval %d ms, want the configured 400", r.AnnounceIntervalMs)
		}
		resp, err := e.client().Announce(ctx, wire.AnnounceRequest{PeerID: r.PeerID, Token: r.Token, Root: m.Root.String(),
			Have: core.NewBitfield(m.NumChunks()).Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		if resp.AnnounceIntervalMs != want {
			t.Errorf("%d members at 2 announces per s: interval %d ms, want %d", i+1, resp.AnnounceIntervalMs, want)
		}
	}
}

// With a network map, peers are placed by their advertised address and
// hand-outs put the requester's location first; a property with
// cross_pid: deny hands out only its location.
func TestSwarmNetworkLocations(t *testing.T) {
	nm, err := netmap.Parse([]byte("pids:\n  a: [127.0.0.1/32]\n  b: [127.0.0.2/32]\ncosts:\n  a: {b: 10}\n  b: {a: 10}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, policy := range []string{CrossPIDAllow, CrossPIDDeny} {
		clk := newClock()
		o := newOrigin(t, clk)
		o.set("/s.bin", &object{body: randomBody(20, 10*16<<10), header: map[string]string{"Cache-Control": "max-age=600"}})
		e := newEdge(t, o, clk, func(c *Config) { c.ChunkSize, c.NetworkMap, c.CrossPID = 16<<10, nm, policy })
		ctx := context.Background()
		m, err := e.client().Manifest(ctx, "/s.bin", core.NewKeyRing(e.PublicKey()))
		if err != nil {
			t.Fatal(err)
		}
		pidOf := map[string]string{}
		var peers []wire.RegisterResponse
		for i, addr := range []string{"127.0.0.1:7100", "127.0.0.2:7101", "127.0.0.1:7102", "127.0.0.2:7103", "127.0.0.2:7104"} {
			r, err := e.register(ctx, wire.RegisterRequest{Addr: addr, UploadBps: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			pidOf[r.PeerID] = map[bool]string{true: "a", false: "b"}[strings.HasPrefix(addr, "127.0.0.1:")]
			peers = append(peers, r)
			have := core.NewBitfield(m.NumChunks())
			have.Set(i)
			if _, err := e.client().Announce(ctx, wire.AnnounceRequest{PeerID: r.PeerID, Token: r.Token, Root: m.Root.String(), Have: have.Bytes()}); err != nil {
				t.Fatal(err)
			}
		}
		p0 := peers[0]
		resp, err := e.client().Announce(ctx, wire.AnnounceRequest{PeerID: p0.PeerID, Token: p0.Token, Root: m.Root.String(), Have: core.NewBitfield(m.NumChunks()).Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range resp.Peers {
			got = append(got, pidOf[p.PeerID])
			if want := map[string]int{"a": 0, "b": 10}[pidOf[p.PeerID]]; p.Cost != want {
				t.Errorf("peer in %s handed out at cost %d, want %d", pidOf[p.PeerID], p.Cost, want)
			}
		}
		want := map[string][]string{CrossPIDAllow: {"a", "b", "b", "b"}, CrossPIDDeny: {"a"}}[policy]
		if !slices.Equal(got, want) {
			t.Errorf("cross_pid %s: hand-out by location %v, want %v", policy, got, want)
		}
	}
	if _, err := New(Config{Origin: "http://o", CacheDir: t.TempDir(), SigningKey: testKey, CrossPID: "sometimes"}, Deps{}); err == nil || !strings.Contains(err.Error(), "cross_pid") {
		t.Errorf("cross_pid sometimes: %v", err)
	}
}

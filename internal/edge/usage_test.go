package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/netmap"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// TestSwarmUsage: the edge counts the chunk bytes it sends and the peer
// bytes peers report, per object and location pair, and shows them on the
// admin GET /usage and as metrics; reports a peer could not have made are
// refused and count nothing.
func TestSwarmUsage(t *testing.T) {
	nm, err := netmap.Parse([]byte("pids:\n  a: [127.0.0.1/32]\n  b: [127.0.0.2/32]\n"))
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/s.bin", &object{body: randomBody(20, 10*16<<10), header: map[string]string{"Cache-Control": "max-age=600"}})
	e := newEdge(t, o, clk, func(c *Config) { c.ChunkSize, c.NetworkMap, c.AdminToken = 16<<10, nm, "tok" })
	ctx := context.Background()
	m, err := e.client().Manifest(ctx, "/s.bin", core.NewKeyRing(e.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	var peers []wire.RegisterResponse // in a, b, a
	for i, addr := range []string{"127.0.0.1:7100", "127.0.0.2:7101", "127.0.0.1:7102"} {
		r, err := e.register(ctx, wire.RegisterRequest{Addr: addr, Name: fmt.Sprint("p", i)})
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, r)
	}
	seq := uint64(0)
	announce := func(i int, leaving bool, recv ...wire.Received) error {
		p := peers[i]
		seq++
		_, err := e.client().Announce(ctx, wire.AnnounceRequest{PeerID: p.PeerID, Token: p.Token, Root: m.Root.String(),
			Have: core.NewBitfield(m.NumChunks()).Bytes(), Leaving: leaving, Received: recv, ReceivedSeq: seq})
		return err
	}

	// The edge sends chunk 0 to p0 (in a) and chunk 1 to a client it does not know.
	if r := e.get(t, wire.ChunkPath(m.Root, 0), wire.HeaderPeerID, peers[0].PeerID); r.status != http.StatusOK {
		t.Fatalf("chunk 0: %d", r.status)
	}
	if r := e.get(t, wire.ChunkPath(m.Root, 1), wire.HeaderPeerID, "made-up"); r.status != http.StatusOK {
		t.Fatalf("chunk 1: %d", r.status)
	}
	// p0 got 1000 bytes from p1 (b: crossing) and 500 from p2 (a); p1 got
	// 300 from a peer this edge never knew; p0 leaves owing 10 more from p1.
	for _, step := range []struct {
		i       int
		leaving bool
		recv    []wire.Received
	}{
		{0, false, []wire.Received{{From: peers[1].PeerID, Bytes: 1000}, {From: peers[2].PeerID, Bytes: 500}}},
		{1, false, []wire.Received{{From: "elsewhere", Bytes: 300}}},
		{0, true, []wire.Received{{From: peers[1].PeerID, Bytes: 10}}},
	} {
		if err := announce(step.i, step.leaving, step.recv...); err != nil {
			t.Fatal(err)
		}
	}
	// A report sent again (its answer lost) counts once.
	seq = 1 // p1's report above was number 2
	if err := announce(1, false, wire.Received{From: "elsewhere", Bytes: 300}); err != nil {
		t.Fatal(err)
	}
	// Refused: too many entries, negative bytes, a report about itself,
	// an empty source, no sequence number. None of them counts.
	p2 := peers[2]
	if _, err := e.client().Announce(ctx, wire.AnnounceRequest{PeerID: p2.PeerID, Token: p2.Token, Root: m.Root.String(),
		Have: core.NewBitfield(m.NumChunks()).Bytes(), Received: []wire.Received{{From: peers[1].PeerID, Bytes: 5}}}); wire.StatusCode(err) != http.StatusBadRequest {
		t.Errorf("no sequence number: err %v, want 400", err)
	}
	many := make([]wire.Received, wire.MaxReceived+1)
	for i := range many {
		many[i] = wire.Received{From: fmt.Sprint("x", i), Bytes: 1}
	}
	for name, recv := range map[string][]wire.Received{
		"too many": many,
		"negative": {{From: peers[1].PeerID, Bytes: -5}},
		"itself":   {{From: peers[2].PeerID, Bytes: 5}},
		"no from":  {{Bytes: 5}},
	} {
		if err := announce(2, false, recv...); wire.StatusCode(err) != http.StatusBadRequest {
			t.Errorf("%s: err %v, want 400", name, err)
		}
	}

	cs := int64(16 << 10)
	want := []PairUsage{
		{SourceEdge, pidEdge, "a", cs},
		{SourceEdge, pidEdge, pidUnknown, cs},
		{SourcePeer, "a", "a", 500},
		{SourcePeer, "b", "a", 1010},
		{SourcePeer, pidUnknown, "b", 300},
	}
	admin := httptest.NewServer(e.AdminHandler())
	defer admin.Close()
	get := func(path, token string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, admin.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := get("/usage", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /usage without the admin token: %d, want 401", code)
	}
	code, body := get("/usage?url=/s.bin", "tok")
	if code != http.StatusOK {
		t.Fatalf("GET /usage: %d %s", code, body)
	}
	var rep UsageReport
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Objects) != 1 || rep.Objects[0].URL != "/s.bin" || rep.Objects[0].Root != m.Root.String() {
		t.Fatalf("objects %+v, want /s.bin at %s", rep.Objects, m.Root.Short())
	}
	ou := rep.Objects[0]
	if fmt.Sprint(ou.Pairs) != fmt.Sprint(want) {
		t.Errorf("pairs\n got %v\nwant %v", ou.Pairs, want)
	}
	if ou.EdgeBytes != 2*cs || ou.PeerBytes != 1810 || ou.CrossPIDBytes != 1010 {
		t.Errorf("totals %+v: want edge %d, peer 1810, cross-PID 1010", ou.UsageTotals, 2*cs)
	}
	if w := 1810 / float64(1810+2*cs); ou.Offload != w || rep.Total != ou.UsageTotals {
		t.Errorf("offload %v (want %v), total %+v", ou.Offload, w, rep.Total)
	}
	if _, body := get("/usage?url=/other", "tok"); !strings.Contains(string(body), `"objects":[]`) {
		t.Errorf("another URL: %s", body)
	}
	metrics := string(e.get(t, "/metrics").body)
	for _, line := range []string{
		`edgeswarm_edge_cross_pid_bytes_total 1010`,
		`edgeswarm_edge_swarm_bytes_total{from_pid="b",source="peer",to_pid="a"} 1010`,
		`edgeswarm_edge_swarm_bytes_total{from_pid="edge",source="edge",to_pid="a"} 16384`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %q", line)
		}
	}
}

// TestUsageBounds: past the table bounds bytes are folded into shared rows,
// never dropped, and the tables stop growing.
func TestUsageBounds(t *testing.T) {
	var u usage
	for i := range usageObjectsMax + 5 {
		m := &core.Manifest{URL: fmt.Sprint("/o", i), Root: core.HashBytes([]byte(fmt.Sprint(i)))}
		u.addLocked(m, usagePair{SourcePeer, "a", "b"}, 1)
	}
	if len(u.byRoot) != usageObjectsMax+1 {
		t.Errorf("%d object rows, want %d", len(u.byRoot), usageObjectsMax+1)
	}
	if o := u.byRoot[core.Hash{}]; o == nil || o.pairs[usagePair{SourcePeer, "a", "b"}] != 5 {
		t.Errorf("the shared row: %+v, want 5 bytes", o)
	}
	m := &core.Manifest{URL: "/o0", Root: core.HashBytes([]byte("0"))}
	for i := range usagePairsMax + 3 {
		u.addLocked(m, usagePair{SourcePeer, fmt.Sprint("p", i), "b"}, 1)
	}
	o := u.byRoot[m.Root]
	if len(o.pairs) != usagePairsMax+1 || o.pairs[usagePair{SourcePeer, pidOther, pidOther}] != 4 {
		t.Errorf("%d pairs, other %d; want %d and 4", len(o.pairs), o.pairs[usagePair{SourcePeer, pidOther, pidOther}], usagePairsMax+1)
	}
}

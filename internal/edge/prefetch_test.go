package edge

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/netmap"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

const testManagedToken = "managed-cache-token-0123"

// TestManagedRegistration: a managed registration needs the edge's token;
// with it the cache is handed out marked managed, first in its location.
func TestManagedRegistration(t *testing.T) {
	f := newSwarmFixture(t) // no managed token configured
	ctx := context.Background()
	if _, err := f.e.register(ctx, wire.RegisterRequest{Addr: "127.0.0.1:7200", Managed: true, ManagedToken: "anything"}); wire.StatusCode(err) != http.StatusForbidden {
		t.Errorf("managed registration on an edge with no token: %v, want 403", err)
	}

	clk := newClock()
	o := newOrigin(t, clk)
	o.set("/s.bin", &object{body: randomBody(20, 4*16<<10), header: map[string]string{"Cache-Control": "max-age=600"}})
	e := newEdge(t, o, clk, func(c *Config) { c.ChunkSize, c.ManagedToken = 16<<10, testManagedToken })
	m, err := e.client().Manifest(ctx, "/s.bin", core.NewKeyRing(e.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"", "wrong-token-wrong-token"} {
		if _, err := e.register(ctx, wire.RegisterRequest{Addr: "127.0.0.1:7201", Managed: true, ManagedToken: tok}); wire.StatusCode(err) != http.StatusForbidden {
			t.Errorf("managed token %q: %v, want 403", tok, err)
		}
	}
	var regs []wire.RegisterResponse
	for i, managed := range []bool{false, true, false} {
		r, err := e.register(ctx, wire.RegisterRequest{Addr: "127.0.0.1:" + string(rune('1'+i)) + "000", Managed: managed, ManagedToken: testManagedToken})
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, r)
		have := core.NewBitfield(m.NumChunks())
		have.Set(i)
		if _, err := e.client().Announce(ctx, wire.AnnounceRequest{PeerID: r.PeerID, Token: r.Token, Root: m.Root.String(), Have: have.Bytes()}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := e.client().Announce(ctx, wire.AnnounceRequest{PeerID: regs[2].PeerID, Token: regs[2].Token, Root: m.Root.String(), Have: core.NewBitfield(m.NumChunks()).Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Peers) != 2 || resp.Peers[0].PeerID != regs[1].PeerID || !resp.Peers[0].Managed || resp.Peers[1].Managed {
		t.Errorf("hand-out %+v: want the managed cache %s first, marked", resp.Peers, regs[1].PeerID)
	}
	// Orders are for managed caches only.
	if _, err := e.client().Orders(ctx, wire.OrdersRequest{PeerID: regs[0].PeerID, Token: regs[0].Token}); wire.StatusCode(err) != http.StatusForbidden {
		t.Errorf("orders for an end-user peer: %v, want 403", err)
	}
	if _, err := e.client().Orders(ctx, wire.OrdersRequest{PeerID: regs[1].PeerID, Token: "bad"}); wire.StatusCode(err) != http.StatusUnauthorized {
		t.Errorf("orders with a bad token: %v, want 401", err)
	}
}

// TestPrefetchOrders: the admin order book validates orders, keeps them
// across a restart, hands each managed cache the orders of its location and
// records which caches carried them out.
func TestPrefetchOrders(t *testing.T) {
	nm, err := netmap.Parse([]byte("pids:\n  a: [127.0.0.1/32]\n  b: [127.0.0.2/32]\n"))
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	o := newOrigin(t, clk)
	dir := t.TempDir()
	mod := func(c *Config) {
		c.NetworkMap, c.AdminToken, c.ManagedToken, c.OrdersPollInterval = nm, "tok", testManagedToken, 5_000_000_000
	}
	e := newEdgeDir(t, o, clk, dir, mod)
	admin := httptest.NewServer(e.AdminHandler())
	defer admin.Close()
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, admin.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for body, want := range map[string]string{
		`{"urls":[]}`:                                   "no urls",
		`{"urls":["http://x/a"]}`:                       "want a path",
		`{"urls":["/a"],"window":"1-5"}`:                "HH:MM-HH:MM",
		`{"urls":["/a"],"pids":["c"]}`:                  "not in the network map",
		`{"urls":["/a"],"surprise":1}`:                  "unknown field",
		`{"urls":["/a"],"window":"03:00-03:00"}`:        "empty window",
		`{"urls":["/a"],"window":"01:00-05:00"}garbage`: "",
	} {
		code, out := do(http.MethodPost, "/prefetch", body)
		if want == "" {
			if code != http.StatusCreated {
				t.Errorf("%s: %d %s", body, code, out)
			} else {
				var ord Order
				json.Unmarshal([]byte(out), &ord)
				do(http.MethodDelete, "/prefetch/"+ord.ID, "")
			}
			continue
		}
		if code != http.StatusBadRequest || !strings.Contains(out, want) {
			t.Errorf("%s: %d %q, want 400 naming %q", body, code, out, want)
		}
	}
	var forA, forAll Order
	code, out := do(http.MethodPost, "/prefetch", `{"urls":["/v/1.mp4","/v/2.mp4"],"window":"01:00-05:00","pids":["a"]}`)
	if code != http.StatusCreated || json.Unmarshal([]byte(out), &forA) != nil || forA.ID == "" {
		t.Fatalf("order for a: %d %s", code, out)
	}
	if code, out = do(http.MethodPost, "/prefetch", `{"urls":["/v/3.mp4"]}`); code != http.StatusCreated || json.Unmarshal([]byte(out), &forAll) != nil {
		t.Fatalf("order for all: %d %s", code, out)
	}

	ctx := context.Background()
	cacheOf := map[string]wire.RegisterResponse{}
	for pid, addr := range map[string]string{"a": "127.0.0.1:7300", "b": "127.0.0.2:7301"} {
		r, err := e.register(ctx, wire.RegisterRequest{Addr: addr, Managed: true, ManagedToken: testManagedToken})
		if err != nil {
			t.Fatal(err)
		}
		cacheOf[pid] = r
	}
	ids := func(r wire.OrdersResponse) (out []string) {
		for _, o := range r.Orders {
			out = append(out, o.ID)
		}
		return out
	}
	ra, err := e.client().Orders(ctx, wire.OrdersRequest{PeerID: cacheOf["a"].PeerID, Token: cacheOf["a"].Token})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := e.client().Orders(ctx, wire.OrdersRequest{PeerID: cacheOf["b"].PeerID, Token: cacheOf["b"].Token, Done: []string{forAll.ID, "unknown"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ra); len(got) != 2 || got[0] != forA.ID || got[1] != forAll.ID || ra.Orders[0].Window != "01:00-05:00" || ra.PollIntervalMs != 5000 {
		t.Errorf("cache in a got %v (poll %d ms), want both orders", got, ra.PollIntervalMs)
	}
	if got := ids(rb); len(got) != 1 || got[0] != forAll.ID {
		t.Errorf("cache in b got %v, want only the order for every location", got)
	}

	// A restart keeps the book and who carried out what.
	e.Close()
	e2 := newEdgeDir(t, o, clk, dir, mod)
	book := e2.Orders()
	if len(book) != 2 || book[0].ID != forA.ID || len(book[1].DoneBy) != 1 || book[1].DoneBy[0].PeerID != cacheOf["b"].PeerID || book[1].DoneBy[0].PID != "b" {
		t.Fatalf("book after restart: %+v", book)
	}
	admin2 := httptest.NewServer(e2.AdminHandler())
	defer admin2.Close()
	admin.URL = admin2.URL
	if code, _ := do(http.MethodDelete, "/prefetch/"+forA.ID, ""); code != http.StatusNoContent {
		t.Errorf("delete: %d", code)
	}
	if code, _ := do(http.MethodDelete, "/prefetch/"+forA.ID, ""); code != http.StatusNotFound {
		t.Errorf("delete again: %d, want 404", code)
	}
	if code, out := do(http.MethodGet, "/prefetch", ""); code != http.StatusOK || strings.Contains(out, forA.ID) || !strings.Contains(out, forAll.ID) {
		t.Errorf("GET /prefetch: %d %s", code, out)
	}
}

// TestOrderBookBound: past wire.MaxOrders orders the book refuses more
// (409) and keeps what it has.
func TestOrderBookBound(t *testing.T) {
	clk := newClock()
	e := newEdge(t, newOrigin(t, clk), clk, nil)
	e.orders.mu.Lock()
	for i := range wire.MaxOrders {
		e.orders.orders = append(e.orders.orders, &Order{Order: wire.Order{ID: string(rune('a' + i%26)), URLs: []string{"/x"}}})
	}
	e.orders.mu.Unlock()
	if _, err := e.PlaceOrder(wire.Order{URLs: []string{"/y"}}); err == nil || !strings.Contains(err.Error(), "order book full") {
		t.Errorf("order %d: %v, want the book full", wire.MaxOrders+1, err)
	}
	if n := len(e.Orders()); n != wire.MaxOrders {
		t.Errorf("%d orders kept, want %d", n, wire.MaxOrders)
	}
	many := make([]string, wire.MaxOrderURLs+1)
	for i := range many {
		many[i] = "/o"
	}
	if _, err := e.PlaceOrder(wire.Order{URLs: many}); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("an order of %d urls: %v", len(many), err)
	}
}

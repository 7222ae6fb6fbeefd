package wire

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// The edge client keeps its connection across calls: a JSON answer is read
// to its end (the encoder's trailing newline too), so the next request
// does not pay for a new connection.
func TestEdgeClientReusesConnection(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peers := make([]PeerInfo, 100)
		for i := range peers {
			peers[i] = PeerInfo{PeerID: "p1", Addr: "127.0.0.1:1", Have: make([]byte, 64)}
		}
		json.NewEncoder(w).Encode(AnnounceResponse{AnnounceIntervalMs: 500, Peers: peers})
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := &EdgeClient{Base: srv.URL, HTTP: srv.Client()}
	for range 5 {
		if _, err := c.Announce(context.Background(), AnnounceRequest{PeerID: "me", Token: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 5 announces, want 1", n)
	}
}

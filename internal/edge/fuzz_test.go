package edge

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// FuzzAnnounce feeds arbitrary bodies to the announce handler: it must
// never panic or fail with a 5xx, whatever the input.
func FuzzAnnounce(f *testing.F) {
	fx := newSwarmFixture(f)
	p := fx.peers[0]
	have := make([]byte, (fx.m.NumChunks()+7)/8)
	valid, _ := json.Marshal(wire.AnnounceRequest{PeerID: p.PeerID, Token: p.Token, Root: fx.m.Root.String(), Have: have})
	f.Add(valid)
	leave, _ := json.Marshal(wire.AnnounceRequest{PeerID: p.PeerID, Token: p.Token, Root: fx.m.Root.String(), Leaving: true})
	f.Add(leave)
	f.Add([]byte(`{"peer_id":"` + p.PeerID + `","token":"` + p.Token + `","root":"` + fx.m.Root.String() + `","have":"/w==","want":1000000}`))
	f.Add([]byte(`{"peer_id":null,"have":[1,2,3]}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{0xff, 0xfe})
	h := fx.e.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, wire.PathAnnounce, bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code == http.StatusOK {
			var resp wire.AnnounceResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Peers) > wire.MaxHandout {
				t.Fatalf("200 with a bad response (%v): %s", err, rec.Body)
			}
		}
	})
}

// FuzzRegister feeds arbitrary bodies to the register handler: never a
// panic or a 5xx; a 200 names the peer after the key that signed and
// carries a ticket for it.
func FuzzRegister(f *testing.F) {
	fx := newSwarmFixture(f)
	for _, r := range []wire.RegisterRequest{{Addr: "127.0.0.1:7000", Name: "n", UploadBps: 5}, {}} {
		valid := fx.e.signedFor("example.com", fx.e.now(), r)
		b, _ := json.Marshal(valid)
		f.Add(b)
	}
	f.Add([]byte(`{"public_key":"AAAA","signature":"AAAA","time":1}`))
	f.Add([]byte(`{"addr":"x"}`))
	ring := core.NewKeyRing(fx.e.PublicKey())
	h := fx.e.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, wire.PathRegister, bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusOK {
			return
		}
		var in wire.RegisterRequest
		var out wire.RegisterResponse
		if json.Unmarshal(body, &in) != nil || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			t.Fatalf("200 for %q: %s", body, rec.Body)
		}
		tk, err := core.ParseTicket(out.Ticket, ring, fx.e.now())
		if err != nil || out.PeerID != core.PeerIDOf(in.PublicKey) || tk.PeerID != out.PeerID || !bytes.Equal(tk.PublicKey, in.PublicKey) {
			t.Fatalf("200 for %q: id %s, ticket %+v, %v", body, out.PeerID, tk, err)
		}
	})
}

// FuzzChunkPath feeds arbitrary chunk paths through the handler: only 200
// (with exactly the right bytes), 400 or 404.
func FuzzChunkPath(f *testing.F) {
	fx := newSwarmFixture(f)
	root := fx.m.Root.String()
	for _, s := range []string{root + "/0", root + "/9", root + "/10", root + "/-1", root + "/", root,
		"zz/1", "", "/", root + "/0/extra", root + "/+1", root + "/01", root + "/99999999999999999999"} {
		f.Add(s)
	}
	h := fx.e.Handler()
	f.Fuzz(func(t *testing.T, s string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = wire.PathChunk + s
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusBadRequest, http.StatusNotFound:
		case http.StatusOK:
			gotRoot, i, err := wire.ParseChunkPath(req.URL.Path)
			if err != nil || gotRoot != fx.m.Root {
				t.Fatalf("200 for a path that does not parse to the object: %q", s)
			}
			if err := fx.m.CheckChunk(i, rec.Body.Bytes()); err != nil {
				t.Fatalf("%q: %v", s, err)
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, s)
		}
	})
}

// The lane's request parser never panics, and takes only what net/http
// reads the same way: the same method, target, host and header values.
func FuzzLaneRequest(f *testing.F) {
	for _, s := range []string{
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /a?b=c HTTP/1.1\r\nHost: example.com:80\r\nAccept: */*\r\nConnection: keep-alive, close\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\nX-A:  spaced \t\r\nx-a: again\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"GET /a HTTP/1.1\nHost: x\n\n",
		"GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, st := headEnd(data)
		if st != headDone {
			return
		}
		r, ok := laneRequest(data[:n], "192.0.2.1:1")
		if !ok {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data[:n])))
		if err != nil {
			t.Fatalf("lane took %q, net/http refuses it: %v", data[:n], err)
		}
		if r.Method != want.Method || r.RequestURI != want.RequestURI || r.Host != want.Host || r.URL.String() != want.URL.String() || r.Close != want.Close {
			t.Fatalf("%q: lane reads %s %s host %q close %v, net/http %s %s host %q close %v",
				data[:n], r.Method, r.URL, r.Host, r.Close, want.Method, want.URL, want.Host, want.Close)
		}
		for k, vs := range r.Header {
			if !slices.Equal(vs, want.Header[k]) {
				t.Fatalf("%q: header %s: lane %q, net/http %q", data[:n], k, vs, want.Header[k])
			}
		}
		for k := range want.Header {
			if _, ok := r.Header[k]; !ok {
				t.Fatalf("%q: net/http reads header %s, the lane does not", data[:n], k)
			}
		}
	})
}

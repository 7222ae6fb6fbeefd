package edge

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

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

package cdntest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/demo"
	"github.com/edgeswarm/edgeswarm/internal/netem"
	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// TestEndToEndFlashCrowd runs origin, edge and a crowd of peers with
// emulated links and checks the bytes, the single origin fetch and that
// peers carried most of the load.
func TestEndToEndFlashCrowd(t *testing.T) {
	res, err := demo.Run(context.Background(), demo.Config{
		Peers: 8, Size: 8 << 20, EdgeUp: 40e6, PeerUp: 20e6, PeerDown: 100e6, Seed: 3, Timeout: 2 * time.Minute,
	}, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if !res.SHA256Match {
		t.Error("a peer's bytes differ from the origin's")
	}
	if res.OriginFetches != 1 {
		t.Errorf("origin fetches %d, want 1", res.OriginFetches)
	}
	// The limit here is about 0.8; a swarm that leaves peers idle falls far below.
	if res.Offload < 0.5 {
		t.Errorf("offload %.3f (limit %.3f): peers carried too little", res.Offload, res.OffloadLimit)
	}
	if res.BytesFromEdge+res.BytesFromPeers < int64(res.Peers)*res.FileBytes {
		t.Errorf("delivered %d bytes, less than %d", res.BytesFromEdge+res.BytesFromPeers, int64(res.Peers)*res.FileBytes)
	}
}

// TestBattery13_FlippedBitPeerBanned: a peer flips one bit in every chunk it
// serves → mismatches are detected, chunks refetched elsewhere, every final
// SHA-256 correct, the sender banned, no honest peer banned, no bad chunk
// ever written to any store and no honest peer ever served a bad chunk.
func TestBattery13_FlippedBitPeerBanned(t *testing.T) {
	res, err := demo.Run(context.Background(), demo.Config{
		Peers: 6, Size: 8 << 20, BadPeers: 1, EdgeUp: 40e6, PeerUp: 20e6, PeerDown: 100e6, Seed: 5, Timeout: 2 * time.Minute,
	}, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	switch {
	case !res.SHA256Match:
		t.Error("a peer's bytes differ from the origin's")
	case res.CorruptChunksDetected == 0:
		t.Error("no corrupt chunk detected: the bad peer was never used, the test proves nothing")
	case res.BadPeersBanned != 1:
		t.Errorf("bad peers banned %d, want 1", res.BadPeersBanned)
	case res.HonestPeersBanned != 0:
		t.Errorf("honest peers banned %d", res.HonestPeersBanned)
	case res.ChunksServedChecked == 0:
		t.Error("honest peers served nothing")
	case res.BadChunksServedHonest != 0:
		t.Errorf("honest peers served %d bad chunks", res.BadChunksServedHonest)
	case res.ChunksStoredChecked < int64(res.Peers)*int64(res.FileBytes)/int64(res.ChunkSize):
		t.Errorf("only %d chunk writes audited", res.ChunksStoredChecked)
	case res.BadChunksStored != 0:
		t.Errorf("%d bad chunks were written to a store", res.BadChunksStored)
	}
}

// TestBattery20_TamperedManifestRefused: a manifest altered in transit, or
// signed by a key the peer does not trust, is refused and no chunk bytes are
// accepted.
func TestBattery20_TamperedManifestRefused(t *testing.T) {
	obj := RandomBytes(3<<20, 9)
	_, originURL := Origin(t, map[string][]byte{"/f.bin": obj})
	key, ring := Key(t)
	_, edgeURL := Edge(t, originURL, key, 64<<10, netem.Link{})
	_, otherRing := Key(t)

	flip := func(at func(n int) int) string {
		target, _ := url.Parse(edgeURL)
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.ModifyResponse = func(resp *http.Response) error {
			if !strings.HasPrefix(resp.Request.URL.Path, wire.PathManifest) || resp.StatusCode != 200 {
				return nil
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			b[at(len(b))] ^= 0x40
			resp.Body = io.NopCloser(bytes.NewReader(b))
			return nil
		}
		return Serve(t, (&http.Server{Handler: rp}).Serve, netem.Link{})
	}
	// Every tamper below is also checked with a good fallback edge, from
	// which the download must then complete.
	cases := map[string]struct {
		edge string
		ring core.KeyRing
	}{
		"untrusted signer":       {edgeURL, otherRing},
		"flipped hash byte":      {flip(func(n int) int { return n - 200 }), ring},
		"flipped signature byte": {flip(func(n int) int { return n - 5 }), ring},
		"flipped url byte":       {flip(func(int) int { return 7 }), ring},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := Peer(t, tc.edge, tc.ring, netem.Link{}, 1, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			dl, err := a.Download(ctx, "/f.bin")
			if err == nil {
				err = dl.Wait(ctx)
				st := dl.Stats()
				t.Fatalf("download accepted a bad manifest: err=%v, bytes %v", err, st.Bytes)
			}
			if !errors.Is(err, core.ErrBadSignature) && !errors.Is(err, core.ErrBadRoot) && !errors.Is(err, core.ErrUnknownKey) && !strings.Contains(err.Error(), "manifest") {
				t.Fatalf("unclear error: %v", err)
			}
		})
	}

	// And the honest path through the same edge works.
	a := Peer(t, edgeURL, ring, netem.Link{}, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dl, err := a.Download(ctx, "/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, dl.NewReader(ctx)); err != nil {
		t.Fatal(err)
	}
	if [32]byte(h.Sum(nil)) != sha256.Sum256(obj) {
		t.Fatal("bytes differ")
	}
	if st := dl.Stats(); st.Bytes[peer.KindEdge] < int64(len(obj)) {
		t.Fatalf("edge bytes %d", st.Bytes[peer.KindEdge])
	}
}

// TestBadInputFallsBackToAnotherSource: a malformed manifest from one edge
// gets a clear error and the download completes from another edge; a peer
// that sends a chunk of the wrong length, and one that closes mid-chunk, are
// refused and the download completes from the other sources.
func TestBadInputFallsBackToAnotherSource(t *testing.T) {
	obj := RandomBytes(4<<20, 11)
	_, originURL := Origin(t, map[string][]byte{"/f.bin": obj})
	key, ring := Key(t)
	// The home edge is slow, so the misbehaving peers do get asked.
	_, homeURL := Edge(t, originURL, key, 64<<10, netem.NewLink(16e6, 0))
	_, spareURL := Edge(t, originURL, key, 64<<10, netem.NewLink(16e6, 0))

	// A proxy in front of the home edge that garbles manifests.
	target, _ := url.Parse(homeURL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if strings.HasPrefix(resp.Request.URL.Path, wire.PathManifest) {
			resp.Body = io.NopCloser(strings.NewReader("ESM1 this is not a manifest"))
			resp.ContentLength = -1
			resp.Header.Del("Content-Length")
		}
		return nil
	}
	garbling := Serve(t, (&http.Server{Handler: rp}).Serve, netem.Link{})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Seeders: one honest, one that sends one byte too many, one that
	// hangs up half-way through every chunk. All hold the whole object.
	seed := func(n uint64, wrap func(http.Handler) http.Handler) *peer.Agent {
		a := Peer(t, homeURL, ring, netem.Link{}, n, wrap)
		dl, err := a.Download(ctx, "/f.bin")
		if err != nil {
			t.Fatal(err)
		}
		if err := dl.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		return a
	}
	seed(20, nil)
	long := seed(21, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, wire.PathChunk) {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			w.WriteHeader(rec.Code)
			w.Write(append(rec.Body.Bytes(), 0))
		})
	})
	hangup := seed(22, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, wire.PathChunk) {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			w.Header().Set("Content-Length", strconv.Itoa(rec.Body.Len()))
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
			panic(http.ErrAbortHandler)
		})
	})

	// The downloader's home edge garbles manifests; its fallback is fine.
	a := PeerWith(t, peer.Config{Edge: garbling, Fallbacks: []string{spareURL}, Keys: ring}, netem.Link{}, 23, nil)
	dl, err := a.Download(ctx, "/f.bin")
	if err != nil {
		t.Fatalf("download failed although a good edge was listed: %v", err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, dl.NewReader(ctx)); err != nil {
		t.Fatal(err)
	}
	if [32]byte(h.Sum(nil)) != sha256.Sum256(obj) {
		t.Fatal("bytes differ from the origin's")
	}
	st := dl.Stats()
	t.Logf("edge %d, peers %d, corrupt %d, banned %v, failures %d", st.Bytes[peer.KindEdge], st.Bytes[peer.KindPeer], st.CorruptChunks, st.Banned, st.Failures)
	if st.Bytes[peer.KindPeer] == 0 {
		t.Error("no bytes from peers: the seeders were never used")
	}
	bannedLong := false
	for _, id := range st.Banned {
		bannedLong = bannedLong || id == long.PeerID()
		if id == hangup.PeerID() {
			t.Error("a peer that hung up was banned: a broken connection is not proof of malice")
		}
	}
	if st.CorruptChunks > 0 && !bannedLong {
		t.Error("the peer that sent over-long chunks was not banned")
	}

	// Without a fallback the garbled manifest is a clear error.
	b := PeerWith(t, peer.Config{Edge: garbling, Keys: ring}, netem.Link{}, 24, nil)
	if _, err := b.Download(ctx, "/f.bin"); err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Fatalf("garbled manifest: err = %v, want a clear manifest error", err)
	}
}

// Battery 24. Two network locations with cross_pid deny: no peer byte crosses them,
// and the edges' usage counters (per location pair) report the same bytes
// as the agents received,
// the edge serves what a location lacks, every copy is whole; with allow,
// bytes do cross (so the deny figure means something), but agents keep
// most of them inside their location.
func TestBattery24_NetworkLocations(t *testing.T) {
	for _, policy := range []string{"deny", "allow"} {
		res, err := demo.Run(context.Background(), demo.Config{
			Peers: 8, Size: 8 << 20, EdgeUp: 40e6, PeerUp: 20e6, PeerDown: 100e6, Seed: 7, Timeout: 2 * time.Minute,
			PIDs: 2, CrossPID: policy, MemoryStore: true,
		}, Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: cross-PID bytes %d, same-PID share %.2f, offload %.2f; the edge's account: %+v",
			policy, res.CrossPIDBytes, res.SamePIDShare, res.Offload, res.EdgeUsage)
		// The edge's counters (peers' reports, per location pair) agree
		// with what the agents counted themselves.
		if u := res.EdgeUsage; u.CrossPIDBytes != res.CrossPIDBytes || u.PeerBytes != res.BytesFromPeers {
			t.Errorf("%s: the edge counts %d cross-PID and %d peer bytes; the agents received %d and %d",
				policy, u.CrossPIDBytes, u.PeerBytes, res.CrossPIDBytes, res.BytesFromPeers)
		}
		switch {
		case !res.SHA256Match:
			t.Errorf("%s: a peer's bytes differ from the origin's", policy)
		case res.BytesFromPeers == 0:
			t.Errorf("%s: peers served nothing: the test proves nothing", policy)
		case policy == "deny" && res.CrossPIDBytes != 0:
			t.Errorf("deny: %d peer bytes crossed locations", res.CrossPIDBytes)
		case policy == "allow" && res.CrossPIDBytes == 0:
			t.Error("allow: no peer byte crossed locations")
		case policy == "allow" && res.SamePIDShare <= 3.0/7:
			// Each peer has 3 peers in its location and 4 outside: an agent
			// blind to locations keeps about 3/7 of its peer bytes inside.
			t.Errorf("allow: same-location share %.2f, no better than blind (%.2f)", res.SamePIDShare, 3.0/7)
		}
	}
}

package cdntest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
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
// SHA-256 correct, the sender banned, no honest peer banned, and no honest
// peer ever served a bad chunk.
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

package peer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// fakePeer is a hand-written peer that holds every chunk but answers chunk
// requests through misbehave; it counts the requests it got.
type fakePeer struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newFakePeer(t *testing.T, o *fakeObject, misbehave func(w http.ResponseWriter, chunk []byte)) *fakePeer {
	fp := &fakePeer{}
	fp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, i, err := wire.ParseChunkPath(r.URL.Path)
		if err != nil || i >= o.m.NumChunks() {
			http.NotFound(w, r)
			return
		}
		fp.hits.Add(1)
		misbehave(w, o.data[o.m.ChunkOffset(i):o.m.ChunkOffset(i)+int64(o.m.ChunkLen(i))])
	}))
	t.Cleanup(fp.srv.Close)
	return fp
}

func (fp *fakePeer) info(id string, n int) wire.PeerInfo {
	have := core.NewBitfield(n)
	for i := 0; i < n; i++ {
		have.Set(i)
	}
	return wire.PeerInfo{PeerID: id, Addr: strings.TrimPrefix(fp.srv.URL, "http://"), Have: have.Bytes()}
}

// TestBadSources hands a download one misbehaving seeder beside the edge:
// its chunks must be rejected before storage, fetched elsewhere, and the
// download must complete with the right bytes. A peer that sends more
// bytes than the chunk is banned and reported; a short body or a dropped
// connection is a failure (the network may be at fault), not a ban.
func TestBadSources(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	cases := []struct {
		name      string
		misbehave func(w http.ResponseWriter, chunk []byte)
		ban       bool
	}{
		{"short", func(w http.ResponseWriter, c []byte) {
			w.Header().Set("Content-Length", strconv.Itoa(len(c)-1))
			w.Write(c[:len(c)-1])
		}, false},
		{"long", func(w http.ResponseWriter, c []byte) {
			w.Header().Set("Content-Length", strconv.Itoa(len(c)+1))
			w.Write(append(bytes.Clone(c), 0))
		}, true},
		{"long-chunked", func(w http.ResponseWriter, c []byte) {
			w.Write(c) // no Content-Length: chunked encoding
			w.(http.Flusher).Flush()
			w.Write([]byte("trailing junk"))
		}, true},
		{"flipped", func(w http.ResponseWriter, c []byte) {
			b := bytes.Clone(c)
			b[0] ^= 1
			w.Write(b)
		}, true},
		{"midclose", func(w http.ResponseWriter, c []byte) {
			w.Header().Set("Content-Length", strconv.Itoa(len(c)))
			w.WriteHeader(200)
			w.Write(c[:len(c)/2])
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}, false},
		{"busy", func(w http.ResponseWriter, c []byte) {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}, false},
		{"lying-404", func(w http.ResponseWriter, c []byte) {
			http.NotFound(w, nil)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEdge(t, 40e6) // the edge is slower than the liar: it gets asked
			o := e.addObject("/v.mp4", testData(1<<20+12345, 7), 64<<10)
			fp := newFakePeer(t, o, tc.misbehave)
			e.mu.Lock()
			e.extra = []wire.PeerInfo{fp.info("liar", o.m.NumChunks())}
			e.mu.Unlock()
			sp := newSwarmPeer(t, e, peerOpts{name: "victim", seed: 3})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			d, err := sp.a.Download(ctx, "/v.mp4")
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Wait(ctx); err != nil {
				t.Fatalf("download: %v", err)
			}
			got, err := io.ReadAll(d.NewReader(ctx))
			if err != nil || !bytes.Equal(got, o.data) {
				t.Fatalf("object bytes differ (err %v)", err)
			}
			st := d.Stats()
			if fp.hits.Load() == 0 {
				t.Fatal("the misbehaving peer was never asked")
			}
			banned := slices.Contains(st.Banned, "liar")
			if banned != tc.ban {
				t.Fatalf("banned = %v, want %v (stats %+v)", banned, tc.ban, st)
			}
			if tc.ban {
				if st.CorruptChunks == 0 || e.reportsAbout("liar") == 0 {
					t.Fatalf("corrupt=%d reports=%d, want both > 0", st.CorruptChunks, e.reportsAbout("liar"))
				}
				if hits := fp.hits.Load(); hits > 2 {
					t.Fatalf("banned peer was asked %d times", hits)
				}
			} else if st.Failures+st.Busy == 0 {
				t.Fatalf("no failure counted: %+v", st)
			}
			if st.UsefulBytes[KindPeer] != 0 {
				t.Fatalf("bytes from the bad peer were kept: %+v", st.UsefulBytes)
			}
		})
	}
}

// TestBadManifest checks that a manifest the edge garbles, or signs with a
// key we do not trust, fails Download with a clear error and leaves the
// agent usable.
func TestBadManifest(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 0)
	good := e.addObject("/good.bin", testData(100_000, 1), 16<<10)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	signedBy := func(priv ed25519.PrivateKey, tamper func(m *core.Manifest)) []byte {
		m, _ := core.BuildManifest(bytes.NewReader(good.data), "/bad.bin", `"v"`, "", int64(len(good.data)), 16<<10)
		m.Sign(priv)
		if tamper != nil {
			tamper(m)
		}
		enc, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	cases := []struct {
		name string
		body []byte
		code int
		want error  // errors.Is target, or nil
		text string // substring of the error
	}{
		{"garbage", []byte("<html>not a manifest</html>"), 0, nil, "bad magic"},
		{"truncated", good.enc[:len(good.enc)-10], 0, nil, "manifest"},
		{"unknown key", signedBy(other, nil), 0, core.ErrUnknownKey, "manifest"},
		{"bad root", signedBy(edgeKey(), func(m *core.Manifest) { m.Hashes[0][0] ^= 1 }), 0, core.ErrBadRoot, "manifest"},
		{"bad signature", signedBy(edgeKey(), func(m *core.Manifest) { m.Signature[0] ^= 1 }), 0, core.ErrBadSignature, "manifest"},
		{"edge error", []byte("origin down"), http.StatusBadGateway, nil, "502"},
	}
	sp := newSwarmPeer(t, e, peerOpts{name: "p"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.mu.Lock()
			e.manifest = func(url string) ([]byte, int) {
				if url == "/bad.bin" {
					return tc.body, tc.code
				}
				return nil, 0
			}
			e.mu.Unlock()
			_, err := sp.a.Download(context.Background(), "/bad.bin")
			if err == nil {
				t.Fatal("Download accepted a bad manifest")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), "/bad.bin") {
				t.Fatalf("error %q should name the object and say %q", err, tc.text)
			}
		})
	}
	// The agent still works.
	d, err := sp.a.Download(context.Background(), "/good.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.a.Download(context.Background(), "relative/path"); err == nil {
		t.Fatal("accepted a relative object path")
	}
}

// TestSlowVersusStalledSources: a source whose bytes arrive slowly but
// steadily (its uplink shared by many requesters) is not timed out even
// when a chunk takes several request timeouts; one that stops sending
// mid-chunk, or trickles a byte now and then to hold the chunk, is.
func TestSlowVersusStalledSources(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	const timeoutMs = 300
	cases := []struct {
		name        string
		misbehave   func(w http.ResponseWriter, chunk []byte)
		wantTimeout bool
	}{
		{"slow", func(w http.ResponseWriter, c []byte) {
			// 8 pieces 120 ms apart: ~1 s a chunk, > 3 timeouts, but never
			// a gap of a whole timeout.
			w.Header().Set("Content-Length", strconv.Itoa(len(c)))
			for k := range 8 {
				w.Write(c[k*len(c)/8 : (k+1)*len(c)/8])
				w.(http.Flusher).Flush()
				time.Sleep(120 * time.Millisecond)
			}
		}, false},
		{"stalled", func(w http.ResponseWriter, c []byte) {
			w.Header().Set("Content-Length", strconv.Itoa(len(c)))
			w.Write(c[:len(c)/2])
			w.(http.Flusher).Flush()
			time.Sleep(1500 * time.Millisecond) // the client gives up long before
		}, true},
		{"trickle", func(w http.ResponseWriter, c []byte) {
			// One byte every 100 ms: progress, but the chunk would take
			// hours; the StallFactor cap ends it.
			w.Header().Set("Content-Length", strconv.Itoa(len(c)))
			for k := 0; k < 40; k++ {
				if _, err := w.Write(c[k : k+1]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEdge(t, 2e6) // slow edge: the peer's chunks matter
			o := e.addObject("/v.bin", testData(512<<10, 11), 64<<10)
			fp := newFakePeer(t, o, tc.misbehave)
			e.mu.Lock()
			e.extra = []wire.PeerInfo{fp.info("other", o.m.NumChunks())}
			e.mu.Unlock()
			sp := newSwarmPeer(t, e, peerOpts{name: "me", seed: 5, cfg: func(c *Config) { c.FetchTimeoutMs = timeoutMs }})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d, err := sp.a.Download(ctx, "/v.bin")
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Wait(ctx); err != nil {
				t.Fatalf("download: %v", err)
			}
			got, err := io.ReadAll(d.NewReader(ctx))
			if err != nil || !bytes.Equal(got, o.data) {
				t.Fatalf("object bytes differ (err %v)", err)
			}
			st := d.Stats()
			if fp.hits.Load() == 0 {
				t.Fatal("the other peer was never asked")
			}
			if tc.wantTimeout {
				if st.Timeouts == 0 {
					t.Fatalf("a %s source was never timed out: %+v", tc.name, st)
				}
				return
			}
			if st.Timeouts != 0 {
				t.Fatalf("a slow but steady source was timed out %d times: %+v", st.Timeouts, st)
			}
			if st.UsefulBytes[KindPeer] == 0 {
				t.Fatalf("nothing kept from the slow peer: %+v", st.UsefulBytes)
			}
		})
	}
}

// TestLyingPeerDemoted: a peer that advertises every chunk but never sends
// one is timed out, its chunks go to the edge, and after DemoteAfter
// timeouts in a row it is demoted: not asked again for DemoteFor, reported
// to the edge as unresponsive once. After DemoteFor it gets one request on
// probation, and its next timeout demotes (and reports) it again.
func TestLyingPeerDemoted(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 8e6) // slow: the download outlasts a demotion and a probation
	o := e.addObject("/v.bin", testData(4<<20, 13), 64<<10)
	fp := newFakePeer(t, o, func(w http.ResponseWriter, c []byte) {
		time.Sleep(3 * time.Second) // never answers in time; the client gives up first
	})
	e.mu.Lock()
	e.extra = []wire.PeerInfo{fp.info("liar", o.m.NumChunks())}
	e.mu.Unlock()
	var offset atomic.Int64 // added to the agent's clock
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	sp := newSwarmPeer(t, e, peerOpts{name: "me", seed: 9, cfg: func(c *Config) { c.FetchTimeoutMs = 300 }})
	sp.a.now = now
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := sp.a.Download(ctx, "/v.bin")
	if err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, cond func(Stats) bool) Stats {
		t.Helper()
		for {
			st := d.Stats()
			if cond(st) {
				return st
			}
			if st.Complete || ctx.Err() != nil {
				t.Fatalf("download ended before %s: %+v", what, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	st := waitFor("the liar's demotion", func(st Stats) bool { return st.Demotions == 1 })
	if !slices.Equal(st.Demoted, []string{"liar"}) || st.Timeouts < DemoteAfter {
		t.Fatalf("demoted %v after %d timeouts, want [liar] after ≥ %d", st.Demoted, st.Timeouts, DemoteAfter)
	}
	// Two requests while unmeasured, then one at a time while failing:
	// the third timeout demotes it.
	hits := fp.hits.Load()
	if hits > DemoteAfter {
		t.Fatalf("liar asked %d times before its demotion, want ≤ %d", hits, DemoteAfter)
	}
	time.Sleep(500 * time.Millisecond)
	if got := fp.hits.Load(); got != hits {
		t.Fatalf("demoted liar asked %d more times", got-hits)
	}
	if n := e.reportsOf("liar", wire.ReportUnresponsive); n != 1 {
		t.Fatalf("%d unresponsive reports about the liar, want 1", n)
	}

	// DemoteFor later: probation, one request, demoted again.
	offset.Add(int64(DemoteFor + time.Second))
	waitFor("the second demotion", func(st Stats) bool { return st.Demotions == 2 })
	if got := fp.hits.Load() - hits; got != 1 {
		t.Fatalf("liar asked %d times on probation, want 1", got)
	}
	for deadline := time.Now().Add(5 * time.Second); e.reportsOf("liar", wire.ReportUnresponsive) != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d unresponsive reports about the liar, want 2", e.reportsOf("liar", wire.ReportUnresponsive))
		}
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(d.NewReader(ctx))
	if err != nil || !bytes.Equal(got, o.data) {
		t.Fatalf("object bytes differ (err %v)", err)
	}
	if st := d.Stats(); st.UsefulBytes[KindPeer] != 0 || len(st.Banned) != 0 {
		t.Fatalf("useful peer bytes %d, banned %v: a silent peer gives nothing and is not banned", st.UsefulBytes[KindPeer], st.Banned)
	}
}

// TestUnreachablePeerDroppedAtOnce: a handed-out peer whose connection is
// refused (it is gone) is demoted at the first refusal and reported to the
// edge; a second download of the same agent does not ask it at all.
func TestUnreachablePeerDroppedAtOnce(t *testing.T) {
	t.Cleanup(func() { checkNoLeaks(t) })
	e := newFakeEdge(t, 16e6)
	o1 := e.addObject("/a.bin", testData(1<<20, 14), 64<<10)
	o2 := e.addObject("/b.bin", testData(1<<20, 15), 64<<10)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close() // nothing listens there any more
	have := core.NewBitfield(o1.m.NumChunks())
	for i := range o1.m.NumChunks() {
		have.Set(i)
	}
	e.mu.Lock()
	e.extra = []wire.PeerInfo{{PeerID: "gone", Addr: gone, Have: have.Bytes()}}
	e.mu.Unlock()
	sp := newSwarmPeer(t, e, peerOpts{name: "me", seed: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for k, o := range []*fakeObject{o1, o2} {
		d, err := sp.a.Download(ctx, o.m.URL)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		st := d.Stats()
		var reqs int
		for _, s := range st.Sources {
			if s.ID == "gone" {
				reqs = s.Requests
			}
		}
		switch {
		case k == 0 && (!slices.Equal(st.Demoted, []string{"gone"}) || reqs == 0 || reqs > 2):
			t.Fatalf("first download: demoted %v after %d requests, want [gone] after its first (≤ 2 at once)", st.Demoted, reqs)
		case k == 1 && reqs != 0:
			t.Fatalf("second download asked the demoted peer %d times", reqs)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); e.reportsOf("gone", wire.ReportUnresponsive) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // the report is sent in the background
	}
	if n := e.reportsOf("gone", wire.ReportUnresponsive); n != 1 {
		t.Fatalf("%d unresponsive reports about the gone peer, want 1", n)
	}
}

package cdntest

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/demo"
	"github.com/edgeswarm/edgeswarm/internal/edge"
	"github.com/edgeswarm/edgeswarm/internal/netem"
	"github.com/edgeswarm/edgeswarm/internal/netmap"
	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// offsetClock is the real clock moved by an offset the test sets: the
// managed cache's idea of the local time of day.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// setTimeOfDay moves the clock so that it reads h:m today, local time.
func (c *offsetClock) setTimeOfDay(h, m int) {
	now := time.Now()
	want := time.Date(now.Year(), now.Month(), now.Day(), h, m, 0, 0, time.Local)
	c.off.Store(int64(want.Sub(now)))
}

// TestPrePositioning: an object ordered to a managed cache with an
// off-hours window is not fetched before the window, is fetched inside it,
// and then serves the end-user peers of the cache's location with edge
// bytes ≈ 0 (at most the one request each makes before its first
// hand-out); the edge records the order as carried out and counts
// the bytes as the cache's.
func TestPrePositioning(t *testing.T) {
	const token = "managed-cache-token-for-tests"
	const size, chunk = 6 << 20, 256 << 10
	body := RandomBytes(size, 11)
	_, originURL := Origin(t, map[string][]byte{"/v/show.bin": body})
	key, ring := Key(t)
	nm, err := netmap.Parse([]byte("pids:\n  a: [127.0.1.1/32]\n  b: [127.0.1.2/32]\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := edge.New(edge.Config{Origin: originURL, CacheDir: t.TempDir(), ChunkSize: chunk, SigningKey: key,
		NetworkMap: nm, ManagedToken: token, OrdersPollInterval: 100 * time.Millisecond},
		edge.Deps{Logger: Logger(t), Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	edgeURL := Serve(t, e.Serve, netem.Link{})

	clk := &offsetClock{}
	clk.setTimeOfDay(0, 30)
	cache := StartPeer(t, PeerOpts{Host: "127.0.1.1", Seed: 1, Deps: peer.Deps{Clock: clk.Now},
		Config: peer.Config{Edge: edgeURL, Keys: ring, Managed: true, ManagedToken: token}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); cache.RunOrders(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	ord, err := e.PlaceOrder(wire.Order{URLs: []string{"/v/show.bin"}, Window: "01:00-05:00", PIDs: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	// 00:30: outside the window, the cache polls but fetches nothing.
	waitUntil(t, 10*time.Second, "the cache polls", func() bool { return cache.OrderStats().Polls >= 3 })
	if n := e.Stats().ChunkBytesServed; n != 0 {
		t.Fatalf("the edge sent %d chunk bytes before the window opened", n)
	}
	// 01:30: inside the window.
	clk.setTimeOfDay(1, 30)
	waitUntil(t, 60*time.Second, "the order carried out", func() bool {
		book := e.Orders()
		return len(book) == 1 && len(book[0].DoneBy) == 1
	})
	if done := cache.OrderStats().Done; !slices.Equal(done, []string{ord.ID}) {
		t.Errorf("the cache reports %v done, want [%s]", done, ord.ID)
	}
	sentToCache := e.Stats().ChunkBytesServed
	if sentToCache < size {
		t.Fatalf("the edge sent the cache %d bytes of a %d-byte object", sentToCache, size)
	}

	// End users in a: every byte from the cache (or each other), none from the edge.
	var users []*peer.Agent
	for i := range 4 {
		users = append(users, StartPeer(t, PeerOpts{Host: "127.0.1.1", Config: peer.Config{Edge: edgeURL, Keys: ring}, Link: netem.NewLink(0, 40e6), Seed: uint64(10 + i)}))
	}
	var uwg sync.WaitGroup
	errs := make([]error, len(users))
	dls := make([]*peer.Download, len(users))
	for i, u := range users {
		uwg.Add(1)
		go func() {
			defer uwg.Done()
			d, err := u.Download(context.Background(), "/v/show.bin")
			if err == nil {
				err = d.Wait(context.Background())
			}
			dls[i], errs[i] = d, err
		}()
	}
	uwg.Wait()
	var fromEdge, fromCache int64
	for i, d := range dls {
		if errs[i] != nil {
			t.Fatalf("user %d: %v", i, errs[i])
		}
		st := d.Stats()
		fromEdge += st.Bytes[peer.KindEdge]
		fromCache += st.Bytes[peer.KindCache]
	}
	t.Logf("end users in the cache's location: %d bytes from the edge, %d from the cache; the edge sent %d chunk bytes after pre-positioning",
		fromEdge, fromCache, e.Stats().ChunkBytesServed-sentToCache)
	// ≈ 0: before its first hand-out names the cache, a download has one
	// edge request out (it is canceled then, but its bytes may have left).
	if extra := e.Stats().ChunkBytesServed - sentToCache; fromEdge > int64(len(users))*chunk || extra > int64(len(users))*chunk {
		t.Errorf("end users got %d bytes from the edge, which sent %d; want at most one chunk each (%d)", fromEdge, extra, len(users)*chunk)
	}
	if fromCache == 0 {
		t.Error("no byte from the managed cache")
	}
	for _, u := range users {
		u.Close() // leaving reports the last bytes received
	}
	if u := e.Usage("/v/show.bin").Total; u.CacheBytes != fromCache {
		t.Errorf("the edge counts %d cache bytes, the users received %d", u.CacheBytes, fromCache)
	}
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDemoManagedCaches: the demo's managed caches are pre-positioned
// before the crowd and then carry the crowd's edge load: the edge sends the
// crowd at most one chunk per peer, and with cross_pid deny nothing crosses
// locations.
func TestDemoManagedCaches(t *testing.T) {
	res, err := demo.Run(context.Background(), demo.Config{
		Peers: 6, Size: 4 << 20, ChunkSize: 256 << 10, EdgeUp: 40e6, PeerUp: 20e6, PeerDown: 100e6, Seed: 3, Timeout: 2 * time.Minute,
		PIDs: 2, CrossPID: edge.CrossPIDDeny, Managed: 2, ManagedUp: 100e6, MemoryStore: true,
	}, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("managed: %d bytes from caches, %d from peers, %d from the edge; pre-positioned in %.2fs; edge account %+v",
		res.BytesFromManaged, res.BytesFromPeers, res.BytesFromEdge, res.PrePositionS, res.EdgeUsage)
	switch {
	case !res.SHA256Match:
		t.Error("a peer's bytes differ from the origin's")
	case res.BytesFromManaged == 0:
		t.Error("no byte from the managed caches")
	case res.BytesFromEdge > int64(res.Peers*res.ChunkSize):
		t.Errorf("the crowd got %d bytes from the edge, want at most one chunk per peer (%d)", res.BytesFromEdge, res.Peers*res.ChunkSize)
	case res.CrossPIDBytes != 0 || res.EdgeUsage.CrossPIDBytes != 0:
		t.Errorf("cross_pid deny: %d (agents) / %d (edge) bytes crossed locations", res.CrossPIDBytes, res.EdgeUsage.CrossPIDBytes)
	case res.EdgeUsage.CacheBytes != res.BytesFromManaged:
		t.Errorf("the edge counts %d cache bytes, the peers received %d", res.EdgeUsage.CacheBytes, res.BytesFromManaged)
	}
}

// TestPrePositioningWindowCloses: a transfer still running when its window
// closes is stopped, and resumes in the next window from the chunks held:
// the edge sends the object about once.
func TestPrePositioningWindowCloses(t *testing.T) {
	const token = "managed-cache-token-for-tests"
	const size, chunk = 4 << 20, 128 << 10
	_, originURL := Origin(t, map[string][]byte{"/v/late.bin": RandomBytes(size, 12)})
	key, ring := Key(t)
	e, err := edge.New(edge.Config{Origin: originURL, CacheDir: t.TempDir(), ChunkSize: chunk, SigningKey: key,
		ManagedToken: token, OrdersPollInterval: 100 * time.Millisecond},
		edge.Deps{Logger: Logger(t), Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	edgeURL := Serve(t, e.Serve, netem.Link{})
	clk := &offsetClock{}
	// 04:59:59 plus whatever the setup takes: the window closes about a
	// second into a transfer that needs four (8 Mbit/s for 4 MiB).
	now := time.Now()
	clk.off.Store(int64(time.Date(now.Year(), now.Month(), now.Day(), 4, 59, 59, 0, time.Local).Sub(now)))
	cache := StartPeer(t, PeerOpts{Seed: 1, Deps: peer.Deps{Clock: clk.Now}, Link: netem.NewLink(0, 8e6),
		Config: peer.Config{Edge: edgeURL, Keys: ring, Managed: true, ManagedToken: token}})
	if _, err := e.PlaceOrder(wire.Order{URLs: []string{"/v/late.bin"}, Window: "01:00-05:00"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); cache.RunOrders(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	waitUntil(t, 20*time.Second, "the transfer stopped at 05:00", func() bool { return cache.OrderStats().Stopped == 1 })
	stoppedAt := e.Stats().ChunkBytesServed
	time.Sleep(500 * time.Millisecond) // outside the window: nothing more
	if n := e.Stats().ChunkBytesServed; n > stoppedAt+2*chunk || n >= size {
		t.Fatalf("after the window closed the edge sent %d more bytes (%d of %d in all)", n-stoppedAt, n, size)
	}
	clk.setTimeOfDay(1, 0) // the next night
	waitUntil(t, 30*time.Second, "the order carried out", func() bool { return len(cache.OrderStats().Done) == 1 })
	total := e.Stats().ChunkBytesServed
	t.Logf("stopped at 05:00 with %d of %d bytes sent; done after %d", stoppedAt, size, total)
	if total > size+8*chunk {
		t.Errorf("the edge sent %d bytes for a %d-byte object: the second window did not resume from the chunks held", total, size)
	}
}

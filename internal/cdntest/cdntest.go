// Package cdntest starts real edgeswarm roles in process on loopback for
// end-to-end tests: an origin over a directory, edges, and peer agents.
// Everything it starts is stopped by t.Cleanup.
package cdntest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/edge"
	"github.com/edgeswarm/edgeswarm/internal/netem"
	"github.com/edgeswarm/edgeswarm/internal/origin"
	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// Logger returns a logger that writes to the test log at Warn and above.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// Origin serves files (path → content) from a temporary directory.
func Origin(t testing.TB, files map[string][]byte) (*origin.Server, string) {
	t.Helper()
	dir := t.TempDir()
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := origin.New(origin.Config{Dir: dir}, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	url := Serve(t, s.Serve, netem.Link{})
	t.Cleanup(func() { s.Close() })
	return s, url
}

// Key returns a fresh edge-tier signing key and the ring that trusts it.
func Key(t testing.TB) (ed25519.PrivateKey, core.KeyRing) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, core.NewKeyRing(pub)
}

// Edge starts an edge in front of originURL.
func Edge(t testing.TB, originURL string, key ed25519.PrivateKey, chunkSize int, link netem.Link) (*edge.Server, string) {
	t.Helper()
	return EdgeWith(t, edge.Config{Origin: originURL, ChunkSize: chunkSize, SigningKey: key}, link, nil)
}

// EdgeWith starts an edge with cfg (CacheDir "" means a temporary
// directory) on a listener shaped by link; pulling plug (if not nil) kills
// it as the network sees it.
func EdgeWith(t testing.TB, cfg edge.Config, link netem.Link, plug *netem.Plug) (*edge.Server, string) {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	e, err := edge.New(cfg, edge.Deps{Logger: Logger(t), Rand: mrand.New(mrand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	url := ServeOn(t, e.Serve, link, plug)
	t.Cleanup(func() { e.Close() })
	return e, url
}

// Peer starts a peer agent registered with edgeURL, serving chunks on a
// loopback listener shaped by link; wrap, if not nil, wraps its handler.
func Peer(t testing.TB, edgeURL string, ring core.KeyRing, link netem.Link, seed uint64, wrap func(http.Handler) http.Handler) *peer.Agent {
	t.Helper()
	return PeerWith(t, peer.Config{Edge: edgeURL, Keys: ring}, link, seed, wrap)
}

// PeerWith is Peer with a full config; Advertise and Name are filled in.
func PeerWith(t testing.TB, cfg peer.Config, link netem.Link, seed uint64, wrap func(http.Handler) http.Handler) *peer.Agent {
	t.Helper()
	return StartPeer(t, PeerOpts{Config: cfg, Link: link, Seed: seed, Wrap: wrap})
}

// PeerOpts describes a peer agent for StartPeer.
type PeerOpts struct {
	// Config needs Edge and Keys; Advertise and Name are filled in.
	Config peer.Config
	// Link shapes the agent's connections, both ways.
	Link netem.Link
	// Plug, if not nil, is the agent's attachment to the network:
	// pulling it kills the agent as its peers and edge see it.
	Plug *netem.Plug
	Seed uint64
	// Wrap, if not nil, wraps the agent's chunk handler.
	Wrap func(http.Handler) http.Handler
	// Store nil means a fresh disk store in a temporary directory; a
	// given store is closed at the end of the test.
	Store chunkstore.Store
	// Host is the loopback address to serve on ("" means 127.0.0.1); give
	// each network location its own, such as 127.0.1.2.
	Host string
	// Deps are the agent's; Store, HTTP, Logger and Rand are filled in.
	Deps peer.Deps
}

// StartPeer starts a peer agent serving chunks on a loopback listener.
func StartPeer(t testing.TB, o PeerOpts) *peer.Agent {
	t.Helper()
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	dial := o.Link.DialContext(nil)
	if o.Plug != nil {
		dial = o.Link.DialContext(o.Plug.DialContext(nil))
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 16}}
	store := o.Store
	if store == nil {
		if store, err = chunkstore.NewDisk(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	cfg := o.Config
	cfg.Advertise, cfg.Name = ln.Addr().String(), fmt.Sprintf("peer-%d", o.Seed)
	deps := o.Deps
	deps.Store, deps.HTTP, deps.Logger, deps.Rand = store, hc, Logger(t), mrand.New(mrand.NewPCG(o.Seed, 7))
	a, err := peer.New(cfg, deps)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	h := a.Handler()
	if o.Wrap != nil {
		h = o.Wrap(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	var sln net.Listener = o.Link.Listener(ln)
	if o.Plug != nil {
		sln = o.Plug.Listener(sln)
	}
	go srv.Serve(sln)
	t.Cleanup(func() {
		srv.Close()
		a.Close()
		hc.CloseIdleConnections()
		store.Close()
	})
	return a
}

// SeededStore returns a memory store that holds every chunk of objectURL
// (content data) as edgeURL's manifest cuts it: an agent started on it
// completes its download at once and seeds.
func SeededStore(t testing.TB, edgeURL string, ring core.KeyRing, objectURL string, data []byte) chunkstore.Store {
	t.Helper()
	ec := &wire.EdgeClient{Base: edgeURL, HTTP: &http.Client{Timeout: time.Minute}}
	m, err := ec.Manifest(context.Background(), objectURL, ring)
	if err != nil {
		t.Fatal(err)
	}
	s := chunkstore.NewMemory()
	obj, err := s.Open(m)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	for i := range m.NumChunks() {
		off := m.ChunkOffset(i)
		if err := obj.WriteChunk(i, data[off:off+int64(m.ChunkLen(i))]); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Serve runs serveFn on a fresh loopback listener shaped by link and
// returns its base URL.
func Serve(t testing.TB, serveFn func(net.Listener) error, link netem.Link) string {
	t.Helper()
	return ServeOn(t, serveFn, link, nil)
}

// ServeOn is Serve on a listener that pulling plug (if not nil) closes,
// with every conn it accepted.
func ServeOn(t testing.TB, serveFn func(net.Listener) error, link netem.Link, plug *netem.Plug) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sln net.Listener = link.Listener(ln)
	if plug != nil {
		sln = plug.Listener(sln)
	}
	go serveFn(sln)
	return "http://" + ln.Addr().String()
}

// RandomBytes returns n deterministic pseudo-random bytes.
func RandomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

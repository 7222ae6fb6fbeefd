// Package cdntest starts real edgeswarm roles in process on loopback for
// end-to-end tests: an origin over a directory, edges, and peer agents.
// Everything it starts is stopped by t.Cleanup.
package cdntest

import (
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
	return EdgeWith(t, edge.Config{Origin: originURL, ChunkSize: chunkSize, SigningKey: key}, link)
}

// EdgeWith starts an edge with a full config; an empty CacheDir is a
// fresh temporary directory.
func EdgeWith(t testing.TB, cfg edge.Config, link netem.Link) (*edge.Server, string) {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	e, err := edge.New(cfg, edge.Deps{Logger: Logger(t), Rand: mrand.New(mrand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	url := Serve(t, e.Serve, link)
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
	return PeerOn(t, "127.0.0.1", cfg, peer.Deps{}, link, seed, wrap)
}

// PeerOn is PeerWith serving on a loopback address of its own (host, such
// as 127.0.1.2, for a network location) with deps (Store, HTTP, Logger and
// Rand are filled in).
func PeerOn(t testing.TB, host string, cfg peer.Config, deps peer.Deps, link netem.Link, seed uint64, wrap func(http.Handler) http.Handler) *peer.Agent {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: link.DialContext(nil), MaxIdleConnsPerHost: 16}}
	store, err := chunkstore.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Advertise, cfg.Name = ln.Addr().String(), fmt.Sprintf("peer-%d", seed)
	deps.Store, deps.HTTP, deps.Logger, deps.Rand = store, hc, Logger(t), mrand.New(mrand.NewPCG(seed, 7))
	a, err := peer.New(cfg, deps)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	h := a.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(link.Listener(ln))
	t.Cleanup(func() {
		srv.Close()
		a.Close()
		hc.CloseIdleConnections()
		store.Close()
	})
	return a
}

// Serve runs serveFn on a fresh loopback listener shaped by link and
// returns its base URL.
func Serve(t testing.TB, serveFn func(net.Listener) error, link netem.Link) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go serveFn(link.Listener(ln))
	return "http://" + ln.Addr().String()
}

// RandomBytes returns n deterministic pseudo-random bytes.
func RandomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

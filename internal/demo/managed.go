package demo

// Managed caches (Config.Managed): caches in the peers' network locations
// that the edges order to fetch the object before the crowd arrives
// (pre-positioning), then serve the peers of their location first.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/edge"
	"github.com/edgeswarm/edgeswarm/internal/netem"
	"github.com/edgeswarm/edgeswarm/internal/peer"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// managedToken is a fresh managed-cache token for the demo's edges.
func managedToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startManaged starts cfg.Managed managed caches, cache j in location
// j mod PIDs registered with edge j mod Edges, orders each edge's caches to
// fetch objectURL and waits until they hold it. It returns how long that
// took and each cache's network location by peer ID; closers gets what to
// close at the end.
func startManaged(ctx context.Context, cfg Config, dir, token, objectURL string, edges []*edge.Server, edgeURLs []string,
	ring core.KeyRing, log *slog.Logger, closers *[]func() error) (time.Duration, map[string]int, error) {
	pids := map[string]int{}
	if cfg.Managed == 0 {
		return 0, pids, nil
	}
	start := time.Now()
	caches := make([]*peer.Agent, cfg.Managed)
	for j := range caches {
		pid := pidOf(j, cfg.PIDs)
		link := netem.NewLink(cfg.ManagedUp, cfg.ManagedUp)
		hc := &http.Client{Transport: &http.Transport{DialContext: link.DialContext(nil), MaxIdleConnsPerHost: 16, DisableCompression: true}}
		var store chunkstore.Store
		var err error
		if cfg.MemoryStore {
			store = chunkstore.NewMemory()
		} else if store, err = chunkstore.NewDisk(filepath.Join(dir, fmt.Sprintf("cache-%d", j))); err != nil {
			return 0, nil, err
		}
		ln, err := net.Listen("tcp", pidAddr(pid)+":0")
		if err != nil {
			store.Close()
			return 0, nil, err
		}
		a, err := peer.New(peer.Config{
			Edge: edgeURLs[j%cfg.Edges], Advertise: ln.Addr().String(), Name: fmt.Sprintf("cache-%d", j), Keys: ring,
			UploadBps: int64(cfg.ManagedUp / 8), MaxUploads: 64, Managed: true, ManagedToken: token,
		}, peer.Deps{Store: store, HTTP: hc, Logger: log.With("role", "managed-cache", "node", j),
			Rand: mrand.New(mrand.NewPCG(cfg.Seed, 5000+uint64(j)))})
		if err != nil {
			ln.Close()
			store.Close()
			return 0, nil, fmt.Errorf("managed cache %d: %w", j, err)
		}
		srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(link.Listener(ln))
		octx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); a.RunOrders(octx) }()
		*closers = append(*closers, func() error {
			cancel()
			<-done
			srv.Close()
			a.Close()
			hc.CloseIdleConnections()
			return store.Close()
		})
		caches[j] = a
	}
	for i, e := range edges {
		if i >= cfg.Managed {
			break // no cache registers with this edge
		}
		if _, err := e.PlaceOrder(wire.Order{URLs: []string{objectURL}}); err != nil {
			return 0, nil, fmt.Errorf("edge %d: pre-positioning order: %w", i, err)
		}
	}
	for j, a := range caches {
		for len(a.OrderStats().Done) == 0 {
			select {
			case <-ctx.Done():
				return 0, nil, fmt.Errorf("managed cache %d: pre-positioning: %w", j, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	for j, a := range caches {
		pids[a.PeerID()] = pidOf(j, cfg.PIDs)
	}
	return time.Since(start), pids, nil
}

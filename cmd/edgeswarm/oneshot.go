package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/peer"
)

// oneShotFlags are the flags of the temporary peer agent that `get` and
// `play` run for one object.
type oneShotFlags struct {
	listen, advertise, dataDir string
	edges, trustKeys           []string
	upLimit, downLimit         string
}

// add registers the flags; what names the command's work in their help
// ("download", "playback").
func (f *oneShotFlags) add(fs *pflag.FlagSet, what string) {
	fs.StringArrayVar(&f.edges, "edge", nil, "edge base URL (default: the URL's scheme and host); repeat to list fallback edges (used when the edge fails, also mid-"+what+")")
	fs.StringVar(&f.listen, "listen", "", "also serve chunks to other peers on this address during the "+what)
	fs.StringVar(&f.advertise, "advertise", "", "with --listen: host:port announced to the edge (default: the listen address)")
	fs.StringVar(&f.dataDir, "data-dir", "", "where chunks are kept; an interrupted run again with the same directory resumes (default: a temporary directory)")
	fs.StringArrayVar(&f.trustKeys, "trust-key", nil, "edge-tier public key (hex or file); repeatable (default: fetch from the edge)")
	fs.StringVar(&f.upLimit, "upload-limit", "0", "cap on upload to other peers, e.g. 20Mbit (0 = none)")
	fs.StringVar(&f.downLimit, "download-limit", "0", "cap on download, e.g. 100Mbit (0 = none)")
}

// oneShot is a temporary peer agent for one object.
type oneShot struct {
	agent   *peer.Agent
	object  string // the object's path (and query) on the edge
	serving bool   // it serves chunks on --listen
	closers []func()
}

// startOneShot parses rawURL (http://EDGE/path) and starts an agent with
// cfg completed from the flags: edges, keys, upload cap, advertised
// address; its store is --data-dir (a temporary directory otherwise), and
// with --listen it serves chunks there. Close undoes everything.
func startOneShot(rawURL string, f oneShotFlags, cfg peer.Config, log *slog.Logger) (o *oneShot, err error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Path == "" || !strings.HasPrefix(u.Path, "/") {
		return nil, fmt.Errorf("URL %q: want http://edge/path/to/object", rawURL)
	}
	edges := f.edges
	if len(edges) == 0 {
		if u.Host == "" {
			return nil, fmt.Errorf("URL %q has no host: give --edge", rawURL)
		}
		edges = []string{u.Scheme + "://" + u.Host}
	}
	o = &oneShot{object: u.EscapedPath()}
	if u.RawQuery != "" {
		o.object += "?" + u.RawQuery
	}
	defer func() {
		if err != nil {
			o.Close()
		}
	}()
	if cfg.Keys, err = trustRing(f.trustKeys); err != nil {
		return nil, err
	}
	upBps, link, err := peerLink(f.upLimit, f.downLimit)
	if err != nil {
		return nil, err
	}
	dir := f.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "edgeswarm-peer-"); err != nil {
			return nil, err
		}
		o.closers = append(o.closers, func() { os.RemoveAll(dir) })
	}
	store, err := chunkstore.NewDisk(dir)
	if err != nil {
		return nil, err
	}
	o.closers = append(o.closers, func() { store.Close() })
	var ln net.Listener
	if f.listen != "" {
		if ln, err = net.Listen("tcp", f.listen); err != nil {
			return nil, err
		}
		cfg.Advertise = ln.Addr().String()
		if f.advertise != "" {
			cfg.Advertise = f.advertise
		}
	}
	cfg.Edge, cfg.Fallbacks, cfg.UploadLimitBps = edges[0], edges[1:], upBps
	if o.agent, err = peer.New(cfg, peer.Deps{Store: store, HTTP: peerHTTPClient(link), Logger: log}); err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, err
	}
	o.closers = append(o.closers, func() { o.agent.Close() })
	if ln != nil {
		o.serving = true
		go o.agent.Serve(link.Listener(ln))
	}
	return o, nil
}

// Close stops the agent (and its chunk server), closes the store and
// removes a temporary directory.
func (o *oneShot) Close() {
	for i := len(o.closers) - 1; i >= 0; i-- {
		o.closers[i]()
	}
	o.closers = nil
}

package main

import (
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeswarm/edgeswarm/internal/edge"
	"github.com/edgeswarm/edgeswarm/internal/keyfile"
	"github.com/edgeswarm/edgeswarm/internal/netmap"
	"github.com/edgeswarm/edgeswarm/internal/swarm"
	"github.com/edgeswarm/edgeswarm/internal/units"
)

func newEdgeCmd(g *globalFlags) *cobra.Command {
	var (
		cfg                  edge.Config
		listen, size, keyArg string
		tlsCert, tlsKey      string
		cfgFile              string
		adminListen          string
		adminTokenFile       string
		managedTokenFile     string
		netMapFile           string
		chunk, hot           string
		noLane               bool
	)
	cmd := &cobra.Command{
		Use:   "edge (--origin URL --cache-dir DIR | --config FILE) [--listen ADDR] [--cache-size BYTES]",
		Short: "Run an edge: caching reverse proxy, manifest signer and swarm coordinator",
		Long: "edge is a caching reverse proxy in front of --origin that coalesces concurrent misses\n" +
			"into one origin fetch, signs a manifest per object version, serves chunks and\n" +
			"coordinates the swarm of peers registered with it (register, announce, hand-out).\n" +
			"The manifest-signing key is read from --key-file (created if absent); its public\n" +
			"half is logged at start so peers can pin it with --trust-key.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			changed := cmd.Flags().Changed
			if cfgFile != "" {
				fc, err := readEdgeConfig(cfgFile)
				if err != nil {
					return err
				}
				cfg = overlayFlags(fc.Config(), cfg, changed)
				for _, v := range []struct {
					flag string
					dst  *string
					val  string
				}{{"listen", &listen, fc.Listen}, {"tls-cert", &tlsCert, fc.TLSCert}, {"tls-key", &tlsKey, fc.TLSKey}, {"key-file", &keyArg, fc.KeyFile},
					{"admin-listen", &adminListen, fc.AdminListen}, {"admin-token-file", &adminTokenFile, fc.AdminTokenFile},
					{"network-map", &netMapFile, fc.NetworkMap}, {"managed-token-file", &managedTokenFile, fc.ManagedTokenFile}} {
					if !changed(v.flag) && v.val != "" {
						*v.dst = v.val
					}
				}
			} else if cfg.Origin == "" || cfg.CacheDir == "" {
				return errors.New("give --origin and --cache-dir, or --config FILE")
			}
			if cfgFile == "" || changed("cache-size") {
				if cfg.CacheSize, err = units.ParseBytes(size); err != nil {
					return fmt.Errorf("--cache-size: %w", err)
				}
			}
			if cfgFile == "" || changed("no-fast-lane") {
				cfg.DisableFastLane = noLane
			}
			if cfgFile == "" || changed("hot-cache-size") {
				if cfg.HotCacheSize, err = units.ParseBytes(hot); err != nil {
					return fmt.Errorf("--hot-cache-size: %w", err)
				}
				if cfg.HotCacheSize == 0 {
					cfg.HotCacheSize = -1 // off
				}
			}
			if chunk != "" && chunk != "0" && (cfgFile == "" || changed("chunk-size")) {
				cs, err := units.ParseBytes(chunk)
				if err != nil {
					return fmt.Errorf("--chunk-size: %w", err)
				}
				cfg.ChunkSize = int(cs)
			}
			if keyArg == "" {
				keyArg = filepath.Join(cfg.CacheDir, "edge.key")
			}
			if cfg.SigningKey, err = keyfile.LoadOrCreate(keyArg); err != nil {
				return err
			}
			if adminListen != "" {
				if cfg.AdminToken, err = adminToken(adminTokenFile); err != nil {
					return err
				}
			}
			if cfg.ManagedToken, err = managedToken(managedTokenFile); err != nil {
				return err
			}
			if netMapFile != "" {
				if cfg.NetworkMap, err = readNetworkMap(netMapFile); err != nil {
					return err
				}
				log.Info("network map loaded", "file", netMapFile, "pids", len(cfg.NetworkMap.PIDs()), "prefixes", cfg.NetworkMap.Prefixes())
			}
			s, err := edge.New(cfg, edge.Deps{Logger: log})
			if err != nil {
				return err
			}
			if adminListen != "" {
				aln, err := net.Listen("tcp", adminListen)
				if err != nil {
					s.Close()
					return fmt.Errorf("--admin-listen: %w", err)
				}
				log.Info("edge admin (purge API) serving", "addr", aln.Addr().String())
				go s.ServeAdmin(aln)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				s.Close()
				return err
			}
			if tlsCert != "" || tlsKey != "" {
				cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					s.Close()
					ln.Close()
					return fmt.Errorf("--tls-cert/--tls-key: %w", err)
				}
				ln = tls.NewListener(ln, &tls.Config{
					Certificates: []tls.Certificate{cert},
					NextProtos:   []string{"h2", "http/1.1"},
					MinVersion:   tls.VersionTLS12,
				})
			}
			pub := cfg.SigningKey.Public().(ed25519.PublicKey)
			log.Info("edge serving", "addr", ln.Addr().String(), "origin", cfg.Origin, "properties", len(cfg.Properties), "cache_dir", cfg.CacheDir,
				"public_key", hex.EncodeToString(pub))
			ctx, stop := signalContext()
			defer stop()
			return serveUntilDone(ctx, ln, s.Serve, s.Close)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Origin, "origin", "", "origin base URL, e.g. http://127.0.0.1:9000: one origin for every host (or --config)")
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on (HTTP/1.1 and cleartext HTTP/2 with prior knowledge; with --tls-cert, HTTPS with HTTP/2)")
	f.StringVar(&tlsCert, "tls-cert", "", "PEM certificate chain: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN)")
	f.StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.CacheDir, "cache-dir", "", "cache directory (required, here or in --config)")
	f.StringVar(&size, "cache-size", "10GiB", "disk cache budget, e.g. 512MiB, 10GiB")
	f.BoolVar(&noLane, "no-fast-lane", false, "serve every request through net/http instead of the HTTP/1.1 fast lane for plain GET/HEAD content requests")
	f.StringVar(&hot, "hot-cache-size", "64MiB", "memory for verified copies of small objects (≤ 256KiB) served without reading the disk; 0 turns it off")
	f.StringVar(&chunk, "chunk-size", "0", "manifest chunk size, a power of two such as 256KiB; 0 picks one per object")
	f.DurationVar(&cfg.DefaultTTL, "default-ttl", time.Minute, "freshness when the origin sends no Cache-Control, Expires or Last-Modified")
	f.DurationVar(&cfg.LockTimeout, "lock-timeout", 10*time.Second, "how long requests collapsed onto an origin fetch wait before one starts another (at most 3 per burst)")
	f.DurationVar(&cfg.OriginIdleTimeout, "origin-idle-timeout", 30*time.Second, "give up an origin response whose body sends nothing for this long")
	f.DurationVar(&cfg.StaleIfError, "stale-if-error", time.Hour, "serve a stale copy this long past its freshness when the origin fails and the response sets no stale-if-error; -1ns never")
	f.DurationVar(&cfg.MaxStaleIfError, "max-stale-if-error", 24*time.Hour, "cap on the origin's stale-if-error")
	f.DurationVar(&cfg.MaxStaleWhileRevalidate, "max-stale-while-revalidate", time.Hour, "cap on the origin's stale-while-revalidate")
	f.DurationVar(&cfg.ClientSendTimeout, "client-send-timeout", time.Minute, "close a client connection whose writes make no progress for this long")
	f.Int64Var(&cfg.MaxRequestBody, "max-request-body", 1<<30, "largest request body passed to the origin (POST, PUT, …), bytes; larger get 413")
	f.IntVar(&cfg.Swarm.AnnounceBudget, "announce-budget", swarm.DefaultAnnounceBudget, "announces per second one object's swarm may cost: peers are told to announce every members/budget seconds when that exceeds 500ms (at most the peer TTL / 2); -1 means every 500ms whatever the swarm's size")
	f.DurationVar(&cfg.TicketTTL, "ticket-ttl", 10*time.Minute, "lifetime of the tickets peers show each other (renewed at half-life in announces); a revoked peer's last ticket is refused by peers told of the revocation, and lapses at most this long after it")
	f.IntVar(&cfg.MaxChunkUploads, "max-chunk-uploads", 64, "chunk uploads served at once; past it peers get 503 and ask again shortly")
	f.StringVar(&keyArg, "key-file", "", "ed25519 manifest-signing key file (default CACHE-DIR/edge.key; created if absent)")
	f.StringVar(&adminListen, "admin-listen", "", "address of the admin listener (purge API, peer revocation); keep it private")
	f.StringVar(&netMapFile, "network-map", "", "network map and cost map (YAML pids/costs, or an ALTO server's JSON): peers are handed peers in their own network location first, then by cost")
	f.StringVar(&cfg.CrossPID, "cross-pid", "allow", "with --origin: whether peers may be handed peers in other network locations (allow), only their own (deny), or others only if managed caches (managed-only)")
	f.StringVar(&managedTokenFile, "managed-token-file", "", "file holding the token managed caches (peer --managed) register with; default: $EDGESWARM_MANAGED_TOKEN; none refuses managed caches")
	f.StringVar(&adminTokenFile, "admin-token-file", "", "file holding the admin token (Authorization: Bearer TOKEN); default: $EDGESWARM_ADMIN_TOKEN")
	f.StringVar(&cfgFile, "config", "", "YAML configuration file (properties: hostnames → origin and cache policy; see docs/OPERATIONS.md); flags given explicitly override it")
	return cmd
}

// readEdgeConfig reads and checks an edge configuration file.
func readEdgeConfig(path string) (*edge.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, edge.MaxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fc, err := edge.ParseConfigFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fc, nil
}

// overlayFlags returns file with the settings of the flags given
// explicitly (changed) taken from flags instead.
func overlayFlags(file, flags edge.Config, changed func(string) bool) edge.Config {
	for name, apply := range map[string]func(){
		"origin":                     func() { file.Origin, file.Properties = flags.Origin, nil },
		"cache-dir":                  func() { file.CacheDir = flags.CacheDir },
		"default-ttl":                func() { file.DefaultTTL = flags.DefaultTTL },
		"lock-timeout":               func() { file.LockTimeout = flags.LockTimeout },
		"origin-idle-timeout":        func() { file.OriginIdleTimeout = flags.OriginIdleTimeout },
		"stale-if-error":             func() { file.StaleIfError = flags.StaleIfError },
		"max-stale-if-error":         func() { file.MaxStaleIfError = flags.MaxStaleIfError },
		"max-stale-while-revalidate": func() { file.MaxStaleWhileRevalidate = flags.MaxStaleWhileRevalidate },
		"max-chunk-uploads":          func() { file.MaxChunkUploads = flags.MaxChunkUploads },
		"announce-budget":            func() { file.Swarm.AnnounceBudget = flags.Swarm.AnnounceBudget },
		"client-send-timeout":        func() { file.ClientSendTimeout = flags.ClientSendTimeout },
		"max-request-body":           func() { file.MaxRequestBody = flags.MaxRequestBody },
		"cross-pid":                  func() { file.CrossPID = flags.CrossPID },
		"ticket-ttl":                 func() { file.TicketTTL = flags.TicketTTL },
	} {
		if changed(name) {
			apply()
		}
	}
	return file
}

// readNetworkMap loads a network and cost map (internal/netmap: the
// project's YAML or an ALTO server's JSON).
func readNetworkMap(path string) (*netmap.Map, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--network-map: %w", err)
	}
	m, err := netmap.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("--network-map %s: %w", path, err)
	}
	return m, nil
}

// managedToken reads the managed-cache token from path, or from
// $EDGESWARM_MANAGED_TOKEN; "" (no managed caches) if neither is set.
func managedToken(path string) (string, error) {
	tok := os.Getenv("EDGESWARM_MANAGED_TOKEN")
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("--managed-token-file: %w", err)
		}
		if tok = strings.TrimSpace(string(b)); tok == "" {
			return "", fmt.Errorf("--managed-token-file %s is empty", path)
		}
	}
	if tok != "" && len(tok) < 16 {
		return "", errors.New("the managed-cache token must be at least 16 characters")
	}
	return tok, nil
}

// adminToken reads the purge API's token from path, or from
// $EDGESWARM_ADMIN_TOKEN when path is empty; it must not be empty.
func adminToken(path string) (string, error) {
	tok := os.Getenv("EDGESWARM_ADMIN_TOKEN")
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("--admin-token-file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if len(tok) < 16 {
		return "", errors.New("--admin-listen needs a token of at least 16 characters: --admin-token-file FILE or $EDGESWARM_ADMIN_TOKEN")
	}
	return tok, nil
}

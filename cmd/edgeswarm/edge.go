package main

import (
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgeswarm/edgeswarm/internal/edge"
	"github.com/edgeswarm/edgeswarm/internal/units"
)

func newEdgeCmd(g *globalFlags) *cobra.Command {
	var (
		cfg                  edge.Config
		listen, size, keyArg string
		tlsCert, tlsKey      string
		chunk                string
	)
	cmd := &cobra.Command{
		Use:   "edge --origin URL --listen ADDR --cache-dir DIR [--cache-size BYTES]",
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
			if cfg.CacheSize, err = units.ParseBytes(size); err != nil {
				return fmt.Errorf("--cache-size: %w", err)
			}
			if chunk != "" && chunk != "0" {
				cs, err := units.ParseBytes(chunk)
				if err != nil {
					return fmt.Errorf("--chunk-size: %w", err)
				}
				cfg.ChunkSize = int(cs)
			}
			if keyArg == "" {
				keyArg = filepath.Join(cfg.CacheDir, "edge.key")
			}
			if cfg.SigningKey, err = edge.LoadOrCreateKey(keyArg); err != nil {
				return err
			}
			s, err := edge.New(cfg, edge.Deps{Logger: log})
			if err != nil {
				return err
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
			log.Info("edge serving", "addr", ln.Addr().String(), "origin", cfg.Origin, "cache_dir", cfg.CacheDir,
				"public_key", hex.EncodeToString(pub))
			ctx, stop := signalContext()
			defer stop()
			return serveUntilDone(ctx, ln, s.Serve, s.Close)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Origin, "origin", "", "origin base URL, e.g. http://127.0.0.1:9000 (required)")
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on (HTTP/1.1 and cleartext HTTP/2 with prior knowledge; with --tls-cert, HTTPS with HTTP/2)")
	f.StringVar(&tlsCert, "tls-cert", "", "PEM certificate chain: serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN)")
	f.StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	f.StringVar(&cfg.CacheDir, "cache-dir", "", "cache directory (required)")
	f.StringVar(&size, "cache-size", "10GiB", "disk cache budget, e.g. 512MiB, 10GiB")
	f.StringVar(&chunk, "chunk-size", "0", "manifest chunk size, a power of two such as 256KiB; 0 picks one per object")
	f.DurationVar(&cfg.DefaultTTL, "default-ttl", time.Minute, "freshness when the origin sends no Cache-Control, Expires or Last-Modified")
	f.DurationVar(&cfg.LockTimeout, "lock-timeout", 10*time.Second, "how long requests collapsed onto an origin fetch wait before one starts another (at most 3 per burst)")
	f.DurationVar(&cfg.OriginIdleTimeout, "origin-idle-timeout", 30*time.Second, "give up an origin response whose body sends nothing for this long")
	f.DurationVar(&cfg.StaleIfError, "stale-if-error", time.Hour, "serve a stale copy this long past its freshness when the origin fails and the response sets no stale-if-error; -1ns never")
	f.DurationVar(&cfg.MaxStaleIfError, "max-stale-if-error", 24*time.Hour, "cap on the origin's stale-if-error")
	f.DurationVar(&cfg.MaxStaleWhileRevalidate, "max-stale-while-revalidate", time.Hour, "cap on the origin's stale-while-revalidate")
	f.IntVar(&cfg.MaxChunkUploads, "max-chunk-uploads", 64, "chunk uploads served at once; past it peers get 503 and ask again shortly")
	f.StringVar(&keyArg, "key-file", "", "ed25519 manifest-signing key file (default CACHE-DIR/edge.key; created if absent)")
	cmd.MarkFlagRequired("origin")
	cmd.MarkFlagRequired("cache-dir")
	return cmd
}

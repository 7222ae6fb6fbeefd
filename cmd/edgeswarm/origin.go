package main

import (
	"net"

	"github.com/spf13/cobra"

	"github.com/edgeswarm/edgeswarm/internal/origin"
)

func newOriginCmd(g *globalFlags) *cobra.Command {
	var cfg origin.Config
	var listen string
	cmd := &cobra.Command{
		Use:   "origin --dir DIR --listen ADDR",
		Short: "Serve a directory as a static HTTP origin (ETag, Last-Modified, Range)",
		Long: "origin serves the files under --dir over HTTP with strong ETags, Last-Modified,\n" +
			"Range and a configurable Cache-Control. It exists for demos, tests and benchmarks;\n" +
			"in production an edge points at any HTTP origin.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			s, err := origin.New(cfg, log)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			log.Info("origin serving", "dir", cfg.Dir, "addr", ln.Addr().String())
			ctx, stop := signalContext()
			defer stop()
			return serveUntilDone(ctx, ln, s.Serve, s.Close)
		},
	}
	cmd.Flags().StringVar(&cfg.Dir, "dir", "", "directory to serve (required)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9000", "address to listen on")
	cmd.Flags().StringVar(&cfg.CacheControl, "cache-control", "public, max-age=3600", "Cache-Control header sent with every response")
	cmd.MarkFlagRequired("dir")
	return cmd
}

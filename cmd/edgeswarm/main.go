// Command edgeswarm is the one binary of the edgeswarm peer-assisted CDN:
// each role is a subcommand. Subcommands only parse flags, build a Config,
// call the role's New and serve.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "edgeswarm:", err)
		os.Exit(1)
	}
}

type globalFlags struct {
	logLevel  string
	logFormat string
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "edgeswarm",
		Short:         "A peer-assisted content delivery network",
		Long:          "edgeswarm is a CDN whose edges coordinate swarms of peers: large files and video are\ndownloaded in parallel from the edge and nearby peers, verified chunk by chunk against\na manifest the edge signs.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newOriginCmd(g), newEdgeCmd(g), newPeerCmd(g), newGetCmd(g), newPlayCmd(g), newDemoCmd(g), newSimCmd(g))
	return root
}

func (g *globalFlags) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(g.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", g.logFormat)
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// serveUntilDone runs serve on ln until ctx ends or serve fails, then
// calls closeFn.
func serveUntilDone(ctx context.Context, ln net.Listener, serve func(net.Listener) error, closeFn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- serve(ln) }()
	select {
	case <-ctx.Done():
		closeFn()
		<-errc
		return nil
	case err := <-errc:
		closeFn()
		if err == nil {
			return errors.New("server stopped")
		}
		return err
	}
}

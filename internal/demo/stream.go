package demo

import (
	"cmp"
	"context"
	"io"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/netem"
	"github.com/edgeswarm/edgeswarm/internal/playback"
)

// watch makes node n a viewer: at join it presses play on the object, and
// its player emulator reads the stream through the node's agent to the end.
func watch(n *node, join time.Time, objectURL string, cfg Config) error {
	select {
	case <-time.After(time.Until(join)):
	case <-n.ctx.Done():
		return n.ctx.Err()
	}
	n.joined = time.Now()
	res, err := playback.Play(n.ctx, func(ctx context.Context) (io.ReadCloser, error) {
		dl, err := n.agent.Download(ctx, objectURL)
		if err != nil {
			return nil, err
		}
		n.dl.Store(dl)
		return io.NopCloser(dl.NewReader(ctx)), nil
	}, playback.Config{RateBps: int64(cfg.Stream / 8)})
	n.play = res
	if err != nil {
		return err
	}
	if dl := n.dl.Load(); dl != nil {
		return dl.Wait(n.ctx)
	}
	return nil
}

// streamFigures fills in the viewers' playback figures, and a CDN-only
// player's on the idle edge (a few seconds of the stream over a link like
// a peer's download link) for comparison.
func streamFigures(ctx context.Context, res *Result, cfg Config, viewers []*node, url string) error {
	var ttfb, startup []float64
	var stall, played float64
	for _, n := range viewers {
		ttfb = append(ttfb, n.play.TTFB)
		startup = append(startup, n.play.Startup)
		stall += n.play.StallTime
		played += n.play.Played
		res.Stalls += n.play.Stalls
	}
	res.TTFB, res.Startup = quantiles(ttfb), quantiles(startup)
	if stall+played > 0 {
		res.RebufferRatio = stall / (stall + played)
	}
	res.StreamMbit, res.StreamJoinS, res.FastStart = cfg.Stream/1e6, cfg.StreamJoinEvery.Seconds(), cmp.Or(cfg.FastStart, "auto")

	link := netem.NewLink(0, cfg.PeerDown)
	tr := &http.Transport{DialContext: link.DialContext(nil), DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var direct []float64
	var directStart []float64
	for range 3 {
		r, err := playback.Play(ctx, playback.HTTP(hc, url), playback.Config{RateBps: int64(cfg.Stream / 8), Duration: 2 * time.Second})
		if err != nil {
			return err
		}
		direct = append(direct, r.TTFB)
		directStart = append(directStart, r.Startup)
		tr.CloseIdleConnections() // each probe a new player: a new connection
	}
	res.EdgeOnlyTTFB, res.EdgeOnlyStartup = quantiles(direct).Median, quantiles(directStart).Median
	if res.EdgeOnlyTTFB > 0 {
		res.TTFBRatio = res.TTFB.Median / res.EdgeOnlyTTFB
	}
	return nil
}

// quantiles returns the median and the 95th percentile (nearest rank).
func quantiles(v []float64) *Quantiles {
	if len(v) == 0 {
		return &Quantiles{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	k := int(math.Ceil(0.95*float64(len(s)))) - 1
	return &Quantiles{Median: median(s), P95: s[max(0, k)]}
}

package playback

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// gapReader serves data, pausing for gap once after the first `at` bytes.
type gapReader struct {
	data   []byte
	at     int
	gap    time.Duration
	off    int
	paused bool
	failAt int // > 0: fail once off reaches it
}

func (g *gapReader) Read(p []byte) (int, error) {
	if g.failAt > 0 && g.off >= g.failAt {
		return 0, errors.New("connection reset")
	}
	if g.off >= len(g.data) {
		return 0, io.EOF
	}
	if g.off >= g.at && !g.paused && g.gap > 0 {
		g.paused = true
		time.Sleep(g.gap)
	}
	end := len(g.data)
	if g.off < g.at {
		end = g.at
	}
	if g.failAt > 0 {
		end = min(end, g.failAt)
	}
	n := copy(p, g.data[g.off:end])
	g.off += n
	return n, nil
}

func (g *gapReader) Close() error { return nil }

func opener(r io.ReadCloser) Opener {
	return func(context.Context) (io.ReadCloser, error) { return r, nil }
}

func TestPlayFastStreamNoStalls(t *testing.T) {
	r, err := Play(context.Background(), opener(io.NopCloser(bytes.NewReader(make([]byte, 300_000)))),
		Config{RateBps: 1_000_000, StartBuffer: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Complete || r.Stalls != 0 || r.RebufferRatio != 0 || r.Bytes != 300_000 {
		t.Fatalf("result %+v", r)
	}
	if r.Played < 0.29 || r.Played > 0.31 {
		t.Errorf("played %.3f s, want 0.3", r.Played)
	}
	if r.TTFB > r.Startup || r.Startup > 0.2 {
		t.Errorf("ttfb %.3f startup %.3f", r.TTFB, r.Startup)
	}
}

func TestPlayGapStalls(t *testing.T) {
	g := &gapReader{data: make([]byte, 300_000), at: 100_000, gap: 400 * time.Millisecond}
	r, err := Play(context.Background(), opener(g), Config{RateBps: 1_000_000, StartBuffer: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// 0.1 s buffered plays out, then about 0.3 s dry.
	if !r.Complete || r.Stalls != 1 {
		t.Fatalf("result %+v", r)
	}
	if r.StallTime < 0.2 || r.StallTime > 0.5 {
		t.Errorf("stalled %.3f s, want about 0.3", r.StallTime)
	}
	if r.Played < 0.29 || r.Played > 0.31 {
		t.Errorf("played %.3f s, want 0.3", r.Played)
	}
	if want := r.StallTime / (r.StallTime + r.Played); r.RebufferRatio != want {
		t.Errorf("rebuffer ratio %v, want %v", r.RebufferRatio, want)
	}
}

// The player reads at most MaxBuffer ahead of the play position.
func TestPlayBufferBound(t *testing.T) {
	var got countReader
	got.r = bytes.NewReader(make([]byte, 10_000_000))
	r, err := Play(context.Background(), opener(&got), Config{RateBps: 1_000_000, StartBuffer: 10 * time.Millisecond,
		MaxBuffer: 100 * time.Millisecond, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Complete || r.Played != 0.2 {
		t.Fatalf("result %+v", r)
	}
	// 0.2 s played + 0.1 s ahead + one read of 32 KiB, and a tick of slack.
	if limit := int64(200_000 + 100_000 + 32<<10 + 10_000); r.Bytes > limit {
		t.Errorf("read %d bytes, want ≤ %d", r.Bytes, limit)
	}
}

type countReader struct{ r io.Reader }

func (c *countReader) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *countReader) Close() error               { return nil }

func TestPlayStreamError(t *testing.T) {
	g := &gapReader{data: make([]byte, 300_000), at: 300_000, failAt: 10_000}
	r, err := Play(context.Background(), opener(g), Config{RateBps: 1_000_000, StartBuffer: 100 * time.Millisecond})
	if err == nil || r.Complete {
		t.Fatalf("err %v result %+v, want the stream's error", err, r)
	}
	if _, err := Play(context.Background(), func(context.Context) (io.ReadCloser, error) { return nil, errors.New("refused") },
		Config{RateBps: 1}); err == nil {
		t.Fatal("open error not reported")
	}
}

func TestPlayBadConfig(t *testing.T) {
	for _, c := range []Config{{}, {RateBps: -1}, {RateBps: 1, StartBuffer: -1}} {
		if _, err := Play(context.Background(), opener(io.NopCloser(bytes.NewReader(nil))), c); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", c, err)
		}
	}
}

func TestPlayCanceled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	block := func(ctx context.Context) (io.ReadCloser, error) { <-ctx.Done(); return nil, ctx.Err() }
	if _, err := Play(ctx, block, Config{RateBps: 1000}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

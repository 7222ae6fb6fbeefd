// Package playback emulates a video player on a stream: it reads ahead
// into a bounded buffer, starts playing once a start-up buffer is in,
// consumes the stream at its bitrate, stalls when the buffer runs dry and
// resumes once it refills, and reports what a viewer would feel: time to
// first byte, start-up time and the rebuffer ratio.
//
// The stream is any reader: an HTTP response from an edge (what a plain
// CDN player gets) or a peer agent's in-order reader (edgeswarm's stream
// mode). The clock is injected; the read side blocks like a real player's
// socket, so a player whose buffer is full stops reading and lets the
// transport's flow control push back.
package playback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Config describes the player.
type Config struct {
	// RateBps is the stream's playback rate, bytes per second (its
	// bitrate / 8). Required.
	RateBps int64
	// StartBuffer is how much play time must be buffered before playback
	// starts and before it resumes after a stall (or the whole stream, if
	// shorter). 0 means 1 s.
	StartBuffer time.Duration
	// MaxBuffer is how far ahead of the play position the player reads;
	// past it reading pauses. 0 means 30 s.
	MaxBuffer time.Duration
	// Duration stops playback once this much has played; 0 means the
	// whole stream.
	Duration time.Duration
	// Tick is the play clock's step. 0 means 10 ms.
	Tick time.Duration
	// Now reads the clock; nil means time.Now.
	Now func() time.Time
}

// Result is what one playback measured. Times are in seconds.
type Result struct {
	// TTFB is the time from the start (before the stream was opened) to
	// its first byte; Startup the time until playback started.
	TTFB    float64 `json:"ttfb_s"`
	Startup float64 `json:"startup_s"`
	// Stalls counts the times playback stopped because the buffer ran dry
	// (not counting start-up); StallTime is their total length.
	Stalls    int     `json:"stalls"`
	StallTime float64 `json:"stall_s"`
	// Played is the play time consumed; RebufferRatio is StallTime /
	// (Played + StallTime).
	Played        float64 `json:"played_s"`
	RebufferRatio float64 `json:"rebuffer_ratio"`
	// Bytes were read from the stream; Complete is true when the stream
	// ended (EOF) and was played to its end, or Duration was played.
	Bytes    int64 `json:"bytes"`
	Complete bool  `json:"complete"`
}

// Opener opens the stream; the reader is closed when playback ends.
type Opener func(ctx context.Context) (io.ReadCloser, error)

// ErrConfig reports a configuration Play cannot run with.
var ErrConfig = errors.New("playback: bad configuration")

// Play plays the stream open returns until its end, cfg.Duration, an error
// of the stream, or ctx's end (which returns ctx's error with what was
// measured so far).
func Play(ctx context.Context, open Opener, cfg Config) (Result, error) {
	if cfg.RateBps <= 0 {
		return Result{}, fmt.Errorf("%w: rate %d bytes/s, want > 0", ErrConfig, cfg.RateBps)
	}
	if cfg.StartBuffer < 0 || cfg.MaxBuffer < 0 || cfg.Duration < 0 || cfg.Tick < 0 {
		return Result{}, fmt.Errorf("%w: negative duration", ErrConfig)
	}
	if cfg.StartBuffer == 0 {
		cfg.StartBuffer = time.Second
	}
	if cfg.MaxBuffer == 0 {
		cfg.MaxBuffer = 30 * time.Second
	}
	if cfg.MaxBuffer < cfg.StartBuffer {
		cfg.MaxBuffer = cfg.StartBuffer
	}
	if cfg.Tick == 0 {
		cfg.Tick = 10 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &player{cfg: cfg, start: cfg.Now(), wake: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		p.read(ctx, open)
	}()
	err := p.play(ctx)
	cancel()
	<-readDone
	return p.result(), err
}

// player is one playback: the read side (read) fills the buffer, the play
// side (play) drains it at the stream's rate.
type player struct {
	cfg   Config
	start time.Time
	wake  chan struct{} // play → read: the buffer has room again

	mu      sync.Mutex
	got     int64     // guarded by mu: bytes read
	firstAt time.Time // guarded by mu: when the first byte came; zero before
	ended   bool      // guarded by mu: the read side stopped
	readErr error     // guarded by mu: why (nil at EOF)
	pos     float64   // guarded by mu: bytes played

	// play side only
	playing   bool
	startedAt time.Time
	stalls    int
	stallTime time.Duration
	played    time.Duration
	complete  bool
}

func (p *player) bytesOf(d time.Duration) float64 {
	return d.Seconds() * float64(p.cfg.RateBps)
}

func (p *player) read(ctx context.Context, open Opener) {
	rc, err := open(ctx)
	if err != nil {
		p.stop(fmt.Errorf("open: %w", err))
		return
	}
	defer rc.Close()
	buf := make([]byte, 32<<10)
	ahead := p.bytesOf(p.cfg.MaxBuffer)
	for {
		p.mu.Lock()
		full := float64(p.got)-p.pos >= ahead
		p.mu.Unlock()
		if full {
			select {
			case <-p.wake:
			case <-ctx.Done():
				p.stop(nil)
				return
			}
			continue
		}
		n, err := rc.Read(buf)
		p.mu.Lock()
		if n > 0 && p.got == 0 {
			p.firstAt = p.cfg.Now()
		}
		p.got += int64(n)
		p.mu.Unlock()
		if err == io.EOF {
			p.stop(nil)
			return
		}
		if err != nil {
			if ctx.Err() != nil {
				err = nil // playback ended first
			}
			p.stop(err)
			return
		}
	}
}

func (p *player) stop(err error) {
	p.mu.Lock()
	p.ended, p.readErr = true, err
	p.mu.Unlock()
}

// play runs the play clock until the end.
func (p *player) play(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	last := p.start
	startBytes := p.bytesOf(p.cfg.StartBuffer)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		now := p.cfg.Now()
		dt := now.Sub(last)
		last = now
		p.mu.Lock()
		got, ended, readErr := float64(p.got), p.ended, p.readErr
		if p.playing {
			adv := p.bytesOf(dt)
			if p.cfg.Duration > 0 && p.played+dt >= p.cfg.Duration {
				adv = p.bytesOf(p.cfg.Duration - p.played)
			}
			switch {
			case p.pos+adv < got:
				p.pos += adv
				p.played += dt
			case ended && readErr == nil:
				p.played += time.Duration((got - p.pos) / float64(p.cfg.RateBps) * float64(time.Second))
				p.pos = got
				p.complete = true
			default:
				// The buffer ran dry at some point within this tick.
				ranDry := time.Duration((got - p.pos) / float64(p.cfg.RateBps) * float64(time.Second))
				p.played += ranDry
				p.pos = got
				p.playing = false
				p.stalls++
				p.stallTime += dt - ranDry
			}
			if p.cfg.Duration > 0 && p.played >= p.cfg.Duration {
				p.played = p.cfg.Duration
				p.complete = true
			}
		} else {
			ready := got-p.pos >= startBytes || (ended && readErr == nil)
			if !p.startedAt.IsZero() {
				p.stallTime += dt
			}
			if ready {
				p.playing = true
				if p.startedAt.IsZero() {
					p.startedAt = now
				}
			}
		}
		p.mu.Unlock()
		select {
		case p.wake <- struct{}{}:
		default:
		}
		if p.complete {
			return nil
		}
		if ended && readErr != nil {
			return fmt.Errorf("playback: %w", readErr)
		}
	}
}

func (p *player) result() Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := Result{
		Stalls:    p.stalls,
		StallTime: p.stallTime.Seconds(),
		Played:    p.played.Seconds(),
		Bytes:     p.got,
		Complete:  p.complete,
	}
	if !p.firstAt.IsZero() {
		r.TTFB = p.firstAt.Sub(p.start).Seconds()
	}
	if !p.startedAt.IsZero() {
		r.Startup = p.startedAt.Sub(p.start).Seconds()
	}
	if t := r.Played + r.StallTime; t > 0 {
		r.RebufferRatio = r.StallTime / t
	}
	return r
}

// HTTP opens url with a GET on hc: a player reading straight from a
// server (a CDN-only player). A status other than 200 is an error.
func HTTP(hc *http.Client, url string) Opener {
	return func(ctx context.Context) (io.ReadCloser, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return resp.Body, nil
	}
}

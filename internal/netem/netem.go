// Package netem emulates a node's access link in process: an upload and a
// download rate that every connection of the node shares, and (Plug) the
// node's abrupt departure from the network. The demo, the tests and the
// simulator describe links with the same Link type; in process the rates
// are enforced by token buckets on the node's net.Conns.
package netem

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// burst is the token bucket depth and the largest piece a conn moves at
// once; small enough that concurrent transfers interleave finely.
const burst = 16 << 10

// Bucket limits the bytes per second that pass through it, shared by every
// conn that uses it. A nil *Bucket is unlimited.
type Bucket struct {
	lim   *rate.Limiter
	bytes atomic.Int64 // bytes passed, for reports
}

// NewBucket returns a bucket of bitsPerSec; 0 or less means unlimited (nil).
func NewBucket(bitsPerSec float64) *Bucket {
	if bitsPerSec <= 0 {
		return nil
	}
	return &Bucket{lim: rate.NewLimiter(rate.Limit(bitsPerSec/8), burst)}
}

// Bytes returns how many bytes passed through the bucket.
func (b *Bucket) Bytes() int64 {
	if b == nil {
		return 0
	}
	return b.bytes.Load()
}

// BytesPerSec returns the bucket's rate, or 0 if unlimited.
func (b *Bucket) BytesPerSec() float64 {
	if b == nil {
		return 0
	}
	return float64(b.lim.Limit())
}

func (b *Bucket) take(n int) {
	if b == nil || n <= 0 {
		return
	}
	b.bytes.Add(int64(n))
	// WaitN fails only if n > burst (never: callers split) or the context
	// ends (never: Background).
	_ = b.lim.WaitN(context.Background(), n)
}

// Link is a node's access link: Up limits what the node sends, Down what it
// receives. The zero Link is unlimited.
type Link struct {
	Up, Down *Bucket
}

// NewLink returns a link with the given rates in bit/s (0 = unlimited).
func NewLink(upBits, downBits float64) Link {
	return Link{Up: NewBucket(upBits), Down: NewBucket(downBits)}
}

// Conn wraps c so that writes pass the link's Up bucket and reads its Down
// bucket. The result deliberately hides c's ReadFrom/WriteTo so that
// sendfile and splice cannot bypass the shaping.
func (l Link) Conn(c net.Conn) net.Conn {
	if l.Up == nil && l.Down == nil {
		return c
	}
	return &conn{Conn: c, link: l}
}

// Listener wraps ln so that every accepted conn is shaped by the link.
func (l Link) Listener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, link: l}
}

// DialContext wraps a dial function so that every dialed conn is shaped.
// A nil dial uses a net.Dialer with a 10 s timeout.
func (l Link) DialContext(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return l.Conn(c), nil
	}
}

type listener struct {
	net.Listener
	link Link
}

func (ln *listener) Accept() (net.Conn, error) {
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return ln.link.Conn(c), nil
}

type conn struct {
	net.Conn
	link Link
}

func (c *conn) Read(p []byte) (int, error) {
	if c.link.Down != nil && len(p) > burst {
		p = p[:burst]
	}
	n, err := c.Conn.Read(p)
	c.link.Down.take(n)
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := len(p)
		if c.link.Up != nil && k > burst {
			k = burst
		}
		c.link.Up.take(k)
		n, err := c.Conn.Write(p[:k])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
	}
	return written, nil
}

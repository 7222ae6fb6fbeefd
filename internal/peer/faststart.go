package peer

// Fast start: in stream mode a player may be handed the bytes of a start-up
// chunk from the edge as they arrive, before the chunk is whole and
// verified, so that its first byte comes as soon as from the edge alone.
// The edge is the party that signs the manifests, so over an authenticated
// connection (HTTPS) its bytes are as trusted as its signature; the chunk
// is still verified when it is whole, and a reader moves past it only once
// the verified chunk begins with the bytes it played (else the read
// fails). Peers' bytes are never played before they are verified.

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
)

// FastStart settings (Config.FastStart).
const (
	FastStartAuto = "auto" // on when the edge is reached over HTTPS
	FastStartOn   = "on"
	FastStartOff  = "off"
)

// fastStartFor resolves a FastStart setting for the given edge URL.
func fastStartFor(setting, edgeURL string) (bool, error) {
	switch setting {
	case "", FastStartAuto:
		return strings.HasPrefix(strings.ToLower(edgeURL), "https://"), nil
	case FastStartOn:
		return true, nil
	case FastStartOff:
		return false, nil
	}
	return false, fmt.Errorf("fast start %q: want auto, on or off", setting)
}

// liveChunk is an edge response arriving for a start-up chunk: buf[:n]
// has arrived so far.
type liveChunk struct {
	buf []byte // the fetch's own buffer, never pooled

	mu    sync.Mutex
	n     int           // guarded by mu
	ended bool          // guarded by mu: the response ended (whole or not)
	more  chan struct{} // guarded by mu: closed and replaced as bytes arrive
}

func newLiveChunk(size int) *liveChunk {
	return &liveChunk{buf: make([]byte, size, size+1), more: make(chan struct{})}
}

// advance records that buf[:n] has arrived (called by the fetch goroutine
// after writing it).
func (c *liveChunk) advance(n int) {
	c.mu.Lock()
	if n > c.n {
		c.n = n
		close(c.more)
		c.more = make(chan struct{})
	}
	c.mu.Unlock()
}

// end records that no more bytes will arrive.
func (c *liveChunk) end() {
	c.mu.Lock()
	if !c.ended {
		c.ended = true
		close(c.more)
	}
	c.mu.Unlock()
}

// state returns the bytes arrived, whether the response ended, and a
// channel closed when either changes.
func (c *liveChunk) state() (int, bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.ended, c.more
}

// setLive exposes lc as the edge response of chunk i.
func (d *Download) setLive(i int, lc *liveChunk) {
	d.mu.Lock()
	if !d.have.Has(i) {
		d.live[i] = lc
		close(d.changed) // wake the readers waiting for it
		d.changed = make(chan struct{})
	}
	d.mu.Unlock()
}

// dropLive forgets lc, an edge response of chunk i that ended without the
// chunk being verified.
func (d *Download) dropLive(i int, lc *liveChunk) {
	d.mu.Lock()
	if d.live[i] == lc {
		delete(d.live, i)
	}
	d.mu.Unlock()
}

// readLive serves p from the edge response of chunk i, at r's offset, if
// chunk i is not held yet and such a response is arriving; ok is false
// when it cannot (the caller then waits for the verified chunk). It blocks
// until the response has bytes past r's offset, ends, or the chunk is held.
func (r *reader) readLive(d *Download, i int, p []byte) (n int, ok bool) {
	pos := int(r.off - d.m.ChunkOffset(i))
	d.mu.Lock()
	d.trackLocked(r.ctx, r, i)
	if p, ok := d.readers[r]; !ok || i > p.startEnd {
		d.mu.Unlock()
		return 0, false // not a start-up chunk: played once verified
	}
	for {
		d.syncHaveLocked()
		if d.have.Has(i) || d.ended || r.ctx.Err() != nil {
			d.mu.Unlock()
			return 0, false
		}
		lc := d.live[i]
		changed := d.changed
		d.mu.Unlock()
		if lc != nil {
			if r.unv == i && (pos != len(r.played) || lc != r.liveSrc) {
				// A seek within the chunk, or another response than the
				// one played from: read the verified chunk.
				return 0, false
			}
			got, ended, more := lc.state()
			if got > pos {
				n = copy(p, lc.buf[pos:got])
				r.unv, r.liveSrc = i, lc
				r.played = lc.buf[:pos+n]
				r.off += int64(n)
				return n, true
			}
			if ended {
				return 0, false
			}
			select {
			case <-more:
			case <-changed:
			case <-r.ctx.Done():
			}
		} else {
			// Not asked of the edge yet (or not as a start-up chunk):
			// wait for a response to play from, or the verified chunk.
			select {
			case <-changed:
			case <-r.ctx.Done():
			}
		}
		d.mu.Lock()
	}
}

// settle waits until chunk r.unv, whose first bytes r played before they
// were verified, is verified, and checks that it begins with them.
func (r *reader) settle(d *Download) error {
	i := r.unv
	d.mu.Lock()
	if _, err := d.waitHeldLocked(r.ctx, i); err != nil {
		return fmt.Errorf("read %s: chunk %d, played before it was verified: %w", d.m.URL, i, err)
	}
	d.mu.Unlock()
	data, err := d.obj.ReadChunk(i, nil)
	if err != nil {
		return fmt.Errorf("read %s: %w", d.m.URL, err)
	}
	if !bytes.HasPrefix(data, r.played) {
		return fmt.Errorf("read %s: chunk %d: the %d bytes played before it was verified differ from the verified chunk", d.m.URL, i, len(r.played))
	}
	r.unv, r.played, r.liveSrc = -1, nil, nil
	r.buf, r.chunk = data, i
	return nil
}

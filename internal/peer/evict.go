package peer

// Living with the store's budget: a download in progress pins its whole
// object (the scheduler believes what it has stored), a reader pins the
// chunk it is on and its read-ahead window, an upload pins its chunk. A
// complete download whose chunks the store evicted stops announcing and
// serving them (holds, offerBytes); the next Download or reader that needs
// them starts a refill: a new download of the same version that fetches
// what is missing and takes the old one's place.

import (
	"errors"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// errEvicted: a complete download no longer holds the chunk a reader
// needs; the reader moves to a refill.
var errEvicted = errors.New("peer: chunk evicted from a complete download")

// maxRefills bounds how often one read moves to a refill.
const maxRefills = 3

// syncHaveLocked drops from d.have the chunks the store evicted since the
// last call. Called with d.mu held.
func (d *Download) syncHaveLocked() {
	ev := d.obj.Evictions()
	if ev == d.seenEvictions {
		return
	}
	d.seenEvictions = ev
	held := d.obj.Have()
	for i := 0; i < d.m.NumChunks(); i++ {
		if d.have.Has(i) && !held.Has(i) {
			d.have.Clear(i)
			d.stats.EvictedChunks++
		}
	}
}

// partial reports whether d completed and then lost chunks to eviction.
func (d *Download) partial() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.ended || d.err != nil {
		return false
	}
	d.syncHaveLocked()
	return !d.have.Complete()
}

// offerBytes is the bitfield announced to the edge: what d holds, or
// nothing while the agent does not offer uploads (off, or idle-only and
// the user is active).
func (d *Download) offerBytes() []byte {
	if !d.a.offering() {
		return core.NewBitfield(d.m.NumChunks()).Bytes()
	}
	return d.haveBytes()
}

// refill returns the download that fetches again what the store evicted
// from old, a complete download: the one that already replaced old, or a
// new one on old's storage handle that takes old's place (old stops
// announcing). Concurrent callers share one.
func (a *Agent) refill(old *Download) (*Download, error) {
	current := func() (*Download, bool) {
		if a.closed {
			return nil, true
		}
		cur := a.byRoot[old.m.Root]
		return cur, cur != nil && cur != old && !cur.failed()
	}
	a.mu.Lock()
	if cur, ok := current(); ok {
		a.mu.Unlock()
		if cur == nil {
			return nil, ErrClosed
		}
		return cur, nil
	}
	a.mu.Unlock()
	d := newDownload(a, old.url, old.m, old.obj, old.edgeIdx)
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := current(); ok {
		if cur == nil {
			return nil, ErrClosed
		}
		return cur, nil
	}
	d.checkedAt = old.checkedAt
	a.byRoot[old.m.Root] = d
	if a.byURL[old.url] == old {
		a.byURL[old.url] = d
	}
	old.cancel() // its announcer stops: d announces this version now
	d.launch()   // pins the object, then reads what survived
	a.log.Info("fetching evicted chunks again", "url", old.url, "root", old.m.Root.Short())
	return d, nil
}

// handOver moves reader r from d to nd, a refill of the same version (so
// the same stored object), keeping its window pinned throughout.
func (d *Download) handOver(r *reader, nd *Download) {
	d.mu.Lock()
	pos, registered := d.readers[r]
	pin := d.pins[r]
	delete(d.readers, r)
	delete(d.pins, r)
	d.mu.Unlock()
	r.d.Store(nd) // from here on r's unregister goes to nd
	nd.mu.Lock()
	if r.ctx.Err() != nil || !registered || nd.pins[r] != nil {
		nd.mu.Unlock()
		if pin != nil {
			pin()
		}
		return
	}
	nd.readers[r], nd.pins[r] = pos, pin
	nd.mu.Unlock()
}

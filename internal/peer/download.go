package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/chunkstore"
	"github.com/edgeswarm/edgeswarm/internal/core"
	"github.com/edgeswarm/edgeswarm/internal/wire"
)

// Download is one object version being fetched, then seeded until the
// agent closes. Its methods are safe for concurrent use.
type Download struct {
	a   *Agent
	url string
	m   *core.Manifest
	obj chunkstore.Object
	// edgeIdx is the edge (index in a.edges) that gave the manifest: it
	// serves the download's edge chunks until it fails (the loop then
	// moves to another edge of a.edges that serves the same version).
	edgeIdx int

	ctx    context.Context // canceled when the download fails or the agent closes
	cancel context.CancelFunc
	rnd    *rand.Rand // owned by the loop
	bufs   sync.Pool  // *[]byte of cap ChunkSize+1

	results     chan result   // fetchers → loop; buffered so fetchers never wait
	handouts    chan handout  // announcer → loop; buffered 1, latest wins
	poke        chan struct{} // readers → loop; buffered 1
	announceNow chan struct{} // loop → announcer; buffered 1
	edgeFound   chan int      // findEdge → loop: another edge serving the object, -1 if none; buffered 1
	done        chan struct{} // closed once complete or failed
	// firstConn is closed once the download's first edge chunk request
	// has a connection (stream mode: until then it is the only request the
	// download makes, so that it takes the warm connection; see gate).
	firstConn     chan struct{}
	firstConnOnce sync.Once
	loopDone      chan struct{} // closed when the loop returns

	checkedAt time.Time // guarded by a.mu: when the manifest was last confirmed

	mu      sync.Mutex
	have    core.Bitfield       // guarded by mu: published by the loop, less what the store evicted
	changed chan struct{}       // guarded by mu: closed and replaced whenever have grows or the download ends
	err     error               // guarded by mu: set once, before done closes
	ended   bool                // guarded by mu
	stats   Stats               // guarded by mu
	readers map[*reader]readPos // guarded by mu: where each active reader is
	// live holds the edge responses of start-up chunks still arriving,
	// which readers may play before the chunk is verified (fast start).
	// Guarded by mu.
	live          map[int]*liveChunk
	pins          map[*reader]func() // guarded by mu: unpins each reader's window
	unpinAll      func()             // guarded by mu: unpins the object pinned while downloading
	seenEvictions int64              // guarded by mu: obj.Evictions() when have was last synced
	// received is the bytes from each peer source not yet reported to the
	// edge (takeReceived, ackReceived). Guarded by mu.
	received  map[string]int64
	unacked   []wire.Received // guarded by mu: the report numbered reportSeq, sent but not answered
	reportSeq uint64          // guarded by mu
}

// handout is one announce response for the loop.
type handout struct {
	self  string // our peer ID when it was made
	peers []wire.PeerInfo
}

func newDownload(a *Agent, objectURL string, m *core.Manifest, obj chunkstore.Object, edgeIdx int) *Download {
	d := &Download{
		a:           a,
		edgeIdx:     edgeIdx,
		edgeFound:   make(chan int, 1),
		url:         objectURL,
		m:           m,
		obj:         obj,
		rnd:         a.newRand(),
		handouts:    make(chan handout, 1),
		poke:        make(chan struct{}, 1),
		announceNow: make(chan struct{}, 1),
		done:        make(chan struct{}),
		firstConn:   make(chan struct{}),
		loopDone:    make(chan struct{}),
		changed:     make(chan struct{}),
		readers:     map[*reader]readPos{},
		received:    map[string]int64{},
		pins:        map[*reader]func(){},
		live:        map[int]*liveChunk{},
		have:        obj.Have(),
	}
	cs := m.ChunkSize
	d.bufs.New = func() any { b := make([]byte, cs+1); return &b }
	d.ctx, d.cancel = context.WithCancel(a.ctx)
	d.stats = Stats{
		Bytes:       map[SourceKind]int64{},
		UsefulBytes: map[SourceKind]int64{},
		Started:     a.now(),
	}
	for i := 0; i < m.NumChunks(); i++ {
		if d.have.Has(i) {
			d.stats.ResumedBytes += int64(m.ChunkLen(i))
		}
	}
	return d
}

// launch starts the loop and the announcer; called with a.mu held. The
// object stays pinned until the download ends, and chunks evicted before
// the pin are dropped from have first, so the loop starts from what the
// store really holds.
func (d *Download) launch() {
	unpin := d.obj.Pin(0, d.m.NumChunks())
	d.mu.Lock()
	d.unpinAll = unpin
	d.syncHaveLocked()
	d.mu.Unlock()
	d.a.idle.downloadStarted()
	l := newLoop(d)
	d.results = make(chan result, l.maxFlight*4+8)
	d.a.wg.Add(2)
	go l.run()
	go d.announceLoop()
}

// findEdge looks for an edge other than a.edges[cur] that serves this
// download's version (the same manifest root), in the order of a.edges
// after cur, and tells the loop which one it found (-1: none). Asking for
// the manifest makes an edge fetch the object if it does not hold it.
func (d *Download) findEdge(cur int) {
	defer d.a.wg.Done()
	a := d.a
	a.mu.Lock()
	keys := a.keys
	a.mu.Unlock()
	found := -1
	for k := 1; k < len(a.edges) && found < 0; k++ {
		j := (cur + k) % len(a.edges)
		ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
		m, err := a.edges[j].Manifest(ctx, d.url, keys)
		cancel()
		switch {
		case err != nil:
			a.log.Warn("fallback edge refused the manifest", "url", d.url, "edge", a.edges[j].Base, "err", err)
		case m.Root != d.m.Root:
			a.log.Warn("fallback edge serves another version", "url", d.url, "edge", a.edges[j].Base, "root", m.Root.Short(), "want", d.m.Root.Short())
		default:
			found = j
		}
		if d.ctx.Err() != nil {
			break
		}
	}
	select {
	case d.edgeFound <- found:
	case <-d.loopDone:
	}
}

// Manifest returns the verified manifest being downloaded.
func (d *Download) Manifest() *core.Manifest { return d.m }

// Wait blocks until the download completes (nil) or fails, or ctx ends.
func (d *Download) Wait(ctx context.Context) error {
	select {
	case <-d.done:
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns a snapshot of the download's counters.
func (d *Download) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Bytes = cloneMap(s.Bytes)
	s.UsefulBytes = cloneMap(s.UsefulBytes)
	s.Banned = slices.Clone(s.Banned)
	s.Demoted = slices.Clone(s.Demoted)
	s.Sources = slices.Clone(s.Sources)
	return s
}

func cloneMap(m map[SourceKind]int64) map[SourceKind]int64 {
	c := make(map[SourceKind]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Stats describes a download.
type Stats struct {
	// Bytes counts chunk payload bytes received per source kind: every
	// complete chunk response, wasted and corrupt ones included.
	Bytes map[SourceKind]int64
	// UsefulBytes counts the bytes of chunks verified and kept (the first
	// copy of each chunk).
	UsefulBytes map[SourceKind]int64
	// DuplicateBytes are verified chunks that arrived after another copy
	// (endgame and rescue duplicates).
	DuplicateBytes int64
	// PartialBytes are bytes of chunk responses that broke off, timed out
	// or were canceled before the chunk was whole: received, then thrown
	// away (not in Bytes).
	PartialBytes int64
	// ResumedBytes were already in the store when the download started.
	ResumedBytes int64
	// CorruptChunks counts chunks that failed verification (hash or length).
	CorruptChunks int
	// EvictedChunks counts held chunks the store evicted (to stay within
	// its budget) after the download completed; they are no longer
	// announced or served.
	EvictedChunks int
	// Banned lists the peer IDs this download banned for bad chunks.
	Banned []string
	// Demoted lists the peer IDs this download stopped asking for a while
	// (DemoteFor) because they refused connections or failed DemoteAfter
	// times in a row (the first 4096); Demotions counts demotions (a peer
	// demoted again after DemoteFor counts again).
	Demoted   []string
	Demotions int
	// EdgeRescues counts edge requests, in stream mode, for chunks due
	// soon that peers had in flight but would not deliver in time.
	EdgeRescues int
	// EdgeFailovers counts moves of the download's edge chunks to another
	// edge (Config.Fallbacks) after the one serving them failed.
	EdgeFailovers int
	// Requests, Timeouts, Failures and Busy count chunk requests, those
	// canceled for taking too long, those that failed, and those refused
	// with 503.
	Requests, Timeouts, Failures, Busy int
	Started, Finished                  time.Time
	Complete                           bool
	// Sources is a per-source snapshot, refreshed about every 100 ms.
	Sources []SourceStats
}

// SourceStats describes one source of a download.
type SourceStats struct {
	ID          string
	Kind        SourceKind
	Bytes       int64
	UsefulBytes int64
	Requests    int
	Failures    int
	RateBps     float64 // measured throughput (EWMA), 0 before any chunk
	Banned      bool
	Demoted     bool // not asked now (Stats.Demoted)
}

func (d *Download) failed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ended && d.err != nil
}

// finish ends the download (err nil = complete); later calls do nothing.
func (d *Download) finish(err error) {
	d.mu.Lock()
	if d.ended {
		d.mu.Unlock()
		return
	}
	d.ended, d.err = true, err
	d.stats.Finished = d.a.now()
	d.stats.Complete = err == nil
	close(d.changed)
	d.changed = make(chan struct{})
	unpin := d.unpinAll
	d.mu.Unlock()
	if unpin != nil {
		unpin()
	}
	d.a.idle.downloadEnded()
	close(d.done)
	if err != nil {
		d.a.forget(d)
		d.cancel()
	}
}

// publish marks chunk i held for readers and the announcer.
func (d *Download) publish(i int) {
	d.mu.Lock()
	d.have.Set(i)
	delete(d.live, i)
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

func (d *Download) holds(i int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.syncHaveLocked()
	return d.have.Has(i)
}

func (d *Download) haveBytes() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.syncHaveLocked()
	return d.have.Bytes()
}

func (d *Download) getBuf() *[]byte  { return d.bufs.Get().(*[]byte) }
func (d *Download) putBuf(b *[]byte) { d.bufs.Put(b) }

// NewReader returns a reader of the whole object, in order. Each Read
// blocks until the chunk it needs is held (and steers the scheduler to the
// chunks just ahead of it); it fails when the download fails or ctx ends.
// The chunk it is on and the ReaderWindow chunks after it are pinned in
// the store; a chunk evicted from a complete download is fetched again.
func (d *Download) NewReader(ctx context.Context) io.ReadSeeker {
	r := &reader{ctx: ctx, chunk: -1, unv: -1}
	r.d.Store(d)
	context.AfterFunc(ctx, r.unregister)
	return r
}

// reader is a ReadSeeker over a download.
type reader struct {
	d     atomic.Pointer[Download] // moves to a refill when the download lost a chunk
	ctx   context.Context
	off   int64
	chunk int    // index of the chunk in buf, -1 if none
	buf   []byte // chunk data
	// unv is the chunk whose first bytes (played) were passed before it
	// was verified (fast start), -1 if none: before the reader moves on,
	// the verified chunk must begin with them.
	unv     int
	played  []byte
	liveSrc *liveChunk // the response played from
}

func (r *reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	d := r.d.Load()
	d.a.idle.touch()
	m := d.m
	if r.off >= m.Size {
		r.unregister()
		return 0, io.EOF
	}
	i := int(r.off / int64(m.ChunkSize))
	if r.unv >= 0 && r.unv != i {
		if err := r.settle(d); err != nil {
			return 0, err
		}
	}
	if r.chunk != i && d.a.fastStart {
		if n, ok := r.readLive(d, i, p); ok {
			return n, nil
		}
	}
	if r.chunk != i {
		for refills := 0; ; refills++ {
			err := d.waitChunk(r.ctx, r, i)
			if err == nil {
				break
			}
			if !errors.Is(err, errEvicted) {
				return 0, err
			}
			if refills == maxRefills {
				return 0, fmt.Errorf("read %s: chunk %d evicted again after %d refills", m.URL, i, refills)
			}
			nd, err := d.a.refill(d)
			if err != nil {
				return 0, fmt.Errorf("read %s: chunk %d was evicted and cannot be fetched again: %w", m.URL, i, err)
			}
			d.handOver(r, nd)
			d = nd
		}
		data, err := d.obj.ReadChunk(i, r.buf)
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", m.URL, err)
		}
		if r.unv == i {
			if !bytes.HasPrefix(data, r.played) {
				return 0, fmt.Errorf("read %s: chunk %d: the %d bytes played before it was verified differ from the verified chunk", m.URL, i, len(r.played))
			}
			r.unv, r.played, r.liveSrc = -1, nil, nil
		}
		r.buf, r.chunk = data, i
	}
	n := copy(p, r.buf[r.off-m.ChunkOffset(i):])
	r.off += int64(n)
	return n, nil
}

func (r *reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.d.Load().m.Size
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	r.off = offset
	return offset, nil
}

func (r *reader) unregister() { r.d.Load().unregisterReader(r) }

// unregisterReader forgets r and unpins its window.
func (d *Download) unregisterReader(r *reader) {
	d.mu.Lock()
	delete(d.readers, r)
	unpin := d.pins[r]
	delete(d.pins, r)
	d.mu.Unlock()
	if unpin != nil {
		unpin()
	}
}

// readPos is where an active reader is: the chunk it needs next, and for
// stream mode the play clock the loop derives its chunks' deadlines from.
type readPos struct {
	chunk int
	// start is the chunk the reader started (or last seeked) at; the
	// start-up chunks, start to startEnd (StreamStartMs of play), come
	// from the edge in stream mode.
	start, startEnd int
	// anchor is when the stream's byte 0 would have played: chunk i is due
	// at anchor + ChunkOffset(i)/StreamRateBps. It is set when the reader
	// starts or seeks, and moved later whenever the reader waited past a
	// chunk's deadline (the player stalled).
	anchor time.Time
}

// due is when chunk i must be held for r's player not to stall, for a
// stream of rate bytes/s.
func (p readPos) due(m *core.Manifest, i int, rate int64) time.Time {
	return p.anchor.Add(time.Duration(float64(m.ChunkOffset(i)) / float64(rate) * float64(time.Second)))
}

// waitChunk blocks until chunk i is held, telling the loop that r needs it
// and pinning r's window (the ReaderWindow chunks from i on). It
// returns errEvicted if d is complete but the store evicted chunk i.
func (d *Download) waitChunk(ctx context.Context, r *reader, i int) error {
	d.mu.Lock()
	d.trackLocked(ctx, r, i)
	waited, err := d.waitHeldLocked(ctx, i)
	if err != nil {
		return err
	}
	if p, ok := d.readers[r]; ok && waited && p.chunk == i {
		// Past the deadline, the player stalled until now: its clock moves on.
		rate := d.a.cfg.StreamRateBps
		if now := d.a.now(); now.After(p.due(d.m, i, rate)) {
			p.anchor = now.Add(-time.Duration(float64(d.m.ChunkOffset(i)) / float64(rate) * float64(time.Second)))
			d.readers[r] = p
		}
	}
	d.mu.Unlock()
	return nil
}

// trackLocked tells the loop that r needs chunk i next (a start or a seek
// starts a new play clock) and pins r's window; d.mu is held.
func (d *Download) trackLocked(ctx context.Context, r *reader, i int) {
	rate := d.a.cfg.StreamRateBps
	p, ok := d.readers[r]
	if ctx.Err() == nil && (!ok || p.chunk != i) {
		now := d.a.now()
		if !ok || i < p.chunk || i > p.chunk+1 {
			// A start or a seek: a new play clock, and new start-up chunks.
			p.start = i
			p.startEnd = int((d.m.ChunkOffset(i) + rate*int64(d.a.cfg.StreamStartMs)/1000) / int64(d.m.ChunkSize))
			p.anchor = now.Add(-time.Duration(float64(d.m.ChunkOffset(i)) / float64(rate) * float64(time.Second)))
		}
		p.chunk = i
		d.readers[r] = p
		unpin := d.obj.Pin(i, d.a.cfg.ReaderWindow) // the new window first, so no chunk in both goes unpinned
		if old := d.pins[r]; old != nil {
			old()
		}
		d.pins[r] = unpin
		select {
		case d.poke <- struct{}{}:
		default:
		}
	}
}

// waitHeldLocked waits, d.mu held (and held again on a nil return, released
// on an error), until chunk i is held; waited reports whether it had to.
// It returns errEvicted if d is complete but the store evicted chunk i.
func (d *Download) waitHeldLocked(ctx context.Context, i int) (waited bool, err error) {
	for {
		d.syncHaveLocked()
		if d.have.Has(i) {
			break
		}
		if d.ended {
			err := d.err
			d.mu.Unlock()
			if err == nil {
				return waited, errEvicted
			}
			return waited, fmt.Errorf("read %s: %w", d.m.URL, err)
		}
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return waited, ctx.Err()
		}
		waited = true
		d.mu.Lock()
	}
	return waited, nil
}

// readerPositions returns where the active readers are.
func (d *Download) readerPositions(dst []readPos) []readPos {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.readers {
		dst = append(dst, p)
	}
	return dst
}

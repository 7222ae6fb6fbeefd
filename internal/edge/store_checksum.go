package edge

// Checking stored data on read. Each version's data is cut into 1 MiB
// blocks whose CRC-32C is taken while the body is written and kept in its
// meta. A reader checks every block before handing out any of its bytes;
// a version that fails is dropped from the cache, counted, and either
// refetched (when nothing was sent yet) or cut off (mid-response, through
// errAbort), so a damaged byte is never served.
//
// Hits stay fast in two ways. Small versions (≤ smallObjectMax) are read
// whole into memory and checked on every open: at CRC-32C's ~19 GB/s that
// is a few microseconds; a checked copy then stays in memory while the hot
// set's budget allows (hot.go), so the hits after it cost no file access at
// all. Larger ones are checked block by block as they
// are read; once every block of a version has passed in this process, the
// version is trusted and later reads go straight to the file, so net/http
// can send it with sendfile(2), never touching user space. Trust ends when
// the file's identity changes (device, inode, size, mtime, ctime: anything
// written to it through the file system), after reverifyAfter, and with
// the process: a restarted edge checks everything again. What trust does
// not catch is a medium that rots silently under an unchanged inode while
// the version is trusted; reverifyAfter bounds that window.
//
// CRC-32C rather than SHA-256: the threat is accidental damage (bit rot,
// torn or misdirected writes, a stray tool), not an adversary who can
// write the cache directory and so could rewrite the checksums too;
// CRC-32C is the storage industry's choice for that (ext4, Btrfs, iSCSI,
// cloud object stores), hardware-accelerated, and ~13× faster than SHA-256
// here (19 GB/s against 1.5 GB/s on one core).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

const (
	// sumBlockSize is the unit of checking; a reader of an unverified
	// version holds one block in memory.
	sumBlockSize = 1 << 20
	// smallObjectMax is the largest version read whole and checked on
	// every open; larger ones are checked once per process, then trusted.
	smallObjectMax = 256 << 10
	// reverifyAfter is how long a verified version is trusted.
	reverifyAfter = time.Hour
)

// errCorrupt marks stored data that failed its checksum.
var errCorrupt = errors.New("stored data failed its checksum")

// errNoZeroCopy: the reader must pass the bytes through user space.
var errNoZeroCopy = errors.New("cache: data not verified; no zero-copy path")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func numBlocks(size int64) int { return int((size + sumBlockSize - 1) / sumBlockSize) }

// blockSummer takes the checksums of a stream of bytes.
type blockSummer struct {
	sums []uint32
	cur  uint32
	fill int // bytes in the current block
}

func (b *blockSummer) write(p []byte) {
	for len(p) > 0 {
		k := min(len(p), sumBlockSize-b.fill)
		b.cur = crc32.Update(b.cur, castagnoli, p[:k])
		b.fill += k
		p = p[k:]
		if b.fill == sumBlockSize {
			b.sums = append(b.sums, b.cur)
			b.cur, b.fill = 0, 0
		}
	}
}

// finish returns the checksums, the last (short) block included.
func (b *blockSummer) finish() []uint32 {
	if b.fill > 0 {
		b.sums = append(b.sums, b.cur)
		b.cur, b.fill = 0, 0
	}
	return b.sums
}

func encodeSums(sums []uint32) []byte {
	b := make([]byte, 0, 4*len(sums))
	for _, s := range sums {
		b = binary.BigEndian.AppendUint32(b, s)
	}
	return b
}

func decodeSums(b []byte, size int64) ([]uint32, error) {
	if len(b) != 4*numBlocks(size) {
		return nil, fmt.Errorf("meta has %d checksum bytes for %d data bytes, want %d", len(b), size, 4*numBlocks(size))
	}
	sums := make([]uint32, len(b)/4)
	for i := range sums {
		sums[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return sums, nil
}

// verification is what a process knows about a version's data.
type verification struct {
	passed []uint64 // bitset of blocks that passed; nil once all have
	count  int      // blocks that passed
	at     time.Time
	id     fileID // the data file's identity when the blocks were read
}

// trustedLocked reports whether e's data, if its file still has identity
// id, may be read without checking.
func (c *cache) trustedLocked(e *entry) (id fileID, ok bool) {
	return e.check.id, !c.verifyEveryRead.Load() && !e.check.at.IsZero() && c.now().Sub(e.check.at) < reverifyAfter
}

// passed records that block b of e, read from the file with identity id,
// matched its checksum.
func (c *cache) passed(e *entry, b int, id fileID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := &e.check
	if v.id != id {
		*v = verification{id: id} // the file changed: start over
	}
	if v.passed == nil {
		if v.count == len(e.sums) {
			if c.now().Sub(v.at) < reverifyAfter {
				return // verified, and still trusted
			}
			*v = verification{id: id} // trust expired: a new round
		}
		v.passed = make([]uint64, (len(e.sums)+63)/64)
	}
	if v.passed[b/64]&(1<<(b%64)) != 0 {
		return
	}
	v.passed[b/64] |= 1 << (b % 64)
	if v.count++; v.count == len(e.sums) {
		v.passed, v.at = nil, c.now()
	}
}

// dropCorrupt removes a version whose data failed its checksum.
func (c *cache) dropCorrupt(e *entry, why string) {
	c.corrupt.Add(1)
	c.log.Error("cache: stored object is corrupt; dropped, will be refetched", "key", e.key, "id", e.id, "why", why)
	c.remove(e)
}

var (
	blockPool = sync.Pool{New: func() any { b := make([]byte, sumBlockSize); return &b }}
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallObjectMax); return &b }}
)

type readMode uint8

const (
	modeMemory  readMode = iota // small: whole data in memory, checked at open
	modeVerify                  // each block checked before its bytes are returned
	modeTrusted                 // verified earlier in this process: straight from the file
)

// objectReader reads one version's data for one response. It is an
// io.ReadSeeker for http.ServeContent and an io.ReaderAt for chunks; in
// trusted mode it is also a syscall.Conn, which lets net/http send the file
// with sendfile(2). Not safe for concurrent use.
type objectReader struct {
	c    *cache
	e    *entry
	f    *os.File // nil in memory mode
	mode readMode
	id   fileID // the file's identity at open
	pos  int64  // memory and verify modes

	data  []byte   // memory mode: the whole data
	small *[]byte  // memory mode: data's pooled buffer
	hf    *hotFile // memory mode from the hot set: its open file, referenced
	buf   *[]byte  // verify mode: a pooled block buffer
	blk   int      // verify mode: the block in buf, or -1
	err   error    // sticky: the data is corrupt; wraps errAbort and errCorrupt
}

// newReader wraps the open data file f of e. It owns f from then on.
// trusted says e was verified while its file had identity tid.
func (c *cache) newReader(e *entry, f *os.File, tid fileID, trusted bool) (*objectReader, error) {
	id, err := statID(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cache: stat %s: %w", e.key, err)
	}
	if id.size != e.size {
		f.Close()
		c.dropCorrupt(e, fmt.Sprintf("data file is %d bytes, stored %d", id.size, e.size))
		return nil, errNotCached
	}
	r := &objectReader{c: c, e: e, f: f, id: id, blk: -1}
	switch {
	case e.size <= smallObjectMax:
		r.mode = modeMemory
		r.small = smallPool.Get().(*[]byte)
		r.data = (*r.small)[:e.size]
		_, err := f.ReadAt(r.data, 0)
		r.f = nil
		if err == nil || (err == io.EOF && e.size == 0) {
			if len(e.sums) == 0 || crc32.Checksum(r.data, castagnoli) == e.sums[0] {
				if !c.keepHot(e, r.data, f, id) {
					f.Close()
				}
				return r, nil
			}
			err = errCorrupt
		}
		f.Close()
		r.Close()
		c.dropCorrupt(e, fmt.Sprintf("reading %d bytes: %v", e.size, err))
		return nil, errNotCached
	case trusted && id == tid:
		r.mode = modeTrusted
	default:
		r.mode = modeVerify
	}
	return r, nil
}

// load reads block b into the buffer and checks it.
func (r *objectReader) load(b int) error {
	if r.err != nil {
		return r.err
	}
	if r.buf == nil {
		r.buf = blockPool.Get().(*[]byte)
	}
	off := int64(b) * sumBlockSize
	n := min(sumBlockSize, r.e.size-off)
	p := (*r.buf)[:n]
	if _, err := r.f.ReadAt(p, off); err != nil && !(err == io.EOF && int64(len(p)) == n) {
		return r.fail(b, fmt.Sprintf("reading block: %v", err))
	}
	if crc32.Checksum(p, castagnoli) != r.e.sums[b] {
		return r.fail(b, "checksum mismatch")
	}
	r.blk = b
	r.c.passed(r.e, b, r.id)
	return nil
}

func (r *objectReader) fail(b int, why string) error {
	r.blk = -1
	r.err = fmt.Errorf("cache: %s block %d of %d: %s: %w: %w", r.e.key, b, len(r.e.sums), why, errAbort, errCorrupt)
	r.c.dropCorrupt(r.e, fmt.Sprintf("block %d: %s", b, why))
	return r.err
}

// readAt copies data at off into p from the checked block holding off.
func (r *objectReader) readAt(p []byte, off int64) (int, error) {
	if off >= r.e.size {
		return 0, io.EOF
	}
	b := int(off / sumBlockSize)
	if b != r.blk {
		if err := r.load(b); err != nil {
			return 0, err
		}
	}
	start := off - int64(b)*sumBlockSize
	end := min(sumBlockSize, r.e.size-int64(b)*sumBlockSize)
	return copy(p, (*r.buf)[start:end]), nil
}

func (r *objectReader) Read(p []byte) (int, error) {
	switch r.mode {
	case modeTrusted:
		return r.f.Read(p)
	case modeMemory:
		if r.pos >= int64(len(r.data)) {
			return 0, io.EOF
		}
		n := copy(p, r.data[r.pos:])
		r.pos += int64(n)
		return n, nil
	}
	if len(p) == 0 {
		return 0, r.err
	}
	n, err := r.readAt(p, r.pos)
	r.pos += int64(n)
	return n, err
}

// immutable reports a reader of a hot-set copy: data that never changes,
// so it may be sent after the reader is closed.
func (r *objectReader) immutable() bool { return r.mode == modeMemory && r.small == nil }

// next returns up to n bytes of a memory-mode reader's data from its
// position on, and where they start, and moves past them.
func (r *objectReader) next(n int64) ([]byte, int64) {
	start := min(r.pos, int64(len(r.data)))
	end := start + min(n, int64(len(r.data))-start)
	r.pos = end
	return r.data[start:end], start
}

func (r *objectReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("cache: negative offset")
	}
	switch r.mode {
	case modeTrusted:
		return r.f.ReadAt(p, off)
	case modeMemory:
		if off >= int64(len(r.data)) {
			return 0, io.EOF
		}
		n := copy(p, r.data[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	total := 0
	for total < len(p) {
		n, err := r.readAt(p[total:], off+int64(total))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (r *objectReader) Seek(offset int64, whence int) (int64, error) {
	if r.mode == modeTrusted {
		return r.f.Seek(offset, whence)
	}
	switch whence {
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.e.size
	case io.SeekStart:
	default:
		return 0, errors.New("cache: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("cache: negative position")
	}
	r.pos = offset
	return offset, nil
}

// SyscallConn exposes the file to net/http's sendfile path, only for data
// verified earlier in this process: anything else must pass through Read.
func (r *objectReader) SyscallConn() (syscall.RawConn, error) {
	if r.mode != modeTrusted {
		return nil, errNoZeroCopy
	}
	return r.f.SyscallConn()
}

// Err returns the corruption found while reading, if any: a response cut
// short by it must be aborted, never completed.
func (r *objectReader) Err() error { return r.err }

func (r *objectReader) Close() error {
	var err error
	if r.f != nil {
		err = r.f.Close()
		r.f = nil
	}
	if r.buf != nil {
		blockPool.Put(r.buf)
		r.buf = nil
	}
	if r.small != nil {
		smallPool.Put(r.small)
		r.small, r.data = nil, nil
	}
	if r.hf != nil {
		r.c.releaseHot(r.hf)
		r.hf = nil
	}
	return err
}

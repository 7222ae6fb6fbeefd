package chunkstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// haveFlushDelay bounds how often the have-file is rewritten while chunks
// arrive: at most once per delay, and always on Close.
const haveFlushDelay = 250 * time.Millisecond

// Disk is a Store under one directory:
//
//	dir/objects/<root hex>/data      the object's bytes, preallocated to its size
//	dir/objects/<root hex>/manifest  the encoded manifest
//	dir/objects/<root hex>/have      the held-chunks bitfield (written atomically)
//
// The have-file is a hint: on reopen every chunk it lists is re-read and
// re-verified against the manifest, and dropped if it fails. It is
// rewritten at most every haveFlushDelay, so a process killed mid-download
// leaves verified chunks on disk that it does not list: reopening an
// existing data file also reads the chunks it does not list, skips those
// that are all zeros (never written: the file is preallocated sparse) and
// keeps those that verify, so a restart refetches only what was in flight.
// Evicted chunks are punched out of the data file (on Linux), so the blocks
// are freed at once.
type Disk struct {
	dir string
	reg registry
}

// NewDisk returns a store rooted at dir, creating it if needed. It counts
// the chunks the object versions already under dir hold (by their
// have-files) against the budget, and removes the least recently written
// versions whole while they exceed it.
func NewDisk(dir string, opts ...Option) (*Disk, error) {
	if err := os.MkdirAll(filepath.Join(dir, "objects"), 0o755); err != nil {
		return nil, fmt.Errorf("chunkstore: %w", err)
	}
	s := &Disk{dir: dir}
	s.reg.acct = newBudget(buildOptions(opts).budget, s.discard)
	if err := s.scan(); err != nil {
		return nil, err
	}
	s.reg.acct.trim()
	return s, nil
}

// Usage implements Store.
func (s *Disk) Usage() Usage { return s.reg.acct.usage() }

func (s *Disk) objectDir(root core.Hash) string {
	return filepath.Join(s.dir, "objects", root.String())
}

// discard removes the storage of a version no handle has open.
func (s *Disk) discard(root core.Hash) error {
	return os.RemoveAll(s.objectDir(root))
}

// scan adds every version under dir to the budget, oldest have-file first.
// A version whose manifest cannot be read counts its whole data file.
func (s *Disk) scan() error {
	ents, err := os.ReadDir(filepath.Join(s.dir, "objects"))
	if err != nil {
		return fmt.Errorf("chunkstore: %w", err)
	}
	type found struct {
		root   core.Hash
		bytes  int64
		chunks int
		mtime  time.Time
	}
	var all []found
	for _, e := range ents {
		root, err := core.ParseHash(e.Name())
		if err != nil || !e.IsDir() {
			continue // not ours
		}
		f := found{root: root}
		dir := s.objectDir(root)
		var m core.Manifest
		raw, err := os.ReadFile(filepath.Join(dir, "manifest"))
		if err == nil {
			err = m.UnmarshalBinary(raw)
		}
		if err != nil {
			if st, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				f.bytes, f.mtime = st.Size(), st.ModTime()
			}
			all = append(all, f)
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, "have")); err == nil {
			f.mtime = st.ModTime()
			raw, _ := os.ReadFile(filepath.Join(dir, "have"))
			if have, err := core.BitfieldFromBytes(m.NumChunks(), raw); err == nil {
				for i := 0; i < m.NumChunks(); i++ {
					if have.Has(i) {
						f.bytes += int64(m.ChunkLen(i))
						f.chunks++
					}
				}
			}
		}
		all = append(all, f)
	}
	slices.SortFunc(all, func(a, b found) int { return a.mtime.Compare(b.mtime) })
	for _, f := range all {
		s.reg.acct.add(f.root, f.bytes, f.chunks, s.reg.acct.tick())
	}
	return nil
}

// Open implements Store.
func (s *Disk) Open(m *core.Manifest) (Object, error) {
	return s.reg.open(m, s.create)
}

// Close implements Store: it flushes and closes every open object.
func (s *Disk) Close() error { return s.reg.closeAll() }

func (s *Disk) create(m *core.Manifest) (*object, error) {
	dir := s.objectDir(m.Root)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chunkstore: open %s: %w", m.Root.Short(), err)
	}
	enc, err := m.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("chunkstore: open %s: %w", m.Root.Short(), err)
	}
	if old, err := os.ReadFile(filepath.Join(dir, "manifest")); err != nil || !bytes.Equal(old, enc) {
		if err := writeAtomic(dir, "manifest", enc); err != nil {
			return nil, fmt.Errorf("chunkstore: open %s: %w", m.Root.Short(), err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chunkstore: open %s: %w", m.Root.Short(), err)
	}
	st, err := f.Stat()
	existed := err == nil && st.Size() > 0
	if err != nil || st.Size() != m.Size {
		if err := f.Truncate(m.Size); err != nil {
			f.Close()
			return nil, fmt.Errorf("chunkstore: open %s: preallocate: %w", m.Root.Short(), err)
		}
	}
	b := &diskBackend{dir: dir, f: f, m: m}
	o := &object{m: m, b: b, have: core.NewBitfield(m.NumChunks())}
	b.o = o
	if b.recover(existed) {
		// Rewrite the hint now so a crash before the next write does not
		// make the next open re-verify the same chunks again.
		b.flush()
	}
	b.punchUnheld()
	return o, nil
}

// punchUnheld frees the blocks of every run of chunks not held (dropped
// by recover, or written after the last have-file before a crash), so the
// disk holds no more than the budget counts.
func (b *diskBackend) punchUnheld() {
	n := b.m.NumChunks()
	for i := 0; i < n; {
		if b.o.have.Has(i) {
			i++
			continue
		}
		j := i
		for j < n && !b.o.have.Has(j) {
			j++
		}
		end := b.m.Size
		if j < n {
			end = b.m.ChunkOffset(j)
		}
		_ = punchHole(b.f, b.m.ChunkOffset(i), end-b.m.ChunkOffset(i)) // best effort: only space is at stake
		i = j
	}
}

type diskBackend struct {
	dir string
	f   *os.File // ReadAt/WriteAt are safe for concurrent use
	m   *core.Manifest
	o   *object // owner: its mu guards the bitfield

	mu      sync.Mutex
	timer   *time.Timer // guarded by mu: pending have-file flush
	dirty   bool        // guarded by mu: bitfield changed since the last flush
	closed  bool        // guarded by mu
	flushMu sync.Mutex  // serializes flushes
}

// recover loads the have-file and keeps only the chunks it lists that
// verify; with unlisted, it also reads every chunk the have-file does not
// list and keeps those that verify (a chunk of zeros only if the manifest
// says so). It reports whether the have-file needs rewriting: a listed
// chunk was dropped or an unlisted one found.
func (b *diskBackend) recover(unlisted bool) (changed bool) {
	n := b.m.NumChunks()
	listed := core.NewBitfield(n)
	if raw, err := os.ReadFile(filepath.Join(b.dir, "have")); err == nil {
		if listed, err = core.BitfieldFromBytes(n, raw); err != nil {
			listed, changed = core.NewBitfield(n), true
		}
	}
	buf := make([]byte, b.m.ChunkSize)
	zero := map[int]core.Hash{} // hash of a chunk of zeros, by length
	for i := 0; i < n; i++ {
		if !listed.Has(i) && !unlisted {
			continue
		}
		data := buf[:b.m.ChunkLen(i)]
		if _, err := b.f.ReadAt(data, b.m.ChunkOffset(i)); err != nil && !errors.Is(err, io.EOF) {
			changed = changed || listed.Has(i)
			continue
		}
		if !listed.Has(i) && allZero(data) {
			h, ok := zero[len(data)]
			if !ok {
				h = core.HashBytes(data)
				zero[len(data)] = h
			}
			if h != b.m.Hashes[i] {
				continue // never written
			}
		}
		if b.m.CheckChunk(i, data) != nil {
			changed = changed || listed.Has(i)
			continue
		}
		changed = changed || !listed.Has(i)
		b.o.have.Set(i)
	}
	return changed
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (b *diskBackend) writeAt(i int, data []byte) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	_, err := b.f.WriteAt(data, b.m.ChunkOffset(i))
	return err
}

func (b *diskBackend) readAt(i int, buf []byte) error {
	_, err := b.f.ReadAt(buf, b.m.ChunkOffset(i))
	if errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return err
}

func (b *diskBackend) drop(i int) error {
	return punchHole(b.f, b.m.ChunkOffset(i), int64(b.m.ChunkLen(i)))
}

// marked schedules a have-file flush unless one is pending.
func (b *diskBackend) marked() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dirty = true
	if b.timer == nil && !b.closed {
		b.timer = time.AfterFunc(haveFlushDelay, func() {
			b.mu.Lock()
			b.timer = nil
			closed := b.closed
			b.mu.Unlock()
			if !closed {
				b.flush() // a failed flush leaves the old hint; Close retries
			}
		})
	}
}

// flush syncs the data file, then atomically replaces the have-file with
// the current bitfield, so the have-file never lists unsynced chunks.
func (b *diskBackend) flush() error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	b.dirty = false
	b.mu.Unlock()
	have := b.o.haveCopy()
	err := b.f.Sync()
	if err == nil {
		err = writeAtomic(b.dir, "have", have.Bytes())
	}
	if err != nil {
		b.mu.Lock()
		b.dirty = true
		b.mu.Unlock()
		return fmt.Errorf("flush have-file: %w", err)
	}
	return nil
}

func (b *diskBackend) close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	dirty := b.dirty
	b.mu.Unlock()
	var err error
	if dirty {
		err = b.flush()
	}
	b.flushMu.Lock() // wait out a flush the stopped timer may have started
	cerr := b.f.Close()
	b.flushMu.Unlock()
	if err := errors.Join(err, cerr); err != nil {
		return fmt.Errorf("chunkstore: close %s: %w", b.m.Root.Short(), err)
	}
	return nil
}

// writeAtomic replaces dir/name with data: temp file, fsync, rename, fsync
// of the directory.
func writeAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", name, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

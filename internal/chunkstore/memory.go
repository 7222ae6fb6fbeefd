package chunkstore

import (
	"sync"

	"github.com/edgeswarm/edgeswarm/internal/core"
)

// Memory is a Store that keeps chunks in memory until the store is closed.
// Closing an object's last handle keeps its chunks, so reopening the same
// root resumes them (as the disk store does).
type Memory struct {
	reg  registry
	mu   sync.Mutex
	kept map[core.Hash]*memBackend // guarded by mu: objects whose handles all closed
}

// NewMemory returns an empty memory store. WithBudget bounds the bytes it
// keeps.
func NewMemory(opts ...Option) *Memory {
	s := &Memory{kept: map[core.Hash]*memBackend{}}
	s.reg.acct = newBudget(buildOptions(opts).budget, s.discard)
	return s
}

// Usage implements Store.
func (s *Memory) Usage() Usage { return s.reg.acct.usage() }

// discard forgets the chunks of a version no handle has open.
func (s *Memory) discard(root core.Hash) error {
	s.mu.Lock()
	b := s.kept[root]
	delete(s.kept, root)
	s.mu.Unlock()
	if b != nil {
		b.mu.Lock()
		b.chunks = make([][]byte, len(b.chunks))
		b.mu.Unlock()
	}
	return nil
}

// Open implements Store.
func (s *Memory) Open(m *core.Manifest) (Object, error) {
	return s.reg.open(m, func(m *core.Manifest) (*object, error) {
		s.mu.Lock()
		b := s.kept[m.Root]
		if b == nil {
			b = &memBackend{store: s, root: m.Root, chunks: make([][]byte, m.NumChunks())}
			s.kept[m.Root] = b
		}
		s.mu.Unlock()
		o := &object{m: m, b: b, have: core.NewBitfield(m.NumChunks())}
		b.mu.RLock()
		for i, c := range b.chunks {
			if c != nil {
				o.have.Set(i)
			}
		}
		b.mu.RUnlock()
		return o, nil
	})
}

// Close implements Store: it drops every chunk.
func (s *Memory) Close() error {
	err := s.reg.closeAll()
	s.mu.Lock()
	for _, b := range s.kept {
		b.mu.Lock()
		b.chunks, b.gone = nil, true
		b.mu.Unlock()
	}
	s.kept = map[core.Hash]*memBackend{}
	s.mu.Unlock()
	return err
}

type memBackend struct {
	store *Memory
	root  core.Hash

	mu     sync.RWMutex
	chunks [][]byte // guarded by mu; nil entries are not held
	gone   bool     // guarded by mu: the store was closed
}

func (b *memBackend) writeAt(i int, data []byte) error {
	c := append([]byte(nil), data...)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gone {
		return ErrClosed
	}
	b.chunks[i] = c
	return nil
}

func (b *memBackend) readAt(i int, buf []byte) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.gone {
		return ErrClosed
	}
	if b.chunks[i] == nil {
		return ErrNotFound
	}
	copy(buf, b.chunks[i])
	return nil
}

func (b *memBackend) marked() {}

func (b *memBackend) drop(i int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.gone {
		b.chunks[i] = nil
	}
	return nil
}

func (b *memBackend) close() error { return nil }

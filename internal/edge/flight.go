package edge

// A tiny singleflight whose calls run detached from the callers: a caller
// that gives up (its client hung up) stops waiting, but the call goes on for
// the others and for the cache (tailscale's DoChanContext, groupcache's
// load). The Server tracks every call so Close can wait for them.

import (
	"context"
	"errors"
	"sync"
	"time"
)

type group[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T] // guarded by mu; in-flight calls by key
}

type call[T any] struct {
	done chan struct{} // closed when val and err are set
	val  T
	err  error
}

// do returns the call in flight for key, or starts fn as a new one through
// spawn (which runs it in a goroutine the server tracks, or refuses once the
// server is closed). leader reports that this caller started the call.
func (g *group[T]) do(key string, spawn func(func()) error, fn func() (T, error)) (c *call[T], leader bool) {
	g.mu.Lock()
	if c, ok := g.calls[key]; ok {
		g.mu.Unlock()
		return c, false
	}
	c = &call[T]{done: make(chan struct{})}
	if g.calls == nil {
		g.calls = make(map[string]*call[T])
	}
	g.calls[key] = c
	g.mu.Unlock()

	err := spawn(func() {
		defer func() {
			g.mu.Lock()
			delete(g.calls, key)
			g.mu.Unlock()
			close(c.done)
		}()
		c.val, c.err = fn()
	})
	if err != nil {
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		c.err = err
		close(c.done)
	}
	return c, true
}

// errLockTimeout: a call did not end within the time a waiter gives it.
var errLockTimeout = errors.New("timed out waiting for the request in flight")

// wait blocks until the call ends or ctx does, or, if timeout > 0, until
// timeout has passed (errLockTimeout).
func (c *call[T]) wait(ctx context.Context, timeout time.Duration) (T, error) {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	var zero T
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-expired:
		return zero, errLockTimeout
	}
}

package netem

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Plug is a node's attachment to the network, which a test or the demo can
// pull to kill the node abruptly as the rest of the network sees it: Pull
// closes every connection the node has (its peers read EOF or a reset),
// its listeners (new connections to it are refused) and makes its own
// dials fail, as when its process is killed. The node's code keeps running
// and is stopped as usual afterwards; nothing it says once unplugged
// reaches anyone, so it cannot say goodbye. The zero Plug is plugged in.
type Plug struct {
	mu     sync.Mutex
	pulled atomic.Bool           // set under mu, read without
	conns  map[net.Conn]struct{} // guarded by mu: open conns, closed by Pull
	lns    []net.Listener        // guarded by mu
}

// ErrUnplugged is what a dial through a pulled Plug fails with (inside a
// *net.OpError whose Err is syscall.ECONNREFUSED, as a real refused dial).
var ErrUnplugged = errors.New("netem: node unplugged")

// Pull severs the node from the network; later calls do nothing. It
// returns at once and never blocks: from then on the node's conns fail
// every read and write, its dials are refused and what its listeners
// accept is closed at once; the conns and listeners themselves are closed
// in the background (closing a socket waits for the goroutines blocked on
// it to be scheduled, which takes a while in a process running thousands
// of them), and their far ends read EOF, and new connections to the node
// are refused, as soon as they are.
func (p *Plug) Pull() {
	p.mu.Lock()
	if p.pulled.Load() {
		p.mu.Unlock()
		return
	}
	p.pulled.Store(true)
	conns, lns := p.conns, p.lns
	p.conns, p.lns = nil, nil
	p.mu.Unlock()
	now := time.Now()
	for c := range conns {
		c.SetDeadline(now) // wakes its blocked readers and writers
	}
	// One goroutine each: a close waits for the goroutines blocked on its
	// socket to run, and those waits should overlap, not add up.
	for _, ln := range lns {
		go ln.Close()
	}
	for c := range conns {
		go c.Close()
	}
}

// Pulled reports whether Pull was called.
func (p *Plug) Pulled() bool { return p.pulled.Load() }

// track records c so that Pull closes it; it closes c and reports false
// when the plug is already pulled.
func (p *Plug) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pulled.Load() {
		c.Close()
		return false
	}
	if p.conns == nil {
		p.conns = map[net.Conn]struct{}{}
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Plug) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// Listener wraps ln so that Pull closes it and every conn it accepted.
func (p *Plug) Listener(ln net.Listener) net.Listener {
	p.mu.Lock()
	pulled := p.pulled.Load()
	if !pulled {
		p.lns = append(p.lns, ln)
	}
	p.mu.Unlock()
	if pulled {
		ln.Close()
	}
	return &plugListener{Listener: ln, p: p}
}

// DialContext wraps a dial function (nil: a plain net.Dialer) so that
// Pull closes every conn it made and later dials are refused.
func (p *Plug) DialContext(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		refused := &net.OpError{Op: "dial", Net: network, Err: &unpluggedError{}}
		if p.Pulled() {
			return nil, refused
		}
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if !p.track(c) {
			return nil, refused
		}
		return &plugConn{Conn: c, p: p}, nil
	}
}

// unpluggedError is ECONNREFUSED to errors.Is, and says why.
type unpluggedError struct{}

func (*unpluggedError) Error() string { return ErrUnplugged.Error() + ": connection refused" }
func (*unpluggedError) Is(target error) bool {
	return target == ErrUnplugged || target == syscall.ECONNREFUSED
}

type plugListener struct {
	net.Listener
	p *Plug
}

func (ln *plugListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ln.p.track(c) {
			return &plugConn{Conn: c, p: ln.p}, nil
		}
		// Accepted while the listener was being closed: closed by track.
	}
}

type plugConn struct {
	net.Conn
	p    *Plug
	once sync.Once
}

func (c *plugConn) Read(b []byte) (int, error) {
	if c.p.Pulled() {
		return 0, net.ErrClosed
	}
	return c.Conn.Read(b)
}

func (c *plugConn) Write(b []byte) (int, error) {
	if c.p.Pulled() {
		return 0, net.ErrClosed
	}
	return c.Conn.Write(b)
}

func (c *plugConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.p.untrack(c.Conn) })
	return err
}

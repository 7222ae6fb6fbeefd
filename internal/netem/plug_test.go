package netem

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestPlugPull: pulling a node's plug closes the conns it accepted and
// dialed (the far ends read EOF), closes its listener (new dials to it are
// refused) and refuses its own dials, like a killed process.
func TestPlugPull(t *testing.T) {
	var node Plug
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := node.Listener(raw)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	// Someone else connects to the node.
	in, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	server := <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	// The node connects out to someone else.
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	dial := node.DialContext(nil)
	out, err := dial(context.Background(), "tcp", other.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if node.Pulled() {
		t.Fatal("pulled before Pull")
	}

	node.Pull()
	node.Pull() // idempotent
	if !node.Pulled() {
		t.Fatal("not pulled after Pull")
	}
	in.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := in.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("the far end of an accepted conn read %v, want EOF or reset", err)
	}
	if _, err := out.Write([]byte("x")); err == nil {
		t.Fatal("write on a dialed conn succeeded after Pull")
	}
	// The listener closes in the background: soon, dials to it are refused.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", raw.Addr().String(), 5*time.Second)
		if err != nil {
			break
		}
		// Until then, what it accepts is closed at once.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("a conn accepted after Pull read %v, want EOF", err)
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("dials to a pulled node's listener still connect")
		}
	}
	_, err = dial(context.Background(), "tcp", other.Addr().String())
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.Is(err, ErrUnplugged) {
		t.Fatalf("dial from a pulled node: %v, want a refused connection", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("dial from a pulled node: %T %v, want a *net.OpError of op dial", err, err)
	}
	// A listener wrapped after the pull is closed at once.
	late, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Listener(late).Accept(); err == nil {
		t.Fatal("a listener wrapped after Pull accepted")
	}
	// Closed conns are forgotten, so a long-lived plug does not grow.
	var live Plug
	d := live.DialContext(nil)
	for range 10 {
		c, err := d(context.Background(), "tcp", other.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	live.mu.Lock()
	n := len(live.conns)
	live.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d closed conns still tracked", n)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

package netem

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestLinkShapesBothDirections checks that a shaped sender is held to its
// rate (within a generous band: this is a correctness check, not a benchmark).
func TestLinkShapesBothDirections(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	for name, link := range map[string]Link{
		"up":   NewLink(8*1<<20, 0), // 1 MiB/s
		"down": NewLink(0, 8*1<<20),
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			const total = 512 << 10
			done := make(chan time.Duration, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					done <- 0
					return
				}
				defer c.Close()
				start := time.Now()
				var rc net.Conn = c
				if name == "down" {
					rc = link.Conn(c)
				}
				io.Copy(io.Discard, rc)
				done <- time.Since(start)
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			wc := c
			if name == "up" {
				wc = link.Conn(c)
			}
			if _, err := wc.Write(make([]byte, total)); err != nil {
				t.Fatal(err)
			}
			c.Close()
			el := <-done
			// 512 KiB at 1 MiB/s with a 16 KiB burst: about 0.5 s.
			if el < 400*time.Millisecond || el > 2*time.Second {
				t.Fatalf("512 KiB took %v through a 1 MiB/s link", el)
			}
			b := link.Up
			if name == "down" {
				b = link.Down
			}
			if b.Bytes() != total {
				t.Fatalf("bucket counted %d bytes, want %d", b.Bytes(), total)
			}
		})
	}
}

func TestUnlimitedLinkIsTransparent(t *testing.T) {
	var l Link
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if l.Conn(a) != a {
		t.Fatal("unlimited link wrapped the conn")
	}
	if NewBucket(0) != nil || NewBucket(0).Bytes() != 0 {
		t.Fatal("zero rate must be unlimited")
	}
}

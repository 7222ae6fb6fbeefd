package edge

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendHeadAndFile sends head, then n bytes of hf's file from off with
// sendfile(2), on c; the headers go with MSG_MORE so that they leave in
// the body's first segment. It declines (false, nil) before sending
// anything when c is not a TCP connection or the file is no longer the one
// whose data was checked (anything written to it through the file system
// changes its identity): the caller sends its memory copy instead.
// Explicit offsets: many responses share one descriptor.
func sendHeadAndFile(c net.Conn, head []byte, hf *hotFile, off, n int64) (bool, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false, nil
	}
	src, err := hf.f.SyscallConn()
	if err != nil {
		return false, nil
	}
	dst, err := tc.SyscallConn()
	if err != nil {
		return false, nil
	}
	var serr, werr error
	declined := true // until the file is found unchanged
	rerr := src.Control(func(in uintptr) {
		var st unix.Stat_t
		if err := unix.Fstat(int(in), &st); err != nil || !sameFile(hf.id, &st) {
			return
		}
		declined = false
		end := off + n
		werr = dst.Write(func(out uintptr) bool {
			var wait bool
			if head, wait, serr = sendMore(int(out), head); wait || serr != nil {
				return !wait
			}
			for off < end {
				k, err := unix.Sendfile(int(out), int(in), &off, int(min(end-off, 1<<30)))
				switch {
				case errors.Is(err, unix.EAGAIN):
					return false
				case errors.Is(err, unix.EINTR):
				case err != nil:
					serr = err
					return true
				case k == 0:
					serr = syscall.EIO // the file ended early
					return true
				}
			}
			return true
		})
	})
	if declined {
		return false, nil
	}
	return true, errors.Join(serr, werr, rerr)
}

// sameFile reports whether st is still the file of identity id.
func sameFile(id fileID, st *unix.Stat_t) bool {
	return id.dev == uint64(st.Dev) && id.ino == st.Ino && id.size == st.Size &&
		id.mtime.Sec == st.Mtim.Sec && id.mtime.Nsec == st.Mtim.Nsec &&
		id.ctime.Sec == st.Ctim.Sec && id.ctime.Nsec == st.Ctim.Nsec
}

// writeMore writes b to c with MSG_MORE (on a TCP connection): the kernel
// holds a partial segment for what the caller sends next.
func writeMore(c net.Conn, b []byte) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		_, err := c.Write(b)
		return err
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		_, err := c.Write(b)
		return err
	}
	var serr error
	werr := rc.Write(func(fd uintptr) bool {
		var wait bool
		b, wait, serr = sendMore(int(fd), b)
		return !wait
	})
	return errors.Join(serr, werr)
}

// sendMore sends b on socket fd with MSG_MORE until it is all sent (rest
// empty), the socket is full (wait: call again when writable, with rest),
// or an error.
func sendMore(fd int, b []byte) (rest []byte, wait bool, err error) {
	for len(b) > 0 {
		k, err := unix.SendmsgN(fd, b, nil, nil, unix.MSG_MORE)
		if k > 0 {
			b = b[k:]
		}
		switch {
		case errors.Is(err, unix.EAGAIN):
			return b, true, nil
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return b, false, err
		}
	}
	return b, false, nil
}

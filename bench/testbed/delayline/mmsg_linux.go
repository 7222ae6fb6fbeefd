package main

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgReader reads up to len(bufs) netlink datagrams with one recvmmsg(2)
// call (x/sys/unix has no wrapper): every packet the kernel queues to us is
// its own datagram, and a system call per packet is what costs most here.
type mmsgReader struct {
	bufs [][]byte
	iovs []unix.Iovec
	hdrs []mmsghdr
}

// mmsghdr is struct mmsghdr: a msghdr and the received length.
type mmsghdr struct {
	Hdr unix.Msghdr
	Len uint32
	_   [4]byte
}

func newMmsgReader(n, size int) *mmsgReader {
	r := &mmsgReader{bufs: make([][]byte, n), iovs: make([]unix.Iovec, n), hdrs: make([]mmsghdr, n)}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
	}
	return r
}

// read returns how many datagrams arrived (0 and EAGAIN when none); datagram
// i is r.bufs[i][:r.hdrs[i].Len].
func (r *mmsgReader) read(fd int) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.hdrs[0])),
		uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func (r *mmsgReader) msg(i int) []byte { return r.bufs[i][:r.hdrs[i].Len] }

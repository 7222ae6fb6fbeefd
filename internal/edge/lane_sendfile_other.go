//go:build !linux

package edge

import "net"

// sendHeadAndFile declines where sendfile with an explicit offset is not
// wired up: the lane sends the memory copy.
func sendHeadAndFile(net.Conn, []byte, *hotFile, int64, int64) (bool, error) { return false, nil }

// writeMore is a plain write here.
func writeMore(c net.Conn, b []byte) error {
	_, err := c.Write(b)
	return err
}

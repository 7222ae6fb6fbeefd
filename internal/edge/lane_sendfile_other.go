//go:build !linux

package edge

import "net"

// sendHeadAndFile declines where sendfile with an explicit offset is not
// wired up: the lane sends the memory copy.
func sendHeadAndFile(net.Conn, []byte, *hotFile, int64, int64) (bool, error) { return false, nil }

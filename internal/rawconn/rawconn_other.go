//go:build !linux

package rawconn

import "net"

// Wrap returns c: off Linux, connections keep net's reads and writes.
func Wrap(c net.Conn) net.Conn { return c }

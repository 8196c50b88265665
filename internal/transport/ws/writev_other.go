//go:build !linux

package ws

import "errors"

// fastWrites is false off Linux: every write goes through drain, with the net package's own
// (blocking) writes.
const fastWrites = false

type iovecs = struct{}

// writeNow is never called: without fastWrites no connection has a raw socket.
func (c *Conn) writeNow(*shard) (int, error) {
	return 0, errors.New("ws: no non-blocking writes on this system")
}

package mqtt

import (
	"bufio"
	"net"
	"sync"
)

// readBuffer is how much of what the broker sent a connection reads at once.
const readBuffer = 32 << 10

// packetConn is the connection as paho reads and writes it, with fewer system calls.
//
// paho reads a packet in three reads or more (its first byte, each byte of its length, the
// rest), one goroutine at a time (the handshake's, then the reader's): packetConn's reads are
// buffered, so that one system call reads many packets.
//
// paho writes one packet at a time, under the lock (packetConn is a sync.Locker, which paho takes
// around each packet, as it does packets.NewThreadSafeConn's), in pieces: the fixed header, then
// each part of the rest. Written as they come, each piece would be a system call and a TCP
// segment of its own (three for an acknowledgement); net writes a *net.TCPConn's pieces with one
// writev, which paho cannot use through a wrapper. So packetConn gathers a packet's pieces,
// knowing its length from its fixed header, and writes the packet at once when its last piece
// comes, which then reports the write's error.
type packetConn struct {
	net.Conn
	sync.Mutex // held by paho over the writes of one packet

	r *bufio.Reader // used by one goroutine at a time

	buf  []byte // the pieces of the packet being written, the fixed header first
	size int    // its whole length, once buf holds its fixed header; 0 before
}

// newPacketConn wraps c for paho.
func newPacketConn(c net.Conn) *packetConn {
	return &packetConn{Conn: c, r: bufio.NewReaderSize(c, readBuffer)}
}

// Read reads what the broker sent, through the buffer.
func (c *packetConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write takes one piece of a packet, and writes the packet when p completes it.
func (c *packetConn) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	if c.size == 0 {
		n, ok := packetSize(c.buf)
		if !ok {
			return len(p), nil // the fixed header is not all here yet
		}
		c.size = n
	}
	if len(c.buf) < c.size {
		return len(p), nil
	}
	// A packet longer than its header says (which paho does not write) goes out whole.
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > 64<<10 {
		c.buf = nil // a large packet's buffer is not kept for the small ones
	} else {
		c.buf = c.buf[:0]
	}
	c.size = 0
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// packetSize reads the length of the packet that b begins with from its fixed header: a byte of
// type and flags, then the remaining length as a variable byte integer of 1 to 4 bytes. It
// reports false while b holds less than the header, and for a malformed one the length of
// what b holds, so that it is written as it is.
func packetSize(b []byte) (int, bool) {
	remaining, shift := 0, 0
	for i := 1; i < len(b); i++ {
		remaining |= int(b[i]&0x7f) << shift
		if b[i]&0x80 == 0 {
			return i + 1 + remaining, true
		}
		if shift += 7; shift > 21 {
			return len(b), true
		}
	}
	return 0, false
}

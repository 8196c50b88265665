package rawconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Wrap returns a TCP connection whose Read and Write are raw system calls; any other connection
// is returned as it is.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	rw := &conn{TCPConn: tc, raw: rc}
	// Built once: a closure made per call would escape to the heap, two allocations a call.
	rw.rd.fn, rw.wr.fn = rw.rd.read, rw.wr.write
	return rw
}

type conn struct {
	*net.TCPConn
	raw    syscall.RawConn
	rd, wr call // the read and the write under way
}

// call is one direction's system call: its buffer and outcome, under its mutex.
type call struct {
	mu    sync.Mutex
	fn    func(fd uintptr) bool // read or write, for RawConn
	buf   []byte
	n     int
	errno syscall.Errno
}

// maxRW bounds one read system call's bytes, as net's own calls do.
const maxRW = 1 << 30

// rawWriteMax is the largest Write made with raw system calls. A raw call holds its P, which
// no stop-the-world can take while the kernel copies, so a larger Write, which may take many
// calls while the peer keeps up, goes through net's own; it costs far more than the monitor's
// wake-up that net's bookkeeping brings.
const rawWriteMax = 64 << 10

// Read reads up to len(p) bytes, waiting for them with the runtime's poller.
func (c *conn) Read(p []byte) (int, error) {
	r := &c.rd
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf, r.n, r.errno = p[:min(len(p), maxRW)], 0, 0
	err := c.raw.Read(r.fn)
	n, errno := r.n, r.errno
	r.buf = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// read is the RawConn callback of Read: one read of the socket, which does not block, so the
// call need not tell the scheduler it might. It reports false to wait for data.
func (r *call) read(fd uintptr) bool {
	if len(r.buf) == 0 {
		return true // nothing to read into: the RawConn checked that the socket is open
	}
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // the poller waits for data, or for the deadline
		case 0:
			raceRead(fd, r.buf[:n])
		}
		r.n, r.errno = int(n), e
		return true
	}
}

// Write writes all of p, waiting with the runtime's poller while the socket is full.
func (c *conn) Write(p []byte) (int, error) {
	if len(p) > rawWriteMax {
		return c.TCPConn.Write(p)
	}
	w := &c.wr
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf, w.n, w.errno = p, 0, 0
	err := c.raw.Write(w.fn)
	n, errno := w.n, w.errno
	w.buf = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// write is the RawConn callback of Write: raw writes until the buffer is written, the socket is
// full (false: the poller waits for room) or a write fails.
func (w *call) write(fd uintptr) bool {
	for w.n < len(w.buf) {
		p := w.buf[w.n:]
		RaceWritev(fd, [][]byte{p})
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			w.n += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			w.errno = e
			return true
		}
	}
	return true
}

// opError is err as net's own Read and Write report it: a *net.OpError named for op (RawConn's
// own errors say "raw-read" and "raw-write").
func (c *conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

package ws

import (
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/streamux/streamux/internal/rawconn"
)

// fastWrites says that the shards can write a socket without waiting (Linux: writev through
// the socket's file descriptor). Elsewhere every write goes through drain.
const fastWrites = true

// iovecs is a shard's scratch for one writev.
type iovecs = []unix.Iovec

// writeNow writes c.bufs with one writev that does not wait; it returns how much the socket
// took, 0 if it was full (or, which a call that does not wait should never be, interrupted).
func (c *Conn) writeNow(s *shard) (int, error) {
	s.iov = s.iov[:0]
	for _, b := range c.w.bufs {
		var v unix.Iovec
		v.Base = &b[0]
		v.SetLen(len(b))
		s.iov = append(s.iov, v)
	}
	var n int
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		// The socket does not block (the runtime's poller set it so), so the call need not
		// tell the scheduler it might: RawSyscall spares the bookkeeping, and the wake-ups of
		// sysmon it brings, on every write.
		rawconn.RaceWritev(fd, c.w.bufs)
		r, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&s.iov[0])), uintptr(len(s.iov)))
		n, errno = int(r), e
		return true // never wait here: a full socket is drain's
	})
	clear(s.iov)
	switch {
	case err != nil:
		return 0, err
	case errors.Is(errno, unix.EAGAIN), errors.Is(errno, unix.EINTR):
		return 0, nil // drain writes it, waiting as it must
	case errno != 0:
		return 0, errno
	}
	return n, nil
}

//go:build linux

package bench

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// A reactor reads many clients from one goroutine with its own epoll set (level-triggered):
// one epoll_wait for all the sockets that are ready, then one read each. Go's netpoller costs
// a goroutine wake-up and a second, failing read per frame; with a thousand clients sharing
// two cores with the server, that doubled the load generator's CPU. Frames are parsed straight
// out of the reactor's one buffer; a client keeps only the bytes of an incomplete frame.
type reactor struct {
	epfd   int
	ping   time.Duration // how often each client pings the server; 0: never
	stop   atomic.Bool
	exited chan struct{}

	mu      sync.Mutex // guards clients and every client's reading state
	clients map[int]*client
	buf     []byte
}

// reactors spreads clients over a few reactors, one per core.
type reactors []*reactor

func newReactors(ping time.Duration) (reactors, error) {
	var rs reactors
	for range max(runtime.GOMAXPROCS(0), 1) {
		re, err := newReactor(ping)
		if err != nil {
			rs.close()
			return nil, err
		}
		rs = append(rs, re)
	}
	return rs, nil
}

func (rs reactors) add(c *client) error { return rs[c.id%len(rs)].add(c) }

// close stops every reactor and waits for it; the clients must have been closed already.
func (rs reactors) close() {
	for _, re := range rs {
		re.close()
	}
}

func newReactor(ping time.Duration) (*reactor, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	re := &reactor{epfd: epfd, ping: ping, exited: make(chan struct{}), clients: map[int]*client{}, buf: make([]byte, 64<<10)}
	go re.loop() // close waits for it
	return re, nil
}

// add starts reading c; what its handshake already buffered is recorded at once.
func (re *reactor) add(c *client) error {
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return errors.New("reactor: not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	// The reactor reads a duplicate of the socket's descriptor, and the net.Conn is closed:
	// otherwise Go's own netpoller, which has the socket in its edge-triggered set, would be
	// woken for every frame too, for nothing.
	var derr error
	if err := rc.Control(func(fd uintptr) { c.fd, derr = syscall.Dup(int(fd)) }); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("reactor: dup: %w", derr)
	}
	syscall.CloseOnExec(c.fd)
	_ = c.conn.Close()
	re.mu.Lock()
	defer re.mu.Unlock()
	c.re = re
	re.clients[c.fd] = c
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(re.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		delete(re.clients, c.fd)
		syscall.Close(c.fd)
		c.finish()
		return fmt.Errorf("epoll add: %w", err)
	}
	if len(c.partial) > 0 {
		rest, closed := c.frames(c.partial, time.Now().UnixNano())
		c.partial = append([]byte(nil), rest...)
		if closed {
			re.drop(c)
		}
	}
	return nil
}

// drop stops reading c, closes its socket and ends it; re.mu is held. Taking the descriptor
// out of the epoll set before closing it means a reused descriptor number is never read for c.
func (re *reactor) drop(c *client) {
	if re.clients[c.fd] != c {
		return
	}
	_ = syscall.EpollCtl(re.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	delete(re.clients, c.fd)
	syscall.Close(c.fd)
	c.finish()
}

func (re *reactor) loop() {
	defer close(re.exited)
	events := make([]syscall.EpollEvent, 256)
	lastPing := time.Now()
	for !re.stop.Load() {
		if re.ping > 0 && time.Since(lastPing) >= re.ping {
			lastPing = time.Now()
			re.mu.Lock()
			for _, c := range re.clients {
				c.write(ws.MaskFrameInPlace(ws.NewPingFrame(nil)))
			}
			re.mu.Unlock()
		}
		n, err := syscall.EpollWait(re.epfd, events, 100)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		if n <= 0 {
			continue
		}
		re.mu.Lock()
		for _, ev := range events[:n] {
			if c := re.clients[int(ev.Fd)]; c != nil {
				re.readable(c)
			}
		}
		re.mu.Unlock()
	}
}

// readable reads c once (the set is level-triggered: what is left is reported again) and
// records the frames read; re.mu is held.
func (re *reactor) readable(c *client) {
	if need := len(c.partial) + 16<<10; need > len(re.buf) {
		re.buf = make([]byte, 2*need)
	}
	k := copy(re.buf, c.partial)
	n, err := syscall.Read(c.fd, re.buf[k:])
	if n <= 0 {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			return
		}
		c.cut.Store(true)
		re.drop(c) // end of stream, or the connection failed
		return
	}
	rest, closed := c.frames(re.buf[:k+n], time.Now().UnixNano())
	c.partial = append(c.partial[:0], rest...)
	if closed {
		re.drop(c)
	}
}

// write sends one small frame on c's socket, which is non-blocking: a control frame fits
// unless the server stopped reading, so a few retries are enough.
func (re *reactor) write(c *client, b []byte) {
	for tries := 0; len(b) > 0 && tries < 100; tries++ {
		n, err := syscall.Write(c.fd, b)
		if n > 0 {
			b = b[n:]
		}
		if err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR) {
			return
		}
		if len(b) > 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

// rcvbufControl shrinks a socket's receive buffer before it connects.
func rcvbufControl(n int) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		})
		return errors.Join(err, serr)
	}
}

// selfCPU is this process's CPU time, user and system.
func selfCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

func (re *reactor) close() {
	re.stop.Store(true)
	<-re.exited
	re.mu.Lock()
	for _, c := range re.clients {
		re.drop(c)
	}
	re.mu.Unlock()
	syscall.Close(re.epfd)
}

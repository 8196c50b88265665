package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// The client is the same for every server, and lean, since it shares the two cores with the
// server measured: gobwas/ws does the handshake, then a few epoll loops (one per core) read every
// socket, one read system call per ready socket, take the time once per read, and parse the
// frames in place. Every text frame is counted, and its latency is taken from the "ts" field of
// its payload (when the event was due to be published, in Unix nanoseconds, on this machine's
// clock).

// The latency histogram is log-linear over nanoseconds: exact below 64 ns, then 32 buckets per
// power of two (at most about 3% off).
const (
	histSub     = 32
	histBuckets = 2 * histSub * 31
)

func bucketOf(ns int64) int {
	if ns < 2*histSub {
		return int(max(ns, 0))
	}
	e := bits.Len64(uint64(ns)) - 6 // ns>>e is in [32, 64)
	return min((e+1)*histSub+int(uint64(ns)>>e)-histSub, histBuckets-1)
}

// bucketValue is the middle of bucket i, in nanoseconds.
func bucketValue(i int) float64 {
	if i < 2*histSub {
		return float64(i)
	}
	e := i/histSub - 1
	lo := uint64(i%histSub+histSub) << e
	return float64(lo) + float64(uint64(1)<<e)/2
}

// counts is what a set of clients received: frames, and a histogram of their latencies. The
// live counts are written by one reactor goroutine and read by the runner at any time.
type counts struct {
	frames atomic.Uint64
	closed atomic.Uint64 // connections that ended
	hist   [histBuckets]atomic.Uint64
}

// snapshot is a copy of counts, or the difference of two.
type snapshot struct {
	frames, closed uint64
	hist           []uint64
}

func (c *counts) snapshot() snapshot {
	s := snapshot{frames: c.frames.Load(), closed: c.closed.Load(), hist: make([]uint64, histBuckets)}
	for i := range s.hist {
		s.hist[i] = c.hist[i].Load()
	}
	return s
}

// add adds o to s.
func (s *snapshot) add(o snapshot) {
	if s.hist == nil {
		s.hist = make([]uint64, histBuckets)
	}
	s.frames += o.frames
	s.closed += o.closed
	for i, v := range o.hist {
		s.hist[i] += v
	}
}

// minus is s less an earlier snapshot b.
func (s snapshot) minus(b snapshot) snapshot {
	d := snapshot{frames: s.frames - b.frames, closed: s.closed - b.closed, hist: make([]uint64, histBuckets)}
	for i := range d.hist {
		d.hist[i] = s.hist[i] - b.hist[i]
	}
	return d
}

// quantile returns the q-quantile of the latencies, in nanoseconds.
func (s snapshot) quantile(q float64) float64 {
	var n uint64
	for _, v := range s.hist {
		n += v
	}
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	var seen uint64
	for i, v := range s.hist {
		seen += v
		if seen > rank {
			return bucketValue(i)
		}
	}
	return bucketValue(histBuckets - 1)
}

// max is the largest latency, in nanoseconds (the middle of its bucket).
func (s snapshot) max() float64 {
	for i := len(s.hist) - 1; i >= 0; i-- {
		if s.hist[i] > 0 {
			return bucketValue(i)
		}
	}
	return 0
}

// client is one connection, read by a reactor.
type client struct {
	fd      int
	partial []byte // an incomplete frame, kept until the rest is read
	counts  *counts
}

// reactor reads many clients from one goroutine with its own level-triggered epoll set.
type reactor struct {
	epfd   int
	stop   atomic.Bool
	exited chan struct{}
	counts []*counts // by server: this reactor's share of each server's clients

	mu      sync.Mutex // guards clients and their reading state
	clients map[int]*client
	buf     []byte
}

// reactors spreads clients over one reactor per core.
type reactors []*reactor

func newReactors(servers int) (reactors, error) {
	var rs reactors
	for range max(runtime.GOMAXPROCS(0), 1) {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			rs.close()
			return nil, fmt.Errorf("epoll: %w", err)
		}
		re := &reactor{epfd: epfd, exited: make(chan struct{}), clients: map[int]*client{}, buf: make([]byte, 256<<10)}
		for range servers {
			re.counts = append(re.counts, &counts{})
		}
		go re.loop() // close waits for it
		rs = append(rs, re)
	}
	return rs, nil
}

// snapshot sums server i's counts over the reactors.
func (rs reactors) snapshot(i int) snapshot {
	var s snapshot
	for _, re := range rs {
		s.add(re.counts[i].snapshot())
	}
	return s
}

// close stops the reactors and closes every client.
func (rs reactors) close() {
	for _, re := range rs {
		re.stop.Store(true)
		<-re.exited
		re.mu.Lock()
		for fd := range re.clients {
			_ = syscall.Close(fd)
		}
		clear(re.clients)
		re.mu.Unlock()
		_ = syscall.Close(re.epfd)
	}
}

// dial opens a WebSocket to url and hands it to reactor n%len(rs), counting for server srv.
func (rs reactors) dial(ctx context.Context, url string, n, srv int) error {
	d := ws.Dialer{Timeout: 10 * time.Second}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return err
	}
	var pending []byte
	if br != nil {
		if k := br.Buffered(); k > 0 {
			p, _ := br.Peek(k)
			pending = bytes.Clone(p)
		}
		ws.PutReader(br)
	}
	re := rs[n%len(rs)]
	return re.add(conn, pending, re.counts[srv])
}

// add starts reading conn. The reactor reads a duplicate of the socket's descriptor and the
// net.Conn is closed, so that Go's netpoller is not woken for every frame too.
func (re *reactor) add(conn net.Conn, pending []byte, cn *counts) error {
	defer conn.Close()
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = syscall.Dup(int(s)) }); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("dup: %w", derr)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return err
	}
	c := &client{fd: fd, counts: cn}
	re.mu.Lock()
	defer re.mu.Unlock()
	re.clients[fd] = c
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if err := syscall.EpollCtl(re.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		delete(re.clients, fd)
		_ = syscall.Close(fd)
		return fmt.Errorf("epoll add: %w", err)
	}
	if len(pending) > 0 {
		c.partial = c.frames(pending, time.Now().UnixNano())
	}
	return nil
}

func (re *reactor) loop() {
	defer close(re.exited)
	events := make([]syscall.EpollEvent, 256)
	for !re.stop.Load() {
		n, err := syscall.EpollWait(re.epfd, events, 100)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		re.mu.Lock()
		for _, ev := range events[:max(n, 0)] {
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
	if need := len(c.partial) + 64<<10; need > len(re.buf) {
		re.buf = make([]byte, 2*need)
	}
	k := copy(re.buf, c.partial)
	n, err := syscall.Read(c.fd, re.buf[k:])
	if n <= 0 {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			return
		}
		// End of stream, or the connection failed.
		_ = syscall.EpollCtl(re.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
		delete(re.clients, c.fd)
		_ = syscall.Close(c.fd)
		c.counts.closed.Add(1)
		return
	}
	rest := c.frames(re.buf[:k+n], time.Now().UnixNano())
	c.partial = append(c.partial[:0], rest...)
}

var tsField = []byte(`"ts":`)

// frames records every complete frame in b, read at now (Unix nanoseconds), and returns the
// bytes of an incomplete last frame.
func (c *client) frames(b []byte, now int64) []byte {
	var frames uint64
loop:
	for len(b) >= 2 {
		fin, op := b[0]&0x80 != 0, ws.OpCode(b[0]&0x0f)
		hl, l := 2, uint64(b[1]&0x7f)
		switch {
		case l == 126 && len(b) >= 4:
			hl, l = 4, uint64(binary.BigEndian.Uint16(b[2:]))
		case l == 127 && len(b) >= 10:
			hl, l = 10, binary.BigEndian.Uint64(b[2:])
		case l >= 126:
			break loop // incomplete header
		}
		if uint64(len(b)) < uint64(hl)+l {
			break loop // incomplete payload
		}
		p := b[hl : hl+int(l)]
		b = b[hl+int(l):]
		// A message is a text frame with FIN set, or the last continuation of a fragmented
		// one (none of these servers fragments a 200-byte message).
		if !fin || (op != ws.OpText && op != ws.OpContinuation) {
			continue
		}
		frames++
		if i := bytes.Index(p, tsField); i >= 0 && op == ws.OpText {
			var ts int64
			for _, ch := range p[i+len(tsField):] {
				if ch < '0' || ch > '9' {
					break
				}
				ts = ts*10 + int64(ch-'0')
			}
			c.counts.hist[bucketOf(now-ts)].Add(1)
		}
	}
	if frames > 0 {
		c.counts.frames.Add(frames)
	}
	return b
}

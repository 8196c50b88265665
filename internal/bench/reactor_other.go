//go:build !linux

package bench

import (
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// Without epoll, each client has its own reader goroutine on Go's netpoller: about twice the
// load generator's CPU per frame, so figures from such a machine are not comparable with
// BENCHMARKS.md's. The reactor only keeps the clients for the pings and waits for the readers.
type reactor struct {
	ping time.Duration
	mu   sync.Mutex // guards clients
	// clients are the ones being read, for the pings.
	clients map[*client]struct{}
	readers sync.WaitGroup
	stop    chan struct{}
	pinger  sync.WaitGroup
}

type reactors []*reactor

func newReactors(ping time.Duration) (reactors, error) {
	re := &reactor{ping: ping, clients: map[*client]struct{}{}, stop: make(chan struct{})}
	if ping > 0 {
		re.pinger.Add(1)
		go re.pings() // close waits for it
	}
	return reactors{re}, nil
}

func (rs reactors) add(c *client) error { return rs[0].add(c) }

func (rs reactors) close() { rs[0].close() }

// add starts c's reader goroutine. c.re stays nil: the client writes and closes through its
// net.Conn.
func (re *reactor) add(c *client) error {
	re.mu.Lock()
	re.clients[c] = struct{}{}
	re.mu.Unlock()
	re.readers.Add(1)
	go re.read(c) // close waits for it
	return nil
}

func (re *reactor) read(c *client) {
	defer re.readers.Done()
	defer func() {
		re.mu.Lock()
		delete(re.clients, c)
		re.mu.Unlock()
		_ = c.conn.Close()
		c.finish()
	}()
	buf := make([]byte, max(16<<10, 2*len(c.partial)))
	w := copy(buf, c.partial)
	c.partial = nil
	for {
		rest, closed := c.frames(buf[:w], time.Now().UnixNano())
		if closed {
			return
		}
		w = copy(buf, rest)
		if w > len(buf)/2 {
			nb := make([]byte, 2*len(buf))
			copy(nb, buf[:w])
			buf = nb
		}
		n, err := c.conn.Read(buf[w:])
		if err != nil {
			if !c.leaving.Load() {
				c.cut.Store(true)
			}
			return
		}
		w += n
	}
}

func (re *reactor) pings() {
	defer re.pinger.Done()
	t := time.NewTicker(re.ping)
	defer t.Stop()
	for {
		select {
		case <-re.stop:
			return
		case <-t.C:
		}
		re.mu.Lock()
		for c := range re.clients {
			c.write(ws.MaskFrameInPlace(ws.NewPingFrame(nil)))
		}
		re.mu.Unlock()
	}
}

// drop is never needed: a client of this reactor closes its net.Conn, which ends its reader.
func (re *reactor) drop(*client) {}

// write is never called: c.re is nil, so the client writes through its net.Conn.
func (re *reactor) write(*client, []byte) {}

func (re *reactor) close() {
	close(re.stop)
	re.pinger.Wait()
	re.readers.Wait()
}

// rcvbufControl would shrink a socket's receive buffer; here the buffer is left as it is, and
// the slow scenario's client takes longer to fill.
func rcvbufControl(int) func(network, address string, c syscall.RawConn) error { return nil }

// selfCPU is not known without getrusage; procStat has no /proc here either.
func selfCPU() (time.Duration, bool) { return 0, false }

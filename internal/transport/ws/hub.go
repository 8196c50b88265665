package ws

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/streamux/streamux/internal/transport"
)

// ErrHubClosed is returned by Serve once the hub is closed.
var ErrHubClosed = errors.New("ws: hub closed")

// Hub writes the WebSocket streams of one server. It has one writer goroutine per core (a
// shard); each connection belongs to one shard, which writes what the connection's output
// queues with non-blocking writev calls, many connections per wake-up. A connection whose
// socket is full (or that is not a plain TCP socket, such as TLS) is handed to a goroutine of
// its own until it has caught up, so a slow client never holds a shard. The shards also send
// every connection's pings.
//
// The shards start with the first connection and stop at Close, which must come after every
// stream has ended.
type Hub struct {
	// Set by NewHub, read-only after.
	heartbeat    time.Duration
	delay        time.Duration
	scan         time.Duration
	writeTimeout time.Duration // of the handshake
	shards       []*shard

	// wg counts the shards' goroutines; Close waits for them.
	wg sync.WaitGroup

	mu      sync.Mutex // guards the fields below; taken before a shard's (locksordering.txt)
	next    int        // the shard of the next connection
	started bool
	closed  bool
	cancel  context.CancelFunc
}

// NewHub returns a hub for streams with opt's Heartbeat and WriteDelay.
func NewHub(opt transport.Options) *Hub {
	opt = opt.WithDefaults()
	h := &Hub{heartbeat: opt.Heartbeat, delay: opt.WriteDelay, scan: min(max(opt.Heartbeat/4, 10*time.Millisecond), time.Second), writeTimeout: opt.WriteTimeout}
	for range runtime.GOMAXPROCS(0) {
		h.shards = append(h.shards, &shard{hub: h, wake: make(chan struct{}, 1), members: map[*Conn]time.Time{}})
	}
	return h
}

// join adds c to a shard, starting the shards with the first connection.
func (h *Hub) join(c *Conn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrHubClosed
	}
	if !h.started {
		h.started = true
		ctx, cancel := context.WithCancel(context.Background())
		h.cancel = cancel
		for _, s := range h.shards {
			h.wg.Go(func() { s.run(ctx) }) // until Close, which waits for it
		}
	}
	s := h.shards[h.next%len(h.shards)]
	h.next++
	c.shard = s // before the connection is shared: Serve's SetNotify comes after
	s.mu.Lock()
	s.members[c] = time.Now()
	s.peak = max(s.peak, len(s.members))
	s.mu.Unlock()
	return nil
}

// Cut closes every connection: their streams then end at once, whatever they were waiting for.
func (h *Hub) Cut() {
	var conns []net.Conn
	for _, s := range h.shards {
		s.mu.Lock()
		for c := range s.members {
			conns = append(conns, c.nc)
		}
		s.mu.Unlock()
	}
	// Outside the shards' locks, which the routers take to queue: a TLS Close may write.
	for _, nc := range conns {
		nc.Close()
	}
}

// Close stops the shards and waits for them. Streams still open then are written by their
// connections' own goroutines.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	if h.cancel != nil {
		h.cancel()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// shard is one writer goroutine and the connections it writes.
type shard struct {
	// Set by NewHub, read-only after.
	hub  *Hub
	wake chan struct{} // one token: the queue has become non-empty

	mu      sync.Mutex          // guards the fields below; taken after the hub's, with no Conn.mu held
	queue   []*Conn             // connections with something to write, each once (state queued)
	members map[*Conn]time.Time // every connection of the shard, and when it was last sent a ping
	peak    int                 // the most members since the map was last made
	stopped bool                // the hub is closed: connections are written by goroutines of their own

	// The shard goroutine's own: no lock.
	iov  iovecs
	work []*Conn
	due  []*Conn
}

// enqueue puts c on the shard's queue; c's state has just become queued.
func (s *shard) enqueue(c *Conn) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		c.drainQueued()
		return
	}
	s.queue = append(s.queue, c)
	first := len(s.queue) == 1
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *shard) leave(c *Conn) {
	s.mu.Lock()
	delete(s.members, c)
	if n := len(s.members); s.peak >= shrinkFrom && n < s.peak/4 {
		// A Go map keeps its size after deletes (and through maps.Clone): once a crowd has
		// left, copy the members to a map of their size.
		m := make(map[*Conn]time.Time, n)
		for k, v := range s.members {
			m[k] = v
		}
		s.members, s.peak = m, n
	}
	s.mu.Unlock()
}

// shrinkFrom is the crowd of members whose departure makes a shard's map anew.
const shrinkFrom = 1024

// run writes the queued connections each time it is woken, and sends pings on time, until ctx
// is done. With a write delay, rounds of writes begin at most once per delay: the first event
// after a quiet spell goes out at once, and what is queued while a round waits joins it, so an
// event waits at most the delay (and its turn in the round) and a connection is written at most
// once per delay.
func (s *shard) run(ctx context.Context) {
	scan := time.NewTicker(s.hub.scan)
	defer scan.Stop()
	var window *time.Timer
	if s.hub.delay > 0 {
		window = time.NewTimer(s.hub.delay)
		window.Stop()
	}
	var last time.Time // when the last round began
	for {
		select {
		case <-s.wake:
			if window == nil {
				break
			}
			if wait := s.hub.delay - time.Since(last); wait > 0 {
				window.Reset(wait)
				select {
				case <-window.C:
				case <-ctx.Done():
					s.stop()
					return
				}
			}
			last = time.Now()
		case now := <-scan.C:
			s.ping(now) // queues the connections, which wakes this loop as events do
			continue
		case <-ctx.Done():
			s.stop()
			return
		}
		s.mu.Lock()
		s.work, s.queue = s.queue, s.work[:0]
		s.mu.Unlock()
		for i, c := range s.work {
			c.flush(s)
			s.work[i] = nil
		}
	}
}

// stop hands what is queued, and all that comes later, to the connections' own goroutines, so
// that a stream still open when the hub closes can end.
func (s *shard) stop() {
	s.mu.Lock()
	s.stopped = true
	queue := s.queue
	s.queue = nil
	s.mu.Unlock()
	for _, c := range queue {
		c.drainQueued()
	}
}

// ping asks for a ping on every connection that has not had one for a heartbeat, busy or not:
// a client that only listens proves it is alive by its pongs.
func (s *shard) ping(now time.Time) {
	s.mu.Lock()
	for c, last := range s.members {
		if now.Sub(last) >= s.hub.heartbeat {
			s.members[c] = now
			s.due = append(s.due, c)
		}
	}
	s.mu.Unlock()
	for i, c := range s.due {
		c.requestPing()
		s.due[i] = nil
	}
	s.due = s.due[:0]
}

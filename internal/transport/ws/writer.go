package ws

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/gobwas/ws"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/poison"
	"github.com/streamux/streamux/internal/stream"
)

// The writing of a connection. Exactly one goroutine holds it at a time, and the state says
// which; a goroutine takes or hands it over only under Conn.mu.
//
//	idle ──schedule──▶ queued ──shard's flush──▶ writing ──all written, nothing more──▶ idle
//	                     │  ▲                      │  └──more queued meanwhile──▶ queued (behind the others)
//	                     │  └──────────────────────┘
//	                     │                          └──the socket took part of it──▶ draining
//	                     └──TLS socket, the stream ending, the hub stopped──▶ draining
//	draining ──caught up──▶ idle
//	draining, writing ──the stream has ended, or a write failed──▶ over
//
// idle and queued: no goroutine writes; schedule (from a router, the reader, a ping or the
// output's end) queues an idle connection on its shard, and a queued one waits for the shard.
// writing: the shard's goroutine writes, without waiting on the socket. draining: a goroutine of
// the connection's own (drain) writes, waiting on the socket within the write timeout; a new
// connection starts here, with its backlog. over: nothing is written any more; ended is closed.
type state uint8

const (
	idle state = iota
	queued
	writing
	draining
	over
)

// sched is what the connection's goroutines tell each other about its writing. Guarded by
// Conn.mu.
type sched struct {
	state    state
	again    bool        // something to write arrived while the connection was being written
	pong     []byte      // payload of a ping to answer
	pongDue  bool        // the reader asks for pong to be sent
	pingDue  bool        // the shard asks for a ping to be sent
	closeOut *closeFrame // the close frame the reader chose (an echo, 1009); it wins over the output's reason
}

// writer is what the goroutine that holds the writing lays out and writes: Conn.w, which only
// that goroutine touches.
type writer struct {
	backlog []*stream.Event // what remains of the session's backlog
	evs     []*stream.Event // the events of the write in progress
	more    bool            // events remain queued after evs
	replay  bool            // evs come from the backlog: delivered, but not live (no latency metric)
	bufs    [][]byte        // the frames of the write in progress
	pending net.Buffers     // what is left of bufs to write
	ctl     []byte          // a pong frame
	hdr     [10]byte        // the header of a frame of joined events
}

var errPeerClosed = errors.New("ws: client closed the connection")

// maxFrames bounds the frames of one writev, below the kernel's 1,024 (IOV_MAX).
const maxFrames = 1000

// schedule asks for the connection to be written: the output queued an event into an empty
// queue or ended, the reader has a pong to send, or a ping is due. It never blocks.
func (c *Conn) schedule() {
	c.mu.Lock()
	switch c.sched.state {
	case idle:
		c.sched.state = queued
		c.mu.Unlock()
		c.shard.enqueue(c)
		return
	case writing, draining:
		c.sched.again = true
	}
	c.mu.Unlock()
}

func (c *Conn) requestPing() {
	c.mu.Lock()
	c.sched.pingDue = true
	c.mu.Unlock()
	c.schedule()
}

// flush is the shard's turn at c: one non-blocking write of what is queued. A socket that takes
// less than all of it, an ending stream and a TLS connection go to drain.
func (c *Conn) flush(s *shard) {
	defer c.recoverWriter()
	c.mu.Lock()
	if c.sched.state != queued {
		c.mu.Unlock()
		return
	}
	if c.raw == nil || c.out.Err() != nil {
		c.mu.Unlock()
		c.drainQueued()
		return
	}
	c.sched.state = writing
	c.mu.Unlock()

	if c.collect() {
		n, err := c.writeNow(s)
		switch {
		case err != nil:
			c.fail(err)
			return
		case n < c.size():
			// The socket is full: the rest is written by a goroutine that can wait for it.
			c.w.pending = rest(c.w.bufs, n)
			c.mu.Lock()
			c.sched.state = draining
			c.mu.Unlock()
			c.writers.Go(c.drain) // as in Serve
			return
		}
		c.written()
	}
	c.mu.Lock()
	if c.sched.again || c.w.more {
		// More came meanwhile: back on the queue, behind the others, so that one busy
		// connection does not hold the shard.
		c.sched.again = false
		c.sched.state = queued
		c.mu.Unlock()
		s.enqueue(c)
		return
	}
	c.sched.state = idle
	c.mu.Unlock()
}

// drainQueued hands a queued connection to a goroutine of its own.
func (c *Conn) drainQueued() {
	c.mu.Lock()
	if c.sched.state != queued {
		c.mu.Unlock()
		return
	}
	c.sched.state = draining
	c.mu.Unlock()
	c.writers.Go(c.drain) // as in Serve
}

// rest is what remains of bufs once n bytes of them are written.
func rest(bufs [][]byte, n int) net.Buffers {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if n > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}

func (c *Conn) size() int {
	n := 0
	for _, b := range c.w.bufs {
		n += len(b)
	}
	return n
}

// drain writes with blocking writes, each within the write timeout, until nothing is left; the
// connection is then the shard's again. When the stream has ended it writes the close frame.
func (c *Conn) drain() {
	defer c.recoverWriter()
	for {
		if err := c.out.Err(); err != nil {
			c.finish(err)
			return
		}
		if len(c.w.pending) == 0 {
			if !c.collect() {
				// The shard's writes do not wait, but they would fail once this deadline passed.
				_ = c.nc.SetWriteDeadline(time.Time{})
				c.mu.Lock()
				if c.sched.again {
					c.sched.again = false
					c.mu.Unlock()
					continue
				}
				c.sched.state = idle
				c.mu.Unlock()
				return
			}
			c.w.pending = c.w.bufs
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout))
		if _, err := c.w.pending.WriteTo(c.nc); err != nil {
			c.fail(err)
			return
		}
		c.written()
		if c.hub.delay > 0 && c.raw != nil && len(c.w.backlog) == 0 {
			// The backlog and what filled the socket are written: what comes next is the
			// shard's, in its rounds, so that the write delay holds for this connection too.
			c.handBack()
			return
		}
	}
}

// handBack gives a drained connection back to its shard: queued if something waits to be
// written, idle otherwise.
func (c *Conn) handBack() {
	_ = c.nc.SetWriteDeadline(time.Time{})
	c.mu.Lock()
	if c.sched.again || c.w.more {
		c.sched.again = false
		c.sched.state = queued
		c.mu.Unlock()
		c.shard.enqueue(c)
		return
	}
	c.sched.state = idle
	c.mu.Unlock()
}

// collect lays out the next write in c.w.bufs: a pong and a ping if due, then the backlog or
// the queued events. It reports false when there is nothing to write.
func (c *Conn) collect() bool {
	c.mu.Lock()
	c.sched.again = false
	pongDue, pingDue, pong := c.sched.pongDue, c.sched.pingDue, c.sched.pong
	c.sched.pongDue, c.sched.pingDue = false, false
	c.mu.Unlock()

	w := &c.w
	w.bufs = w.bufs[:0]
	if pongDue {
		w.ctl = append(append(w.ctl[:0], 0x80|byte(ws.OpPong), byte(len(pong))), pong...)
		w.bufs = append(w.bufs, w.ctl)
	}
	if pingDue {
		w.bufs = append(w.bufs, ws.CompiledPing)
	}
	w.evs = w.evs[:0]
	if len(w.backlog) > 0 {
		n := min(len(w.backlog), c.opt.MaxBatch)
		w.evs = append(w.evs, w.backlog[:n]...)
		clear(w.backlog[:n])
		w.backlog = w.backlog[n:]
		w.more, w.replay = true, true
	} else {
		w.evs, w.more = c.out.Take(w.evs, c.opt.MaxBatch)
		w.replay = false
	}
	switch {
	case len(w.evs) == 0:
	case c.opt.Batch && len(w.evs) > 1:
		// One frame: the events' JSON, one per line.
		n := -1
		for _, ev := range w.evs {
			n += len(ev.Line())
		}
		w.bufs = append(w.bufs, w.header(n))
		for i, ev := range w.evs {
			if i == len(w.evs)-1 {
				w.bufs = append(w.bufs, ev.JSON())
			} else {
				w.bufs = append(w.bufs, ev.Line())
			}
		}
	default:
		for _, ev := range w.evs {
			w.bufs = append(w.bufs, ev.WSFrame())
		}
	}
	return len(w.bufs) > 0
}

// header is the header of an unmasked final text frame of n bytes.
func (w *writer) header(n int) []byte {
	h := w.hdr[:0]
	h = append(h, 0x80|byte(ws.OpText))
	switch {
	case n < 126:
		h = append(h, byte(n))
	case n < 1<<16:
		h = append(h, 126, byte(n>>8), byte(n))
	default:
		h = append(h, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return h
}

// written accounts for the events of a write that the kernel has taken whole.
func (c *Conn) written() {
	w := &c.w
	n, oldest := output.Messages(w.evs)
	c.out.CountDelivered(n)
	if c.opt.Written != nil && len(w.evs) > 0 && !w.replay {
		c.opt.Written(len(w.evs), oldest)
	}
	clear(w.evs) // let the events be collected once the history forgets them
	w.evs = w.evs[:0]
	clear(w.bufs)
	w.bufs = w.bufs[:0]
	// The kernel has all of the write: the next collect may lay out new frames in the pong
	// and header buffers. (The events' frames are shared and immutable: never poisoned.)
	poison.Bytes(w.ctl)
	poison.Bytes(w.hdr[:])
}

// finish ends the writing: it completes a frame cut short, writes the close frame that says why
// the stream ended, if there is one to write, and ends the connection. After a close frame it
// only shuts the connection's writing side and lets the reader take what the client still sends,
// up to its own close, for a while: closing a socket with unread data makes the kernel answer
// with a reset, which discards what the client has not read yet, close frame included.
func (c *Conn) finish(reason error) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout))
	_, err := c.w.pending.WriteTo(c.nc)
	if err == nil {
		c.written()
	}
	c.mu.Lock()
	cf := c.sched.closeOut
	c.mu.Unlock()
	if cf == nil {
		cf = closeFor(reason)
	}
	lingering := false
	if cf != nil && err == nil {
		err = ws.WriteFrame(c.nc, ws.NewCloseFrame(ws.NewCloseFrameBody(cf.code, cf.reason)))
		if hc, ok := c.nc.(interface{ CloseWrite() error }); ok && err == nil && hc.CloseWrite() == nil {
			until := time.Now().Add(min(c.opt.WriteTimeout, lingerMax))
			c.linger.Store(until.UnixNano())
			_ = c.nc.SetReadDeadline(until)
			lingering = true
		}
	}
	c.end(!lingering)
}

// lingerMax bounds how long a connection waits for the client's close after sending its own.
const lingerMax = 2 * time.Second

// fail ends the stream after a failed write.
func (c *Conn) fail(err error) {
	c.out.Close(fmt.Errorf("ws: write: %w", err))
	c.end(true)
}

// end ends the writing for good; closing the connection ends the reader too (Serve closes it
// otherwise, once the reader is done).
func (c *Conn) end(closeConn bool) {
	if closeConn {
		c.nc.Close()
	}
	clear(c.w.backlog)
	clear(c.w.evs)
	clear(c.w.bufs)
	c.w.pending = nil
	c.mu.Lock()
	c.sched.state = over
	c.mu.Unlock()
	close(c.ended)
}

// recoverWriter keeps a bug in writing one connection to that connection.
func (c *Conn) recoverWriter() {
	if p := recover(); p != nil {
		c.mu.Lock()
		over := c.sched.state == over
		c.mu.Unlock()
		if !over {
			c.fail(fmt.Errorf("panic: %v", p))
		}
	}
}

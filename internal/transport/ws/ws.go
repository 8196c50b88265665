// Package ws serves a subscription over WebSocket: one event per text frame, pings from the
// server, and close codes that say why a stream ended (4008 slow consumer, 4009 predicate too
// costly, 1001 shutdown).
//
// Each connection has one goroutine of its own, which reads the client's frames: it has pings
// answered, notices a close, and cuts a peer that has been silent for two heartbeats (it did not
// answer our pings). Writing is the Hub's: a few shared goroutines join every queued event's
// pre-encoded frame into one writev per connection, without waiting on any socket, and a
// connection that cannot keep up gets a writer goroutine of its own until it has caught up.
// Exactly one goroutine writes a connection at any time; its state, under its mutex, says which.
package ws

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/poison"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/transport"
)

// Close codes beyond RFC 6455's: API.md's, and streamux's own.
const (
	CloseSlowConsumer ws.StatusCode = 4008
	// ClosePredicateTooCostly: one evaluation of the stream's predicate went over its cost
	// limit. Reconnecting with the same predicate is cut again by the same kind of message.
	ClosePredicateTooCostly ws.StatusCode = 4009
)

// IsUpgrade reports whether r asks for a WebSocket.
func IsUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHas(r.Header, "Connection", "upgrade") && headerHas(r.Header, "Upgrade", "websocket")
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Upgrade completes the handshake. On failure the response has been written.
func Upgrade(w http.ResponseWriter, r *http.Request, opt transport.Options) (net.Conn, *bufio.Reader, error) {
	u := ws.HTTPUpgrader{Timeout: opt.WithDefaults().WriteTimeout}
	conn, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		return nil, nil, fmt.Errorf("ws: upgrade: %w", err)
	}
	return conn, rw.Reader, nil
}

// Serve streams out over nc, which Upgrade returned, until the output ends, the client closes
// or goes silent, or a write fails; it closes nc and returns why. The calling goroutine reads
// the client's frames; the hub writes.
func (h *Hub) Serve(nc net.Conn, br *bufio.Reader, out *output.Output, backlog []*stream.Event, opt transport.Options) error {
	opt = opt.WithDefaults()
	opt.MaxBatch = min(opt.MaxBatch, maxFrames)
	// The backlog is written first, by a writer goroutine of the connection's own (started
	// below); the hub takes over once it and what was queued meanwhile are written.
	c := &conn{nc: nc, out: out, opt: opt, backlog: backlog, ended: make(chan struct{}), state: draining}
	// A TLS connection is no syscall.Conn: its writes all go through drain.
	if sc, ok := nc.(syscall.Conn); ok && fastWrites {
		c.raw, _ = sc.SyscallConn()
	}
	if err := h.join(c); err != nil {
		nc.Close()
		return err
	}
	defer c.shard.leave(c)

	// Keep only what the handshake's reader already buffered, so that an idle connection does
	// not hold net/http's 4 KiB read buffer.
	var rd io.Reader = nc
	if n := br.Buffered(); n > 0 {
		pending, _ := br.Peek(n)
		rd = io.MultiReader(bytes.NewReader(bytes.Clone(pending)), nc)
	}

	go c.drain() // goes idle when done, or ends the stream by closing c.ended, waited for below
	out.SetNotify(c.schedule)

	reason := c.read(rd)
	out.Close(reason) // the first reason wins: the output may have ended first
	<-c.ended
	nc.Close()
	return out.Err()
}

// maxFrames bounds the frames of one writev, below the kernel's 1,024 (IOV_MAX).
const maxFrames = 1000

// state is where a connection's writing is.
type state uint8

const (
	// idle: nothing to write; the next event or request queues the connection on its shard.
	idle state = iota
	// queued on its shard, which will write it.
	queued
	// writing: its shard is writing it.
	writing
	// draining: a goroutine of its own writes it, with blocking writes: the socket was full,
	// it is not a plain TCP socket, or the stream is ending.
	draining
	// over: the stream has ended; nothing more is written.
	over
)

type conn struct {
	nc    net.Conn
	raw   syscall.RawConn // nil when the socket is not a plain one (TLS): it is then always drained
	out   *output.Output
	opt   transport.Options
	shard *shard
	ended chan struct{} // closed when the writing is over for good

	lastPing time.Time    // guarded by shard.mu
	linger   atomic.Int64 // once the close frame is sent: until when the reader waits for the client's (Unix ns)

	mu       sync.Mutex // guards the fields below, shared with the reader and the routers
	state    state
	again    bool   // something to write arrived while the connection was being written
	pong     []byte // payload of a ping to answer
	pongDue  bool
	pingDue  bool
	closeOut *closeFrame // the close frame the reader chose (an echo, 1009); it wins over the output's reason

	// The writer's own: whichever goroutine holds the writing (state writing or draining).
	backlog []*stream.Event
	evs     []*stream.Event // the events of the write in progress
	more    bool            // events remain queued after evs
	replay  bool            // evs come from the backlog: delivered, but not live (no latency metric)
	bufs    [][]byte        // the frames of the write in progress
	pending net.Buffers     // what is left of bufs to write
	ctl     []byte          // a pong frame
	hdr     [10]byte        // the header of a frame of joined events
}

type closeFrame struct {
	code   ws.StatusCode
	reason string
}

var errPeerClosed = errors.New("ws: client closed the connection")

// schedule asks for the connection to be written: the output queued an event into an empty
// queue or ended, the reader has a pong to send, or a ping is due. It never blocks.
func (c *conn) schedule() {
	c.mu.Lock()
	switch c.state {
	case idle:
		c.state = queued
		c.mu.Unlock()
		c.shard.enqueue(c)
		return
	case writing, draining:
		c.again = true
	}
	c.mu.Unlock()
}

func (c *conn) requestPing() {
	c.mu.Lock()
	c.pingDue = true
	c.mu.Unlock()
	c.schedule()
}

// flush is the shard's turn at c: one non-blocking write of what is queued. A socket that takes
// less than all of it, an ending stream and a TLS connection go to drain.
func (c *conn) flush(s *shard) {
	defer c.recoverWriter()
	c.mu.Lock()
	if c.state != queued {
		c.mu.Unlock()
		return
	}
	if c.raw == nil || c.out.Err() != nil {
		c.mu.Unlock()
		c.drainQueued()
		return
	}
	c.state = writing
	c.mu.Unlock()

	if c.collect() {
		n, err := c.writeNow(s)
		switch {
		case err != nil:
			c.fail(err)
			return
		case n < c.size():
			// The socket is full: the rest is written by a goroutine that can wait for it.
			c.pending = rest(c.bufs, n)
			c.mu.Lock()
			c.state = draining
			c.mu.Unlock()
			go c.drain() // as above
			return
		}
		c.written()
	}
	c.mu.Lock()
	if c.again || c.more {
		// More came meanwhile: back on the queue, behind the others, so that one busy
		// connection does not hold the shard.
		c.again = false
		c.state = queued
		c.mu.Unlock()
		s.enqueue(c)
		return
	}
	c.state = idle
	c.mu.Unlock()
}

// drainQueued hands a queued connection to a goroutine of its own.
func (c *conn) drainQueued() {
	c.mu.Lock()
	if c.state != queued {
		c.mu.Unlock()
		return
	}
	c.state = draining
	c.mu.Unlock()
	go c.drain() // ends by closing c.ended or by going idle; Serve waits for the first
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

func (c *conn) size() int {
	n := 0
	for _, b := range c.bufs {
		n += len(b)
	}
	return n
}

// drain writes with blocking writes, each within the write timeout, until nothing is left; the
// connection is then the shard's again. When the stream has ended it writes the close frame.
func (c *conn) drain() {
	defer c.recoverWriter()
	for {
		if err := c.out.Err(); err != nil {
			c.finish(err)
			return
		}
		if len(c.pending) == 0 {
			if !c.collect() {
				// The shard's writes do not wait, but they would fail once this deadline passed.
				_ = c.nc.SetWriteDeadline(time.Time{})
				c.mu.Lock()
				if c.again {
					c.again = false
					c.mu.Unlock()
					continue
				}
				c.state = idle
				c.mu.Unlock()
				return
			}
			c.pending = c.bufs
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout))
		if _, err := c.pending.WriteTo(c.nc); err != nil {
			c.fail(err)
			return
		}
		c.written()
	}
}

// collect lays out the next write in c.bufs: a pong and a ping if due, then the backlog or the
// queued events. It reports false when there is nothing to write.
func (c *conn) collect() bool {
	c.mu.Lock()
	c.again = false
	pongDue, pingDue, pong := c.pongDue, c.pingDue, c.pong
	c.pongDue, c.pingDue = false, false
	c.mu.Unlock()

	c.bufs = c.bufs[:0]
	if pongDue {
		c.ctl = append(append(c.ctl[:0], 0x80|byte(ws.OpPong), byte(len(pong))), pong...)
		c.bufs = append(c.bufs, c.ctl)
	}
	if pingDue {
		c.bufs = append(c.bufs, ws.CompiledPing)
	}
	c.evs = c.evs[:0]
	if len(c.backlog) > 0 {
		n := min(len(c.backlog), c.opt.MaxBatch)
		c.evs = append(c.evs, c.backlog[:n]...)
		clear(c.backlog[:n])
		c.backlog = c.backlog[n:]
		c.more, c.replay = true, true
	} else {
		c.evs, c.more = c.out.Take(c.evs, c.opt.MaxBatch)
		c.replay = false
	}
	switch {
	case len(c.evs) == 0:
	case c.opt.Batch && len(c.evs) > 1:
		// One frame: the events' JSON, one per line.
		n := -1
		for _, ev := range c.evs {
			n += len(ev.Line())
		}
		c.bufs = append(c.bufs, c.header(n))
		for i, ev := range c.evs {
			if i == len(c.evs)-1 {
				c.bufs = append(c.bufs, ev.JSON())
			} else {
				c.bufs = append(c.bufs, ev.Line())
			}
		}
	default:
		for _, ev := range c.evs {
			c.bufs = append(c.bufs, ev.WSFrame())
		}
	}
	return len(c.bufs) > 0
}

// header is the header of an unmasked final text frame of n bytes.
func (c *conn) header(n int) []byte {
	h := c.hdr[:0]
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
func (c *conn) written() {
	n, oldest := output.Messages(c.evs)
	c.out.CountDelivered(n)
	if c.opt.Written != nil && len(c.evs) > 0 && !c.replay {
		c.opt.Written(len(c.evs), oldest)
	}
	clear(c.evs) // let the events be collected once the history forgets them
	c.evs = c.evs[:0]
	clear(c.bufs)
	c.bufs = c.bufs[:0]
	// The kernel has all of the write: the next collect may lay out new frames in the pong
	// and header buffers. (The events' frames are shared and immutable: never poisoned.)
	poison.Bytes(c.ctl)
	poison.Bytes(c.hdr[:])
}

// finish ends the writing: it completes a frame cut short, writes the close frame that says why
// the stream ended, if there is one to write, and ends the connection. After a close frame it
// only shuts the connection's writing side and lets the reader take what the client still sends,
// up to its own close, for a while: closing a socket with unread data makes the kernel answer
// with a reset, which discards what the client has not read yet, close frame included.
func (c *conn) finish(reason error) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout))
	_, err := c.pending.WriteTo(c.nc)
	if err == nil {
		c.written()
	}
	c.mu.Lock()
	cf := c.closeOut
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
func (c *conn) fail(err error) {
	c.out.Close(fmt.Errorf("ws: write: %w", err))
	c.end(true)
}

// end ends the writing for good; closing the connection ends the reader too (Serve closes it
// otherwise, once the reader is done).
func (c *conn) end(closeConn bool) {
	if closeConn {
		c.nc.Close()
	}
	clear(c.backlog)
	clear(c.evs)
	clear(c.bufs)
	c.pending = nil
	c.mu.Lock()
	c.state = over
	c.mu.Unlock()
	close(c.ended)
}

// recoverWriter keeps a bug in writing one connection to that connection.
func (c *conn) recoverWriter() {
	if p := recover(); p != nil {
		c.mu.Lock()
		over := c.state == over
		c.mu.Unlock()
		if !over {
			c.fail(fmt.Errorf("panic: %v", p))
		}
	}
}

// closeFor is the close frame for why an output ended, or nil when the client's side ended it.
func closeFor(reason error) *closeFrame {
	switch {
	case errors.Is(reason, output.ErrSlowConsumer):
		return &closeFrame{CloseSlowConsumer, "slow consumer"}
	case errors.Is(reason, output.ErrShutdown):
		return &closeFrame{ws.StatusGoingAway, "server shutting down"}
	case errors.Is(reason, output.ErrKicked):
		return &closeFrame{ws.StatusPolicyViolation, "ended by an administrator"}
	case errors.Is(reason, output.ErrExpired):
		return &closeFrame{ws.StatusPolicyViolation, "credential expired"}
	case errors.Is(reason, output.ErrTooCostly):
		return &closeFrame{ClosePredicateTooCostly, "predicate too costly"}
	}
	return nil
}

// read reads client frames until an error, a close frame or a frame too large, and returns why
// the stream should end. It answers pings through the writer, and cuts a peer silent for two
// heartbeats and a write timeout (it did not answer our pings).
func (c *conn) read(r io.Reader) error {
	idle := 2*c.opt.Heartbeat + c.opt.WriteTimeout
	var ctl [125]byte
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		if l := c.linger.Load(); l != 0 {
			// The close frame is sent: wait only so long for the client's. (Loaded after
			// setting the deadline, so that finish's own setting cannot be overwritten.)
			_ = c.nc.SetReadDeadline(time.Unix(0, l))
		}
		h, err := ws.ReadHeader(r)
		if err == nil {
			if err = ws.CheckHeader(h, ws.StateServerSide); err != nil {
				c.setClose(ws.StatusProtocolError, "")
			}
		}
		if err != nil {
			return fmt.Errorf("ws: read: %w", err)
		}
		if h.OpCode.IsControl() {
			p := ctl[:h.Length]
			if _, err := io.ReadFull(r, p); err != nil {
				return fmt.Errorf("ws: read: %w", err)
			}
			if h.Masked {
				ws.Cipher(p, h.Mask, 0)
			}
			switch h.OpCode {
			case ws.OpPing:
				// A copy: ctl is read into again by the next frame, before the
				// writer may have sent this pong.
				c.mu.Lock()
				c.pong, c.pongDue = bytes.Clone(p), true
				c.mu.Unlock()
				c.schedule()
			case ws.OpClose:
				code, reason := ws.ParseCloseFrameData(p)
				switch {
				case len(p) == 0:
					code = ws.StatusNormalClosure // no code: echo a plain close
				case len(p) == 1 || ws.CheckCloseFrameData(code, reason) != nil:
					code = ws.StatusProtocolError // a code no endpoint may send, or a bad reason
				}
				c.setClose(code, "")
				return errPeerClosed
			}
			poison.Bytes(ctl[:])
			continue
		}
		// Clients have nothing to tell a stream; their data frames are read and dropped.
		if h.Length > c.opt.MaxClientFrame {
			c.setClose(ws.StatusMessageTooBig, "frame too large")
			return fmt.Errorf("ws: client frame over %d bytes", c.opt.MaxClientFrame)
		}
		if _, err := io.CopyN(io.Discard, r, h.Length); err != nil {
			return fmt.Errorf("ws: read: %w", err)
		}
	}
}

func (c *conn) setClose(code ws.StatusCode, reason string) {
	c.mu.Lock()
	c.closeOut = &closeFrame{code, reason}
	c.mu.Unlock()
}

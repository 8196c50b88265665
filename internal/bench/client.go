package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sync/errgroup"
)

// The clients are the load generator's main cost, and they share the two cores with the server,
// so they are lean: gobwas/ws does the handshake, then each client is one goroutine that reads
// into one buffer, takes the time once per read system call (every frame in that read arrived
// then), and finds the send timestamp in each event with a byte search, not a JSON decode.

// phase is one measurement window. Clients record into the current phase of their recorder;
// the publisher adds what it sent to it.
type phase struct {
	start     time.Time
	delivered atomic.Uint64
	gaps      atomic.Uint64
	published atomic.Uint64
	expected  atomic.Uint64
	lat       hist
}

func newPhase() *phase { return &phase{start: time.Now()} }

// recorder is what a set of clients record into.
type recorder struct {
	cur       atomic.Pointer[phase]
	delivered atomic.Uint64 // over every phase, to count drops
	expected  atomic.Uint64 // over every phase: one per message and matching measured client
	closed    atomic.Int64  // clients whose connection ended while the run still wanted them
	slowKicks atomic.Int64  // clients closed by the server with 4008
}

func newRecorder() *recorder {
	r := &recorder{}
	r.cur.Store(newPhase())
	return r
}

// next starts a new phase and returns the one it ends.
func (r *recorder) next() (ended *phase) { return r.cur.Swap(newPhase()) }

// client is one WebSocket connection to a stream. Once added to a reactor, the reactor reads
// it; its owner only closes it.
type client struct {
	id      int
	conn    net.Conn // until a reactor takes the socket over
	fd      int      // the socket, once a reactor reads it
	rec     *recorder
	partial []byte // an incomplete frame, kept until the rest is read
	frag    []byte // a fragmented message being put together

	re        *reactor   // set by add; guarded by re.mu afterwards
	wmu       sync.Mutex // guards writes: pongs from the reactor, the close from the owner
	leaving   atomic.Bool
	closeCode atomic.Int32 // the server's close code, once it sent one
	cut       atomic.Bool  // the connection ended with no close frame
	doneOnce  sync.Once
	done      chan struct{}
}

func newClient(id int, conn net.Conn, pending []byte, rec *recorder) *client {
	return &client{id: id, conn: conn, rec: rec, partial: pending, done: make(chan struct{})}
}

// dialOptions tune dial.
type dialOptions struct {
	// rcvbuf, if set, shrinks the socket's receive buffer (a client that never reads fills it
	// sooner).
	rcvbuf  int
	timeout time.Duration
	// batch asks for batch frames (the bare loop ignores it).
	batch bool
}

// dial opens a stream of base (http://host:port) for predicate where over source (if not
// empty), with the slow-consumer policy (if not empty).
func dial(ctx context.Context, base, where, source, policy string, opt dialOptions) (net.Conn, []byte, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, nil, err
	}
	u.Scheme = "ws"
	u.Path = "/v1/stream"
	q := url.Values{}
	if where != "" {
		q.Set("where", where)
	}
	if source != "" {
		q.Set("source", source)
	}
	if policy != "" {
		q.Set("policy", policy)
	}
	if opt.batch {
		q.Set("batch", "true")
	}
	u.RawQuery = q.Encode()
	if opt.timeout == 0 {
		opt.timeout = 15 * time.Second
	}
	nd := &net.Dialer{Timeout: opt.timeout}
	if opt.rcvbuf > 0 {
		nd.Control = rcvbufControl(opt.rcvbuf)
	}
	d := ws.Dialer{Timeout: opt.timeout, NetDial: nd.DialContext}
	conn, br, _, err := d.Dial(ctx, u.String())
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", u.Redacted(), err)
	}
	var pending []byte
	if br != nil {
		if n := br.Buffered(); n > 0 {
			p, _ := br.Peek(n)
			pending = bytes.Clone(p)
		}
		ws.PutReader(br)
	}
	return conn, pending, nil
}

// clientSpec says what one client subscribes to.
type clientSpec struct {
	where  string
	policy string
	batch  bool
}

// dialAll opens one client per spec, parallel at a time, and adds them to the reactors. On
// error the clients already open are closed.
func dialAll(ctx context.Context, base, source string, specs []clientSpec, parallel int, rec *recorder, rs reactors) ([]*client, error) {
	clients := make([]*client, len(specs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(parallel, 1))
	for i, sp := range specs {
		g.Go(func() error {
			conn, pending, err := dial(gctx, base, sp.where, source, sp.policy, dialOptions{batch: sp.batch})
			if err != nil {
				return err
			}
			c := newClient(i, conn, pending, rec)
			clients[i] = c
			return rs.add(c)
		})
	}
	if err := g.Wait(); err != nil {
		closeAll(clients)
		return nil, err
	}
	return clients, nil
}

// closeAll closes the clients (with a close frame) and waits for their readers.
func closeAll(clients []*client) {
	for _, c := range clients {
		if c != nil {
			c.close()
		}
	}
	for _, c := range clients {
		if c != nil {
			<-c.done
		}
	}
}

// close says goodbye with a close frame and closes the connection.
func (c *client) close() {
	if c.leaving.Swap(true) {
		return
	}
	c.write(ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	if re := c.re; re != nil {
		re.mu.Lock()
		re.drop(c)
		re.mu.Unlock()
	} else {
		_ = c.conn.Close()
	}
	c.finish()
}

// write sends one (small) frame: a pong or a close.
func (c *client) write(f ws.Frame) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.re == nil {
		_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = ws.WriteFrame(c.conn, f)
		return
	}
	if b, err := ws.CompileFrame(f); err == nil {
		c.re.write(c, b)
	}
}

// finish marks the client ended; the first call counts an end that its owner did not ask for.
func (c *client) finish() {
	c.doneOnce.Do(func() {
		if !c.leaving.Load() {
			c.rec.closed.Add(1)
		}
		close(c.done)
	})
}

// frames records every complete frame in b, read at now (Unix nanoseconds), and returns the
// bytes of an incomplete last frame and whether the server closed the stream.
func (c *client) frames(b []byte, now int64) (rest []byte, closed bool) {
	ph := c.rec.cur.Load()
	var delivered, gaps uint64
	defer func() {
		if delivered > 0 {
			ph.delivered.Add(delivered)
			c.rec.delivered.Add(delivered)
		}
		if gaps > 0 {
			ph.gaps.Add(gaps)
		}
	}()
	for {
		h, hl, ok := frameHeader(b)
		if !ok || uint64(len(b)) < uint64(hl)+h.len {
			return b, false
		}
		p := b[hl : hl+int(h.len)]
		b = b[hl+int(h.len):]
		switch h.op {
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			if !h.fin || len(c.frag) > 0 {
				c.frag = append(c.frag, p...)
				if !h.fin {
					continue
				}
				p, c.frag = c.frag, c.frag[:0]
			}
			d, g := c.events(p, now, ph)
			delivered += d
			gaps += g
		case ws.OpPing:
			c.write(ws.MaskFrameInPlace(ws.NewPongFrame(bytes.Clone(p))))
		case ws.OpClose:
			code := 0
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			c.closeCode.Store(int32(code))
			if code == 4008 {
				c.rec.slowKicks.Add(1)
			}
			return nil, true
		}
	}
}

type frameHead struct {
	fin bool
	op  ws.OpCode
	len uint64
}

// frameHeader parses a server frame's header (never masked, but masking is skipped over).
func frameHeader(b []byte) (frameHead, int, bool) {
	if len(b) < 2 {
		return frameHead{}, 0, false
	}
	h := frameHead{fin: b[0]&0x80 != 0, op: ws.OpCode(b[0] & 0x0f)}
	hl := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, false
		}
		h.len, hl = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return h, 0, false
		}
		h.len, hl = binary.BigEndian.Uint64(b[2:]), 10
	default:
		h.len = uint64(l)
	}
	if b[1]&0x80 != 0 {
		hl += 4
	}
	if len(b) < hl {
		return h, 0, false
	}
	return h, hl, true
}

var (
	msgPrefix = []byte(`{"type":"message"`)
	gapPrefix = []byte(`{"type":"gap"`)
	tsField   = []byte(`"ts":`)
	timeField = []byte(`"time":"`)
)

// events records the events of one frame's payload: one event, or several separated by
// newlines (a batch). now is when they were read, in Unix nanoseconds.
func (c *client) events(p []byte, now int64, ph *phase) (delivered, gaps uint64) {
	for len(p) > 0 {
		ev := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			ev, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		switch {
		case bytes.HasPrefix(ev, msgPrefix):
			delivered++
			if sent, ok := sentAt(ev); ok {
				ph.lat.record(c.id, now-sent)
			}
		case bytes.HasPrefix(ev, gapPrefix):
			gaps++
		}
	}
	return delivered, gaps
}

// sentAt finds when a message was sent: the body's "ts" (Unix nanoseconds) that the bench's
// publishers put there, else the event's "time" (milliseconds, set by the source).
func sentAt(ev []byte) (int64, bool) {
	if i := bytes.Index(ev, tsField); i >= 0 {
		var v int64
		n := 0
		for _, ch := range ev[i+len(tsField):] {
			if ch < '0' || ch > '9' {
				break
			}
			v = v*10 + int64(ch-'0')
			n++
		}
		return v, n > 0
	}
	if i := bytes.Index(ev, timeField); i >= 0 {
		rest := ev[i+len(timeField):]
		if j := bytes.IndexByte(rest, '"'); j > 0 {
			t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
			if err == nil {
				return t.UnixNano(), true
			}
		}
	}
	return 0, false
}

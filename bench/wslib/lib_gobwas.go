package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// gobwasLib serves with github.com/gobwas/ws as streamux does: every event is compiled once into
// a complete text frame shared by all recipients, and each connection's writer goroutine joins
// every queued frame into one writev. A reader goroutine reads the client's frames straight from
// the socket, holding no buffer. The HTTP handler returns once both are started.
//
// Variants tell what streamux's own choices cost apart from the library: with join false (the
// "gobwas-1w" server) the writer writes each frame with its own write system call; with
// noDeadline ("gobwas-nd") it sets no write deadline before each write; with inHandler
// ("gobwas-h") the writer is the HTTP handler's goroutine, as in streamux's ws.Serve, which
// keeps net/http's connection state, and its buffers, reachable.
type gobwasLib struct {
	queueLen   int
	join       bool
	noDeadline bool
	inHandler  bool
}

func (l *gobwasLib) prepare(ev *event) {
	ev.frame = ws.MustCompileFrame(ws.NewTextFrame(ev.payload))
}

func (l *gobwasLib) release(*event) {}

type gobwasConn struct {
	conn       net.Conn
	q          *queue
	join       bool
	noDeadline bool
	writes     *atomic.Uint64 // the server's count of write system calls
	bufs       [][]byte
	out        net.Buffers // what is left to write of bufs; a field, so that writing allocates nothing
}

func (c *gobwasConn) send(ev *event) bool { return c.q.push(ev) }

func (l *gobwasLib) serve(s *server, w http.ResponseWriter, r *http.Request, key int) {
	u := ws.HTTPUpgrader{Timeout: writeTimeout}
	conn, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		return
	}
	// Keep only what the handshake's reader buffered (nothing, from a client that waits for the
	// handshake), so that the connection does not hold net/http's 4 KiB read buffer.
	var rd io.Reader = conn
	if n := rw.Reader.Buffered(); n > 0 {
		pending, _ := rw.Reader.Peek(n)
		rd = io.MultiReader(bytes.NewReader(bytes.Clone(pending)), conn)
	}
	c := &gobwasConn{conn: conn, q: newQueue(l.queueLen), join: l.join, noDeadline: l.noDeadline, writes: &s.writes}
	s.add(c, key)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		gobwasRead(rd)
	}()
	if l.inHandler {
		c.writeLoop(s, key, readerDone)
	} else {
		go c.writeLoop(s, key, readerDone)
	}
}

// writeLoop writes what is queued until the reader ends or a write fails, then closes the
// connection and waits for the reader.
func (c *gobwasConn) writeLoop(s *server, key int, readerDone chan struct{}) {
	defer s.remove(c, key)
	var batch []*event
	for {
		batch = c.q.take(batch, readerDone)
		if batch == nil || c.write(batch) != nil {
			break
		}
	}
	c.conn.Close()
	<-readerDone
}

// write writes batch's frames: in one writev, or one write each.
func (c *gobwasConn) write(batch []*event) error {
	if !c.noDeadline {
		_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	if !c.join {
		for _, ev := range batch {
			c.writes.Add(1)
			if _, err := c.conn.Write(ev.frame); err != nil {
				return err
			}
		}
		return nil
	}
	c.bufs = c.bufs[:0]
	for _, ev := range batch {
		c.bufs = append(c.bufs, ev.frame)
	}
	c.out = c.bufs
	c.writes.Add(1) // one writev, unless the socket takes only part of it
	_, err := c.out.WriteTo(c.conn)
	clear(c.bufs)
	return err
}

// gobwasRead reads client frames and drops them, until an error or a close frame.
func gobwasRead(r io.Reader) {
	for {
		h, err := ws.ReadHeader(r)
		if err != nil || h.OpCode == ws.OpClose {
			return
		}
		if _, err := io.CopyN(io.Discard, r, h.Length); err != nil {
			return
		}
	}
}

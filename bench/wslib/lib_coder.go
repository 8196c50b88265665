package main

import (
	"context"
	"net/http"

	"github.com/coder/websocket"
)

// coderLib serves with github.com/coder/websocket, idiomatically: the library has no prepared
// message, so every recipient's Write frames the shared payload itself (one write system call
// per message), each under a context with the write timeout. CloseRead starts the library's
// reader goroutine, which handles control frames and ends the context when the client goes; the
// writer is a goroutine of its own and the HTTP handler returns, as for the other libraries
// (the connection keeps net/http's read and write buffers all the same: the library uses them).
type coderLib struct {
	queueLen int
}

func (l *coderLib) prepare(*event) {}
func (l *coderLib) release(*event) {}

type coderConn struct {
	c *websocket.Conn
	q *queue
}

func (c *coderConn) send(ev *event) bool { return c.q.push(ev) }

func (l *coderLib) serve(s *server, w http.ResponseWriter, r *http.Request, key int) {
	wc, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	c := &coderConn{c: wc, q: newQueue(l.queueLen)}
	s.add(c, key)
	go c.writeLoop(wc.CloseRead(context.Background()), s, key)
}

// writeLoop writes what is queued until ctx ends (the client went) or a write fails.
func (c *coderConn) writeLoop(ctx context.Context, s *server, key int) {
	defer s.remove(c, key)
	var batch []*event
loop:
	for {
		batch = c.q.take(batch, ctx.Done())
		if batch == nil {
			break
		}
		for _, ev := range batch {
			wctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err := c.c.Write(wctx, websocket.MessageText, ev.payload)
			cancel()
			if err != nil {
				break loop
			}
		}
	}
	c.c.CloseNow()
}

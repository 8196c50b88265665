package main

import (
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// gorillaLib serves with github.com/gorilla/websocket: every event is one PreparedMessage shared
// by all recipients (the library builds its frame once, on first use), written with
// WritePreparedMessage, one write system call per message. Each connection has a reader and a
// writer goroutine, and the HTTP handler returns, as in the library's chat example;
// WriteBufferPool is set so that an idle connection holds no write buffer. The read buffer is
// the library's default: it reuses net/http's 4 KiB one.
type gorillaLib struct {
	queueLen int
	up       websocket.Upgrader
}

func newGorillaLib(queueLen int) *gorillaLib {
	return &gorillaLib{queueLen: queueLen, up: websocket.Upgrader{
		HandshakeTimeout: writeTimeout,
		WriteBufferPool:  &sync.Pool{},
	}}
}

func (l *gorillaLib) prepare(ev *event) {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, ev.payload)
	if err != nil {
		panic(err) // cannot fail without compression
	}
	ev.prep = pm
}

func (l *gorillaLib) release(*event) {}

type gorillaConn struct {
	c *websocket.Conn
	q *queue
}

func (c *gorillaConn) send(ev *event) bool { return c.q.push(ev) }

func (l *gorillaLib) serve(s *server, w http.ResponseWriter, r *http.Request, key int) {
	wc, err := l.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &gorillaConn{c: wc, q: newQueue(l.queueLen)}
	s.add(c, key)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			// NextReader discards what the application did not read of the previous message
			// and handles control frames.
			if _, _, err := wc.NextReader(); err != nil {
				return
			}
		}
	}()
	go c.writeLoop(s, key, readerDone)
}

// writeLoop writes what is queued until the reader ends or a write fails, then closes the
// connection and waits for the reader.
func (c *gorillaConn) writeLoop(s *server, key int, readerDone chan struct{}) {
	defer s.remove(c, key)
	var batch []*event
loop:
	for {
		batch = c.q.take(batch, readerDone)
		if batch == nil {
			break
		}
		for _, ev := range batch {
			_ = c.c.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := c.c.WritePreparedMessage(ev.prep.(*websocket.PreparedMessage)); err != nil {
				break loop
			}
		}
	}
	c.c.Close()
	<-readerDone
}

package main

import (
	"net/http"
	"sync/atomic"

	"github.com/lxzan/gws"
)

// gwsLib serves with github.com/lxzan/gws, idiomatically: one ReadLoop goroutine per connection
// (the HTTP handler returns), and every event is one Broadcaster, which builds the frame once
// and queues a write of it on each recipient's own write queue. That queue is the library's: a
// job list run by a goroutine started when it has work (so an idle connection has no writer
// goroutine), one write system call per frame, and no bound.
//
// The bound that the other servers get from their queue is added here without a job per event:
// the count of events handed to the library is compared with the count known written, which a
// marker job (queued behind the events through Conn.Async) updates when the estimated backlog
// passes half the bound. The real backlog then never passes the bound, and events are dropped
// only once it is at least half of it.
type gwsLib struct {
	queueLen int
	up       *gws.Upgrader
	s        *server
}

func newGWSLib(queueLen int, s *server) library {
	l := &gwsLib{queueLen: queueLen, s: s}
	l.up = gws.NewUpgrader(gwsHandler{l}, &gws.ServerOption{HandshakeTimeout: writeTimeout})
	return l
}

func (l *gwsLib) prepare(ev *event) { ev.prep = gws.NewBroadcaster(gws.OpcodeText, ev.payload) }

func (l *gwsLib) release(ev *event) { _ = ev.prep.(*gws.Broadcaster).Close() }

type gwsConn struct {
	sock    *gws.Conn
	key     int
	max     int64
	queued  atomic.Int64 // events handed to the library's write queue
	written atomic.Int64 // of those, how many are known to be written (or failed)
	marker  atomic.Bool  // a marker job is queued
}

func (c *gwsConn) send(ev *event) bool {
	n := c.queued.Load()
	backlog := n - c.written.Load()
	if backlog >= c.max {
		return false
	}
	if ev.prep.(*gws.Broadcaster).Broadcast(c.sock) != nil {
		return false
	}
	n = c.queued.Add(1)
	if backlog+1 >= c.max/2 && c.marker.CompareAndSwap(false, true) {
		c.sock.Async(func() {
			c.written.Store(n)
			c.marker.Store(false)
		})
	}
	return true
}

const gwsConnKey = "c"

func (l *gwsLib) serve(s *server, w http.ResponseWriter, r *http.Request, key int) {
	sock, err := l.up.Upgrade(w, r)
	if err != nil {
		return
	}
	c := &gwsConn{sock: sock, key: key, max: int64(l.queueLen)}
	sock.Session().Store(gwsConnKey, c)
	s.add(c, key)
	go sock.ReadLoop()
}

// gwsHandler is the connections' event handler.
type gwsHandler struct{ l *gwsLib }

func (h gwsHandler) OnOpen(*gws.Conn) {}

func (h gwsHandler) OnClose(sock *gws.Conn, _ error) {
	if v, ok := sock.Session().Load(gwsConnKey); ok {
		c := v.(*gwsConn)
		h.l.s.remove(c, c.key)
	}
}

func (h gwsHandler) OnPing(sock *gws.Conn, payload []byte) { _ = sock.WritePong(payload) }

func (h gwsHandler) OnPong(*gws.Conn, []byte) {}

func (h gwsHandler) OnMessage(_ *gws.Conn, m *gws.Message) { _ = m.Close() }

package wsdial_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/wsdial"
	"github.com/streamux/streamux/internal/sourcetest"
)

// subscribe is the frame a client of the test feed sends to receive messages, as real feeds
// want a subscribe request.
const subscribe = `{"op":"subscribe","channel":"test"}`

// feed is an upstream WebSocket server for the tests: a real gorilla server on loopback that
// sends what is published to every connection that subscribed, and records what each
// connection sent it. Kill drops every connection and restarts the server on the same address.
type feed struct {
	t        testing.TB
	upgrader websocket.Upgrader
	// ignorePings makes the server answer no ping: a dead upstream that keeps its TCP open.
	ignorePings bool

	mu       sync.Mutex
	srv      *httptest.Server
	addr     string
	conns    map[*feedConn]bool
	sessions []*session // one per connection, in order
	wg       sync.WaitGroup
}

type feedConn struct {
	ws         *websocket.Conn
	wmu        sync.Mutex
	subscribed bool
}

// session is what the server saw of one connection.
type session struct {
	Header      http.Header
	Subprotocol string

	mu        sync.Mutex
	frames    []string // text frames received
	pings     int
	closeCode int // from the client's close frame; 0 if none
}

func (s *session) Frames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.frames...)
}

func (s *session) Pings() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pings
}

func (s *session) CloseCode() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeCode
}

func newFeed(t testing.TB, configure ...func(*feed)) *feed {
	f := &feed{t: t, conns: map[*feedConn]bool{}}
	for _, c := range configure {
		c(f)
	}
	f.start("127.0.0.1:0")
	t.Cleanup(f.close)
	return f
}

func (f *feed) URL() string { return "ws://" + f.addr + "/ws" }

func (f *feed) start(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		f.t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener = ln
	srv.Start()
	f.mu.Lock()
	f.srv, f.addr = srv, ln.Addr().String()
	f.mu.Unlock()
}

// close drops every connection, stops the server and waits for its handlers.
func (f *feed) close() {
	f.mu.Lock()
	srv := f.srv
	for c := range f.conns {
		_ = c.ws.Close()
	}
	f.mu.Unlock()
	srv.Close()
	f.wg.Wait()
}

// kill drops every connection without a closing handshake and starts a new server on the same
// address, as an upstream restart does.
func (f *feed) kill() {
	f.close()
	f.start(f.addr)
}

func (f *feed) serve(w http.ResponseWriter, r *http.Request) {
	f.wg.Add(1)
	defer f.wg.Done()
	ws, err := f.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s := &session{Header: r.Header.Clone(), Subprotocol: ws.Subprotocol()}
	c := &feedConn{ws: ws}
	ws.SetPingHandler(func(data string) error {
		s.mu.Lock()
		s.pings++
		s.mu.Unlock()
		if f.ignorePings {
			return nil
		}
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return ws.WriteMessage(websocket.PongMessage, []byte(data))
	})
	f.mu.Lock()
	f.conns[c] = true
	f.sessions = append(f.sessions, s)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		_ = ws.Close()
	}()
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				s.mu.Lock()
				s.closeCode = ce.Code
				s.mu.Unlock()
			}
			return
		}
		if typ == websocket.TextMessage {
			s.mu.Lock()
			s.frames = append(s.frames, string(data))
			s.mu.Unlock()
			if string(data) == subscribe {
				f.mu.Lock()
				c.subscribed = true
				f.mu.Unlock()
			}
		}
	}
}

// Sessions returns what the server saw of each connection so far.
func (f *feed) Sessions() []*session {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*session(nil), f.sessions...)
}

// session waits for the i-th connection (from 0) to reach the server's handler, which may be
// after the client saw the upgrade, and returns it.
func (f *feed) session(t testing.TB, i int) *session {
	t.Helper()
	sourcetest.Eventually(t, wait, func() bool { return len(f.Sessions()) > i }, "connection %d at the server", i)
	return f.Sessions()[i]
}

// send writes each body to every subscribed connection: text frames for UTF-8, binary frames
// otherwise. It fails if no connection has subscribed.
func (f *feed) send(bodies ...[]byte) error {
	f.mu.Lock()
	var to []*feedConn
	for c := range f.conns {
		if c.subscribed {
			to = append(to, c)
		}
	}
	f.mu.Unlock()
	if len(to) == 0 {
		return errors.New("feed: no subscribed connection")
	}
	for _, c := range to {
		c.wmu.Lock()
		for _, b := range bodies {
			typ := websocket.TextMessage
			if !utf8.Valid(b) {
				typ = websocket.BinaryMessage
			}
			if err := c.ws.WriteMessage(typ, b); err != nil {
				c.wmu.Unlock()
				return err
			}
		}
		c.wmu.Unlock()
	}
	return nil
}

// fixture is the conformance suite's view of a feed.
type fixture struct {
	*feed
	cfg wsdial.Config
}

func newFixture(t *testing.T, _ sourcetest.Options) sourcetest.Fixture {
	f := newFeed(t)
	return &fixture{feed: f, cfg: wsdial.Config{URL: f.URL(), OnConnect: []string{subscribe}, Key: "key"}}
}

func (x *fixture) Source(t *testing.T) source.Source {
	s, err := wsdial.New(x.cfg)
	if err != nil {
		t.Fatalf("wsdial.New: %v", err)
	}
	return s
}

func (x *fixture) Publish(ctx context.Context, msgs ...sourcetest.Msg) error {
	bodies := make([][]byte, len(msgs))
	for i, m := range msgs {
		bodies[i] = m.Body
	}
	return x.send(bodies...)
}

func (x *fixture) Kill(context.Context) error {
	x.kill()
	return nil
}

func (x *fixture) Depth(context.Context) (int, error) { return 0, errors.ErrUnsupported }

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{New: newFixture})
}

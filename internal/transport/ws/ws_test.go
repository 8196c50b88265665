package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness serves one output per connection through a Hub.
type harness struct {
	t    *testing.T
	hub  *Hub
	srv  *httptest.Server
	outs chan *output.Output
	errs chan error
	wg   sync.WaitGroup
}

func newHarness(t *testing.T, opt transport.Options, limits output.Limits, backlog []*stream.Event) *harness {
	h := &harness{t: t, hub: NewHub(opt), outs: make(chan *output.Output, 1), errs: make(chan error, 1)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := output.New(1, output.Disconnect, limits)
		conn, err := h.hub.Upgrade(w, r)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		if tc, ok := conn.nc.(*net.TCPConn); ok {
			_ = tc.SetWriteBuffer(64 << 10) // small, so that a client that pauses fills it soon
		}
		h.outs <- out
		h.wg.Add(1)
		defer h.wg.Done()
		h.errs <- conn.Serve(context.Background(), &transport.Session{Out: out, Backlog: backlog, Options: opt})
	}))
	t.Cleanup(func() {
		h.wg.Wait() // the clients' cleanups, which ran first, end the streams
		h.srv.Close()
		h.hub.Close()
	})
	return h
}

// dial connects a client with a small receive buffer.
func (h *harness) dial() (*websocket.Conn, *output.Output) {
	return h.dialBuffer(128 << 10) // small, but over loopback's 64 KiB segments (smaller stalls the window)
}

func (h *harness) dialBuffer(rcvbuf int) (*websocket.Conn, *output.Output) {
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(rcvbuf)
		}
		return c, err
	}}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(h.srv.URL, "http"), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c, <-h.outs
}

func message(seq uint64, size int) *stream.Event {
	body := `{"pad":"` + strings.Repeat("x", size) + `"}`
	return stream.NewMessage(&stream.Message{Source: "s", Seq: seq, Key: "k", Body: []byte(body), Time: time.Now()})
}

type wireEvent struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
}

// readEvents reads frames until n events arrived; a frame may hold several, one per line.
func readEvents(t *testing.T, c *websocket.Conn, n int) (seqs []uint64, frames int) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for len(seqs) < n {
		typ, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %d events in %d frames: %v", len(seqs), frames, err)
		}
		if typ != websocket.TextMessage {
			t.Fatalf("frame of type %d", typ)
		}
		frames++
		for _, line := range strings.Split(string(data), "\n") {
			var ev wireEvent
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("frame %d: %v in %.80q", frames, err, line)
			}
			seqs = append(seqs, ev.Seq)
		}
	}
	return seqs, frames
}

func inOrder(t *testing.T, seqs []uint64, from uint64) {
	t.Helper()
	for i, s := range seqs {
		if s != from+uint64(i) {
			t.Fatalf("event %d has seq %d, want %d", i, s, from+uint64(i))
		}
	}
}

// A client that stops reading fills its socket: the shard hands the connection to a goroutine of
// its own, which finishes the frame it cut and catches up; the shard then writes it again. The
// client gets every event, in order, in whole frames, and the output's counters say so.
func TestFullSocketLosesNothing(t *testing.T) {
	h := newHarness(t, transport.Options{}, output.Limits{Events: 1 << 16, Bytes: 1 << 30}, []*stream.Event{message(1, 10), message(2, 10)})
	c, out := h.dial()
	const n = 4000
	offered := make(chan error, 1)
	go func() { // the producer; the test waits for it below
		for i := uint64(3); i <= n; i++ {
			if !out.Offer(message(i, 900)) {
				offered <- fmt.Errorf("queue full at %d", i)
				return
			}
			if i%500 == 0 {
				// Pacing, not synchronisation: several rounds of full socket, catching
				// up and idle, whatever the timing; the test holds for any.
				time.Sleep(20 * time.Millisecond)
			}
		}
		offered <- nil
	}()
	// Not reading for a while makes the 8 KiB buffers fill, so the scenario is likely; the
	// assertions below hold however little of it happened.
	time.Sleep(200 * time.Millisecond)
	seqs, _ := readEvents(t, c, n)
	if err := <-offered; err != nil {
		t.Fatal(err)
	}
	inOrder(t, seqs, 1)
	waitFor(t, "the delivered counter", func() bool { return out.Counters().Delivered == n })
}

// With batch, what one write carries is one frame, its events one per line; with a write delay,
// a burst is joined into few writes.
func TestBatchAndWriteDelay(t *testing.T) {
	var writes, events atomic.Int64
	opt := transport.Options{Batch: true, WriteDelay: 50 * time.Millisecond, Written: func(n int, _ time.Time) {
		writes.Add(1)
		events.Add(int64(n))
	}}
	h := newHarness(t, opt, output.Limits{}, nil)
	c, out := h.dial()
	const n = 300
	start := time.Now()
	for i := uint64(1); i <= n; i++ {
		out.Offer(message(i, 20))
	}
	seqs, frames := readEvents(t, c, n)
	elapsed := time.Since(start)
	inOrder(t, seqs, 1)
	// At most one write per 50 ms window, and one at once: however slowly a loaded machine
	// ran the producer, the frames are bounded by the time it took.
	if most := int(elapsed/(50*time.Millisecond)) + 2; frames > most {
		t.Errorf("%d events came in %d frames over %v; a 50 ms window allows at most %d", n, frames, elapsed, most)
	}
	// The writer records a write just after the kernel took it: the client may be quicker.
	waitFor(t, "the metrics of every write", func() bool { return events.Load() == n })
	if w := writes.Load(); w != int64(frames) {
		t.Errorf("metrics saw %d writes, the client %d frames", w, frames)
	}
	t.Logf("%d events in %d frames", n, frames)
}

// A write delay bounds how often a connection is written, not how long a lone event waits: the
// first event after a quiet spell goes out at once; the next waits for the delay to have passed
// since that write.
func TestWriteDelayRounds(t *testing.T) {
	const delay = time.Second
	h := newHarness(t, transport.Options{WriteDelay: delay}, output.Limits{}, nil)
	c, out := h.dial()
	out.Offer(message(1, 10))
	readEvents(t, c, 1)
	time.Sleep(delay) // a quiet spell
	start := time.Now()
	out.Offer(message(2, 10))
	readEvents(t, c, 1)
	first := time.Since(start)
	if first > delay/2 {
		t.Errorf("the first event after a quiet spell took %v; it should not wait for the %v delay", first, delay)
	}
	out.Offer(message(3, 10))
	out.Offer(message(4, 10))
	seqs, frames := readEvents(t, c, 2)
	inOrder(t, seqs, 3)
	if d := time.Since(start); d < delay*9/10 {
		t.Errorf("the next events came %v after the first (which took %v); rounds of writes come at most once per %v", d, first, delay)
	}
	if frames != 2 {
		t.Errorf("the next events came in %d frames, want 2", frames)
	}
}

// The server pings on the heartbeat even while events flow, answers the client's pings with the
// same payload, and echoes its close.
func TestPingsPongsAndClose(t *testing.T) {
	h := newHarness(t, transport.Options{Heartbeat: 50 * time.Millisecond}, output.Limits{}, nil)
	c, out := h.dial()
	pings := make(chan struct{}, 100)
	c.SetPingHandler(func(string) error { pings <- struct{}{}; return nil })
	pong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pong <- s; return nil })
	go func() {
		for i := uint64(1); i <= 100; i++ {
			out.Offer(message(i, 10))
			time.Sleep(3 * time.Millisecond)
		}
	}()
	if err := c.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	seqs, _ := readEvents(t, c, 100) // runs the handlers
	inOrder(t, seqs, 1)
	if len(pings) < 2 {
		t.Errorf("%d pings in 300 ms of traffic at a 50 ms heartbeat", len(pings))
	}
	select {
	case s := <-pong:
		if s != "hello" {
			t.Errorf("pong %q, want hello", s)
		}
	default:
		t.Error("no pong")
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")
	if err := c.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("after our close: %v, want the echo 1000", err)
	}
	if err := <-h.errs; !errors.Is(err, errPeerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
}

// An output that ends closes its stream with the code that says why, also when the client does
// not read and its socket is full, and also when the client sends a frame after the server
// closed.
func TestCloseCodes(t *testing.T) {
	for _, tc := range []struct {
		reason error
		code   int
	}{
		{output.ErrSlowConsumer, 4008},
		{output.ErrShutdown, websocket.CloseGoingAway},
		{output.ErrKicked, websocket.ClosePolicyViolation},
		{output.ErrExpired, websocket.ClosePolicyViolation},
		{output.ErrTooCostly, 4009},
	} {
		t.Run(tc.reason.Error(), func(t *testing.T) {
			h := newHarness(t, transport.Options{}, output.Limits{Events: 1 << 16, Bytes: 1 << 30}, nil)
			c, out := h.dialBuffer(32 << 10)
			for i := uint64(1); i <= 110; i++ {
				out.Offer(message(i, 1000)) // about what the sockets hold
			}
			time.Sleep(100 * time.Millisecond)
			out.Close(tc.reason)
			time.Sleep(100 * time.Millisecond) // the close frame is sent, or on its way
			// The client speaks after the server's close: that must not reset the connection
			// and lose what the client has not read yet, the close frame included.
			if err := c.WriteControl(websocket.PingMessage, []byte("late"), time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				_, _, err := c.ReadMessage()
				if err == nil {
					continue
				}
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != tc.code {
					t.Fatalf("stream ended with %v, want close %d", err, tc.code)
				}
				break
			}
			if err := <-h.errs; !errors.Is(err, tc.reason) {
				t.Fatalf("Serve returned %v", err)
			}
		})
	}
}

// Cut ends streams stuck on a client that does not read at once.
func TestCut(t *testing.T) {
	h := newHarness(t, transport.Options{WriteTimeout: time.Minute}, output.Limits{Events: 1 << 16, Bytes: 1 << 30}, nil)
	_, out := h.dial()
	for i := uint64(1); i <= 200; i++ {
		out.Offer(message(i, 900))
	}
	time.Sleep(100 * time.Millisecond)
	out.Close(output.ErrShutdown)
	start := time.Now()
	h.hub.Cut()
	select {
	case <-h.errs:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end within 5s of Cut")
	}
	t.Logf("ended %v after Cut", time.Since(start))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	sourcetest.Eventually(t, 10*time.Second, cond, "%s", what)
}

// Once a crowd of connections has left, a shard's member map is made anew at the size of those
// that stay: a Go map does not shrink by itself.
func TestShardMembersShrink(t *testing.T) {
	h := NewHub(transport.Options{})
	defer h.Close()
	conns := make([]*Conn, 4*shrinkFrom*len(h.shards))
	for i := range conns {
		conns[i] = &Conn{}
		if err := h.join(conns[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns[10:] {
		c.shard.leave(c)
	}
	left := 0
	for _, s := range h.shards {
		s.mu.Lock()
		left += len(s.members)
		if s.peak >= shrinkFrom {
			t.Errorf("a shard with %d members still counts a peak of %d: its map was not made anew", len(s.members), s.peak)
		}
		s.mu.Unlock()
	}
	if left != 10 {
		t.Errorf("%d members left, want 10", left)
	}
	for _, c := range conns[:10] {
		c.shard.leave(c)
	}
}

// Serve returns only once nothing of its connection runs: not its reader, and none of the
// writer goroutines of its own that a full socket started.
func TestServeWaitsForItsWriters(t *testing.T) {
	for range 5 {
		h := newHarness(t, transport.Options{}, output.Limits{Events: 1 << 16, Bytes: 1 << 30}, nil)
		c, out := h.dialBuffer(32 << 10)
		for i := uint64(1); i <= 200; i++ {
			out.Offer(message(i, 1000)) // more than the sockets hold: a writer of its own waits
		}
		readEvents(t, c, 10)
		out.Close(output.ErrKicked)
		go func() { // ends with the connection, which the stream closes
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		if err := <-h.errs; !errors.Is(err, output.ErrKicked) {
			t.Fatalf("Serve returned %v", err)
		}
		buf := make([]byte, 1<<20)
		if st := string(buf[:runtime.Stack(buf, true)]); strings.Contains(st, "(*Conn).drain") {
			t.Fatalf("a writer of the connection still runs after Serve returned:\n%s", st)
		}
	}
}

// Serve's ctx ending cuts the stream at once: the connection closes, with no close frame (the
// client is taken to be gone), and Serve returns ErrClientGone.
func TestServeContextCuts(t *testing.T) {
	opt := transport.Options{}
	hub := NewHub(opt)
	ctx, cancel := context.WithCancel(t.Context())
	errs := make(chan error, 1)
	outs := make(chan *output.Output, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := hub.Upgrade(w, r)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		out := output.New(1, output.Disconnect, output.Limits{})
		outs <- out
		errs <- conn.Serve(ctx, &transport.Session{Out: out, Options: opt})
	}))
	defer func() {
		srv.Close()
		hub.Close()
	}()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := <-outs
	out.Offer(message(1, 10))
	readEvents(t, c, 1)
	cancel()
	select {
	case err := <-errs:
		if !errors.Is(err, output.ErrClientGone) {
			t.Errorf("Serve returned %v, want ErrClientGone", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of its ctx ending")
	}
	_, _, err = c.ReadMessage()
	if ce, ok := errors.AsType[*websocket.CloseError](err); !ok || ce.Code != websocket.CloseAbnormalClosure {
		t.Errorf("the client read %v, want the connection closed without a close frame (1006)", err)
	}
}

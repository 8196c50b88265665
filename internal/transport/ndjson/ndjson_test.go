package ndjson

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness serves one NDJSON stream per request, each of an output of its own, over real HTTP.
type harness struct {
	t    *testing.T
	srv  *httptest.Server
	outs chan *output.Output
	errs chan error // what each Serve returned
}

func newHarness(t *testing.T, s transport.Session) *harness {
	h := &harness{t: t, outs: make(chan *output.Output, 1), errs: make(chan error, 1)}
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := s
		s.Out = output.New(1, output.Disconnect, output.Limits{Events: 1 << 16, Bytes: 1 << 30})
		h.outs <- s.Out
		h.errs <- New(w).Serve(r.Context(), &s)
	}))
	h.srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if tc, ok := c.(*net.TCPConn); ok && st == http.StateNew {
			_ = tc.SetWriteBuffer(32 << 10) // small, so that a client that stops reading fills it soon
		}
	}
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	return h
}

// client is a real HTTP client's view of one stream.
type client struct {
	t    *testing.T
	resp *http.Response
	r    *bufio.Reader
}

// get opens a stream with an HTTP client whose socket takes at most rcvbuf bytes (0: the
// system's default), and returns it with the stream's output.
func (h *harness) get(ctx context.Context, rcvbuf int) (*client, *output.Output) {
	t := h.t
	d := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok && rcvbuf > 0 {
			_ = tc.SetReadBuffer(rcvbuf)
		}
		return c, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &client{t: t, resp: resp, r: bufio.NewReader(resp.Body)}, <-h.outs
}

// line reads the next line, within a deadline: a writer that does not flush fails here.
func (c *client) line() string {
	c.t.Helper()
	type result struct {
		s   string
		err error
	}
	ch := make(chan result, 1)
	go func() { // waited for below, or ended by the response's close in the test's cleanup
		s, err := c.r.ReadString('\n')
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			c.t.Fatalf("reading the stream: %v (after %q)", r.err, r.s)
		}
		return r.s
	case <-time.After(10 * time.Second):
		c.t.Fatal("no line within 10s: not written, or not flushed")
		return ""
	}
}

func message(seq uint64, size int) *stream.Event {
	body := `{"pad":"` + strings.Repeat("x", size) + `"}`
	return stream.NewMessage(&stream.Message{Source: "s", Seq: seq, Key: "k", Body: []byte(body), Time: time.Now()})
}

func (h *harness) result() error {
	h.t.Helper()
	select {
	case err := <-h.errs:
		return err
	case <-time.After(10 * time.Second):
		h.t.Fatal("Serve did not return within 10s")
		return nil
	}
}

// The stream is its headers, then one line per event, each its JSON and a newline, each flushed
// as it is written: nothing else, however long the stream is quiet (a heartbeat would not be an
// event).
func TestFraming(t *testing.T) {
	h := newHarness(t, transport.Session{Options: transport.Options{Heartbeat: 10 * time.Millisecond}})
	c, out := h.get(t.Context(), 0)
	for k, want := range map[string]string{"Content-Type": ContentType, "Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
		if got := c.resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	for i, ev := range []*stream.Event{
		message(1, 10),
		stream.NewGap("s", 3, "slow_consumer"),
		stream.NewStatus("s", "reconnecting", "refused"),
		message(5, 3000), // over net/http's buffer
	} {
		if i == 1 {
			// Heartbeats pass meanwhile: they must write nothing. (The next line is what
			// the test waits for; the pause only gives the heartbeats their turn.)
			time.Sleep(50 * time.Millisecond)
		}
		out.Offer(ev) // one at a time: the client reads each before the next is queued
		if got := c.line(); got != string(ev.Line()) {
			t.Fatalf("line %.80q, want %.80q", got, ev.Line())
		}
	}
	out.Close(output.ErrShutdown)
	if err := h.result(); !errors.Is(err, output.ErrShutdown) {
		t.Errorf("Serve returned %v, want the output's reason", err)
	}
	if rest, err := c.r.ReadString('\n'); rest != "" || err == nil {
		t.Errorf("after the output ended the client read %q, %v, want the end of the response", rest, err)
	}
}

// The backlog is written before what the output queues, in order, and counted as delivered;
// Written sees only the live events.
func TestBacklogThenQueue(t *testing.T) {
	var events atomic.Int64
	backlog := []*stream.Event{stream.NewGap("s", 1, "trimmed"), message(2, 10), message(3, 10)}
	h := newHarness(t, transport.Session{Backlog: backlog, Options: transport.Options{Written: func(n int, _ time.Time) { events.Add(int64(n)) }}})
	c, out := h.get(t.Context(), 0)
	live := message(4, 10)
	out.Offer(live)
	for _, ev := range append(backlog, live) {
		if got := c.line(); got != string(ev.Line()) {
			t.Fatalf("line %.80q, want %.80q", got, ev.Line())
		}
	}
	out.Close(output.ErrShutdown)
	h.result()
	if got := out.Counters().Delivered; got != 3 {
		t.Errorf("%d messages counted delivered, want 3", got)
	}
	if got := events.Load(); got != 1 {
		t.Errorf("Written saw %d live events, want 1 (the backlog is not live)", got)
	}
}

// A client that goes away ends the stream with ErrClientGone.
func TestClientGoesAway(t *testing.T) {
	h := newHarness(t, transport.Session{})
	ctx, cancel := context.WithCancel(t.Context())
	c, out := h.get(ctx, 0)
	out.Offer(message(1, 10))
	c.line()
	cancel()
	if err := h.result(); !errors.Is(err, output.ErrClientGone) {
		t.Errorf("Serve returned %v, want ErrClientGone", err)
	}
	if out.Err() != nil {
		t.Errorf("the output ended with %v: its owner, not the transport, closes it", out.Err())
	}
}

// A client that stops reading fills the sockets: the write that waits is cut by the write
// timeout, and Serve returns the error.
func TestClientStopsReading(t *testing.T) {
	h := newHarness(t, transport.Session{Options: transport.Options{WriteTimeout: 200 * time.Millisecond}})
	c, out := h.get(t.Context(), 16<<10)
	out.Offer(message(1, 10))
	c.line()
	start := time.Now()
	for i := uint64(2); i <= 400; i++ { // 25 MB: more than any socket buffer holds
		if !out.Offer(message(i, 64<<10)) {
			t.Fatalf("queue full at %d", i)
		}
	}
	err := h.result()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Serve returned %v, want a write timeout", err)
	}
	t.Logf("cut %v after the first event, with %d of 400 events written", time.Since(start), out.Counters().Delivered)
}

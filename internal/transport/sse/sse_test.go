package sse

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
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

// harness serves one SSE stream per request, each of an output of its own, over real HTTP.
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

// client is a real HTTP client's view of one stream, read as the SSE specification says.
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
	req.Header.Set("Accept", ContentType)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &client{t: t, resp: resp, r: bufio.NewReader(resp.Body)}, <-h.outs
}

// block is what the client read up to a blank line: its fields, and its comments.
type block struct {
	id, event, data string
	hasID           bool
	retry           string
	comments        []string
}

// next reads the next block, within a deadline: a writer that does not flush fails here.
func (c *client) next() block {
	c.t.Helper()
	type result struct {
		b   block
		err error
	}
	ch := make(chan result, 1)
	go func() { // waited for below, or ended by the response's close in the test's cleanup
		var b block
		for {
			line, err := c.r.ReadString('\n')
			if err != nil {
				ch <- result{b, err}
				return
			}
			line = strings.TrimSuffix(line, "\n")
			if line == "" {
				ch <- result{b, nil}
				return
			}
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "":
				b.comments = append(b.comments, value)
			case "id":
				b.id, b.hasID = value, true
			case "event":
				b.event = value
			case "data":
				b.data = value
			case "retry":
				b.retry = value
			default:
				c.t.Errorf("unknown field in %q", line)
			}
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			c.t.Fatalf("reading the stream: %v", r.err)
		}
		return r.b
	case <-time.After(10 * time.Second):
		c.t.Fatal("no event within 10s: not written, or not flushed")
		return block{}
	}
}

func message(src string, seq uint64, size int) *stream.Event {
	body := `{"pad":"` + strings.Repeat("x", size) + `"}`
	return stream.NewMessage(&stream.Message{Source: src, Seq: seq, Key: "k", Body: []byte(body), Time: time.Now()})
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

// The stream opens with its headers, a comment, the reconnect delay and the position it starts
// from; each message is an id, its type and its JSON on one data line, and each event is
// flushed as it is written.
func TestFraming(t *testing.T) {
	h := newHarness(t, transport.Session{Positions: map[string]uint64{"s": 5}})
	c, out := h.get(t.Context(), 0)
	for k, want := range map[string]string{"Content-Type": ContentType, "Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
		if got := c.resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	first := c.next()
	if len(first.comments) != 1 || first.comments[0] != "streamux" || first.retry != "2000" || first.id != "s:5" || first.data != "" {
		t.Errorf("first block %+v, want the comment streamux, retry 2000, id s:5 and no data", first)
	}
	for _, ev := range []*stream.Event{
		message("s", 6, 10),
		stream.NewGap("s", 3, "slow_consumer"),
		stream.NewStatus("s", "reconnecting", "refused"),
		message("s", 10, 3000), // over net/http's buffer
	} {
		out.Offer(ev) // one at a time: the client reads each before the next is queued
		b := c.next()
		if b.event != ev.Kind.String() || b.data != string(ev.JSON()) {
			t.Fatalf("block %+v, want event %s with data %s", b, ev.Kind, ev.JSON())
		}
		switch {
		case ev.Kind == stream.KindMessage && b.id != "s:"+strconv.FormatUint(ev.Seq(), 10):
			t.Errorf("message %d has id %q", ev.Seq(), b.id)
		case ev.Kind != stream.KindMessage && b.hasID:
			t.Errorf("a %s event has id %q: only messages have one", ev.Kind, b.id)
		}
	}
	out.Close(output.ErrShutdown)
	if err := h.result(); !errors.Is(err, output.ErrShutdown) {
		t.Errorf("Serve returned %v, want the output's reason", err)
	}
	if _, err := c.r.ReadByte(); err != io.EOF {
		t.Errorf("after the output ended the client read %v, want the end of the response", err)
	}
}

// A stream of several sources gives each message its own source's id first, then its position
// in the others, sorted by name; gaps and statuses have no id and move no position. The first
// block gives where every source starts.
func TestIDsOfSeveralSources(t *testing.T) {
	h := newHarness(t, transport.Session{Positions: map[string]uint64{"orders": 17, "demo": 3, "audit": 0}})
	c, out := h.get(t.Context(), 0)
	if b := c.next(); b.id != "audit:0,demo:3,orders:17" {
		t.Fatalf("first id %q", b.id)
	}
	for _, tc := range []struct {
		ev *stream.Event
		id string
	}{
		{message("demo", 4, 10), "demo:4,audit:0,orders:17"},
		{message("orders", 20, 10), "orders:20,audit:0,demo:4"},
		{stream.NewGap("audit", 2, "unknown_id"), ""},
		{message("audit", 9, 10), "audit:9,demo:4,orders:20"},
		{message("demo", 5, 10), "demo:5,audit:9,orders:20"},
	} {
		out.Offer(tc.ev)
		if b := c.next(); b.id != tc.id {
			t.Errorf("%s of %s: id %q, want %q", tc.ev.Kind, tc.ev.Source, b.id, tc.id)
		}
	}
	out.Close(output.ErrKicked)
	if err := h.result(); !errors.Is(err, output.ErrKicked) {
		t.Errorf("Serve returned %v", err)
	}
}

// The backlog is written before what the output queues, in order, and counted as delivered;
// each write is reported once to Written, whose event counts add up.
func TestBacklogThenQueue(t *testing.T) {
	var events atomic.Int64
	backlog := []*stream.Event{stream.NewGap("s", 1, "trimmed"), message("s", 2, 10), message("s", 3, 10)}
	h := newHarness(t, transport.Session{Backlog: backlog, Options: transport.Options{Written: func(n int, _ time.Time) { events.Add(int64(n)) }}})
	c, out := h.get(t.Context(), 0)
	out.Offer(message("s", 4, 10))
	c.next() // the preamble
	var ids []string
	for range 4 {
		ids = append(ids, c.next().id)
	}
	if strings.Join(ids, " ") != " s:2 s:3 s:4" {
		t.Errorf("ids %q, want the gap, s:2, s:3 and s:4", ids)
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

// A quiet stream gets a comment line at each heartbeat, which EventSource ignores.
func TestHeartbeat(t *testing.T) {
	h := newHarness(t, transport.Session{Options: transport.Options{Heartbeat: 30 * time.Millisecond}})
	c, out := h.get(t.Context(), 0)
	c.next()
	for range 3 {
		if b := c.next(); len(b.comments) != 1 || b.comments[0] != "keep-alive" || b.event != "" || b.data != "" {
			t.Fatalf("block %+v on a quiet stream, want the comment keep-alive", b)
		}
	}
	out.Offer(message("s", 1, 10))
	for {
		if b := c.next(); b.event != "" {
			if b.id != "s:1" {
				t.Fatalf("event %+v", b)
			}
			break
		}
	}
	out.Close(output.ErrShutdown)
	h.result()
}

// A client that goes away ends the stream with ErrClientGone.
func TestClientGoesAway(t *testing.T) {
	h := newHarness(t, transport.Session{})
	ctx, cancel := context.WithCancel(t.Context())
	c, out := h.get(ctx, 0)
	c.next()
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
	c.next()
	start := time.Now()
	for i := uint64(1); i <= 400; i++ { // 25 MB: more than any socket buffer holds
		if !out.Offer(message("s", i, 64<<10)) {
			t.Fatalf("queue full at %d", i)
		}
	}
	err := h.result()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Serve returned %v, want a write timeout", err)
	}
	t.Logf("cut %v after the first event, with %d of 400 events written", time.Since(start), out.Counters().Delivered)
}

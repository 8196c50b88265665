package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/httpapi"
	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/rawconn"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/source/demo"
	"github.com/streamux/streamux/internal/source/ingest"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/supervisor"
	"github.com/streamux/streamux/internal/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quietLog keeps the engine's info lines out of the test output; warnings still show.
var quietLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// env is a real streamux engine behind a real HTTP server: two http sources ("in", "other") and
// a demo source ("demo") that only starts counting when a test asks for it.
type env struct {
	t      *testing.T
	sup    *supervisor.Supervisor
	api    *httpapi.Server
	srv    *httptest.Server
	client *http.Client
}

type envOptions struct {
	queue     output.Limits
	transport transport.Options
	history   int
	demoRate  float64 // 0: no demo source
	// extra sources, besides "in" and "other"
	extra   []supervisor.Source
	auth    *auth.Authenticator
	origins []string
	hosts   []string // allowed_hosts
	limits  httpapi.Limits
	tls     bool // serve HTTPS and WSS with httptest's certificate
	http2   bool // with tls: offer HTTP/2 too, as a server with a certificate does
	// smallBuffers shrinks the server's socket send buffers, so that a client that stops
	// reading is noticed after kilobytes rather than megabytes.
	smallBuffers bool

	// predicates bounds the clients' predicates (limits.predicate_max_bytes, _max_cost).
	predicates predicate.Limits
	// check bounds POST /v1/check (limits.check_max_cost, check_rate, check_burst).
	check httpapi.CheckLimits
}

// smallBufferListener sets a small send buffer on every accepted connection.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	srcs := []supervisor.Source{
		{Name: "in", Type: "http", Adapter: ingest.New(ingest.Config{MaxBodyBytes: 1 << 20})},
		{Name: "other", Type: "http", Adapter: ingest.New(ingest.Config{})},
	}
	srcs = append(srcs, o.extra...)
	if o.demoRate > 0 {
		srcs = append(srcs, supervisor.Source{Name: "demo", Type: "demo", Adapter: demo.New(demo.Config{Rate: o.demoRate})})
	}
	sup, err := supervisor.New(srcs, supervisor.Options{Queue: o.queue, History: router.History{Size: o.history}, Log: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(ctx) }()
	api := httpapi.New(sup, httpapi.Options{Transport: o.transport, Log: quietLog, Auth: o.auth, AllowedOrigins: o.origins, AllowedHosts: o.hosts, Limits: o.limits, Predicates: o.predicates, Check: o.check})
	srv := httptest.NewUnstartedServer(api)
	if o.smallBuffers {
		srv.Listener = smallBufferListener{srv.Listener}
	}
	// As streamux serves: its connections read and write with raw system calls.
	srv.Listener = rawconn.Listener{Listener: srv.Listener}
	if o.tls {
		srv.EnableHTTP2 = o.http2
		srv.StartTLS()
	} else {
		srv.Start()
	}
	e := &env{t: t, sup: sup, api: api, srv: srv, client: srv.Client()}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := sup.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		api.Close(sctx)
		srv.Close()
		cancel()
		<-done
		e.client.CloseIdleConnections()
	})
	// Wait for the http sources to be up, so that publishing works at once; tests wait for their
	// own other sources.
	waitFor(t, "sources up", func() bool {
		ok := true
		for _, s := range sup.Sources() {
			ok = ok && (s.State == "up" || s.Type != "http")
		}
		return ok
	})
	return e
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	sourcetest.Eventually(t, 10*time.Second, cond, "%s", what)
}

// publish posts NDJSON envelopes to the http source name.
func (e *env) publish(name string, msgs ...msg) {
	e.t.Helper()
	if err := e.tryPublish(name, msgs...); err != nil {
		e.t.Fatal(err)
	}
}

// tryPublish is publish for a goroutine other than the test's: it returns the error.
func (e *env) tryPublish(name string, msgs ...msg) error {
	var b bytes.Buffer
	for _, m := range msgs {
		line, err := json.Marshal(m)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	resp, err := e.client.Post(e.srv.URL+"/v1/sources/"+name+"/messages?envelope=true", "application/x-ndjson", &b)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("publish: %s: %s", resp.Status, body)
	}
	return nil
}

type msg struct {
	Key     string            `json:"key"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body"`
}

func numbered(n int, key func(i int) string) []msg {
	out := make([]msg, n)
	for i := range out {
		out[i] = msg{Key: key(i + 1), Body: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i+1))}
	}
	return out
}

// event is a decoded event as a client sees it.
type event struct {
	Type    string            `json:"type"`
	ID      string            `json:"id"`
	Source  string            `json:"source"`
	Seq     uint64            `json:"seq"`
	Key     string            `json:"key"`
	Time    string            `json:"time"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
	Missed  uint64            `json:"missed"`
	Reason  string            `json:"reason"`
	State   string            `json:"state"`
	Err     string            `json:"error"`

	sseID, sseEvent string // SSE framing, where it came over SSE
}

// client reads one stream.
type client interface {
	next(t *testing.T) event
	close()
}

func (e *env) streamURL(q url.Values) string { return e.srv.URL + "/v1/stream?" + q.Encode() }

// ndjsonClient opens an NDJSON stream and fails the test on a non-200 answer.
func (e *env) ndjson(q url.Values) client {
	e.t.Helper()
	resp := e.get(q, "application/x-ndjson")
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		e.t.Fatalf("content type %q", ct)
	}
	return &lineClient{resp: resp, sc: bufio.NewScanner(resp.Body)}
}

func (e *env) get(q url.Values, accept string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.streamURL(q), nil)
	req.Header.Set("Accept", accept)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e.t.Fatalf("GET /v1/stream: %s: %s", resp.Status, b)
	}
	return resp
}

type lineClient struct {
	resp *http.Response
	sc   *bufio.Scanner
}

func (c *lineClient) next(t *testing.T) event {
	t.Helper()
	if !c.sc.Scan() {
		t.Fatalf("ndjson stream ended: %v", c.sc.Err())
	}
	var ev event
	if err := json.Unmarshal(c.sc.Bytes(), &ev); err != nil {
		t.Fatalf("bad line %q: %v", c.sc.Bytes(), err)
	}
	return ev
}

func (c *lineClient) close() { c.resp.Body.Close() }

// sse opens a Server-Sent Events stream.
func (e *env) sse(q url.Values, lastEventID string) client {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.streamURL(q), nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("GET /v1/stream (SSE): %s: %s", resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		e.t.Fatalf("content type %q", ct)
	}
	return &sseClient{resp: resp, br: bufio.NewReader(resp.Body)}
}

type sseClient struct {
	resp       *http.Response
	br         *bufio.Reader
	heartbeats int
	lastID     string // as a browser's EventSource keeps it: from any id line
}

// preamble reads the stream's first block: its comment, retry and starting id.
func (c *sseClient) preamble(t *testing.T) {
	t.Helper()
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatalf("sse stream ended: %v", err)
		}
		if id, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "id: "); ok {
			c.lastID = id
		}
		if line == "\n" {
			return
		}
	}
}

func (c *sseClient) next(t *testing.T) event {
	t.Helper()
	var id, typ, data string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			t.Fatalf("sse stream ended: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data == "" {
				continue
			}
			var ev event
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("bad data %q: %v", data, err)
			}
			ev.sseID, ev.sseEvent = id, typ
			return ev
		case strings.HasPrefix(line, ":"):
			c.heartbeats++
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
			c.lastID = id
		case strings.HasPrefix(line, "event: "):
			typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			data += line[6:]
		}
	}
}

func (c *sseClient) close() { c.resp.Body.Close() }

// ws opens a WebSocket stream with gorilla's client.
func (e *env) ws(q url.Values) *wsClient {
	e.t.Helper()
	u := "ws" + strings.TrimPrefix(e.streamURL(q), "http")
	d := websocket.Dialer{}
	if tr, ok := e.client.Transport.(*http.Transport); ok {
		d.TLSClientConfig = tr.TLSClientConfig
	}
	conn, resp, err := d.Dial(u, nil)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			e.t.Fatalf("dial: %v: %s %s", err, resp.Status, b)
		}
		e.t.Fatalf("dial: %v", err)
	}
	return &wsClient{conn: conn}
}

type wsClient struct{ conn *websocket.Conn }

// wsSmallBuffer is ws with a small receive buffer: a client that stops reading stalls soon.
func (e *env) wsSmallBuffer(q url.Values) *wsClient {
	e.t.Helper()
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(8 << 10)
		}
		return c, err
	}}
	u := "ws" + strings.TrimPrefix(e.streamURL(q), "http")
	conn, _, err := d.Dial(u, nil)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	return &wsClient{conn: conn}
}

func (c *wsClient) next(t *testing.T) event {
	t.Helper()
	b := c.frame(t)
	var ev event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("bad frame %q: %v", b, err)
	}
	return ev
}

// frame reads one text frame.
func (c *wsClient) frame(t *testing.T) []byte {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, b, err := c.conn.ReadMessage()
	if err != nil {
		t.Fatalf("ws read: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("frame type %d, want text", typ)
	}
	return b
}

func (c *wsClient) close() { c.conn.Close() }

// wsBatchClient reads a WebSocket stream opened with batch=true: each frame holds one event or
// several, one per line.
type wsBatchClient struct {
	*wsClient
	lines  [][]byte
	frames int
}

func (e *env) wsBatch(q url.Values) *wsBatchClient {
	q2 := url.Values{"batch": {"true"}}
	for k, v := range q {
		q2[k] = v
	}
	return &wsBatchClient{wsClient: e.ws(q2)}
}

func (c *wsBatchClient) next(t *testing.T) event {
	t.Helper()
	if len(c.lines) == 0 {
		c.lines = bytes.Split(c.frame(t), []byte("\n"))
		c.frames++
	}
	var ev event
	if err := json.Unmarshal(c.lines[0], &ev); err != nil {
		t.Fatalf("bad line %q: %v", c.lines[0], err)
	}
	c.lines = c.lines[1:]
	return ev
}

// apiErr reads an error answer.
type apiErr struct {
	Error struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Position *int   `json:"position"`
		Accepted *int   `json:"accepted"`
	} `json:"error"`
}

func (e *env) getJSON(path string, v any) int {
	e.t.Helper()
	resp, err := e.client.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		e.t.Fatalf("GET %s: decode: %v", path, err)
	}
	return resp.StatusCode
}

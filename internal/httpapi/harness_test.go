package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/httpapi"
	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/server"
	"github.com/streamux/streamux/internal/source/demo"
	"github.com/streamux/streamux/internal/source/ingest"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/supervisor"
	"github.com/streamux/streamux/internal/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quietLog keeps the engine's info lines out of the test output; warnings still show.
var quietLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// env is a real streamux, run by internal/server as the binary runs it, on a loopback listener:
// two http sources ("in", "other"), and a demo source ("demo") when a test asks for one.
type env struct {
	t      *testing.T
	srv    *testServer
	sup    *supervisor.Supervisor
	api    *httpapi.Server
	client *http.Client
}

// testServer is where a test reaches its server: the URL, the listener and a client, as an
// httptest.Server offers them.
type testServer struct {
	URL      string
	Listener net.Listener
	client   *http.Client

	mu    sync.Mutex
	conns []net.Conn // every connection the server accepted
}

// Client returns a client for the server: with tls, one that trusts its certificate.
func (s *testServer) Client() *http.Client { return s.client }

// Accept is the server's: it keeps each connection for CloseClientConnections.
func (s *testServer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err == nil {
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
	}
	return c, err
}

func (s *testServer) Close() error   { return s.Listener.Close() }
func (s *testServer) Addr() net.Addr { return s.Listener.Addr() }

// CloseClientConnections closes every connection the server has accepted, streams included.
func (s *testServer) CloseClientConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

type envOptions struct {
	queue     output.Limits
	transport transport.Options // its Heartbeat, WriteTimeout, MaxBatch, WriteDelay and MaxClientFrame
	history   int
	demoRate  float64 // 0: no demo source
	// extra sources, besides "in" and "other"
	extra   []config.Source
	auth    auth.Config
	origins []string
	hosts   []string // allowed_hosts
	limits  httpapi.Limits
	tls     bool // serve HTTPS and WSS with a certificate of the test's own
	http2   bool // with tls: the client speaks HTTP/2, which the server, like any with a certificate, offers
	// smallBuffers shrinks the server's socket send buffers, so that a client that stops
	// reading is noticed after kilobytes rather than megabytes.
	smallBuffers bool

	// predicates bounds the clients' predicates (limits.predicate_max_bytes, _max_cost).
	predicates predicate.Limits
	// check bounds POST /v1/check (limits.check_max_cost, check_rate, check_burst).
	check httpapi.CheckLimits
}

// config is the configuration o stands for: the defaults, and what o sets.
func (o envOptions) config(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.DataDir = config.DataDirMemory
	cfg.Sources = []config.Source{
		{Name: "in", Type: "http", Spec: &ingest.Config{MaxBodyBytes: 1 << 20}},
		{Name: "other", Type: "http", Spec: &ingest.Config{}},
	}
	cfg.Sources = append(cfg.Sources, o.extra...)
	if o.demoRate > 0 {
		cfg.Sources = append(cfg.Sources, config.Source{Name: "demo", Type: "demo", Spec: &demo.Config{Rate: o.demoRate}})
	}
	set := func(dst, v any) { // v, unless it is zero
		if rv := reflect.ValueOf(v); !rv.IsZero() {
			reflect.ValueOf(dst).Elem().Set(rv)
		}
	}
	l := &cfg.Limits
	set(&l.QueueEvents, o.queue.Events)
	set(&l.QueueBytes, o.queue.Bytes)
	set(&cfg.Stream.Heartbeat, o.transport.Heartbeat)
	set(&cfg.Stream.WriteTimeout, o.transport.WriteTimeout)
	set(&cfg.Stream.MaxBatch, o.transport.MaxBatch)
	set(&cfg.Stream.WriteDelay, o.transport.WriteDelay)
	set(&l.ClientFrameBytes, o.transport.MaxClientFrame)
	set(&cfg.History.Size, o.history)
	cfg.Auth = o.auth
	cfg.AllowedOrigins, cfg.AllowedHosts = o.origins, o.hosts
	set(&l.Connections, o.limits.Connections)
	set(&l.ConnectionsPerAddress, o.limits.ConnectionsPerAddress)
	set(&l.SubscriptionsPerCredential, o.limits.SubscriptionsPerCredential)
	set(&l.SubscribeRate, o.limits.SubscribeRate)
	set(&l.SubscribeBurst, o.limits.SubscribeBurst)
	l.ApplyToLoopback = o.limits.ApplyToLoopback
	set(&l.IngestRequests, o.limits.IngestRequests)
	set(&l.IngestRequestsPerClient, o.limits.IngestRequestsPerClient)
	set(&l.BodyBufferBytes, o.limits.BodyBytes)
	set(&l.BodyReadTimeout, o.limits.BodyReadTimeout)
	set(&l.BodyMinRate, o.limits.BodyMinRate)
	set(&l.IngestIdleTimeout, o.limits.IngestIdleTimeout)
	set(&l.PredicateMaxBytes, o.predicates.MaxBytes)
	set(&l.PredicateMaxCost, o.predicates.MaxCost)
	set(&l.CheckMaxCost, o.check.MaxCost)
	set(&l.CheckRate, o.check.Rate)
	set(&l.CheckBurst, o.check.Burst)
	if o.tls {
		cfg.TLS.Cert, cfg.TLS.Key = certificate(t)
	}
	return cfg
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
	cfg := o.config(t)
	srv, err := server.New(cfg, server.Options{Log: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.smallBuffers {
		ln = smallBufferListener{ln}
	}
	ts := &testServer{URL: "http://" + ln.Addr().String(), Listener: ln, client: &http.Client{}}
	if o.tls {
		ts.URL = "https://" + ln.Addr().String()
		pool := x509.NewCertPool()
		b, err := os.ReadFile(cfg.TLS.Cert)
		if err != nil || !pool.AppendCertsFromPEM(b) {
			t.Fatalf("the test certificate: %v", err)
		}
		ts.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: o.http2}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ts) }() // waited for by the cleanup
	e := &env{t: t, srv: ts, sup: srv.Supervisor(), api: srv.API(), client: ts.client}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		e.client.CloseIdleConnections()
	})
	// Wait for the http sources to be up, so that publishing works at once; tests wait for their
	// own other sources.
	waitFor(t, "sources up", func() bool {
		ok := true
		for _, s := range e.sup.Sources() {
			ok = ok && (s.State == "up" || s.Type != "http")
		}
		return ok
	})
	return e
}

// certificate writes a self-signed certificate for 127.0.0.1 and localhost, and its key, to
// PEM files, and returns their paths.
func certificate(t *testing.T) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "streamux test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
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

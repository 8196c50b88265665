package webui_test

import (
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
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/output"
	streamux "github.com/streamux/streamux/internal/server"
	"github.com/streamux/streamux/internal/source/demo"
	"github.com/streamux/streamux/internal/source/ingest"
	"github.com/streamux/streamux/internal/source/wsdial"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/supervisor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quietLog keeps the engine's info lines out of the test output; warnings still show.
var quietLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// server is a real streamux, run by internal/server as the binary runs it, serving this page: an
// http source "alpha", to which only the test publishes, so that its sequence numbers are known,
// and optionally a demo source and a websocket source.
type server struct {
	URL    string
	addr   string
	sup    *supervisor.Supervisor
	client *http.Client
	alpha  int // messages published to alpha so far: the newest sequence number

	stopOnce sync.Once
	stopFn   func()
}

type serverOptions struct {
	addr     string // listen here (a restart of a server that listened here); "": any loopback port
	history  int    // messages each source keeps; 0: the default
	queue    output.Limits
	demo     string  // the name of a demo source; "": none
	noAlpha  bool    // no http source: the demo source alone, as streamux with no configuration
	demoRate float64 // its rate; 0: demo's default
	rec      *recorder
	// feed, if set, is the upstream of a websocket source named "feed".
	feed *upstream
	// before is published to alpha before the page is opened, with no credential: not with auth.
	before []msg
	// auth, if set, authenticates every request (the configuration's auth:); then publish with
	// a key that may write to alpha (publishAs), not publish.
	auth auth.Config
	// sinks are the configuration's sinks (webhooks may reach loopback).
	sinks []config.Sink
	// owner is the test that stops the server when it ends; default: the test that starts it.
	// A subtest that restarts a server for its parent's later subtests names the parent.
	owner *testing.T
}

// msg is one NDJSON envelope line of POST /v1/sources/alpha/messages?envelope=true.
type msg struct {
	Key  string          `json:"key"`
	Body json.RawMessage `json:"body"`
}

func m(key, body string) msg { return msg{Key: key, Body: json.RawMessage(body)} }

// alternate is n messages {"n": first}, {"n": first+1}, …, keyed "even" or "odd" by n.
func alternate(first, n int) []msg {
	out := make([]msg, n)
	for i := range out {
		key := "odd"
		if (first+i)%2 == 0 {
			key = "even"
		}
		out[i] = m(key, fmt.Sprintf(`{"n":%d}`, first+i))
	}
	return out
}

func startServer(t *testing.T, o serverOptions) *server {
	t.Helper()
	if o.owner == nil {
		o.owner = t
	}
	cfg := config.Default()
	cfg.DataDir = config.DataDirMemory
	cfg.Sources = nil
	if !o.noAlpha {
		cfg.Sources = append(cfg.Sources, config.Source{Name: "alpha", Type: "http", Spec: &ingest.Config{}})
	}
	if o.demo != "" {
		cfg.Sources = append(cfg.Sources, config.Source{Name: o.demo, Type: "demo", Spec: &demo.Config{Rate: o.demoRate}})
	}
	if o.feed != nil {
		cfg.Sources = append(cfg.Sources, config.Source{Name: "feed", Type: "websocket",
			Backoff: config.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond},
			Spec:    &wsdial.Config{URL: "ws" + strings.TrimPrefix(o.feed.srv.URL, "http")}})
	}
	if o.history > 0 {
		cfg.History.Size = o.history
	}
	cfg.Limits.QueueEvents, cfg.Limits.QueueBytes = o.queue.Events, o.queue.Bytes
	cfg.Auth = o.auth
	cfg.Sinks = o.sinks
	cfg.Limits.WebhookAllowPrivate = true
	var opt streamux.Options
	opt.Log = quietLog
	if o.rec != nil {
		opt.Wrap = o.rec.wrap
	}
	srv, err := streamux.New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	addr := o.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }() // waited for in stop
	s := &server{URL: "http://" + ln.Addr().String(), addr: ln.Addr().String(), sup: srv.Supervisor(), client: &http.Client{Timeout: 10 * time.Second}}
	s.stopFn = func() {
		cancel()
		if err := <-done; err != nil {
			o.owner.Errorf("run: %v", err)
		}
		s.client.CloseIdleConnections()
	}
	o.owner.Cleanup(s.stop)
	waitUntil(t, "the sources are up", func() bool {
		for _, si := range s.sup.Sources() {
			if si.State != "up" {
				return false
			}
		}
		return true
	})
	if len(o.before) > 0 {
		s.publish(t, o.before...) // before the test opens the page: no client has connected
	}
	return s
}

// stop shuts the server down as the binary does: streams end (WebSocket 1001), then the
// listener closes and the sources stop.
func (s *server) stop() { s.stopOnce.Do(s.stopFn) }

func ndjson(t *testing.T, msgs []msg) io.Reader {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, x := range msgs {
		if err := enc.Encode(x); err != nil {
			t.Fatal(err)
		}
	}
	return &b
}

// publish posts msgs to alpha and returns their event ids.
func (s *server) publish(t *testing.T, msgs ...msg) []string {
	t.Helper()
	resp, err := s.client.Post(s.URL+"/v1/sources/alpha/messages?envelope=true", "application/x-ndjson", ndjson(t, msgs))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ Accepted int }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || got.Accepted != len(msgs) {
		t.Fatalf("publish %d messages: %s, accepted %d, %v", len(msgs), resp.Status, got.Accepted, err)
	}
	ids := make([]string, len(msgs))
	for i := range ids {
		s.alpha++
		ids[i] = fmt.Sprintf("alpha:%d", s.alpha)
	}
	return ids
}

// kick ends a subscription the way an administrator does.
func (s *server) kick(t *testing.T, id uint64) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, fmt.Sprintf("%s/v1/subscriptions/%d", s.URL, id), nil)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE /v1/subscriptions/%d: %s", id, resp.Status)
	}
}

// subscription waits until exactly one subscription is open and returns it.
func (s *server) subscription(t *testing.T) supervisor.SubscriptionInfo {
	t.Helper()
	var subs []supervisor.SubscriptionInfo
	waitUntil(t, "one subscription", func() bool {
		subs = s.sup.Subscriptions()
		return len(subs) == 1
	})
	return subs[0]
}

// waitUntil polls cond until it holds, or fails the test after a deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	sourcetest.Eventually(t, 15*time.Second, cond, "%s", what)
}

// recorder sees every request the page makes, to check what it sends: it changes nothing, and
// the real server answers.
type recorder struct {
	mu   sync.Mutex
	reqs []request
}

type request struct {
	method, path string
	query        url.Values
	auth, accept string
	websocket    bool
	where        string // of a POST /v1/check
}

func (rc *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") && !strings.HasSuffix(r.URL.Path, "/messages") {
			req := request{
				method: r.Method, path: r.URL.Path, query: r.URL.Query(),
				auth: r.Header.Get("Authorization"), accept: r.Header.Get("Accept"),
				websocket: strings.EqualFold(r.Header.Get("Upgrade"), "websocket"),
			}
			if r.URL.Path == "/v1/check" {
				// Read the body to see the predicate, and hand the server the same bytes.
				b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
				var body struct{ Where string }
				_ = json.Unmarshal(b, &body)
				req.where = body.Where
				r.Body = io.NopCloser(bytes.NewReader(b))
			}
			rc.mu.Lock()
			rc.reqs = append(rc.reqs, req)
			rc.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// since returns the requests from the n-th on, and how many there are in all.
func (rc *recorder) since(n int) ([]request, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs[n:]...), len(rc.reqs)
}

// credential is the token a request carries: its Bearer token, else its ?token=.
func (r request) credential() string {
	if tok, ok := strings.CutPrefix(r.auth, "Bearer "); ok {
		return tok
	}
	return r.query.Get("token")
}

// streamCredentialProblem says what is wrong with how a stream request carries the token want:
// a WebSocket in its URL (a browser's WebSocket cannot set a header), SSE (read through fetch)
// as "Authorization: Bearer" and not in its URL, where logs and proxies would keep it.
func streamCredentialProblem(r request, want string) string {
	switch {
	case r.websocket && r.query.Get("token") != want:
		return fmt.Sprintf("a WebSocket stream with ?token=%q, want %q", r.query.Get("token"), want)
	case !r.websocket && (r.auth != "Bearer "+want || r.query.Has("token")):
		return fmt.Sprintf("an HTTP stream (Accept %s) with Authorization %q and ?token=%q, want the header only", r.accept, r.auth, r.query.Get("token"))
	}
	return ""
}

// streams returns the stream requests among reqs.
func streams(reqs []request) []request {
	var out []request
	for _, r := range reqs {
		if r.path == "/v1/stream" {
			out = append(out, r)
		}
	}
	return out
}

// upstream is a real WebSocket server for a websocket source to read from. It sends nothing;
// drop closes the connections it holds, as a restarting upstream does, so that the source
// reconnects.
type upstream struct {
	srv      *httptest.Server
	upgrader websocket.Upgrader
	mu       sync.Mutex
	conns    map[*websocket.Conn]bool
	handlers sync.WaitGroup // the handlers of upgraded connections, which httptest does not wait for
}

func startUpstream(t *testing.T) *upstream {
	u := &upstream{conns: map[*websocket.Conn]bool{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		u.handlers.Add(1)
		defer u.handlers.Done()
		u.mu.Lock()
		u.conns[c] = true
		u.mu.Unlock()
		defer func() {
			u.mu.Lock()
			delete(u.conns, c)
			u.mu.Unlock()
			c.Close()
		}()
		for { // until the source or drop closes it
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(func() {
		u.srv.Close()
		u.drop()
		u.handlers.Wait()
	})
	return u
}

// drop ends every connection with a close frame (1012: service restart).
func (u *upstream) drop() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for c := range u.conns {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseServiceRestart, "upstream restarting"), time.Now().Add(time.Second))
		_ = c.Close()
	}
}

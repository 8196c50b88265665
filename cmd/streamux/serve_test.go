package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// With no arguments but -listen: the web page, one demo source that comes up, and a filtered
// stream of its even numbers.
func TestServeDefault(t *testing.T) {
	t.Parallel()
	s := serve(t)

	resp, err := client.Get(s.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET /: Content-Type %q, want text/html", ct)
	}
	if !strings.Contains(strings.ToLower(string(page)), "<html") {
		t.Errorf("GET /: not a web page: %.200s", page)
	}

	srcs := s.sources(t)
	if len(srcs) != 1 || srcs["demo"].Type != "demo" {
		t.Fatalf("GET /v1/sources = %+v, want one source demo of type demo", srcs)
	}
	s.waitUp(t, "demo")

	st := s.openNDJSON(t, url.Values{"where": {`key == "even"`}}.Encode())
	var last uint64
	for range 4 {
		ev := st.nextMessage(t)
		n := demoN(t, ev)
		if ev.Source != "demo" || ev.Key != "even" || n%2 != 0 {
			t.Errorf("event %+v (n=%d): want an even demo message", ev, n)
		}
		if want := fmt.Sprintf("demo:%d", ev.Seq); ev.ID != want {
			t.Errorf("id %q, want %q", ev.ID, want)
		}
		if ev.Seq <= last {
			t.Errorf("seq %d after %d", ev.Seq, last)
		}
		last = ev.Seq
		if _, err := time.Parse(time.RFC3339, ev.Time); err != nil {
			t.Errorf("time %q: %v", ev.Time, err)
		}
	}
	st.close()
	s.stop()
}

// SIGTERM with an NDJSON, an SSE and a WebSocket client connected: the WebSocket gets 1001,
// the HTTP streams end, and the process exits 0 within 10 s.
func TestShutdownClosesStreams(t *testing.T) {
	t.Parallel()
	s := serve(t)
	s.waitUp(t, "demo")
	q := url.Values{"where": {`key == "odd"`}}.Encode()

	// NDJSON
	nd := s.openNDJSON(t, q)
	nd.nextMessage(t)

	// SSE
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/v1/stream?"+q), nil)
	req.Header.Set("Accept", "text/event-stream")
	sseResp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sseResp.Body.Close()
	if ct := sseResp.Header.Get("Content-Type"); sseResp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("SSE: %s, Content-Type %q", sseResp.Status, ct)
	}
	sse := bufio.NewReader(sseResp.Body)
	for {
		line, err := sse.ReadString('\n')
		if err != nil {
			t.Fatalf("SSE before any event: %v", err)
		}
		if strings.HasPrefix(line, "event: message") {
			break
		}
	}

	// WebSocket
	wsc, wsResp, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/v1/stream?"+q, nil)
	if err != nil {
		t.Fatalf("WebSocket dial: %v (%v)", err, wsResp)
	}
	defer wsc.Close()
	_ = wsc.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, _, err := wsc.ReadMessage(); err != nil {
		t.Fatalf("WebSocket before any event: %v", err)
	}

	// Each client reads until its stream ends, on its own goroutine; the test waits for all three.
	ndEnd, sseEnd, wsEnd := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() { // waited for below
		_, err := io.Copy(io.Discard, nd.resp.Body)
		ndEnd <- err
	}()
	go func() { // waited for below
		_, err := io.Copy(io.Discard, sse)
		sseEnd <- err
	}()
	go func() { // waited for below
		for {
			if _, _, err := wsc.ReadMessage(); err != nil {
				wsEnd <- err
				return
			}
		}
	}()

	sent := time.Now()
	s.stop()
	if d := time.Since(sent); d > 10*time.Second {
		t.Errorf("exit took %v, want within 10 s", d)
	}
	for name, ch := range map[string]chan error{"NDJSON": ndEnd, "SSE": sseEnd} {
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("%s stream ended with %v, want a clean end", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s stream still open after the process exited", name)
		}
	}
	select {
	case err := <-wsEnd:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("WebSocket ended with %v, want close code 1001", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("WebSocket still open after the process exited")
	}
}

// SIGINT does what SIGTERM does.
func TestSIGINT(t *testing.T) {
	t.Parallel()
	s := serve(t)
	if err := s.cmd.Process.Signal(interrupt); err != nil {
		t.Fatal(err)
	}
	if code := s.wait(10 * time.Second); code != 0 {
		t.Errorf("exit status %d after SIGINT, want 0", code)
	}
}

// -config with a YAML file: its listen address and its sources, an http one and a demo one.
func TestServeConfig(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	path := writeFile(t, "streamux.yaml", `
listen: `+addr+`
sources:
  - name: events
    type: http
  - name: ticks
    type: demo
    rate: ${STREAMUX_E2E_RATE}
    payload: rich
`)
	s := serveEnv(t, []string{"STREAMUX_E2E_RATE=20"}, addr, "-config", path)
	srcs := s.sources(t)
	if len(srcs) != 2 || srcs["events"].Type != "http" || srcs["ticks"].Type != "demo" {
		t.Fatalf("GET /v1/sources = %+v, want events (http) and ticks (demo)", srcs)
	}
	s.waitUp(t, "events", "ticks")

	st := s.openNDJSON(t, url.Values{"where": {`body.amount > 100`}, "source": {"events"}}.Encode())
	for _, body := range []string{`{"amount": 50}`, `{"amount": 120.5, "region": "eu"}`} {
		resp, err := client.Post(s.url("/v1/sources/events/messages?key=eu.order.created"), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("ingest: %s %s", resp.Status, b)
		}
	}
	ev := st.nextMessage(t)
	var body struct {
		Amount float64 `json:"amount"`
	}
	if err := json.Unmarshal(ev.Body, &body); err != nil || ev.Source != "events" || ev.Key != "eu.order.created" || body.Amount != 120.5 || ev.Seq != 2 {
		t.Errorf("event %+v, want the second message (amount 120.5) of events", ev)
	}

	// The demo source is configured "rich": a predicate on its body's other fields works.
	st2 := s.openNDJSON(t, url.Values{"source": {"ticks"}}.Encode())
	ev = st2.nextMessage(t)
	var rich map[string]any
	if err := json.Unmarshal(ev.Body, &rich); err != nil || len(rich) < 2 {
		t.Errorf("rich demo body %s: want several fields", ev.Body)
	}
	st.close()
	st2.close()
	s.stop()
}

// A configuration with problems stops the process at once, non-zero, naming them on stderr.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown field", "listen: 127.0.0.1:0\nlisen: oops\n", []string{`unknown field "lisen"`, "line 2"}},
		{"unknown source field", "sources:\n  - name: d\n    type: demo\n    rat: 3\n", []string{`unknown field "rat"`, "(d)", "line 4"}},
		{"unknown type", "sources:\n  - name: q\n    type: kafkaa\n", []string{`unknown type "kafkaa"`}},
		{"unset variable", "listen: ${STREAMUX_E2E_SURELY_UNSET}\n", []string{"STREAMUX_E2E_SURELY_UNSET"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "bad.yaml", tc.yaml)
			p := start(t, "-config", path)
			if code := p.wait(10 * time.Second); code == 0 {
				t.Fatalf("exit status 0 with %q", tc.yaml)
			}
			msg := p.stderr.String()
			for _, w := range append(tc.want, path) {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, "struct {") || strings.Contains(msg, "config.") {
				t.Errorf("stderr shows Go types:\n%s", msg)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		p := start(t, "-config", "/nonexistent/streamux.yaml")
		if code := p.wait(10 * time.Second); code != 1 {
			t.Errorf("exit status %d, want 1", code)
		}
		if !strings.Contains(p.stderr.String(), "/nonexistent/streamux.yaml") {
			t.Errorf("stderr does not name the file:\n%s", p.stderr)
		}
	})
}

// An address that is taken is reported and the process exits 1 rather than hanging.
func TestListenTaken(t *testing.T) {
	t.Parallel()
	s := serve(t)
	p := start(t, "-listen", s.addr)
	if code := p.wait(10 * time.Second); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if !strings.Contains(p.stderr.String(), "listen") {
		t.Errorf("stderr does not say listen:\n%s", p.stderr)
	}
	s.stop()
}

// Clients that stop reading do not hold up shutdown: the process exits 0 within its
// shutdown_grace (10 s by default, what docker stop waits before it kills), although their
// writes, and the close frame, can only end by the write timeout (10 s).
func TestShutdownStuckClients(t *testing.T) {
	t.Parallel()
	const grace = 4 * time.Second
	path := writeFile(t, "stuck.yaml", fmt.Sprintf("shutdown_grace: %v\nsources:\n  - name: in\n    type: http\n", grace))
	s := serve(t, "-config", path)
	s.waitUp(t, "in")

	// Clients with a small receive buffer that never read after the handshake.
	smallRead := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		return c, err
	}
	dialer := websocket.Dialer{NetDialContext: smallRead}
	wsc, _, err := dialer.Dial("ws://"+s.addr+"/v1/stream?policy=drop", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wsc.Close()
	stuckTransport := &http.Transport{DialContext: smallRead}
	defer stuckTransport.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/v1/stream?policy=drop"), nil)
	resp, err := (&http.Client{Transport: stuckTransport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	// Publish big messages until both writers are stuck: their queues overflow and they drop.
	line := `{"pad":"` + strings.Repeat("x", 16<<10) + `"}` + "\n"
	batch := strings.Repeat(line, 64)
	eventually(t, 20*time.Second, "two stuck subscriptions that drop", func() bool {
		resp, err := client.Post(s.url("/v1/sources/in/messages"), "application/x-ndjson", strings.NewReader(batch))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("ingest: %s", resp.Status)
		}
		resp, err = client.Get(s.url("/v1/subscriptions"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var subs []struct {
			Counters struct {
				Dropped uint64 `json:"dropped"`
			} `json:"counters"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&subs); err != nil || len(subs) != 2 {
			t.Fatalf("GET /v1/subscriptions: %d subscriptions, %v", len(subs), err)
		}
		return subs[0].Counters.Dropped > 0 && subs[1].Counters.Dropped > 0
	})

	sent := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := s.wait(10 * time.Second)
	took := time.Since(sent)
	if code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
	// The bound is the contract itself, so it has no margin of the test's own: what holds it
	// on a loaded machine is serve's, which gives the streams the grace less a quarter of it
	// (at most 1 s) and keeps that for the rest of the shutdown.
	if took > grace {
		t.Errorf("exited %v after SIGTERM, want within shutdown_grace (%v)", took.Round(time.Millisecond), grace)
	}
}

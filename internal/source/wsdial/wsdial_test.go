package wsdial_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/wsdial"
	"github.com/streamux/streamux/internal/sourcetest"
)

const wait = 20 * time.Second

func newSource(t *testing.T, c wsdial.Config) *wsdial.Source {
	t.Helper()
	s, err := wsdial.New(c)
	if err != nil {
		t.Fatalf("wsdial.New: %v", err)
	}
	return s
}

// TestOnConnectEachConnect: the on_connect frames reach the upstream, in order, on the first
// connection and again after the upstream restarts.
func TestOnConnectEachConnect(t *testing.T) {
	t.Parallel()
	f := newFeed(t)
	frames := []string{`{"op":"login","token":"t"}`, subscribe, "plain text frame"}
	src := newSource(t, wsdial.Config{URL: f.URL(), OnConnect: frames})
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, source.Up, wait)
	sessionFrames := func(i int) func() bool {
		return func() bool {
			s := f.Sessions()
			return len(s) > i && slices.Equal(s[i].Frames(), frames)
		}
	}
	sourcetest.Eventually(t, wait, sessionFrames(0), "the on_connect frames on the first connection")

	from := len(r.Changes())
	f.kill()
	i := r.WaitState(t, from, source.Reconnecting, wait)
	r.WaitState(t, i, source.Up, wait)
	sourcetest.Eventually(t, wait, sessionFrames(1), "the on_connect frames again after the restart")
	if got := src.Counters().(wsdial.Counters).Connects; got != 2 {
		t.Errorf("Counters().Connects = %d, want 2", got)
	}
}

// TestOversize: a message over read_limit is discarded and counted; the connection stays and the
// next messages flow.
func TestOversize(t *testing.T) {
	t.Parallel()
	f := newFeed(t)
	const limit = 1024
	src := newSource(t, wsdial.Config{URL: f.URL(), OnConnect: []string{subscribe}, ReadLimit: limit})
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, source.Up, wait)
	sourcetest.Eventually(t, wait, func() bool { return f.send([]byte("ready")) == nil }, "the subscription")
	c.WaitLen(t, 1, wait)

	atLimit := bytes.Repeat([]byte("a"), limit)
	if err := f.send([]byte("before"), bytes.Repeat([]byte("x"), limit+1), bytes.Repeat([]byte("y"), 10*limit),
		atLimit, []byte("after")); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 6, wait)
	var got []string
	for _, m := range c.Messages() {
		if m.Lost > 0 { // the router turns it into a gap for every subscriber
			got = append(got, fmt.Sprintf("lost %d", m.Lost))
			continue
		}
		got = append(got, string(m.Body))
	}
	want := []string{"ready", "before", "lost 1", "lost 1", string(atLimit), "after"}
	if !slices.Equal(got, want) {
		t.Errorf("got %.40q, want %.40q", got, want)
	}
	st := src.Counters().(wsdial.Counters)
	if st.Oversize != 2 || st.Messages != 4 || st.Connects != 1 {
		t.Errorf("Counters() = %+v, want 2 oversize, 4 messages, 1 connect", st)
	}
	if n := len(f.Sessions()); n != 1 {
		t.Errorf("%d connections: the oversize messages cost a reconnect", n)
	}
}

// TestKey: the key comes from the JSON path; a message that is not JSON is passed on with the
// key "" and counted.
func TestKey(t *testing.T) {
	t.Parallel()
	f := newFeed(t)
	src := newSource(t, wsdial.Config{URL: f.URL(), OnConnect: []string{subscribe}, Key: "data.symbol"})
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, source.Up, wait)
	sourcetest.Eventually(t, wait, func() bool { return f.send([]byte(`{"data":{"symbol":"READY"}}`)) == nil }, "the subscription")
	c.WaitLen(t, 1, wait)
	tests := []struct{ body, key string }{
		{`{"data":{"symbol":"BTC-USD","px":1}}`, "BTC-USD"},
		{`{"data":{"symbol":42.50}}`, "42.50"},
		{`{"data":{"symbol":true}}`, "true"},
		{`{"data":{"symbol":null}}`, ""},
		{`{"data":{"symbol":{"a":1}}}`, ""},
		{`{"data":{}}`, ""},
		{`{"data":{"symbol":"esc\u00e9\"q"}}`, `escé"q`},
		{`[1,2]`, ""},
		{`not json`, ""},
		{"\xff\x00binary", ""},
	}
	var bodies [][]byte
	for _, tt := range tests {
		bodies = append(bodies, []byte(tt.body))
	}
	if err := f.send(bodies...); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 1+len(tests), wait)
	for i, m := range c.Messages()[1:] {
		if m.Key != tests[i].key || string(m.Body) != tests[i].body {
			t.Errorf("message %d: key %q body %q, want key %q body %q", i, m.Key, m.Body, tests[i].key, tests[i].body)
		}
		if m.Headers != nil {
			t.Errorf("message %d: headers %v, want none", i, m.Headers)
		}
	}
	if got := src.Counters().(wsdial.Counters).DecodeErrors; got != 2 {
		t.Errorf("Counters().DecodeErrors = %d, want 2", got)
	}
}

// TestDeadUpstream: an upstream that keeps the connection open but answers no ping is given up
// after ping_interval + pong_timeout, and the source reconnects.
func TestDeadUpstream(t *testing.T) {
	t.Parallel()
	f := newFeed(t, func(f *feed) { f.ignorePings = true })
	src := newSource(t, wsdial.Config{URL: f.URL(), PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond})
	r := sourcetest.Start(t, src, sourcetest.NewCollector().Emit)
	r.WaitState(t, 0, source.Up, wait)
	i := r.WaitState(t, 0, source.Reconnecting, wait)
	if err := r.Changes()[i].Err; err == nil || !strings.Contains(err.Error(), "not even a pong") {
		t.Errorf("reconnecting because of %v, want the missing pong", err)
	}
	r.WaitState(t, i, source.Up, wait)
}

// TestLiveUpstreamStays: an upstream that answers pings keeps the connection through a silence
// longer than ping_interval + pong_timeout. (The pong timeout leaves room for a loaded machine.)
func TestLiveUpstreamStays(t *testing.T) {
	t.Parallel()
	f := newFeed(t)
	const interval, timeout = 20 * time.Millisecond, time.Second
	src := newSource(t, wsdial.Config{URL: f.URL(), PingInterval: interval, PongTimeout: timeout})
	r := sourcetest.Start(t, src, sourcetest.NewCollector().Emit)
	r.WaitState(t, 0, source.Up, wait)
	start := time.Now()
	sourcetest.Eventually(t, wait, func() bool {
		s := f.Sessions()
		return time.Since(start) > 2*(interval+timeout) && len(s) > 0 && s[0].Pings() >= 50
	}, "fifty pings and twice the dead-upstream time on the first connection")
	for _, ch := range r.Changes() {
		if ch.State != source.Connecting && ch.State != source.Up {
			t.Errorf("state %s (%v) on a live upstream", ch.State, ch.Err)
		}
	}
}

// TestHandshake: headers and subprotocols reach the upstream's handshake.
func TestHandshake(t *testing.T) {
	t.Parallel()
	f := newFeed(t, func(f *feed) { f.upgrader.Subprotocols = []string{"feed.v2"} })
	src := newSource(t, wsdial.Config{
		URL:          f.URL(),
		Headers:      map[string]string{"Authorization": "Bearer s3cret", "x-api-key": "k"},
		Subprotocols: []string{"feed.v3", "feed.v2"},
	})
	r := sourcetest.Start(t, src, sourcetest.NewCollector().Emit)
	r.WaitState(t, 0, source.Up, wait)
	s := f.session(t, 0)
	if got := s.Header.Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("Authorization %q", got)
	}
	if got := s.Header.Get("X-Api-Key"); got != "k" {
		t.Errorf("X-Api-Key %q", got)
	}
	if s.Subprotocol != "feed.v2" {
		t.Errorf("subprotocol %q, want feed.v2", s.Subprotocol)
	}
}

// A URL with user information authenticates with HTTP Basic, as curl and websocat do; it once
// passed validation and then failed every dial with "malformed ws or wss URL" (issue 16).
func TestUserInfo(t *testing.T) {
	t.Parallel()
	f := newFeed(t)
	u := strings.Replace(f.URL(), "ws://", "ws://us%40er:p%3Ass@", 1)
	src := newSource(t, wsdial.Config{URL: u})
	r := sourcetest.Start(t, src, sourcetest.NewCollector().Emit)
	r.WaitState(t, 0, source.Up, wait)
	user, pw, ok := (&http.Request{Header: f.session(t, 0).Header}).BasicAuth()
	if !ok || user != "us@er" || pw != "p:ss" {
		t.Errorf("Basic auth %q %q %v", user, pw, ok)
	}
	if _, err := wsdial.New(wsdial.Config{URL: u, Headers: map[string]string{"authorization": "Bearer x"}}); err == nil ||
		!strings.Contains(err.Error(), "keep one") {
		t.Errorf("user information and an Authorization header: %v", err)
	}
}

// TestRefused: an upgrade refused with 401 is permanent (state failed) and says why; a 503 is
// retried as usual.
func TestRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status int
		state  source.State
	}{{http.StatusUnauthorized, source.Failed}, {http.StatusServiceUnavailable, source.Reconnecting}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bad token", tt.status)
		}))
		t.Cleanup(srv.Close)
		src := newSource(t, wsdial.Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http")})
		r := sourcetest.Start(t, src, sourcetest.NewCollector().Emit)
		i := r.WaitState(t, 0, tt.state, wait)
		err := r.Changes()[i].Err
		if err == nil || !strings.Contains(err.Error(), http.StatusText(tt.status)) || !strings.Contains(err.Error(), "bad token") {
			t.Errorf("status %d: error %v, want the status and the body", tt.status, err)
		}
		r.Stop()
	}
}

// TestStopClosesCleanly: a stop sends the closing handshake (1000) before closing.
func TestStopClosesCleanly(t *testing.T) {
	t.Parallel()
	f := newFeed(t)
	src := newSource(t, wsdial.Config{URL: f.URL()})
	r := sourcetest.Start(t, src, sourcetest.NewCollector().Emit)
	r.WaitState(t, 0, source.Up, wait)
	s := f.session(t, 0)
	r.Stop()
	sourcetest.Eventually(t, wait, func() bool { return s.CloseCode() == websocket.CloseNormalClosure },
		"close code 1000 at the upstream")
}

// TestCompression: permessage-deflate, when both sides offer it.
func TestCompression(t *testing.T) {
	t.Parallel()
	f := newFeed(t, func(f *feed) { f.upgrader.EnableCompression = true })
	src := newSource(t, wsdial.Config{URL: f.URL(), OnConnect: []string{subscribe}, Compression: true})
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, source.Up, wait)
	big := bytes.Repeat([]byte(`{"k":"compressible"}`), 1000)
	sourcetest.Eventually(t, wait, func() bool { return f.send(big) == nil }, "the subscription")
	c.WaitLen(t, 1, wait)
	if !bytes.Equal(c.Messages()[0].Body, big) {
		t.Errorf("body differs after decompression")
	}
}

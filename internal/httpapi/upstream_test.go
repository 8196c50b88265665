package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/source/wsdial"
)

// An upstream WebSocket feed through the whole server: streamux subscribes on connect, keys
// messages by a JSON path, and clients filter them; when the upstream drops, the client sees
// the status change and the feed resumes after streamux reconnects and subscribes again.
func TestUpstreamWebSocketEndToEnd(t *testing.T) {
	var mu sync.Mutex
	var conns []*websocket.Conn
	subscribed := make(chan *websocket.Conn, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		if _, b, err := c.ReadMessage(); err == nil && string(b) == `{"op":"subscribe"}` {
			subscribed <- c
		}
		for { // read until the connection ends; gorilla answers pings meanwhile
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer func() {
		up.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	e := newEnv(t, envOptions{extra: []config.Source{{
		Name: "ticker", Type: "websocket", Backoff: config.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		Spec: &wsdial.Config{URL: "ws" + strings.TrimPrefix(up.URL, "http"), OnConnect: []string{`{"op":"subscribe"}`}, Key: "channel"},
	}}})
	first := <-subscribed
	// Subscribe once the source is up, so that the stream does not begin with that status.
	waitFor(t, "ticker up", func() bool {
		for _, s := range e.sup.Sources() {
			if s.Name == "ticker" {
				return s.State == "up"
			}
		}
		return false
	})
	c := e.ndjson(url.Values{"source": {"ticker"}, "where": {`key == "trades" && body.price > 100`}})
	defer c.close()
	send := func(conn *websocket.Conn, frames ...string) {
		for _, f := range frames {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(first, `{"channel":"trades","price":99}`, `{"channel":"quotes","price":200}`, `{"channel":"trades","price":101}`)
	if ev := c.next(t); ev.Key != "trades" || string(ev.Body) != `{"channel":"trades","price":101}` {
		t.Fatalf("got %+v", ev)
	}
	first.Close() // the upstream drops
	for {
		ev := c.next(t)
		if ev.Type != "status" {
			t.Fatalf("want status events, got %+v", ev)
		}
		if ev.State == "up" {
			break
		}
	}
	second := <-subscribed // on_connect was sent again
	send(second, `{"channel":"trades","price":150}`)
	if ev := c.next(t); ev.Type != "message" || string(ev.Body) != `{"channel":"trades","price":150}` {
		t.Fatalf("after the reconnect: %+v", ev)
	}
}

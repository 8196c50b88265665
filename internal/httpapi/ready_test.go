package httpapi_test

import (
	"crypto/tls"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/source/amqp"
)

// A required source that is down keeps /readyz at 503, naming it, while the rest of the server
// works: other sources stream, and the down source's state and error are shown.
func TestRequiredSourceDown(t *testing.T) {
	// A port with nothing listening: the broker is "down".
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := newEnv(t, envOptions{extra: []config.Source{{
		Name: "orders", Type: "amqp", Required: true,
		Backoff: config.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		Spec:    &amqp.Config{URL: "amqp://guest:guest@" + addr + "/", Exchange: "x"},
	}}})
	var ready struct {
		Ready bool     `json:"ready"`
		Down  []string `json:"down"`
	}
	if st := e.getJSON("/readyz", &ready); st != 503 || ready.Ready || len(ready.Down) != 1 || ready.Down[0] != "orders" {
		t.Fatalf("/readyz: %d %+v", st, ready)
	}
	var list []map[string]any
	waitFor(t, "the source to show its error", func() bool {
		e.getJSON("/v1/sources", &list)
		for _, s := range list {
			if s["name"] == "orders" {
				return s["state"] == "reconnecting" && s["last_error"] != ""
			}
		}
		return false
	})
	c := e.ndjson(url.Values{"source": {"in"}})
	defer c.close()
	e.publish("in", numbered(1, keyEvenOdd)...)
	if ev := c.next(t); ev.Seq != 1 {
		t.Fatalf("the rest of the server: %+v", ev)
	}
	var health map[string]any
	if st := e.getJSON("/healthz", &health); st != 200 {
		t.Fatalf("/healthz %d", st)
	}
}

// The server speaks TLS when given a certificate: HTTPS streams and WSS.
func TestTLS(t *testing.T) {
	e := newEnv(t, envOptions{tls: true})
	client := e.srv.Client() // trusts the test certificate
	resp, err := client.Get(e.srv.URL + "/v1/sources")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https: %d, tls %v", resp.StatusCode, resp.TLS != nil)
	}
	ws := e.ws(url.Values{"source": {"in"}})
	defer ws.close()
	e.publish("in", numbered(1, keyEvenOdd)...)
	if ev := ws.next(t); ev.Seq != 1 {
		t.Fatalf("wss: %+v", ev)
	}
	if _, ok := ws.conn.NetConn().(*tls.Conn); !ok {
		t.Fatal("the WebSocket is not over TLS")
	}
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// send is do with the Host header honoured: hdr["Host"], if set, is the request's Host.
func (e *env) send(method, path, bearer, body string, hdr map[string]string) (int, string, http.Header) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, e.srv.URL+path, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var ae apiErr
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	_ = json.Unmarshal(b, &ae)
	return resp.StatusCode, ae.Error.Code, resp.Header
}

// historyLen is how many messages the history of source holds.
func (e *env) historyLen(source string) int {
	e.t.Helper()
	evs, err := e.sup.History(context.Background(), source)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(evs)
}

// DNS rebinding: a page of rebind.attacker.example, whose name the attacker then points at
// 127.0.0.1, is same-origin with streamux as far as the browser knows; only the Host header
// tells. Without auth, streamux answers only the names that can be its own.
func TestForeignHostRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	addr := e.srv.Listener.Addr().String()
	port := addr[strings.LastIndexByte(addr, ':'):]
	foreign := "rebind.attacker.example" + port
	for _, path := range []string{"/v1/subscriptions", "/v1/sources", "/v1/stream", "/metrics", "/healthz"} {
		status, code, _ := e.send("GET", path, "", "", map[string]string{"Host": foreign})
		if status != http.StatusForbidden || code != "forbidden" {
			t.Errorf("GET %s with Host %s: %d %q, want 403 forbidden", path, foreign, status, code)
		}
	}
	// Nor does an upgrade with that Host and a matching Origin get through.
	u := "ws" + strings.TrimPrefix(e.streamURL(url.Values{}), "http")
	d := websocket.Dialer{}
	conn, resp, err := d.Dial(u, http.Header{"Host": {foreign}, "Origin": {"http://" + foreign}})
	if conn != nil {
		conn.Close()
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("upgrade with Host %s: %v %v, want 403", foreign, resp, err)
	}
	// Ingest from such a page publishes nothing.
	status, _, _ := e.send("POST", "/v1/sources/in/messages?key=x", "", "1", map[string]string{"Host": foreign})
	if status != http.StatusForbidden {
		t.Errorf("ingest with Host %s: %d, want 403", foreign, status)
	}
	// The names that are streamux's own on a loopback listener, and any IP address (a page
	// can only be served from an address by whoever listens on it), are answered.
	for _, host := range []string{"127.0.0.1" + port, "localhost" + port, "LOCALHOST.", "app.localhost" + port, "[::1]" + port, "10.1.2.3" + port} {
		status, code, _ := e.send("GET", "/v1/subscriptions", "", "", map[string]string{"Host": host})
		if status != http.StatusOK {
			t.Errorf("GET /v1/subscriptions with Host %q: %d %s", host, status, code)
		}
	}
	if n := e.historyLen("in"); n != 0 {
		t.Fatalf("a foreign Host published %d messages", n)
	}
}

// allowed_hosts names the other names a server is reached by: a reverse proxy's, or a name
// on the network when it runs with auth: none.
func TestAllowedHosts(t *testing.T) {
	e := newEnv(t, envOptions{hosts: []string{"streamux.internal", ".corp.example"}})
	for host, want := range map[string]int{
		"streamux.internal:8080":  200,
		"STREAMUX.internal":       200,
		"corp.example":            200,
		"a.b.corp.example:443":    200,
		"evilcorp.example":        403,
		"streamux.internal.evil":  403,
		"rebind.attacker.example": 403,
		"localhost:1":             200,
		"127.0.0.1":               200,
	} {
		if status, _, _ := e.send("GET", "/v1/sources", "", "", map[string]string{"Host": host}); status != want {
			t.Errorf("Host %s: %d, want %d", host, status, want)
		}
	}
}

// With auth, the Host is not checked unless allowed_hosts is set: a credential is what a
// rebinding page lacks, and a server behind a reverse proxy is reached by the proxy's name.
func TestAuthServesAnyHost(t *testing.T) {
	e := secureEnv(t, envOptions{})
	if status, code, _ := e.send("GET", "/v1/subscriptions", "ops-key", "", map[string]string{"Host": "streamux.example.com"}); status != 200 {
		t.Fatalf("with auth, behind a proxy: %d %s", status, code)
	}
}

// A cross-site page can POST without a preflight (text/plain is a "simple request"), so every
// request that changes something is refused when it comes from a page of another origin,
// whatever its content type, with or without auth; a page of streamux itself, an origin of
// allowed_origins, and clients that are no browser (no Origin, no Sec-Fetch-Site) go on.
func TestCrossSiteWritesRefused(t *testing.T) {
	e := newEnv(t, envOptions{origins: []string{"https://app.example"}})
	own := e.srv.URL
	evil := map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}
	ndjson := func(h map[string]string) map[string]string {
		out := map[string]string{"Content-Type": "application/x-ndjson"}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	envelope := `{"key":"k","body":1}` + "\n"
	for _, c := range []struct {
		name, method, path, body string
		hdr                      map[string]string
		want                     int
	}{
		{"text/plain ingest from another site", "POST", "/v1/sources/in/messages?envelope=true", envelope, evil, 403},
		{"ndjson ingest from another site", "POST", "/v1/sources/in/messages?envelope=true", envelope, ndjson(map[string]string{"Origin": "https://evil.example"}), 403},
		{"ingest from a sandboxed frame (Origin: null)", "POST", "/v1/sources/in/messages", "1", map[string]string{"Origin": "null"}, 403},
		{"ingest, Sec-Fetch-Site cross-site, no Origin", "POST", "/v1/sources/in/messages", "1", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"ingest, Sec-Fetch-Site same-site", "POST", "/v1/sources/in/messages", "1", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://other.localhost"}, 403},
		{"check from another site", "POST", "/v1/check", `{"where":"true"}`, evil, 403},
		{"kick from another site", "DELETE", "/v1/subscriptions/1", "", evil, 403},
		{"PUT from another site", "PUT", "/v1/sources/in/messages", "1", evil, 403},
		{"PATCH from another site", "PATCH", "/v1/subscriptions/1", "", evil, 403},

		{"ingest from streamux's own page", "POST", "/v1/sources/in/messages", "1", map[string]string{"Origin": own, "Sec-Fetch-Site": "same-origin"}, 200},
		{"ingest from its own page, old browser", "POST", "/v1/sources/in/messages", "1", map[string]string{"Origin": own}, 200},
		{"ingest from its own page behind a proxy", "POST", "/v1/sources/in/messages", "1", map[string]string{"Origin": "https://streamux.example", "Sec-Fetch-Site": "same-origin"}, 200},
		{"ingest from an allowed origin", "POST", "/v1/sources/in/messages", "1", map[string]string{"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}, 200},
		{"ingest from curl", "POST", "/v1/sources/in/messages", "1", nil, 200},
		{"check from its own page", "POST", "/v1/check", `{"where":"true"}`, map[string]string{"Origin": own}, 200},
		{"kick from its own page", "DELETE", "/v1/subscriptions/999", "", map[string]string{"Origin": own, "Sec-Fetch-Site": "same-origin"}, 404},
		{"a cross-site GET reads nothing (CORS) and changes nothing", "GET", "/v1/sources", "", evil, 200},
	} {
		status, code, _ := e.send(c.method, c.path, "", c.body, c.hdr)
		if status != c.want || (c.want == 403 && code != "forbidden") {
			t.Errorf("%s: %d %q, want %d", c.name, status, code, c.want)
		}
	}
	// Of the ingest requests, only the five allowed ones published.
	if n := e.historyLen("in"); n != 5 {
		t.Fatalf("the history of in holds %d messages, want 5", n)
	}
	// With auth too: a credential in ?token= can be in a page's URL.
	s := secureEnv(t, envOptions{})
	if status, code, _ := s.send("POST", "/v1/sources/in/messages?token=writer-key", "", "1", evil); status != 403 || code != "forbidden" {
		t.Fatalf("with auth, a cross-site ingest: %d %s", status, code)
	}
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/httpapi"
	"github.com/streamux/streamux/internal/transport"
)

const secret = "0123456789abcdef0123456789abcdef-test-secret"

// secureEnv is a server with API keys and JWT: "acme" reads "in" and sees only its tenant's
// messages; "ops" is an admin; "writer" may ingest into "in".
func secureEnv(t *testing.T, o envOptions) *env {
	leeway := time.Duration(0)
	o.auth = auth.Config{
		APIKeys: []auth.APIKey{
			{Name: "acme", SHA256: auth.HashKey("acme-key"), Sources: []string{"in"}, Where: `headers.tenant == "acme"`},
			{Name: "ops", SHA256: auth.HashKey("ops-key"), Admin: true},
			{Name: "writer", SHA256: auth.HashKey("writer-key"), Sources: []string{}, Write: []string{"in"}},
		},
		JWT: &auth.JWT{HS256Secret: secret, Audience: "streamux", Issuer: "test", Leeway: &leeway},
	}
	return newEnv(t, o)
}

// expiredToken is a well-signed token whose exp has passed.
func expiredToken(t *testing.T) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "x", "aud": "streamux", "iss": "test", "exp": time.Now().Add(-time.Minute).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func token(t *testing.T, c auth.Claims, ttl time.Duration) string {
	if c.Audience == "" {
		c.Audience = "streamux"
	}
	if c.Issuer == "" {
		c.Issuer = "test"
	}
	tok, err := auth.IssueHS256([]byte(secret), c, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends a request with an optional bearer credential and returns the status and error code.
func (e *env) do(method, path, bearer, body string, hdr map[string]string) (int, string, http.Header) {
	e.t.Helper()
	// A request that unexpectedly streams must not hang the test.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, e.srv.URL+path, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
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

// Every row of the README's table of bad credentials.
func TestAuthRefusals(t *testing.T) {
	e := secureEnv(t, envOptions{})
	stream := "/v1/stream?source=in"
	rows := []struct {
		name, method, path, bearer, body string
		status                           int
		code                             string
	}{
		{"no credential", "GET", stream, "", "", 401, "unauthorized"},
		{"unknown key", "GET", stream, "nope", "", 401, "unauthorized"},
		{"bad signature", "GET", stream, token(t, auth.Claims{Subject: "x"}, time.Minute)[:60] + "x", "", 401, "unauthorized"},
		{"expired", "GET", stream, expiredToken(t), "", 401, "unauthorized"},
		{"wrong audience", "GET", stream, token(t, auth.Claims{Subject: "x", Audience: "other"}, time.Minute), "", 401, "unauthorized"},
		{"wrong issuer", "GET", stream, token(t, auth.Claims{Subject: "x", Issuer: "evil"}, time.Minute), "", 401, "unauthorized"},
		{"source not allowed", "GET", "/v1/stream?source=other", "acme-key", "", 403, "forbidden"},
		{"token source not allowed", "GET", "/v1/stream?source=other", token(t, auth.Claims{Subject: "x", Sources: []string{"in"}}, time.Minute), "", 403, "forbidden"},
		{"no readable source", "GET", "/v1/stream", "writer-key", "", 403, "forbidden"},
		{"subscriptions without admin", "GET", "/v1/subscriptions", "acme-key", "", 403, "forbidden"},
		{"kick without admin", "DELETE", "/v1/subscriptions/1", "acme-key", "", 403, "forbidden"},
		{"kick without credential", "DELETE", "/v1/subscriptions/1", "", "", 401, "unauthorized"},
		{"check without credential", "POST", "/v1/check", "", `{"where":"true"}`, 401, "unauthorized"},
		{"check of a forbidden source", "POST", "/v1/check", "acme-key", `{"where":"true","source":"other"}`, 403, "forbidden"},
		{"ingest without credential", "POST", "/v1/sources/in/messages", "", "{}", 401, "unauthorized"},
		{"ingest by a reader", "POST", "/v1/sources/in/messages", "acme-key", "{}", 403, "forbidden"},
		{"ingest into another source", "POST", "/v1/sources/other/messages", "writer-key", "{}", 403, "forbidden"},
	}
	for _, r := range rows {
		status, code, hdr := e.do(r.method, r.path, r.bearer, r.body, nil)
		if status != r.status || code != r.code {
			t.Errorf("%s: got %d %q, want %d %q", r.name, status, code, r.status, r.code)
		}
		if status == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", r.name, hdr.Get("WWW-Authenticate"))
		}
	}
	// And what is allowed is allowed.
	for _, ok := range []struct{ method, path, bearer, body string }{
		{"GET", "/v1/subscriptions", "ops-key", ""},
		{"POST", "/v1/sources/in/messages", "writer-key", "{}"},
		{"POST", "/v1/check", "acme-key", `{"where":"true"}`},
		{"GET", "/v1/sources", "acme-key", ""},
	} {
		if status, code, _ := e.do(ok.method, ok.path, ok.bearer, ok.body, nil); status != 200 {
			t.Errorf("%s %s as %s: %d %s", ok.method, ok.path, ok.bearer, status, code)
		}
	}
	// Without admin, /v1/sources lists only what the credential reads, without details.
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/sources", nil)
	req.Header.Set("Authorization", "Bearer acme-key")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list) != 1 || list[0]["name"] != "in" || list[0]["counters"] != nil {
		t.Fatalf("/v1/sources for acme: %v", list)
	}
}

// A forced predicate cannot be widened: a client asking for everything still sees only its
// tenant's messages; the token travels as ?token= for browsers.
func TestForcedPredicate(t *testing.T) {
	e := secureEnv(t, envOptions{})
	q := url.Values{"where": {`true`}, "token": {"acme-key"}}
	c := e.ndjson(q)
	defer c.close()
	ws := e.ws(url.Values{"where": {`key == "a" || true`}, "token": {"acme-key"}})
	defer ws.close()
	tenant := func(name string) map[string]string { return map[string]string{"tenant": name} }
	msgs := []msg{
		{Key: "a", Headers: tenant("other"), Body: json.RawMessage(`1`)},
		{Key: "a", Headers: tenant("acme"), Body: json.RawMessage(`2`)},
		{Key: "a", Body: json.RawMessage(`3`)},
		{Key: "b", Headers: tenant("acme"), Body: json.RawMessage(`4`)},
	}
	status, code, _ := e.do("POST", "/v1/sources/in/messages?envelope=true", "writer-key", lines(msgs), map[string]string{"Content-Type": "application/x-ndjson"})
	if status != 200 {
		t.Fatalf("publish: %d %s", status, code)
	}
	for _, cl := range []client{c, ws} {
		for _, want := range []string{"2", "4"} {
			if ev := cl.next(t); string(ev.Body) != want {
				t.Fatalf("got body %s, want %s", ev.Body, want)
			}
		}
	}
	// /v1/check counts what the tenant may see, and of that only: not the other tenant's
	// messages, nor how many there are.
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/check", strings.NewReader(`{"where":"key == \"a\"","source":"in"}`))
	req.Header.Set("Authorization", "Bearer acme-key")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Matched, Of int }
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || got.Matched != 1 || got.Of != 2 {
		t.Fatalf("check as acme: %+v, %v; want 1 matched of 2", got, err)
	}
}

func lines(msgs []msg) string {
	var b strings.Builder
	for _, m := range msgs {
		j, _ := json.Marshal(m)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// A stream opened with a token ends when the token expires.
func TestExpiredTokenEndsStream(t *testing.T) {
	e := secureEnv(t, envOptions{})
	tok := token(t, auth.Claims{Subject: "short"}, 1500*time.Millisecond)
	ws := e.ws(url.Values{"token": {tok}, "source": {"in"}})
	defer ws.close()
	_ = ws.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := ws.conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "credential expired" {
		t.Fatalf("want close 1008 credential expired, got %v", err)
	}
}

func TestOrigins(t *testing.T) {
	e := newEnv(t, envOptions{origins: []string{"https://app.example"}})
	u := "ws" + strings.TrimPrefix(e.streamURL(url.Values{}), "http")
	for origin, want := range map[string]int{"https://evil.example": 403, "https://app.example": 101, e.srv.URL: 101} {
		conn, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {origin}})
		if resp == nil || resp.StatusCode != want {
			t.Errorf("origin %s: %v %v, want %d", origin, resp, err, want)
		}
		if conn != nil {
			conn.Close()
		}
	}
	// CORS: an allowed origin may read; another gets no CORS headers.
	_, _, hdr := e.do("POST", "/v1/check", "", `{"where":"true"}`, map[string]string{"Origin": "https://app.example"})
	if hdr.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("allowed origin: %v", hdr)
	}
	_, _, hdr = e.do("POST", "/v1/check", "", `{"where":"true"}`, map[string]string{"Origin": "https://evil.example"})
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin got CORS headers: %v", hdr)
	}
	status, _, hdr := e.do("OPTIONS", "/v1/stream", "", "", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
	if status != 204 || !strings.Contains(hdr.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", status, hdr)
	}
}

// Each limit answers 429 and names itself; the rate limit says when to retry.
func TestLimits(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		e := newEnv(t, envOptions{limits: httpapi.Limits{ConnectionsPerAddress: 2, ApplyToLoopback: true, SubscribeRate: 1000, SubscribeBurst: 1000}})
		a, b := e.ndjson(url.Values{}), e.sse(url.Values{}, "")
		defer a.close()
		defer b.close()
		if status, code, _ := e.do("GET", "/v1/stream", "", "", nil); status != 429 || code != "limit_exceeded" {
			t.Fatalf("third stream: %d %s", status, code)
		}
		a.close()
		waitFor(t, "a slot to free", func() bool {
			st, _, _ := e.do("GET", "/v1/check", "", "", nil) // any request; the next stream must fit
			_ = st
			return e.sup.Count() == 1
		})
		c := e.ndjson(url.Values{})
		c.close()
	})
	t.Run("rate", func(t *testing.T) {
		e := newEnv(t, envOptions{limits: httpapi.Limits{SubscribeRate: 0.5, SubscribeBurst: 2, ApplyToLoopback: true}})
		e.ndjson(url.Values{}).close()
		e.ndjson(url.Values{}).close()
		status, code, hdr := e.do("GET", "/v1/stream", "", "", nil)
		if status != 429 || code != "limit_exceeded" || hdr.Get("Retry-After") == "" {
			t.Fatalf("third in a burst of 2: %d %s Retry-After=%q", status, code, hdr.Get("Retry-After"))
		}
	})
	t.Run("loopback exempt by default", func(t *testing.T) {
		e := newEnv(t, envOptions{limits: httpapi.Limits{ConnectionsPerAddress: 1, SubscribeRate: 0.1, SubscribeBurst: 1}})
		for i := 0; i < 3; i++ {
			defer e.ndjson(url.Values{}).close()
		}
	})
	t.Run("per credential and total", func(t *testing.T) {
		e := secureEnv(t, envOptions{limits: httpapi.Limits{SubscriptionsPerCredential: 1, Connections: 3}})
		a := e.ndjson(url.Values{"token": {"acme-key"}})
		defer a.close()
		if status, code, _ := e.do("GET", "/v1/stream", "acme-key", "", nil); status != 429 || code != "limit_exceeded" {
			t.Fatalf("second stream of acme: %d %s", status, code)
		}
		b := e.ndjson(url.Values{"token": {"ops-key"}})
		defer b.close()
		tok := token(t, auth.Claims{Subject: "third"}, time.Minute)
		c := e.ndjson(url.Values{"token": {tok}})
		defer c.close()
		if status, code, _ := e.do("GET", "/v1/stream", token(t, auth.Claims{Subject: "fourth"}, time.Minute), "", nil); status != 429 || code != "limit_exceeded" {
			t.Fatalf("fourth stream in all: %d %s", status, code)
		}
	})
}

// A client frame over the limit closes the connection with 1009.
func TestOversizeClientFrame(t *testing.T) {
	e := newEnv(t, envOptions{transport: transport.Options{MaxClientFrame: 1024}})
	ws := e.ws(url.Values{})
	defer ws.close()
	if err := ws.conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 2048))); err != nil {
		t.Fatal(err)
	}
	_ = ws.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := ws.conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("want close 1009, got %v", err)
	}
}

// A predicate that tries to be expensive is refused when it compiles, or stopped while it runs:
// the message it chokes on does not match, the failure is counted, and the router goes on to
// deliver the next messages to everyone, in order.
func TestExpensivePredicates(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, where := range []string{
		`body.a.all(x, body.b.all(y, body.c.all(z, x == y && y == z)))`,
		`body.s.replace("a", "aa").replace("a", "aa").replace("a", "aa").replace("a", "aa").replace("a", "aa").replace("a", "aa").size() > 0`,
	} {
		if status, code, _ := e.do("GET", "/v1/stream?where="+url.QueryEscape(where), "", "", nil); status != 400 || code != "predicate_too_costly" {
			t.Errorf("%s: %d %s", where, status, code)
		}
	}
	heavy := e.ndjson(url.Values{"source": {"in"}, "where": {`body.list.exists(x, x == "needle")`}})
	defer heavy.close()
	fast := e.ndjson(url.Values{"source": {"in"}})
	defer fast.close()
	fast.(*lineClient).sc.Buffer(make([]byte, 64<<10), 4<<20)
	big := make([]string, 100000)
	for i := range big {
		big[i] = "h"
	}
	bigBody, _ := json.Marshal(map[string]any{"list": big})
	e.publish("in",
		msg{Key: "big", Body: bigBody},
		msg{Key: "small", Body: json.RawMessage(`{"list":["hay","needle"]}`)},
	)
	if a, b := fast.next(t), fast.next(t); a.Key != "big" || b.Key != "small" {
		t.Fatalf("fast client got %s then %s", a.Key, b.Key)
	}
	// The runaway loop is stopped at its limit, and its subscription cut: it would cost as much
	// on every such message.
	if lc := heavy.(*lineClient); lc.sc.Scan() {
		t.Fatalf("the heavy predicate's stream goes on: %s", lc.sc.Bytes())
	}
	var sources []struct {
		Name     string
		Counters struct {
			TooCostly uint64 `json:"predicate_too_costly"`
		}
	}
	e.getJSON("/v1/sources", &sources)
	for _, s := range sources {
		if s.Name == "in" && s.Counters.TooCostly != 1 {
			t.Fatalf("the runaway evaluation was not counted: %+v", s)
		}
	}
}

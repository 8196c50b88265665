package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/gorilla/websocket"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/httpapi"
	"github.com/streamux/streamux/internal/source/wsdial"
)

// The OpenAPI document (GET /v1/openapi.json) is kept true by these tests: it loads and
// validates as OpenAPI 3.1; its paths and methods are the server's routes, neither more nor
// fewer; real answers of a running server, successes and errors, validate against it; and real
// events of real streams validate against its event schemas.

// loadOpenAPI loads and validates the embedded document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		t.Fatalf("load the OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentValid(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	// Every operation says what it answers, and every error it answers is the Error body.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" || op.Responses.Len() == 0 {
				t.Errorf("%s %s: no operationId or no responses", method, path)
			}
			for status, ref := range op.Responses.Map() {
				if status >= "400" && !(path == "/readyz" && status == "503") { // readyz's 503 is its answer
					mt := ref.Value.Content.Get("application/json")
					if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" {
						t.Errorf("%s %s: %s is not the Error body", method, path, status)
					}
				}
			}
		}
	}
}

// The document's paths and methods are the routes the server registers, and each of them
// reaches a handler of its own, not the 404 of /v1/ that answers what no route serves.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	e := newEnv(t, envOptions{})
	type op struct{ method, path string }
	var registered, documented []op
	for _, r := range e.api.Routes() {
		for _, m := range r.Methods {
			registered = append(registered, op{m, r.Pattern})
		}
	}
	for path, item := range doc.Paths.Map() {
		for m := range item.Operations() {
			documented = append(documented, op{m, path})
		}
	}
	for _, o := range registered {
		if !slices.Contains(documented, o) {
			t.Errorf("%s %s is served but not in the document", o.method, o.path)
		}
	}
	for _, o := range documented {
		if !slices.Contains(registered, o) {
			t.Errorf("%s %s is in the document but not served", o.method, o.path)
		}
	}
	if !slices.Contains(registered, op{"GET", "/v1/openapi.json"}) {
		t.Error("GET /v1/openapi.json is not a route")
	}
	for _, o := range documented {
		path := strings.NewReplacer("{name}", "nosuch", "{id}", "987654").Replace(o.path)
		// A predicate that does not compile, so that GET /v1/stream answers rather than streams.
		status, body, _ := e.send(o.method, path+"?where=%28", "", "", nil)
		if status == http.StatusNotFound && strings.Contains(body, `"not_found"`) || status == http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d %s: no handler of its own", o.method, path, status, body)
		}
	}
}

// An answer of the server, as the test saw it.
type answer struct {
	req    *http.Request
	status int
	header http.Header
	body   []byte
}

// validator checks answers against the document, and the document's event schema.
type validator struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	seen   map[string]bool // "METHOD /path STATUS" validated
}

// htmlDecoder lets the validator read the web page: kin-openapi decodes no text/html by itself.
var htmlDecoder sync.Once

func newValidator(t *testing.T) *validator {
	htmlDecoder.Do(func() { openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder) })
	doc := loadOpenAPI(t)
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &validator{t: t, doc: doc, router: r, seen: map[string]bool{}}
}

// check validates a against the document: a documented status, its headers, and its body
// (unless streaming, when only its Content-Type is checked against the documented ones).
func (v *validator) check(a answer, want int, streaming bool) {
	v.t.Helper()
	what := a.req.Method + " " + a.req.URL.Path
	if a.status != want {
		v.t.Errorf("%s: %d %s, want %d", what, a.status, a.body, want)
		return
	}
	route, params, err := v.router.FindRoute(a.req)
	if err != nil {
		v.t.Errorf("%s: not in the document: %v", what, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: a.req, PathParams: params, Route: route},
		Status:                 a.status, Header: a.header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: streaming, MultiError: true},
	}
	in.SetBodyBytes(a.body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		v.t.Errorf("%s: %d %s: does not match the document: %v", what, a.status, a.body, err)
	}
	if streaming && a.status == http.StatusOK {
		resp := route.Operation.Responses.Status(a.status)
		if ct := a.header.Get("Content-Type"); resp.Value.Content.Get(ct) == nil {
			v.t.Errorf("%s: Content-Type %q is not documented", what, ct)
		}
	}
	v.seen[fmt.Sprintf("%s %s %d", a.req.Method, route.Path, a.status)] = true
}

// event validates one event, as its transport carried it, against the Event schema.
func (v *validator) event(raw []byte) (typ string) {
	v.t.Helper()
	var ev any
	if err := json.Unmarshal(raw, &ev); err != nil {
		v.t.Errorf("event %s: %v", raw, err)
		return ""
	}
	if err := v.doc.Components.Schemas["Event"].Value.VisitJSON(ev, openapi3.EnableJSONSchema2020()); err != nil {
		v.t.Errorf("event %s does not match the Event schema: %v", raw, err)
	}
	if m, ok := ev.(map[string]any); ok {
		typ, _ = m["type"].(string)
	}
	return typ
}

// answer sends a request to e and reads the whole answer.
func (e *env) answer(method, path, bearer, ct string, body []byte, hdr map[string]string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		}
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return answer{req: req, status: resp.StatusCode, header: resp.Header, body: b}
}

// streamAnswer opens a stream and returns its answer with the body unread, and the response to
// close.
func (e *env) streamAnswer(q url.Values, bearer, accept string) (answer, *http.Response) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.streamURL(q), nil)
	req.Header.Set("Accept", accept)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return answer{req: req, status: resp.StatusCode, header: resp.Header}, resp
}

// Real answers of every endpoint, successes and errors, validate against the document.
func TestOpenAPIResponses(t *testing.T) {
	v := newValidator(t)
	const admin, reader, sinker = "admin-key", "reader-key", "sinker-key"
	e := newEnv(t, envOptions{demoRate: 1, history: 100, auth: auth.Config{APIKeys: []auth.APIKey{
		{Name: "admin", SHA256: auth.HashKey(admin), Admin: true, Write: []string{"*"}},
		{Name: "reader", SHA256: auth.HashKey(reader), Sources: []string{"in"}},
		{Name: "sinker", SHA256: auth.HashKey(sinker), Sources: []string{"in"}, Sinks: true},
	}}})
	ndjson := "application/x-ndjson"
	get := func(path, bearer string) answer { return e.answer("GET", path, bearer, "", nil, nil) }
	post := func(path, bearer, ct, body string) answer {
		return e.answer("POST", path, bearer, ct, []byte(body), nil)
	}
	del := func(path, bearer string) answer { return e.answer("DELETE", path, bearer, "", nil, nil) }

	// Operations: no credential needed.
	v.check(get("/v1/openapi.json", ""), 200, false)
	if a := get("/v1/openapi.json", ""); a.header.Get("Content-Type") != "application/json" || !bytes.Equal(a.body, httpapi.OpenAPI()) {
		t.Errorf("GET /v1/openapi.json: %s, not the document", a.header.Get("Content-Type"))
	}
	v.check(get("/healthz", ""), 200, false)
	v.check(get("/readyz", ""), 200, false)
	v.check(get("/metrics", ""), 200, false)
	v.check(get("/", ""), 200, false)

	// Ingest.
	in := "/v1/sources/in/messages"
	v.check(post(in+"?key=k1", admin, "application/json", `{"n":1,"s":"x"}`), 200, false)
	v.check(post(in+"?envelope=true", admin, ndjson, `{"key":"k2","headers":{"h":"v"},"body":{"n":2}}`+"\n"+`{"key":"k3","body":"aGk=","body_encoding":"base64"}`), 200, false)
	v.check(post(in, admin, "text/plain", "plain text"), 200, false)
	v.check(post(in+"?envelope=true", admin, ndjson, `{"nope":1}`), 400, false)
	v.check(post(in, "", "application/json", `{}`), 401, false)
	v.check(post(in, "wrong-key", "application/json", `{}`), 401, false)
	v.check(post(in, reader, "application/json", `{}`), 403, false)
	v.check(post("/v1/sources/nosuch/messages", admin, "application/json", `{}`), 404, false)
	v.check(post("/v1/sources/demo/messages", admin, "application/json", `{}`), 405, false)
	v.check(post(in, admin, "application/json", `"`+strings.Repeat("x", 1<<20)+`"`), 413, false)
	v.check(post(in+"?stream=true", admin, "text/plain", "x"), 415, false)

	// Check.
	v.check(post("/v1/check", admin, "application/json", `{"where":"body.n > 0","source":"in"}`), 200, false)
	v.check(post("/v1/check", admin, "application/json", `{"where":"body.n > \"x\"","source":["in"]}`), 200, false)
	v.check(post("/v1/check", admin, "application/json", `{"where":"key ==","source":["in"]}`), 200, false)
	v.check(post("/v1/check", reader, "application/json", `{"where":"true"}`), 200, false)
	v.check(post("/v1/check", admin, "application/json", `{"where":1}`), 400, false)
	v.check(post("/v1/check", "", "application/json", `{"where":"true"}`), 401, false)
	v.check(post("/v1/check", reader, "application/json", `{"where":"true","source":"other"}`), 403, false)
	v.check(post("/v1/check", admin, "application/json", `{"where":"true","source":"nosuch"}`), 404, false)

	// Streams: the errors before streaming, then each transport's start.
	q := func(kv ...string) url.Values {
		out := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	streamErr := func(qv url.Values, bearer string, want int) {
		a, resp := e.streamAnswer(qv, bearer, ndjson)
		a.body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		v.check(a, want, false)
	}
	streamErr(q("where", "key == "), admin, 400)
	streamErr(q("policy", "sometimes"), admin, 400)
	streamErr(q("from", "nonsense"), admin, 400)
	streamErr(q(), "", 401)
	streamErr(q("source", "other"), reader, 403)
	streamErr(q("source", "nosuch"), admin, 404)
	for _, accept := range []string{ndjson, "text/event-stream"} {
		a, resp := e.streamAnswer(q("source", "in", "where", "true"), reader, accept)
		v.check(a, 200, true)
		resp.Body.Close()
	}
	u := "ws" + strings.TrimPrefix(e.streamURL(q("source", "in")), "http")
	conn, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + admin}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	v.check(answer{req: resp.Request, status: resp.StatusCode, header: resp.Header}, 101, true)

	// Subscriptions: the WebSocket stream is one.
	v.check(get("/v1/subscriptions", admin), 200, false)
	v.check(get("/v1/subscriptions", reader), 403, false)
	v.check(get("/v1/subscriptions", ""), 401, false)
	var subs []struct {
		ID uint64 `json:"id"`
	}
	waitFor(t, "the WebSocket subscription", func() bool {
		_ = json.Unmarshal(get("/v1/subscriptions", admin).body, &subs)
		return len(subs) > 0
	})
	v.check(del("/v1/subscriptions/abc", admin), 400, false)
	v.check(del("/v1/subscriptions/987654", admin), 404, false)
	v.check(del(fmt.Sprintf("/v1/subscriptions/%d", subs[0].ID), admin), 204, false)
	// Reload: this server has no file to read again (the server package answers the rest).
	v.check(post("/v1/reload", admin, "", ""), 501, false)
	v.check(post("/v1/reload", reader, "", ""), 403, false)
	v.check(post("/v1/reload", "", "", ""), 401, false)

	// Sources: an admin sees every field, a reader a summary.
	v.check(get("/v1/sources", admin), 200, false)
	v.check(get("/v1/sources", reader), 200, false)
	v.check(get("/v1/sources", ""), 401, false)

	// Sinks.
	sink := `{"name":"quiet","type":"console","source":["in"],"where":"false"}`
	v.check(post("/v1/sinks", sinker, "application/json", sink), 201, false)
	v.check(post("/v1/sinks", sinker, "application/json", sink), 409, false)
	v.check(post("/v1/sinks", sinker, "application/json", `{"name":"bad","type":"nosuch"}`), 400, false)
	v.check(post("/v1/sinks", sinker, "application/json", `{"name":"wide","type":"console","source":["other"]}`), 403, false)
	v.check(post("/v1/sinks", sinker, "application/json", `"`+strings.Repeat("x", 70<<10)+`"`), 413, false)
	v.check(post("/v1/sinks", reader, "application/json", sink), 403, false)
	v.check(get("/v1/sinks", sinker), 200, false)
	v.check(get("/v1/sinks", admin), 200, false)
	v.check(get("/v1/sinks/quiet", sinker), 200, false)
	v.check(get("/v1/sinks/nosuch", sinker), 404, false)
	v.check(get("/v1/sinks", ""), 401, false)
	v.check(del("/v1/sinks/quiet", reader), 403, false)
	v.check(del("/v1/sinks/quiet", sinker), 204, false)
	v.check(del("/v1/sinks/quiet", sinker), 404, false)

	// A limit: one stream at most.
	l := newEnv(t, envOptions{limits: httpapi.Limits{Connections: 1}})
	a, first := l.streamAnswer(q("source", "in"), "", ndjson)
	v.check(a, 200, true)
	defer first.Body.Close()
	a, resp2 := l.streamAnswer(q("source", "in"), "", ndjson)
	a.body, _ = io.ReadAll(resp2.Body)
	resp2.Body.Close()
	v.check(a, 429, false)

	// Without auth, only the server's own names are answered (DNS rebinding).
	v.check(l.answer("GET", "/healthz", "", "", nil, map[string]string{"Host": "attacker.example"}), 403, false)

	// Readiness while shutting down.
	l.api.Drain()
	v.check(l.answer("GET", "/readyz", "", "", nil, nil), 503, false)
	a, resp3 := l.streamAnswer(q("source", "in"), "", ndjson)
	a.body, _ = io.ReadAll(resp3.Body)
	resp3.Body.Close()
	v.check(a, 503, false)

	// Every operation was seen answering.
	for path, item := range v.doc.Paths.Map() {
		for m := range item.Operations() {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(v.seen)), func(k string) bool { return strings.HasPrefix(k, m+" "+path+" ") }) {
				t.Errorf("%s %s: no answer was checked", m, path)
			}
		}
	}
}

// Events of real streams, over NDJSON, SSE and WebSocket, validate against the Event schema:
// messages (JSON, text and binary bodies, headers), gaps and status changes.
func TestOpenAPIEvents(t *testing.T) {
	v := newValidator(t)
	conns := make(chan *websocket.Conn, 16)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conns <- c
		for { // until either side closes it
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer func() {
		up.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	}()
	e := newEnv(t, envOptions{history: 5, extra: []config.Source{{
		Name: "ticker", Type: "websocket", Backoff: config.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		Spec: &wsdial.Config{URL: "ws" + strings.TrimPrefix(up.URL, "http")},
	}}})
	waitFor(t, "ticker up", func() bool {
		for _, s := range e.sup.Sources() {
			if s.Name == "ticker" {
				return s.State == "up"
			}
		}
		return false
	})
	first := <-conns
	for i := 1; i <= 8; i++ { // more than the history holds: a resume from in:1 begins with a gap
		e.publish("in", msg{Key: "k", Body: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
	}
	qv := url.Values{"source": {"in", "ticker"}, "from": {"in:1"}}

	// NDJSON and SSE: a gap, the history, then new messages of every kind of body.
	a, ndResp := e.streamAnswer(qv, "", "application/x-ndjson")
	v.check(a, 200, true)
	defer ndResp.Body.Close()
	nd := bufio.NewReader(ndResp.Body)
	a, sseResp := e.streamAnswer(qv, "", "text/event-stream")
	v.check(a, 200, true)
	defer sseResp.Body.Close()
	sse := bufio.NewReader(sseResp.Body)
	ws := e.ws(qv)
	defer ws.close()
	// A liveness bound: a stream that stops short ends the test rather than hangs it (a
	// WebSocket read has its own deadline).
	cut := time.AfterFunc(30*time.Second, func() { ndResp.Body.Close(); sseResp.Body.Close() })
	defer cut.Stop()

	in := "/v1/sources/in/messages"
	for _, p := range []struct{ path, ct, body string }{
		{in + "?key=json", "application/json", `{"nested":{"a":[1,2.5,null,true]},"s":"é"}`},
		{in + "?key=text&header.region=eu", "text/plain", "plain text"},
		{in + "?key=bytes", "application/octet-stream", "\xff\xfe\x00binary"},
	} {
		e.answer("POST", p.path, "", p.ct, []byte(p.body), map[string]string{"X-Streamux-Header-Tenant": "acme"})
	}
	first.Close() // ticker's upstream drops: status events, then up again

	readLine := func(t *testing.T) []byte {
		line, err := nd.ReadBytes('\n')
		if err != nil {
			t.Fatalf("ndjson: %v", err)
		}
		return bytes.TrimSuffix(line, []byte("\n"))
	}
	readSSE := func(t *testing.T) []byte {
		var data, typ string
		for {
			line, err := sse.ReadString('\n')
			if err != nil {
				t.Fatalf("sse: %v", err)
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "" && data != "":
				var ev struct{ Type string }
				if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.Type != typ {
					t.Errorf("SSE event: %q, data %s", typ, data)
				}
				return []byte(data)
			case strings.HasPrefix(line, "event: "):
				typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				data += line[6:]
			}
		}
	}
	readWS := func(t *testing.T) []byte { return ws.frame(t) }
	for name, read := range map[string]func(*testing.T) []byte{"ndjson": readLine, "sse": readSSE, "websocket": readWS} {
		seen := map[string]int{}
		// gap, 5 from the history, 3 new ones, then ticker's status changes (at least 2).
		for seen["status"] < 2 || seen["message"] < 8 {
			seen[v.event(read(t))]++
		}
		if seen["gap"] != 1 {
			t.Errorf("%s: %v, want one gap", name, seen)
		}
	}

	// The schemas refuse what is not an event: a test that can fail.
	for _, bad := range []string{
		`{"type":"message","source":"in","seq":1,"key":"","time":"2026-01-01T00:00:00Z","headers":{},"body":1}`,
		`{"type":"gap","source":"in","missed":1,"reason":"tired"}`,
		`{"type":"status","source":"in","state":"up","extra":1}`,
		`{"type":"other","source":"in"}`,
	} {
		var ev any
		_ = json.Unmarshal([]byte(bad), &ev)
		if v.doc.Components.Schemas["Event"].Value.VisitJSON(ev, openapi3.EnableJSONSchema2020()) == nil {
			t.Errorf("%s matches the Event schema", bad)
		}
	}
}

package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/streamux/streamux/internal/transport"
)

// 10,000 clients over the three transports connect and leave; nothing of them stays behind:
// no subscription, no router entry, no goroutine, and the heap in use returns to where it was.
func TestChurnLeavesNothingBehind(t *testing.T) {
	e := newEnv(t, envOptions{demoRate: 500})
	churn(t, e, 300) // warm up pools and buffers before the baseline
	e.client.CloseIdleConnections()
	waitFor(t, "warm-up clients to leave", func() bool { return e.sup.Count() == 0 })
	base, heap := runtime.NumGoroutine(), heapInUse()
	churn(t, e, 10000)
	waitFor(t, "every subscription to end", func() bool { return e.sup.Count() == 0 })
	for name, n := range e.sup.TableSizes() {
		if n != 0 {
			t.Errorf("router %s still has %d entries", name, n)
		}
	}
	var subs []any
	if e.getJSON("/v1/subscriptions", &subs); len(subs) != 0 {
		t.Errorf("/v1/subscriptions lists %d", len(subs))
	}
	e.client.CloseIdleConnections()
	waitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= base+2 })
	// The history holds up to 10,000 demo messages either way; allow for its growth.
	if after := heapInUse(); after > heap+16<<20 {
		t.Errorf("heap in use grew from %d to %d bytes over 10,000 clients", heap, after)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// churn connects and closes n clients, 50 at a time, over the three transports.
func churn(t *testing.T, e *env, n int) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 50)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Go(func() { // one client's life; waited for below
			defer func() { <-sem }()
			if err := churnClient(e, i); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// churnClient is client i's life: it connects over one of the three transports, reads one
// event or not, and leaves. It runs on a goroutine of its own, so it returns what went wrong
// rather than failing the test.
func churnClient(e *env, i int) error {
	q := url.Values{"where": {fmt.Sprintf(`body.n %% %d == 0`, i%7+1)}}
	read := i%2 == 0 // some leave after reading, some at once
	// A liveness bound for the whole life.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if i%3 == 0 {
		conn, _, err := (&websocket.Dialer{}).DialContext(ctx, "ws"+strings.TrimPrefix(e.streamURL(q), "http"), nil)
		if err != nil {
			return fmt.Errorf("websocket: %w", err)
		}
		defer conn.Close()
		if read {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := conn.ReadMessage(); err != nil {
				return fmt.Errorf("websocket: %w", err)
			}
		}
		return nil
	}
	accept := "text/event-stream"
	if i%3 == 2 {
		accept = "application/x-ndjson"
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.streamURL(q), nil)
	req.Header.Set("Accept", accept)
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", accept, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", accept, resp.Status)
	}
	if !read {
		return nil
	}
	// One event: an NDJSON line, or an SSE data line and the blank line that ends it.
	br := bufio.NewReader(resp.Body)
	data := ""
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("%s: %w", accept, err)
		}
		line = strings.TrimSuffix(line, "\n")
		if accept == "application/x-ndjson" {
			data = line
			break
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data += d
		} else if line == "" && data != "" {
			break
		}
	}
	var ev event
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		return fmt.Errorf("%s: bad event %q: %w", accept, data, err)
	}
	return nil
}

func TestIngest(t *testing.T) {
	e := newEnv(t, envOptions{demoRate: 1})
	c := e.ndjson(url.Values{"source": {"in"}})
	defer c.close()
	post := func(path, ct, body string) (int, apiErr, string) {
		resp, err := e.client.Post(e.srv.URL+path, ct, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var ae apiErr
		_ = json.Unmarshal(b, &ae)
		return resp.StatusCode, ae, string(b)
	}
	if st, _, b := post("/v1/sources/in/messages?key=one", "application/json", `{"a":1}`); st != 200 || !strings.Contains(b, `"accepted":1`) {
		t.Fatalf("single: %d %s", st, b)
	}
	if st, _, b := post("/v1/sources/in/messages?key=many&header.region=eu", "application/x-ndjson", "{\"a\":2}\n\n{\"a\":3}\nplain text\n"); st != 200 || !strings.Contains(b, `"accepted":3`) {
		t.Fatalf("ndjson: %d %s", st, b)
	}
	env := `{"key":"k1","headers":{"h":"1"},"body":{"a":5}}` + "\n" + `{"key":"k2","body":"text"}` + "\n" + `{"body":"/wA=","body_encoding":"base64"}`
	if st, _, b := post("/v1/sources/in/messages?envelope=true&key=dflt", "application/x-ndjson", env); st != 200 || !strings.Contains(b, `"accepted":3`) {
		t.Fatalf("envelope: %d %s", st, b)
	}
	want := []string{
		`one {} {"a":1}`,
		`many {"region":"eu"} {"a":2}`, `many {"region":"eu"} {"a":3}`, `many {"region":"eu"} "plain text"`,
		`k1 {"h":"1"} {"a":5}`, `k2 {} "text"`, `dflt {} "/wA="`,
	}
	for i, w := range want {
		ev := c.next(t)
		h, _ := json.Marshal(ev.Headers)
		if got := fmt.Sprintf("%s %s %s", ev.Key, h, ev.Body); got != w || ev.Seq != uint64(i+1) {
			t.Fatalf("message %d: got %q (seq %d), want %q", i+1, got, ev.Seq, w)
		}
	}

	bad := []struct {
		name, path, ct, body string
		status               int
		code                 string
	}{
		{"bad envelope line", "/v1/sources/in/messages?envelope=true", "application/x-ndjson", "{\"key\":\"a\",\"body\":1}\n{\"nope\":1}", 400, "invalid_message"},
		{"bad envelope flag", "/v1/sources/in/messages?envelope=maybe", "application/json", "{}", 400, "invalid_message"},
		{"oversize", "/v1/sources/in/messages", "application/json", strings.Repeat("x", 1<<20+1), 413, "body_too_large"},
		{"unknown source", "/v1/sources/nope/messages", "application/json", "{}", 404, "unknown_source"},
		{"not an http source", "/v1/sources/demo/messages", "application/json", "{}", 405, "not_ingestible"},
	}
	for _, b := range bad {
		st, ae, raw := post(b.path, b.ct, b.body)
		if st != b.status || ae.Error.Code != b.code {
			t.Errorf("%s: got %d %s, want %d %s", b.name, st, raw, b.status, b.code)
		}
	}
	// A wrong method.
	resp, err := e.client.Get(e.srv.URL + "/v1/sources/in/messages")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET on ingest: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	// Nothing of the bad requests was published: the next message is number 8.
	e.publish("in", msg{Key: "last", Body: json.RawMessage(`1`)})
	if ev := c.next(t); ev.Seq != 8 || ev.Key != "last" {
		t.Fatalf("after the bad requests: %+v", ev)
	}
}

// streamPost is a ?stream=true ingest request whose body the test writes line by line.
type streamPost struct {
	w    *io.PipeWriter
	done chan streamAnswer
	wg   sync.WaitGroup // the request's goroutine and send's; the cleanup waits for them
}

type streamAnswer struct {
	status int
	ae     apiErr
	raw    string
}

func (e *env) streamPost(query, ct string) *streamPost {
	return e.streamPostTo("/v1/sources/in/messages?stream=true&"+query, ct)
}

// streamPostTo opens a request to path whose body the test writes; it does not send Expect:
// 100-continue, so the server sees the body as it comes.
func (e *env) streamPostTo(path, ct string) *streamPost {
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, pr)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	p := &streamPost{w: pw, done: make(chan streamAnswer, 1)}
	p.wg.Go(func() { // the request, until its answer; waited for by the cleanup
		resp, err := e.client.Do(req)
		if err != nil {
			p.done <- streamAnswer{raw: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		a := streamAnswer{status: resp.StatusCode, raw: string(b)}
		_ = json.Unmarshal(b, &a.ae)
		p.done <- a
	})
	e.t.Cleanup(func() {
		pw.Close() // ends the body, and so the request, and any send
		ended := make(chan struct{})
		go func() { p.wg.Wait(); close(ended) }() // waited for just below, or left if the request hangs
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			e.t.Errorf("a streaming request had not ended 10s after its body did")
		}
	})
	return p
}

// send writes s to the body on a goroutine of its own, then ends the body if end is set: for
// more than the server reads before it answers. The cleanup waits for it.
func (p *streamPost) send(s string, end bool) {
	p.wg.Go(func() {
		_, _ = io.WriteString(p.w, s)
		if end {
			p.w.Close()
		}
	})
}

func (p *streamPost) line(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(p.w, s+"\n"); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

func (p *streamPost) answer(t *testing.T) streamAnswer {
	t.Helper()
	select {
	case a := <-p.done:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the streaming request")
		return streamAnswer{}
	}
}

// With ?stream=true each line is published as soon as it has arrived, while the request goes on.
func TestIngestStream(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.ndjson(url.Values{"source": {"in"}})
	defer c.close()

	p := e.streamPost("envelope=true&key=dflt", "application/x-ndjson")
	for i := 1; i <= 3; i++ {
		p.line(t, fmt.Sprintf(`{"key":"k%d","body":{"n":%d}}`, i, i))
		if ev := c.next(t); ev.Key != fmt.Sprintf("k%d", i) || string(ev.Body) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("line %d, delivered while the request is open: %+v", i, ev)
		}
	}
	p.line(t, "")
	p.line(t, `{"body":"no key"}`)
	p.w.Close()
	if a := p.answer(t); a.status != 200 || a.raw != "{\"accepted\":4}\n" {
		t.Fatalf("end of the stream: %d %s", a.status, a.raw)
	}
	if ev := c.next(t); ev.Key != "dflt" || ev.Seq != 4 {
		t.Fatalf("last line: %+v", ev)
	}

	// Plain lines, many more than the reader's buffer holds: each message keeps its own copy.
	p = e.streamPost("key=plain", "application/x-ndjson")
	var many strings.Builder
	for i := range 600 {
		fmt.Fprintf(&many, "line-%04d\n", i)
	}
	p.send(many.String(), true)
	if a := p.answer(t); a.status != 200 || a.raw != "{\"accepted\":600}\n" {
		t.Fatalf("plain lines: %d %s", a.status, a.raw)
	}
	for i := range 600 {
		if ev, want := c.next(t), fmt.Sprintf(`"line-%04d"`, i); string(ev.Body) != want || ev.Key != "plain" {
			t.Fatalf("plain line %d: %+v, want body %s", i, ev, want)
		}
	}

	// A bad line ends the request; what came before it stays published, and the answer says
	// how much that was.
	p = e.streamPost("envelope=true", "application/x-ndjson")
	p.line(t, `{"key":"ok","body":1}`)
	p.line(t, `{"nope":1}`)
	a := p.answer(t)
	if a.status != 400 || a.ae.Error.Code != "invalid_message" || a.ae.Error.Accepted == nil || *a.ae.Error.Accepted != 1 ||
		!strings.Contains(a.ae.Error.Message, "line 2") {
		t.Fatalf("bad line: %d %s", a.status, a.raw)
	}
	if ev := c.next(t); ev.Key != "ok" || ev.Seq != 605 {
		t.Fatalf("line before the bad one: %+v", ev)
	}

	// A line over max_body_bytes (1 MiB for "in").
	p = e.streamPost("", "application/x-ndjson")
	p.line(t, "small")
	p.send(strings.Repeat("x", 1<<20+1)+"\n", false)
	if a := p.answer(t); a.status != 413 || a.ae.Error.Code != "body_too_large" || *a.ae.Error.Accepted != 1 {
		t.Fatalf("long line: %d %s", a.status, a.raw)
	}
	if ev := c.next(t); string(ev.Body) != `"small"` {
		t.Fatalf("line before the long one: %+v", ev)
	}

	// Streams are NDJSON only.
	p = e.streamPost("", "application/json")
	if a := p.answer(t); a.status != 415 || a.ae.Error.Code != "unsupported_media_type" || *a.ae.Error.Accepted != 0 {
		t.Fatalf("not NDJSON: %d %s", a.status, a.raw)
	}
	resp, err := e.client.Post(e.srv.URL+"/v1/sources/in/messages?stream=maybe", "application/x-ndjson", strings.NewReader("1\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("stream=maybe: %d", resp.StatusCode)
	}

	// A shutdown ends an open stream with 503, after publishing what had arrived.
	p = e.streamPost("", "application/x-ndjson")
	p.line(t, "before shutdown")
	if ev := c.next(t); string(ev.Body) != `"before shutdown"` {
		t.Fatalf("before the shutdown: %+v", ev)
	}
	e.api.Drain()
	if a := p.answer(t); a.status != 503 || a.ae.Error.Code != "shutting_down" || *a.ae.Error.Accepted != 1 {
		t.Fatalf("shutdown: %d %s", a.status, a.raw)
	}
}

// A streaming request refused before its source reads it (unknown source, bad parameter) is
// answered at once, though its body has not ended and may never end.
func TestIngestStreamRefusedAtOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/v1/sources/nope/messages?stream=true", 404},
		{"/v1/sources/in/messages?stream=yes", 400},
		{"/v1/sources/in/messages?stream=true&envelope=maybe", 400},
	} {
		p := e.streamPostTo(c.path, "application/x-ndjson")
		p.line(t, "1") // and the body stays open
		if a := p.answer(t); a.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.path, a.status, a.raw, c.status)
		}
	}
}

// A line cut short is not a message: neither when the client leaves in the middle of it, nor
// when a shutdown cuts the stream there.
func TestIngestStreamCutLine(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.ndjson(url.Values{"source": {"in"}})
	defer c.close()

	p := e.streamPost("", "application/x-ndjson")
	p.line(t, "whole")
	if ev := c.next(t); string(ev.Body) != `"whole"` {
		t.Fatalf("first line: %+v", ev)
	}
	if _, err := io.WriteString(p.w, "cut sh"); err != nil {
		t.Fatal(err)
	}
	p.w.CloseWithError(errors.New("the client left"))
	p.answer(t)

	p = e.streamPost("", "application/x-ndjson")
	if _, err := io.WriteString(p.w, "also whole\ncut by the shutdo"); err != nil {
		t.Fatal(err)
	}
	if ev := c.next(t); string(ev.Body) != `"also whole"` {
		t.Fatalf("line before the cut: %+v", ev)
	}
	e.api.Drain()
	if a := p.answer(t); a.status != 503 || a.ae.Error.Code != "shutting_down" || *a.ae.Error.Accepted != 1 {
		t.Fatalf("shutdown: %d %s", a.status, a.raw)
	}
	e.publish("in", msg{Key: "after", Body: json.RawMessage(`1`)})
	if ev := c.next(t); ev.Key != "after" || ev.Seq != 3 {
		t.Fatalf("a cut line was published: next event %+v", ev)
	}
}

// Over HTTP/2 an early answer keeps its body and leaves the connection to the client's other
// requests; streams that end as a shutdown begins do not touch a request that is over.
func TestIngestStreamHTTP2(t *testing.T) {
	e := newEnv(t, envOptions{tls: true, http2: true})
	p := e.streamPost("envelope=true", "application/x-ndjson")
	p.line(t, `{"body":1}`)
	p.line(t, `{"nope":1}`)
	a := p.answer(t)
	if a.status != 400 || a.ae.Error.Code != "invalid_message" || *a.ae.Error.Accepted != 1 {
		t.Fatalf("bad line over HTTP/2: %d %s", a.status, a.raw)
	}
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, e.srv.URL+"/healthz", nil)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || !reused {
		t.Errorf("after an early answer: HTTP/%d, connection reused %v", resp.ProtoMajor, reused)
	}

	// After Drain every stream is cut as it starts, racing with its own end.
	e.api.Drain()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				resp, err := e.client.Post(e.srv.URL+"/v1/sources/in/messages?stream=true", "application/x-ndjson", strings.NewReader("a\n"))
				if err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
}

func TestCheck(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.publish("in", numbered(10, keyEvenOdd)...)
	e.publish("other", numbered(4, keyEvenOdd)...)
	check := func(body string) (int, map[string]any) {
		resp, err := e.client.Post(e.srv.URL+"/v1/check", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, v
	}
	st, v := check(`{"where":"key == \"even\" && body.n > 2","source":["in"]}`)
	if st != 200 || v["valid"] != true || v["matched"] != 4.0 || v["of"] != 10.0 || v["cost"] == nil {
		t.Fatalf("valid: %d %v", st, v)
	}
	if _, v = check(`{"where":"key == \"even\""}`); v["matched"] != 7.0 || v["of"] != 14.0 || v["decided"] != true || fmt.Sprint(v["atoms"]) != `[key == "even"]` {
		t.Fatalf("all sources: %v", v)
	}
	st, v = check(`{"where":"key == ","source":"in"}`)
	errObj, _ := v["error"].(map[string]any)
	if st != 200 || v["valid"] != false || errObj["code"] != "invalid_predicate" || errObj["position"] != 7.0 {
		t.Fatalf("invalid: %d %v", st, v)
	}
	if _, v = check(`{"where":"body.a.all(x, body.b.all(y, body.c.all(z, x + y + z == \"x\")))"}`); v["valid"] != false ||
		!strings.HasSuffix(fmt.Sprint(v["error"].(map[string]any)["message"]), "(limits.predicate_max_cost)") {
		t.Fatalf("too costly: %v", v)
	}
	if st, _ = check(`{"where":1}`); st != 400 {
		t.Fatalf("malformed: %d", st)
	}
	if st, _ = check(`{"where":"true"} {"x":1}`); st != 400 {
		t.Fatalf("data after the object: %d", st)
	}
	if st, _ = check(`{"where":"true","source":["nope"]}`); st != 404 {
		t.Fatalf("unknown source: %d", st)
	}
}

func TestSourcesSubscriptionsKick(t *testing.T) {
	e := newEnv(t, envOptions{})
	var sources []struct {
		Name, Type, State string
		Counters          map[string]any
	}
	if st := e.getJSON("/v1/sources", &sources); st != 200 || len(sources) != 2 || sources[0].Name != "in" || sources[0].Type != "http" || sources[0].State != "up" {
		t.Fatalf("/v1/sources: %d %+v", st, sources)
	}
	// Every field of API.md is there, last_error even when empty; a source that has had no
	// message has no last_message rather than the year 1.
	var raw []map[string]any
	e.getJSON("/v1/sources", &raw)
	if le, ok := raw[0]["last_error"]; !ok || le != "" {
		t.Fatalf("last_error of a healthy source: %v, %v", le, ok)
	}
	if lm, ok := raw[0]["counters"].(map[string]any)["last_message"]; ok {
		t.Fatalf("last_message before any message: %v", lm)
	}
	w := e.ws(url.Values{"where": {`key == "x"`}, "source": {"in"}})
	defer w.close()
	s := e.sse(url.Values{}, "")
	defer s.close()
	var subs []struct {
		ID                   uint64
		Predicate, Transport string
		Sources              []string
	}
	e.getJSON("/v1/subscriptions", &subs)
	if len(subs) != 2 || subs[0].Predicate != `key == "x"` || subs[0].Transport != "websocket" || subs[1].Transport != "sse" || len(subs[1].Sources) != 2 {
		t.Fatalf("/v1/subscriptions: %+v", subs)
	}
	del := func(id string) int {
		req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/v1/subscriptions/"+id, nil)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := del(fmt.Sprint(subs[0].ID)); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	_ = w.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := w.conn.ReadMessage()
	if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Fatalf("kicked client got %v", err)
	}
	if st := del("999"); st != 404 {
		t.Fatalf("delete unknown: %d", st)
	}
	if st := del("abc"); st != 400 {
		t.Fatalf("delete bad id: %d", st)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := newEnv(t, envOptions{})
	var v map[string]any
	if st := e.getJSON("/healthz", &v); st != 200 {
		t.Fatalf("healthz %d", st)
	}
	if st := e.getJSON("/readyz", &v); st != 200 || v["ready"] != true {
		t.Fatalf("readyz %d %v", st, v)
	}
	c := e.ndjson(url.Values{"where": {`body.n > 1`}})
	defer c.close()
	e.publish("in", numbered(3, keyEvenOdd)...)
	c.next(t)
	c.next(t)
	var fams map[string]*dto.MetricFamily
	scrape := func() {
		resp, err := e.client.Get(e.srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		if fams, err = p.TextToMetricFamilies(resp.Body); err != nil {
			t.Fatalf("metrics do not parse: %v", err)
		}
	}
	// The writer records a write just after the client can read it.
	waitFor(t, "the write to be recorded", func() bool {
		scrape()
		for _, m := range fams["streamux_written_events_total"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == "ndjson" && m.GetCounter().GetValue() == 2 {
					return true
				}
			}
		}
		return false
	})
	value := func(name, label string) float64 {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					if m.Counter != nil {
						return m.Counter.GetValue()
					}
					return m.Gauge.GetValue()
				}
			}
		}
		t.Fatalf("no %s{%s}", name, label)
		return 0
	}
	if value("streamux_source_received_total", "in") != 3 || value("streamux_source_matched_total", "in") != 2 ||
		value("streamux_source_queued_total", "in") != 2 || value("streamux_connections", "ndjson") != 1 {
		var b bytes.Buffer
		for n := range fams {
			b.WriteString(n + " ")
		}
		t.Fatalf("counters did not move as expected; families: %s", b.String())
	}
	if h := fams["streamux_delivery_latency_seconds"].GetMetric()[0].GetHistogram(); h.GetSampleCount() == 0 {
		t.Fatal("no delivery latency observed")
	}
	if value("streamux_written_events_total", "ndjson") != 2 || value("streamux_source_state", "up") != 1 ||
		value("streamux_source_received_bytes_total", "in") == 0 || value("streamux_streams_total", "ndjson") != 1 {
		t.Fatal("transport and source metrics did not move as expected")
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Fatal("no Go runtime metrics")
	}
	e.api.Drain()
	if st := e.getJSON("/readyz", &v); st != 503 {
		t.Fatalf("readyz while draining: %d", st)
	}
}

// SSE sends comment heartbeats; WebSocket sends pings and cuts a peer that stops answering.
func TestHeartbeats(t *testing.T) {
	e := newEnv(t, envOptions{transport: transport.Options{Heartbeat: 50 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}})
	s := e.sse(url.Values{}, "").(*sseClient)
	defer s.close()
	e.publish("in", numbered(1, keyEvenOdd)...)
	s.next(t)
	// Three heartbeat comments on the quiet stream, then the next event. The watchdog is a
	// liveness bound only: far above the 50 ms interval, far below the 15 s default.
	watchdog := time.AfterFunc(5*time.Second, s.close)
	for from := s.heartbeats; s.heartbeats < from+3; {
		line, err := s.br.ReadString('\n')
		if err != nil {
			t.Fatalf("%d heartbeat comments, then %v", s.heartbeats-from, err)
		}
		switch {
		case strings.HasPrefix(line, ":"):
			s.heartbeats++
		case line != "\n":
			t.Fatalf("on a quiet stream: %q", line)
		}
	}
	watchdog.Stop()
	e.publish("in", numbered(1, keyEvenOdd)...)
	s.next(t)

	w := e.ws(url.Values{})
	defer w.close()
	// The first two pings are answered, and then none: the peer falls silent after it has
	// seen the pings, and only then may the server cut it.
	pings := 0
	w.conn.SetPingHandler(func(data string) error { // runs within ReadMessage, on this goroutine
		pings++
		if pings > 2 {
			return nil
		}
		return w.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	_ = w.conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // a liveness bound only
	var err error
	for err == nil {
		_, _, err = w.conn.ReadMessage()
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server had not cut the silent peer after 10s (%d pings): %v", pings, err)
	}
	if pings < 2 {
		t.Fatalf("%d pings before the server cut the peer, which answered the first two", pings)
	}
	waitFor(t, "the silent peer's subscription to end", func() bool { return e.sup.Count() == 1 })
}

func TestHeadStreamIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp, err := e.client.Head(e.srv.URL + "/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("HEAD /v1/stream: %d", resp.StatusCode)
	}
}

// A WebSocket client that only listens to a busy stream (a browser does) answers the server's
// pings and is not taken for dead, however long the traffic lasts.
func TestListenOnlyClientOnBusyStream(t *testing.T) {
	// An idle window (two heartbeats and the write timeout) of 600 ms: short enough to pass
	// three times over, long enough that a loaded machine under -race does not hold the
	// client's reader that long.
	e := newEnv(t, envOptions{transport: transport.Options{Heartbeat: 150 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}})
	w := e.ws(url.Values{"source": {"in"}}) // gorilla answers pings with pongs by itself
	defer w.close()
	stop := time.Now().Add(2 * time.Second) // over three times the idle window
	got := make(chan error, 1)
	go func() { // the reader; the test waits for it through got
		for {
			_ = w.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := w.conn.ReadMessage(); err != nil {
				got <- err
				return
			}
			if time.Now().After(stop) {
				got <- nil
				return
			}
		}
	}()
	// The traffic: a message every 10 ms (the sleep paces it), until the reader has had one
	// after stop, however long that takes on a loaded machine.
	for {
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("a listening client was cut: %v", err)
			}
			return
		default:
		}
		e.publish("in", numbered(1, keyEvenOdd)...)
		time.Sleep(10 * time.Millisecond)
	}
}

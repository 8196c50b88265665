package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/httpapi"
)

// rawRequest is a request written by hand on its own connection, so that a test can send its
// body as slowly as it likes, or stop in the middle.
type rawRequest struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// open writes the request line and headers of method path; body bytes follow with write.
func (e *env) open(t *testing.T, method, path string, hdr map[string]string) *rawRequest {
	t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, e.srv.Listener.Addr())
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	return &rawRequest{t: t, conn: conn, br: bufio.NewReader(conn)}
}

// write sends body bytes; it reports whether the server still took them.
func (r *rawRequest) write(s string) bool {
	_ = r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(r.conn, s)
	return err == nil
}

// chunk sends s as one chunk of a chunked body.
func (r *rawRequest) chunk(s string) bool { return r.write(fmt.Sprintf("%x\r\n%s\r\n", len(s), s)) }

// answer reads the response, waiting up to d, and returns its status and error.
func (r *rawRequest) answer(d time.Duration) (int, apiErr, http.Header) {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		r.t.Fatalf("no answer within %v: %v", d, err)
	}
	defer resp.Body.Close()
	var ae apiErr
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &ae)
	return resp.StatusCode, ae, resp.Header
}

// A body that stalls, or trickles, is cut with 408 once the body rules are broken, whatever
// the endpoint; a body that keeps coming is taken.
func TestSlowBodies(t *testing.T) {
	// A second of silence, not less: a loaded machine under -race can hold a writer that
	// long between two writes of the steady body below.
	e := newEnv(t, envOptions{limits: httpapi.Limits{BodyReadTimeout: time.Second, BodyMinRate: 100}})
	t.Run("stalled", func(t *testing.T) {
		for _, path := range []string{"/v1/sources/in/messages", "/v1/check"} {
			r := e.open(t, "POST", path, map[string]string{"Content-Length": "1000"})
			r.write(`{"where":`)
			start := time.Now()
			status, ae, _ := r.answer(5 * time.Second)
			if status != http.StatusRequestTimeout || ae.Error.Code != "request_timeout" || !strings.Contains(ae.Error.Message, "limits.body_read_timeout") {
				t.Errorf("%s, stalled: %d %+v", path, status, ae.Error)
			}
			// Three times the timeout: room for a loaded machine under -race, and still far
			// from never (the answer's deadline is 5 s).
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("%s: cut after %v", path, d)
			}
		}
	})
	t.Run("trickled", func(t *testing.T) {
		r := e.open(t, "POST", "/v1/sources/in/messages", map[string]string{"Content-Length": "100000"})
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // a byte every 50 ms: never idle for long, but 20 bytes a second; stopped below
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if !r.write("x") {
					return
				}
			}
		}()
		status, ae, _ := r.answer(5 * time.Second)
		close(stop)
		<-done
		if status != http.StatusRequestTimeout || ae.Error.Code != "request_timeout" || !strings.Contains(ae.Error.Message, "limits.body_min_rate") {
			t.Errorf("trickled: %d %+v", status, ae.Error)
		}
	})
	t.Run("steady", func(t *testing.T) {
		// 80 KB at 50 KB/s: longer in all than the read timeout, but never idle that long,
		// nor slower than the rate.
		body := strings.Repeat("y", 80000)
		r := e.open(t, "POST", "/v1/sources/in/messages", map[string]string{"Content-Length": fmt.Sprint(len(body))})
		for i := 0; i < len(body); i += 1000 {
			time.Sleep(20 * time.Millisecond)
			r.write(body[i : i+1000])
		}
		if status, ae, _ := r.answer(5 * time.Second); status != 200 {
			t.Errorf("steady: %d %+v", status, ae.Error)
		}
	})
}

// A streaming ingest request may pause between lines for up to ingest_idle_timeout, and an
// empty line keeps it alive; within a line the body rules apply.
func TestStreamIngestIdle(t *testing.T) {
	e := newEnv(t, envOptions{limits: httpapi.Limits{BodyReadTimeout: 200 * time.Millisecond, BodyMinRate: 1000, IngestIdleTimeout: 2 * time.Second}})
	hdr := map[string]string{"Transfer-Encoding": "chunked", "Content-Type": "application/x-ndjson"}
	t.Run("pauses and keep-alives", func(t *testing.T) {
		r := e.open(t, "POST", "/v1/sources/in/messages?stream=true", hdr)
		// The sleeps are the slow client: each pause is three times body_read_timeout, and
		// more than a second short of ingest_idle_timeout, should a loaded machine stretch it.
		r.chunk("1\n")
		time.Sleep(600 * time.Millisecond) // longer than body_read_timeout: a pause between lines
		r.chunk("2\n")
		for i := 0; i < 4; i++ { // 2.4 s in all, longer than ingest_idle_timeout
			time.Sleep(600 * time.Millisecond)
			if !r.chunk("\n") {
				t.Fatal("the stream was cut while it sent keep-alives")
			}
		}
		r.chunk("3\n")
		start := time.Now()
		status, ae, _ := r.answer(10 * time.Second) // then it stops sending
		if status != http.StatusRequestTimeout || ae.Error.Code != "request_timeout" || ae.Error.Accepted == nil || *ae.Error.Accepted != 3 ||
			!strings.Contains(ae.Error.Message, "limits.ingest_idle_timeout") {
			t.Fatalf("idle stream: %d %+v", status, ae.Error)
		}
		// A lower bound, which a slow machine cannot break: the cut comes no sooner than
		// ingest_idle_timeout (2 s) after the last line, sent just before start.
		if d := time.Since(start); d < 1500*time.Millisecond {
			t.Fatalf("cut after %v, before ingest_idle_timeout", d)
		}
	})
	t.Run("stalled in a line", func(t *testing.T) {
		r := e.open(t, "POST", "/v1/sources/in/messages?stream=true", hdr)
		r.chunk("4\n5\n{\"half\":")
		start := time.Now()
		status, ae, _ := r.answer(10 * time.Second)
		if status != http.StatusRequestTimeout || ae.Error.Accepted == nil || *ae.Error.Accepted != 2 ||
			!strings.Contains(ae.Error.Message, "limits.body_read_timeout") {
			t.Fatalf("stalled in a line: %d %+v", status, ae.Error)
		}
		// The message says which rule cut it; the time backs it: body_read_timeout is 200 ms,
		// ingest_idle_timeout 2 s, and 1.5 s leaves a loaded machine 1.3 s of slack.
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Fatalf("a line stalled for %v", d)
		}
	})
	if n := e.historyLen("in"); n != 5 {
		t.Fatalf("%d messages published, want 5", n)
	}
}

// Ingest requests in progress are capped per credential (per address without auth) and in all.
func TestIngestRequestLimits(t *testing.T) {
	e := secureEnv(t, envOptions{limits: httpapi.Limits{IngestRequestsPerClient: 2, IngestRequests: 3}})
	hdr := func(cred string) map[string]string {
		return map[string]string{"Transfer-Encoding": "chunked", "Content-Type": "application/x-ndjson", "Authorization": "Bearer " + cred}
	}
	published := 0
	hold := func(cred string) *rawRequest {
		t.Helper()
		r := e.open(t, "POST", "/v1/sources/in/messages?stream=true", hdr(cred))
		r.chunk("1\n")
		published++
		waitFor(t, "the stream's first line", func() bool { return e.historyLen("in") == published })
		return r
	}
	a := hold("writer-key")
	hold("writer-key")
	status, code, hdrs := e.do("POST", "/v1/sources/in/messages", "writer-key", "1", nil)
	if status != 429 || code != "limit_exceeded" {
		t.Fatalf("a third request of one credential: %d %s", status, code)
	}
	if hdrs.Get("Retry-After") == "" {
		t.Errorf("no Retry-After")
	}
	other := token(t, auth.Claims{Subject: "other", Write: []string{"in"}}, time.Minute)
	hold(other)
	if status, code, _ := e.do("POST", "/v1/sources/in/messages", token(t, auth.Claims{Subject: "third", Write: []string{"in"}}, time.Minute), "1", nil); status != 429 || code != "limit_exceeded" {
		t.Fatalf("a fourth request in all: %d %s", status, code)
	}
	// One ends: its place is free.
	a.chunk("")
	if status, _, _ := a.answer(5 * time.Second); status != 200 {
		t.Fatalf("end of a stream: %d", status)
	}
	if status, code, _ := e.do("POST", "/v1/sources/in/messages", "writer-key", "1", nil); status != 200 {
		t.Fatalf("after one ended: %d %s", status, code)
	}
	// Without auth, per address (loopback, with apply_to_loopback).
	n := newEnv(t, envOptions{limits: httpapi.Limits{IngestRequestsPerClient: 1, ApplyToLoopback: true}})
	r := n.open(t, "POST", "/v1/sources/in/messages?stream=true", hdr("x"))
	r.chunk("1\n")
	waitFor(t, "the stream's first line", func() bool { return n.historyLen("in") == 1 })
	if status, code, _ := n.do("POST", "/v1/sources/in/messages", "", "1", nil); status != 429 || code != "limit_exceeded" {
		t.Fatalf("a second request of one address: %d %s", status, code)
	}
}

// The bytes of bodies held while they arrive are bounded in all: a body that would take more
// is refused with 429, and the bytes of one that ends are free again.
func TestBodyBytesLimit(t *testing.T) {
	e := newEnv(t, envOptions{limits: httpapi.Limits{BodyBytes: 1500 << 10}})
	a := e.open(t, "POST", "/v1/sources/in/messages", map[string]string{"Content-Length": fmt.Sprint(1 << 20)})
	a.write(strings.Repeat("a", 1<<20-1)) // all but the last byte: held, waiting
	waitFor(t, "the first body to be held", func() bool { return e.metric("streamux_request_body_bytes") >= 1<<20-1 })
	b := e.open(t, "POST", "/v1/sources/in/messages", map[string]string{"Content-Length": fmt.Sprint(1 << 20)})
	b.write(strings.Repeat("b", 1<<20))
	status, ae, hdr := b.answer(5 * time.Second)
	if status != 429 || ae.Error.Code != "limit_exceeded" || !strings.Contains(ae.Error.Message, "limits.body_buffer_bytes") || hdr.Get("Retry-After") == "" {
		t.Fatalf("a body over what is left: %d %+v", status, ae.Error)
	}
	a.write("a")
	if status, ae, _ := a.answer(5 * time.Second); status != 200 {
		t.Fatalf("the first body: %d %+v", status, ae.Error)
	}
	waitFor(t, "the bytes to be free", func() bool { return e.metric("streamux_request_body_bytes") == 0 })
	if status, code, _ := e.do("POST", "/v1/sources/in/messages", "", strings.Repeat("c", 1<<20), nil); status != 200 {
		t.Fatalf("after: %d %s", status, code)
	}
}

// metric is the value of an unlabelled metric in /metrics.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	resp, err := e.client.Get(e.srv.URL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The rules every request body is read under, so that a client cannot hold a connection, a
// place among the ingest requests, or memory, by sending slowly or not at all:
//
//   - A body must keep coming: one that sends nothing for Limits.BodyReadTimeout, or whose
//     average rate since it began falls under Limits.BodyMinRate once that long has passed,
//     is cut, and the request answered 408. The rule is a read deadline on the connection
//     that moves on as bytes arrive: BodyReadTimeout after the last byte, and no later than
//     BodyReadTimeout plus the time BodyMinRate allows for the bytes so far.
//   - A streaming ingest request (?stream=true) may last for as long as its producer lives,
//     and pause: between lines it may wait Limits.IngestIdleTimeout for the next one (an empty
//     line counts, as a keep-alive); each line is held to the body rules from its first byte.
//   - The bytes held while bodies arrive are counted against Limits.BodyBytes, all requests
//     together: of a body parsed whole, every byte read until the request ends; of a
//     streaming request, its longest line so far (the line reader keeps a buffer that size).
//     A read that would go over fails, and the request is answered 429.
//
// The deadline is set through http.ResponseController, on the connection (HTTP/1) or the
// stream (HTTP/2). A handler that sets a read deadline of its own through the ResponseWriter
// (a shutdown cutting a streaming ingest request) goes through bodyWriter, so that neither
// undoes the other: the earlier of the two applies.

// bodies counts the bytes that request bodies hold while they are received.
type bodies struct {
	lim  Limits
	used atomic.Int64
}

func newBodies(lim Limits, reg *prometheus.Registry) *bodies {
	b := &bodies{lim: lim}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "streamux_request_body_bytes",
		Help: "Bytes held by request bodies being received, against limits.body_buffer_bytes.",
	}, func() float64 { return float64(b.used.Load()) }))
	return b
}

func (b *bodies) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.lim.BodyBytes {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// wrap puts r's body, if it has one, under the body rules. It returns the writer and request
// to serve, and what to call once the request is served.
func (b *bodies) wrap(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, func()) {
	if r.Body == nil || r.Body == http.NoBody || r.Header.Get("Upgrade") != "" {
		return w, r, func() {}
	}
	now := time.Now()
	tb := &timedBody{ReadCloser: r.Body, pool: b, rc: http.NewResponseController(w), start: now, last: now}
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = tb
	return &bodyWriter{ResponseWriter: w, body: tb}, r2, tb.release
}

// timedBody is a request body read under the body rules. Read, and everything but the
// deadline fields, belong to the handler's goroutine.
type timedBody struct {
	io.ReadCloser
	pool *bodies
	rc   *http.ResponseController

	lines bool      // a streaming ingest request: the rules apply per line
	start time.Time // when the body began; with lines, when the line being read began
	n     int64     // bytes since start (with lines: of the line being read; 0 between lines)
	last  time.Time // when bytes last came
	held  int64     // bytes counted in pool
	fail  *apiError // why the rules ended the body, once they have

	mu       sync.Mutex // guards what follows: a cut may come from another goroutine
	own      time.Time  // the deadline the rules ask for
	why      string     // what the rules will say when own passes
	external time.Time  // the deadline the handler asked for (bodyWriter); zero: none
	over     bool       // the request is served: the connection is no longer ours to touch
}

// streamLines applies the rules per line, from now on: a streaming ingest request.
func (b *timedBody) streamLines() {
	b.lines, b.n, b.last = true, 0, time.Now()
}

func (b *timedBody) Read(p []byte) (int, error) {
	if b.fail != nil {
		return 0, b.fail
	}
	b.setOwn(b.deadline())
	n, err := b.ReadCloser.Read(p)
	now := time.Now()
	if n > 0 {
		if aerr := b.account(p[:n], now); aerr != nil {
			b.fail = aerr
			return 0, aerr
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		// Nothing more to wait for: net/http's own read, which watches for the client going
		// away, must not run into the deadline while the handler works on.
		b.setOwn(time.Time{}, "")
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		if why := b.expired(now); why != "" {
			b.fail = newError(http.StatusRequestTimeout, "request_timeout", why)
			return n, b.fail
		}
	}
	return n, err
}

// deadline is when the next read must have brought bytes, and what it is said when it has not.
func (b *timedBody) deadline() (time.Time, string) {
	l := b.pool.lim
	if b.lines && b.n == 0 {
		return b.last.Add(l.IngestIdleTimeout), fmt.Sprintf("the stream sent no line for %v (limits.ingest_idle_timeout; an empty line keeps it open)", l.IngestIdleTimeout)
	}
	what := "the request body"
	if b.lines {
		what = "a line of the stream"
	}
	idle := b.last.Add(l.BodyReadTimeout)
	rate := b.start.Add(l.BodyReadTimeout + time.Duration(float64(b.n)/float64(l.BodyMinRate)*float64(time.Second)))
	if !rate.Before(idle) {
		return idle, fmt.Sprintf("%s sent nothing for %v (limits.body_read_timeout)", what, l.BodyReadTimeout)
	}
	return rate, fmt.Sprintf("%s came slower than %d bytes per second (limits.body_min_rate)", what, l.BodyMinRate)
}

// account counts data, just read, against the byte limit.
func (b *timedBody) account(data []byte, now time.Time) *apiError {
	b.last = now
	need := b.n + int64(len(data))
	if !b.lines {
		b.n = need
	} else if first := bytes.IndexByte(data, '\n'); first < 0 {
		if b.n == 0 {
			b.start = now
		}
		b.n = need
	} else {
		// The line that ended here, and the one begun after the last newline.
		need = b.n + int64(first)
		b.n = int64(len(data) - bytes.LastIndexByte(data, '\n') - 1)
		b.start = now
		need = max(need, b.n)
	}
	if need <= b.held {
		return nil
	}
	if !b.pool.take(need - b.held) {
		return tooMany("body_buffer_bytes", fmt.Sprintf("the server holds its limit of %d bytes of request bodies being received", b.pool.lim.BodyBytes), time.Second)
	}
	b.held = need
	return nil
}

// release gives back what the body held, once the request is served.
func (b *timedBody) release() {
	b.mu.Lock()
	b.over = true
	b.mu.Unlock()
	b.pool.used.Add(-b.held)
	b.held = 0
}

func (b *timedBody) setOwn(t time.Time, why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.own, b.why = t, why
	b.apply()
}

// setExternal is a read deadline that the handler asks for.
func (b *timedBody) setExternal(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over {
		return nil
	}
	b.external = t
	return b.apply()
}

// apply sets the earlier of the two deadlines; the caller holds mu.
func (b *timedBody) apply() error {
	if b.over {
		return nil
	}
	d := b.own
	if !b.external.IsZero() && (d.IsZero() || b.external.Before(d)) {
		d = b.external
	}
	return b.rc.SetReadDeadline(d)
}

// expired says why a read that ran into a deadline at now was cut by the rules, or "" if it
// was the handler's own deadline.
func (b *timedBody) expired(now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.external.IsZero() && !now.Before(b.external) {
		return ""
	}
	return b.why
}

// bodyWriter is the writer of a request with a body under the rules: it takes the handler's
// read deadlines (see timedBody), and when the rules cut the body, it answers why instead of
// whatever error the handler makes of the failed read.
type bodyWriter struct {
	http.ResponseWriter
	body     *timedBody
	replaced bool
}

// SetReadDeadline is found by http.ResponseController.
func (w *bodyWriter) SetReadDeadline(t time.Time) error { return w.body.setExternal(t) }

// Unwrap lets http.ResponseController reach the connection.
func (w *bodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *bodyWriter) WriteHeader(code int) {
	if f := w.body.fail; f != nil && code >= 400 && code != f.Status {
		w.replaced = true
		w.Header().Set("Connection", "close")
		writeError(w.ResponseWriter, f)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *bodyWriter) Write(p []byte) (int, error) {
	if w.replaced {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

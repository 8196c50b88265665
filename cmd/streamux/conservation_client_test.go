package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The conservation test's clients: each reads one stream on a goroutine of its own, through the
// client code a user would use (gorilla/websocket, net/http with an SSE parser written to the
// HTML standard's rules, bufio over net/http for NDJSON), and keeps every event as the bytes it
// received, for the test to compare.

// received is one event as a client received it.
type received struct {
	json     []byte // the event's JSON: a WebSocket frame (or one line of a batch), an SSE data, an NDJSON line
	sseID    string // SSE: the id of the event's block
	sseEvent string // SSE: the event's type, from its "event:" line
}

// streamClient is one stream being read.
type streamClient struct {
	name string

	mu     sync.Mutex
	msgs   []received // the message events, in order
	others []string   // the other events (status, gap), as received
	err    error      // why the stream ended; nil while it runs
	wake   chan struct{}

	stop func()        // ends the stream
	done chan struct{} // closed when the reading goroutine has returned
}

func newStreamClient(name string) *streamClient {
	return &streamClient{name: name, wake: make(chan struct{}), done: make(chan struct{})}
}

// add keeps one event. A gap ends the property at once: nothing may be missed on these streams.
func (c *streamClient) add(ev received) {
	typ := eventType(ev.json)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch typ {
	case "message":
		c.msgs = append(c.msgs, ev)
	default:
		c.others = append(c.others, string(ev.json))
		if typ != "status" && c.err == nil {
			c.err = fmt.Errorf("unexpected %s event: %s", typ, ev.json)
		}
	}
	close(c.wake)
	c.wake = make(chan struct{})
}

// end records why the stream ended.
func (c *streamClient) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		if err == nil {
			err = io.EOF
		}
		c.err = fmt.Errorf("the stream ended: %w", err)
	}
	close(c.wake)
	c.wake = make(chan struct{})
}

// wait waits until the client holds n message events, and returns them. It fails the test if
// the stream ends or breaks the property first, or after timeout.
func (c *streamClient) wait(t *testing.T, n int, timeout time.Duration) []received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		msgs, err, wake := c.msgs, c.err, c.wake
		c.mu.Unlock()
		if len(msgs) >= n {
			return msgs[:n:n]
		}
		if err != nil {
			t.Fatalf("%s: %d of %d messages, then %v (other events: %.400q)", c.name, len(msgs), n, err, c.othersText())
		}
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("%s: %d of %d messages after %v (other events: %.400q)", c.name, len(msgs), n, timeout, c.othersText())
		}
	}
}

// count is how many message events the client holds, and a channel closed at the next change.
func (c *streamClient) count() (int, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs), c.wake
}

func (c *streamClient) othersText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.others, " ")
}

// close ends the stream and waits for its goroutine.
func (c *streamClient) close() {
	c.stop()
	<-c.done
}

// eventType reads an event's "type" without decoding the rest when it comes first, as it does:
// a body of a megabyte is then not decoded once per client.
func eventType(b []byte) string {
	d := json.NewDecoder(bytes.NewReader(b))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Sprintf("(not a JSON object: %v)", err)
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return fmt.Sprintf("(bad JSON: %v)", err)
		}
		if k == "type" {
			var typ string
			if err := d.Decode(&typ); err != nil {
				return fmt.Sprintf("(bad type: %v)", err)
			}
			return typ
		}
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return fmt.Sprintf("(bad JSON: %v)", err)
		}
	}
	return "(no type)"
}

// streamQuery is the query of a stream of one source, from after id when id is not "".
func streamQuery(source, where, from string, extra ...string) string {
	q := url.Values{"source": {source}}
	if where != "" {
		q.Set("where", where)
	}
	if from != "" {
		q.Set("from", from)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return q.Encode()
}

// openNDJSON reads GET /v1/stream?query as NDJSON: one event a line.
func (s *testServer) openNDJSON(t *testing.T, name, query string) *streamClient {
	t.Helper()
	resp, stop := s.openHTTP(t, name, query, nil)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") {
		t.Errorf("%s: Content-Type %q, want application/x-ndjson", name, ct)
	}
	c := newStreamClient(name)
	c.stop = stop
	go func() { // returns when the stream ends; close waits for it
		defer close(c.done)
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				if len(line) > 0 {
					err = fmt.Errorf("a line cut short (%d bytes): %w", len(line), err)
				}
				c.end(err)
				return
			}
			c.add(received{json: line[:len(line)-1]})
		}
	}()
	t.Cleanup(c.close)
	return c
}

// openSSE reads GET /v1/stream?query as Server-Sent Events, with Last-Event-ID when lastID is
// not "". The parser follows the HTML standard: lines end at "\r\n", "\n" or "\r"; a line
// starting with ':' is a comment; "field: value" loses one space after the colon; data lines
// join with "\n"; a blank line dispatches the event, if it has data.
func (s *testServer) openSSE(t *testing.T, name, query, lastID string) *streamClient {
	t.Helper()
	h := http.Header{"Accept": {"text/event-stream"}}
	if lastID != "" {
		h.Set("Last-Event-ID", lastID)
	}
	resp, stop := s.openHTTP(t, name, query, h)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("%s: Content-Type %q, want text/event-stream", name, ct)
	}
	c := newStreamClient(name)
	c.stop = stop
	go func() { // returns when the stream ends; close waits for it
		defer close(c.done)
		br := bufio.NewReader(resp.Body)
		var data []byte
		hasData := false
		id, typ := "", ""
		for {
			line, err := readSSELine(br)
			if err != nil {
				c.end(err)
				return
			}
			if len(line) == 0 {
				if hasData {
					c.add(received{json: data, sseID: id, sseEvent: typ})
				}
				data, hasData, typ = nil, false, ""
				continue
			}
			if line[0] == ':' {
				continue
			}
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "data":
				if hasData {
					data = append(data, '\n')
				}
				data = append(data, value...)
				hasData = true
			case "id":
				id = string(value)
			case "event":
				typ = string(value)
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

// readSSELine reads one line without its ending ("\r\n", "\n" or "\r").
func readSSELine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		switch b {
		case '\n':
			return line, nil
		case '\r':
			if next, err := br.Peek(1); err == nil && next[0] == '\n' {
				_, _ = br.ReadByte()
			}
			return line, nil
		}
		line = append(line, b)
		// The body of a line is read in bulk: a megabyte of data is not a megabyte of calls.
		if chunk, err := br.Peek(br.Buffered()); err == nil {
			if i := bytes.IndexAny(chunk, "\r\n"); i >= 0 {
				chunk = chunk[:i]
			}
			line = append(line, chunk...)
			_, _ = br.Discard(len(chunk))
		}
	}
}

// openHTTP sends GET /v1/stream?query and returns the response once it is 200, and how to end it.
func (s *testServer) openHTTP(t *testing.T, name, query string, h http.Header) (*http.Response, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/v1/stream?"+query), nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := s.client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("%s: %v", name, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("%s: GET /v1/stream?%s: %s %s", name, query, resp.Status, b)
	}
	return resp, func() {
		cancel()
		resp.Body.Close()
	}
}

// openWS reads GET /v1/stream?query over WebSocket: one event per text frame, or with batch=true
// in the query one per line of a frame.
func (s *testServer) openWS(t *testing.T, name, query string) *streamClient {
	t.Helper()
	batch := strings.Contains(query, "batch=true")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+s.addr+"/v1/stream?"+query, nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("%s: WebSocket dial: %v %s", name, err, status)
	}
	c := newStreamClient(name)
	c.stop = func() { conn.Close() }
	go func() { // returns when the connection ends; close waits for it
		defer close(c.done)
		for {
			typ, frame, err := conn.ReadMessage()
			if err != nil {
				c.end(err)
				return
			}
			if typ != websocket.TextMessage {
				c.end(fmt.Errorf("a frame of type %d, want text (1)", typ))
				return
			}
			if !batch {
				c.add(received{json: frame})
				continue
			}
			for line := range bytes.SplitSeq(frame, []byte("\n")) {
				c.add(received{json: line})
			}
		}
	}()
	t.Cleanup(c.close)
	return c
}

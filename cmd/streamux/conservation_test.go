package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/sourcetest"
)

// TestConservation states the delivery guarantee as a property (issue 15): whatever enters
// streamux — over HTTP ingest as a plain body, an envelope, NDJSON lines, NDJSON envelopes or a
// streamed NDJSON request, or from RabbitMQ, NATS, Redis, MQTT, Kafka or an upstream WebSocket —
// reaches a WebSocket client (one frame per event, and batched), an SSE client and an NDJSON
// client exactly: the same bytes, in the order sent, each once, with consecutive seqs, with its
// key and headers; and clients that resume from the middle (from=, Last-Event-ID) get exactly
// the rest again from the history, then what comes next.
//
// "The same bytes" is what the contract makes of them: a JSON body is the same JSON value,
// compacted (byte for byte what encoding/json's Compact makes of it, or, for an envelope's body,
// which the server re-encodes, the same value); UTF-8 text is a JSON string of the same text;
// anything else is its base64 with "body_encoding":"base64". The seven clients of a path must
// moreover receive the very same JSON for each event.
//
// Bodies are random (JSON compact and spaced, text with Unicode spaces at its ends, bytes that
// are not UTF-8, JSON with such bytes in its strings, JSON one byte off), of random sizes from
// 0 bytes to the limit of each path, and always at the sizes either side of the buffers on the
// way (4 KiB, 64 KiB; 128 KiB for RabbitMQ's frames) and at the limit and one under it:
//
//	ingest             max_body_bytes (1,234,567 here): a request, or a line of a streamed one
//	nats               the server's max_payload (1 MiB by default), headers and body together
//	kafka              kfake's message.max.bytes (1,048,588), a record batch with its framing
//	websocket          the source's read_limit (1 MiB by default)
//	amqp, redis, mqtt  1 MiB (brokerCap): their own limits are 128 MiB and more
//
// What a path cannot carry is not sent on it: an NDJSON line holds no newline, does not end in
// '\r' and is not empty (bodyRules); a text protocol's header value has no space at its ends
// (headerValue).
//
// The seed is logged; STREAMUX_CONSERVATION_SEED replays it, STREAMUX_CONSERVATION_MESSAGES
// changes how many messages each path sends (40 by default).
func TestConservation(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(seedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, s, err)
		}
	}
	t.Logf("seed %d: %s=%d go test -race -run 'Conservation' ./cmd/streamux/ replays it", seed, seedEnv, seed)
	n := 40
	if s := os.Getenv(countEnv); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 12 {
			t.Fatalf("%s=%q: want a number of at least 12", countEnv, s)
		}
	}
	paths := []struct {
		name string
		run  func(t *testing.T, g gen, n int)
	}{
		{"ingest-body", conserveIngestBody},
		{"ingest-envelope", conserveIngestEnvelope},
		{"ingest-ndjson", func(t *testing.T, g gen, n int) { conserveIngestLines(t, g, n, false, false) }},
		{"ingest-ndjson-envelope", func(t *testing.T, g gen, n int) { conserveIngestLines(t, g, n, true, false) }},
		{"ingest-stream", func(t *testing.T, g gen, n int) { conserveIngestLines(t, g, n, false, true) }},
		{"ingest-stream-envelope", func(t *testing.T, g gen, n int) { conserveIngestLines(t, g, n, true, true) }},
		{"amqp", conserveAMQP},
		{"nats", conserveNATS},
		{"redis", conserveRedis},
		{"mqtt", conserveMQTT},
		{"kafka", conserveKafka},
		{"websocket", conserveWebSocket},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			h := fnv.New64a()
			h.Write([]byte(p.name))
			p.run(t, gen{r: rand.New(rand.NewPCG(seed, h.Sum64()))}, n)
		})
	}
}

const (
	seedEnv  = "STREAMUX_CONSERVATION_SEED"
	countEnv = "STREAMUX_CONSERVATION_MESSAGES"
)

// waitTimeout bounds each wait for messages: the largest path moves some megabytes to eight
// clients under the race detector.
const waitTimeout = 90 * time.Second

// message is what one published message must become in every client's event.
type message struct {
	what    string            // how it was made, for failure messages: "text-spaced, 65536 bytes"
	key     string            // the event's key
	headers map[string]string // the event's headers, all of them
	body    want              // the event's body
}

// want is an event's body as the contract makes it of a payload.
type want struct {
	enc       string // "json", "text" or "base64"
	json      []byte // json: the value, compacted
	sameValue bool   // json: compare as JSON values, not bytes (the server re-encoded it)
	text      string // text: the text
	bin       []byte // base64: the bytes
}

// wantFor is what the contract makes of a payload: the JSON value when it is valid JSON in valid
// UTF-8, compacted (so that it stays on one line); the text when it is other UTF-8; else base64.
// This is API.md's rule, written again here from the contract, not taken from the server.
func wantFor(payload []byte) want {
	if utf8.Valid(payload) && json.Valid(payload) {
		var b bytes.Buffer
		if err := json.Compact(&b, payload); err != nil {
			panic(err)
		}
		return want{enc: "json", json: b.Bytes()}
	}
	if utf8.Valid(payload) {
		return want{enc: "text", text: string(payload)}
	}
	return want{enc: "base64", bin: payload}
}

// describe is a payload's kind and size, for failure messages.
func describe(k bodyKind, payload []byte) string {
	return fmt.Sprintf("%v, %d bytes", k, len(payload))
}

// testServer is streamux itself, the serve function of the command, running in the test's
// process on a loopback port.
type testServer struct {
	addr   string
	client *http.Client
}

func (s *testServer) url(path string) string { return "http://" + s.addr + path }

// startServer serves a configuration whose sources are sourcesYAML (the items of "sources:"),
// loaded from a file as the command loads it, until the test ends. Its queues are large: the
// property is that nothing is lost or changed, and a client that reads as fast as it can must
// not be cut as a slow consumer because a path sends megabytes at memory speed (README, Ingest),
// and the replays need every message still in the history, which the default history.max_bytes
// (64 MiB) might not hold at these sizes.
func startServer(t *testing.T, sourcesYAML string) *testServer {
	t.Helper()
	yaml := "sources:\n" + sourcesYAML + `
limits:
  queue_events: 100000
  queue_bytes: 1073741824
history:
  max_bytes: 1073741824
shutdown_grace: 5s
`
	path := filepath.Join(t.TempDir(), "streamux.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ln, log) }() // waited for by the cleanup below
	tr := &http.Transport{}
	s := &testServer{addr: ln.Addr().String(), client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not return within 20s of its context ending")
		}
		tr.CloseIdleConnections()
	})
	return s
}

// waitUp waits until the source is up.
func (s *testServer) waitUp(t *testing.T, source string) {
	t.Helper()
	sourcetest.Eventually(t, 30*time.Second, func() bool {
		resp, err := s.client.Get(s.url("/v1/sources"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var list []struct{ Name, State string }
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			return false
		}
		for _, si := range list {
			if si.Name == source {
				return si.State == "up"
			}
		}
		return false
	}, "source %s up", source)
}

// entry is one way in, ready: a server reading the source, and how to publish into it.
type entry struct {
	srv    *testServer
	source string
	// publish sends messages i of the path's messages, in order, and returns once the source
	// has them (or the server has accepted them). It may fill in what is known only once
	// published (a Kafka offset) in the message.
	publish func(ctx context.Context, i []int) error
	// probe, when not nil, publishes one message with the key probeKey: the test publishes
	// probes until one arrives, to know that the source's subscription is in place on the
	// broker (core NATS, Redis and MQTT deliver only to subscriptions that exist, and an AMQP
	// exclusive queue is bound only once the source has connected). The clients then read with
	// the predicate key != probeKey. Without probe, the source's first message is the test's
	// first and must be seq 1.
	probe    func(ctx context.Context) error
	probeKey string
}

// conserve runs the property over one path: msgs[:len(msgs)-1] are published, then the last one,
// the sentinel, once the resuming clients are connected.
func conserve(t *testing.T, g gen, e entry, msgs []*message) {
	t.Helper()
	s := e.srv
	s.waitUp(t, e.source)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	where := ""
	if e.probe != nil {
		where = "key != " + strconv.Quote(e.probeKey)
		probes := s.openNDJSON(t, "probes", streamQuery(e.source, "key == "+strconv.Quote(e.probeKey), ""))
		deadline := time.Now().Add(30 * time.Second)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if err := e.probe(ctx); err != nil {
				t.Logf("probe: %v", err)
			}
			n, changed := probes.count()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no probe message arrived within 30s: source %s is not receiving", e.source)
			}
			select { // the next probe when this one arrives, or after a while
			case <-changed:
			case <-tick.C:
			}
		}
		probes.close()
	}

	data, sentinel := msgs[:len(msgs)-1], msgs[len(msgs)-1]
	q := streamQuery(e.source, where, "")
	live := []*streamClient{
		s.openNDJSON(t, "ndjson", q),
		s.openSSE(t, "sse", q, ""),
		s.openWS(t, "websocket", q),
		s.openWS(t, "websocket batch", q+"&batch=true"),
	}
	start := time.Now()
	if err := e.publish(ctx, indexes(0, len(data))); err != nil {
		t.Fatalf("publish: %v", err)
	}
	published := time.Since(start)

	// The NDJSON client's events are the reference: each is checked against what was sent,
	// and every other client's must be the same bytes.
	ref := live[0].wait(t, len(data), waitTimeout)
	c := checker{t: t, source: e.source}
	events := c.checkMessages(ref, data, 0)
	if t.Failed() {
		t.FailNow()
	}
	if e.probe == nil && events[0].Seq != 1 {
		t.Errorf("the first message is seq %d, want 1: nothing else was published to source %s", events[0].Seq, e.source)
	}
	for _, cl := range live[1:] {
		c.checkSame(cl, cl.wait(t, len(data), waitTimeout), ref, events, 0)
	}
	delivered := time.Since(start)

	// Resume from the middle: from= for NDJSON and WebSocket, Last-Event-ID for SSE (the id the
	// SSE client was given, as a browser sends it back).
	mid := 1 + g.r.IntN(len(data)-1)
	from := events[mid-1].ID
	sseFrom := live[1].wait(t, mid, waitTimeout)[mid-1].sseID
	rq := streamQuery(e.source, where, from)
	resumed := []*streamClient{
		s.openNDJSON(t, "ndjson from "+from, rq),
		s.openSSE(t, "sse Last-Event-ID "+sseFrom, streamQuery(e.source, where, ""), sseFrom),
		s.openWS(t, "websocket from "+from, rq),
	}
	for _, cl := range resumed {
		c.checkSame(cl, cl.wait(t, len(data)-mid, waitTimeout), ref[mid:], events[mid:], mid)
	}

	// Then the sentinel: every client's next message, so none had anything more before it.
	if err := e.publish(ctx, []int{len(msgs) - 1}); err != nil {
		t.Fatalf("publish the sentinel: %v", err)
	}
	last := live[0].wait(t, len(msgs), waitTimeout)
	sentEvents := c.checkMessages(last[len(data):], []*message{sentinel}, len(data))
	if len(sentEvents) == 1 && sentEvents[0].Seq != events[len(events)-1].Seq+1 {
		t.Errorf("the sentinel is seq %d, want %d", sentEvents[0].Seq, events[len(events)-1].Seq+1)
	}
	for _, cl := range live[1:] {
		c.checkSame(cl, cl.wait(t, len(msgs), waitTimeout)[len(data):], last[len(data):], sentEvents, len(data))
	}
	for _, cl := range resumed {
		c.checkSame(cl, cl.wait(t, len(msgs)-mid, waitTimeout)[len(data)-mid:], last[len(data):], sentEvents, len(data))
	}

	total := 0
	for _, r := range ref {
		total += len(r.json)
	}
	t.Logf("%d messages (%d KiB of events) to 7 clients, resumed after message %d (%s): published in %v, all delivered in %v",
		len(data), total>>10, mid-1, from, published.Round(time.Millisecond), delivered.Round(time.Millisecond))
}

func indexes(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// gotEvent is an event as API.md defines it.
type gotEvent struct {
	Type         string            `json:"type"`
	ID           string            `json:"id"`
	Source       string            `json:"source"`
	Seq          uint64            `json:"seq"`
	Key          string            `json:"key"`
	Time         string            `json:"time"`
	Headers      map[string]string `json:"headers"`
	Body         json.RawMessage   `json:"body"`
	BodyEncoding string            `json:"body_encoding"`
}

// checker reports problems of one path, the first few in full.
type checker struct {
	t      *testing.T
	source string
	n      int
}

func (c *checker) errorf(format string, args ...any) {
	c.t.Helper()
	c.n++
	switch {
	case c.n <= 12:
		c.t.Errorf(format, args...)
	case c.n == 13:
		c.t.Errorf("(more problems; only the first 12 are shown)")
	}
}

// checkMessages decodes the reference events and checks each against the message sent: type,
// source, id, consecutive seq, time, key, headers, body. first is the index of msgs[0] in the
// path's messages, for failure messages.
func (c *checker) checkMessages(got []received, msgs []*message, first int) []gotEvent {
	c.t.Helper()
	events := make([]gotEvent, len(got))
	for i, r := range got {
		n := first + i
		m := msgs[i]
		ev := &events[i]
		if !utf8.Valid(r.json) || bytes.ContainsAny(r.json, "\r\n") {
			c.errorf("message %d (%s): the event is not one line of UTF-8", n, m.what)
		}
		if err := json.Unmarshal(r.json, ev); err != nil {
			c.errorf("message %d (%s): the event is not JSON: %v: %.200q", n, m.what, err, r.json)
			continue
		}
		if i > 0 && ev.Seq != events[i-1].Seq+1 {
			c.errorf("message %d (%s): seq %d after %d, want %d", n, m.what, ev.Seq, events[i-1].Seq, events[i-1].Seq+1)
		}
		if ev.Type != "message" || ev.Source != c.source || ev.ID != c.source+":"+strconv.FormatUint(ev.Seq, 10) {
			c.errorf("message %d (%s): type %q, source %q, id %q, seq %d: want a message of %s with id %s:seq", n, m.what, ev.Type, ev.Source, ev.ID, ev.Seq, c.source, c.source)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", ev.Time); err != nil {
			c.errorf("message %d (%s): time %q: %v", n, m.what, ev.Time, err)
		}
		if ev.Key != m.key {
			c.errorf("message %d (%s): key %q, want %q", n, m.what, ev.Key, m.key)
		}
		if ev.Headers == nil || !(len(ev.Headers) == 0 && len(m.headers) == 0 || reflect.DeepEqual(ev.Headers, m.headers)) {
			c.errorf("message %d (%s): headers %q, want %q", n, m.what, ev.Headers, m.headers)
		}
		if problem := m.body.check(ev); problem != "" {
			c.errorf("message %d (%s, seq %d): body %s", n, m.what, ev.Seq, problem)
		}
	}
	return events
}

// checkSame checks that a client received the very bytes of the reference, event for event.
// first is the index of ref[0] in the path's messages.
func (c *checker) checkSame(cl *streamClient, got, ref []received, events []gotEvent, first int) {
	c.t.Helper()
	for i := range ref {
		n := first + i
		if !bytes.Equal(got[i].json, ref[i].json) {
			var ev gotEvent
			_ = json.Unmarshal(got[i].json, &ev)
			c.errorf("%s: message %d: event of seq %d (id %q), want seq %d: %s", cl.name, n, ev.Seq, ev.ID, events[i].Seq, firstDiff(got[i].json, ref[i].json))
			continue
		}
		if strings.HasPrefix(cl.name, "sse") && (got[i].sseEvent != "message" || got[i].sseID != events[i].ID) {
			c.errorf("%s: message %d: event: %q, id: %q, want message and %q", cl.name, n, got[i].sseEvent, got[i].sseID, events[i].ID)
		}
	}
}

// check compares an event's body with w, and says what is wrong, or "".
func (w want) check(ev *gotEvent) string {
	switch w.enc {
	case "json":
		if ev.BodyEncoding != "" {
			return fmt.Sprintf("has body_encoding %q, want the JSON value %.100q", ev.BodyEncoding, w.json)
		}
		if w.sameValue {
			if !sameJSON(ev.Body, w.json) {
				return "is not the JSON value sent: " + firstDiff(ev.Body, w.json)
			}
		} else if !bytes.Equal(ev.Body, w.json) {
			return "is not the JSON sent, compacted: " + firstDiff(ev.Body, w.json)
		}
	case "text":
		var s string
		if ev.BodyEncoding != "" || json.Unmarshal(ev.Body, &s) != nil {
			return fmt.Sprintf("is %.100q with body_encoding %q, want a JSON string of the text %.100q", ev.Body, ev.BodyEncoding, w.text)
		}
		if s != w.text {
			return "is not the text sent: " + firstDiff([]byte(s), []byte(w.text))
		}
	case "base64":
		var s string
		if ev.BodyEncoding != "base64" || json.Unmarshal(ev.Body, &s) != nil {
			return fmt.Sprintf("is %.100q with body_encoding %q, want the base64 of %d bytes that are not UTF-8 (or not JSON)", ev.Body, ev.BodyEncoding, len(w.bin))
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Sprintf("is not base64: %v", err)
		}
		if !bytes.Equal(b, w.bin) {
			return "is not the bytes sent: " + firstDiff(b, w.bin)
		}
	}
	return ""
}

// sameJSON says that a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	decode := func(b []byte) (any, error) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		err := d.Decode(&v)
		return v, err
	}
	va, err := decode(a)
	if err != nil {
		return false
	}
	vb, err := decode(b)
	return err == nil && reflect.DeepEqual(va, vb)
}

// firstDiff describes where got and want part.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	around := func(b []byte) string {
		return fmt.Sprintf("%q", b[max(0, min(i, len(b))-16):min(len(b), i+24)])
	}
	return fmt.Sprintf("%d bytes, want %d; they part at byte %d: got …%s…, want …%s…", len(got), len(want), i, around(got), around(want))
}

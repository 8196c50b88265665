package sourcetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// Harness adapts one source type to the suite.
type Harness struct {
	// New makes a fixture: a fresh, private stream on the real server (a new exchange, subject,
	// topic or upstream) that no other test touches. It registers its own cleanup with t.Cleanup.
	New func(t *testing.T, o Options) Fixture
	// Headers says that the adapter carries message headers through. Without it the suite
	// publishes no headers and checks none.
	Headers bool
	// AtLeastOnce says that New honours Options.AtLeastOnce: messages are acknowledged only once
	// the router took them, so none is lost when the connection drops or the source stops.
	AtLeastOnce bool
	// Durable says that New honours Options.Durable: the fixture's sources keep their place
	// on the server (a durable consumer, a consumer group, a persistent session, a stream
	// offset), so that what is published while no source runs is delivered to the next one.
	Durable bool
	// InFlight bounds, for a Durable source, how many messages it may have taken without the
	// server knowing (a prefetch, a window of acknowledgements), which a source that is
	// killed receives again: the duplicates DurableAcrossKill allows.
	InFlight int
	// Timeout bounds each wait of the suite. Defaults to 60s.
	Timeout time.Duration
}

// Keyer is a Fixture whose stream's keys carry its private namespace, as a NATS subject under
// the fixture's prefix does: Key maps the key a message is published with to the key the
// source gives it. A Fixture that is no Keyer keeps keys as they are.
type Keyer interface {
	Key(published string) string
}

// keyed returns want with each key as fx's source gives it (see Keyer).
func keyed(fx Fixture, want []Msg) []Msg {
	k, ok := fx.(Keyer)
	if !ok {
		return want
	}
	out := make([]Msg, len(want))
	for i, m := range want {
		m.Key = k.Key(m.Key)
		out[i] = m
	}
	return out
}

// Options asks New for a particular kind of fixture.
type Options struct {
	// AtLeastOnce asks for the adapter's acknowledge-after-routing mode over a stream that keeps
	// what was not acknowledged across a disconnect (for AMQP: ack after_route, a named queue).
	AtLeastOnce bool
	// Durable asks for a fixture whose sources keep their place on the server across a stop
	// (Harness.Durable): every Source of the fixture is the same reader (one consumer name,
	// group, client id) resuming where the last one stopped.
	Durable bool
}

// Msg is one message to publish.
type Msg struct {
	Key     string
	Headers map[string]string
	Body    []byte
}

// Fixture is one private stream on the real server.
type Fixture interface {
	// Source returns a new Source that reads the fixture's stream. A second source made after
	// the first stopped resumes where it left off, for streams that keep messages.
	Source(t *testing.T) source.Source
	// Publish sends msgs, in order, and returns once the server has them. Sources whose key
	// comes from the payload find it in the body: every body the suite publishes as JSON is an
	// object whose "key" field is the message's Key.
	Publish(ctx context.Context, msgs ...Msg) error
	// Kill drops every connection of the fixture's sources from the server side, the server
	// staying (or coming back) up. errors.ErrUnsupported skips the tests that need it.
	Kill(ctx context.Context) error
	// Depth is the server's backlog for the source: the messages waiting for it (queue depth,
	// consumer lag). errors.ErrUnsupported skips the tests that need it.
	Depth(ctx context.Context) (int, error)
}

// ProbeKey is the key of the probe messages the suite publishes until one arrives, to know that
// a subscription is in place on the server (an upstream WebSocket server reads the on_connect
// frames after the client considers itself connected). Checks ignore probes.
const ProbeKey = "sourcetest.probe"

// Run runs the conformance suite against h. Its tests run in parallel with each other.
func Run(t *testing.T, h Harness) {
	if h.Timeout <= 0 {
		h.Timeout = 60 * time.Second
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"InOrderNoLoss", testInOrder},
		{"BodiesAsReceived", testBodies},
		{"DrainedWithoutClients", testDrain},
		{"ReconnectAfterServerDrop", testReconnect},
		{"AtLeastOnceAcrossDrop", testAtLeastOnceDrop},
		{"AtLeastOnceAcrossStop", testAtLeastOnceStop},
		{"DurableAcrossStop", testDurableStop},
		{"DurableAcrossKill", testDurableKill},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

var testKeys = []string{"eu.order.created", "us.order.created", "eu.order.paid", "ap.refund"}

// Numbered returns n messages numbered from first: JSON bodies {"key":K,"i":N,...}, keys
// rotating over a few dotted routing keys, and, if withHeaders, headers "i" and "tenant".
func Numbered(first, n int, withHeaders bool) []Msg {
	msgs := make([]Msg, n)
	for j := range msgs {
		i := first + j
		key := testKeys[i%len(testKeys)]
		m := Msg{Key: key, Body: fmt.Appendf(nil, `{"key":%q,"i":%d,"amount":%d.5,"tags":["a","b"]}`, key, i, i%1000)}
		if withHeaders {
			m.Headers = map[string]string{"i": strconv.Itoa(i), "tenant": "acme"}
		}
		msgs[j] = m
	}
	return msgs
}

// Number returns the "i" of a message made by Numbered, or -1.
func Number(m *stream.Message) int {
	b := m.Body
	at := bytes.Index(b, []byte(`"i":`))
	if at < 0 {
		return -1
	}
	b = b[at+4:]
	end := bytes.IndexByte(b, ',')
	if end < 0 {
		return -1
	}
	i, err := strconv.Atoi(string(b[:end]))
	if err != nil {
		return -1
	}
	return i
}

// WithoutProbes returns msgs without the suite's probe messages.
func WithoutProbes(msgs []*stream.Message) []*stream.Message {
	out := msgs[:0:0]
	for _, m := range msgs {
		if m.Key != ProbeKey && !bytes.Contains(m.Body, []byte(ProbeKey)) {
			out = append(out, m)
		}
	}
	return out
}

// waitReal waits until c holds n messages that are not probes. Counting from c.Len() after
// WaitFlowing is not enough: probes published before the one it saw may still arrive, and
// would stand in for messages that have not.
func waitReal(t testing.TB, c *Collector, n int, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() bool { return len(WithoutProbes(c.Messages())) >= n }, "%d messages", n)
}

// WaitFlowing publishes probe messages until one reaches c, so that what is published next is
// known to have a subscriber on the server. Publish errors are ignored while probing.
func WaitFlowing(t testing.TB, fx Fixture, c *Collector, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	seen := func() bool {
		msgs := c.Messages()
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].Key == ProbeKey || bytes.Contains(msgs[i].Body, []byte(ProbeKey)) {
				return true
			}
		}
		return false
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		probe := Msg{Key: ProbeKey, Body: fmt.Appendf(nil, `{"key":%q,"probe":%d}`, ProbeKey, n)}
		_ = fx.Publish(ctx, probe)
		select {
		case <-ctx.Done():
			t.Fatalf("sourcetest: no probe message arrived within %v: the source is not receiving", timeout)
		case <-tick.C:
		}
		if seen() {
			return
		}
	}
}

// CheckSequence checks that got (probes removed) is exactly want, in order: same key, same body,
// every wanted header with its value (sources may add their own headers), Source and Seq left
// for the router, and a receive time set.
func CheckSequence(t testing.TB, got []*stream.Message, want []Msg) {
	t.Helper()
	got = WithoutProbes(got)
	if len(got) != len(want) {
		t.Errorf("got %d messages, want %d", len(got), len(want))
	}
	bad := 0
	for i := 0; i < min(len(got), len(want)); i++ {
		if err := checkMessage(got[i], want[i]); err != nil {
			t.Errorf("message %d: %v", i, err)
			if bad++; bad >= 5 {
				t.Fatalf("too many wrong messages")
			}
		}
	}
}

func checkMessage(m *stream.Message, w Msg) error {
	var errs []error
	if m.Key != w.Key {
		errs = append(errs, fmt.Errorf("key %q, want %q", m.Key, w.Key))
	}
	if !bytes.Equal(m.Body, w.Body) {
		errs = append(errs, fmt.Errorf("body %q, want %q", trim(m.Body), trim(w.Body)))
	}
	for k, v := range w.Headers {
		if got, ok := m.Headers[k]; !ok || got != v {
			errs = append(errs, fmt.Errorf("header %q = %q (present %v), want %q", k, got, ok, v))
		}
	}
	if m.Source != "" || m.Seq != 0 {
		errs = append(errs, fmt.Errorf("the adapter set Source %q / Seq %d, which belong to the router", m.Source, m.Seq))
	}
	if m.Time.IsZero() || time.Since(m.Time) > time.Hour {
		errs = append(errs, fmt.Errorf("time %v is not the time of receipt", m.Time))
	}
	return errors.Join(errs...)
}

func trim(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

func publish(t testing.TB, fx Fixture, msgs []Msg, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for len(msgs) > 0 {
		n := min(len(msgs), 1000)
		if err := fx.Publish(ctx, msgs[:n]...); err != nil {
			t.Fatalf("publish: %v", err)
		}
		msgs = msgs[n:]
	}
}

func startUp(t *testing.T, h Harness, fx Fixture, c *Collector) *Running {
	t.Helper()
	r := Start(t, fx.Source(t), c.Emit)
	r.WaitState(t, 0, source.Up, h.Timeout)
	WaitFlowing(t, fx, c, h.Timeout)
	return r
}

// testInOrder: 10,000 messages in, the same 10,000 out, in order, with key, headers and body.
func testInOrder(t *testing.T, h Harness) {
	fx := h.New(t, Options{})
	c := NewCollector()
	startUp(t, h, fx, c)
	want := Numbered(0, 10_000, h.Headers)
	publish(t, fx, want, h.Timeout)
	waitReal(t, c, len(want), h.Timeout)
	CheckSequence(t, c.Messages(), keyed(fx, want))
}

// testBodies: payloads that are JSON, text, binary, empty and large arrive byte for byte.
func testBodies(t *testing.T, h Harness) {
	fx := h.New(t, Options{})
	c := NewCollector()
	startUp(t, h, fx, c)
	bodies := [][]byte{
		[]byte(`{"key":"k","nested":{"a":[1,2.5,"x",null,true]}}`),
		[]byte(`"a JSON string"`),
		[]byte("plain text, not JSON: ünïcödé ✓"),
		{0xff, 0x00, 0xfe, 0x80, 'b', 'i', 'n'},
		{},
		[]byte(`{"key":"k","big":"` + strings.Repeat("x", 64<<10) + `"}`),
		[]byte("  {\"key\":\"k\", \"spaced\" : true}\n"),
	}
	var want []Msg
	for _, b := range bodies {
		m := Msg{Key: "k", Body: b}
		if h.Headers {
			m.Headers = map[string]string{"kind": "body"}
		}
		want = append(want, m)
	}
	publish(t, fx, want, h.Timeout)
	waitReal(t, c, len(want), h.Timeout)
	got := WithoutProbes(c.Messages())
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].Body, want[i].Body) {
			t.Errorf("body %d: got %q, want %q", i, trim(got[i].Body), trim(want[i].Body))
		}
	}
}

// testDrain: with no client at all the source keeps taking messages, so the server's backlog
// never holds more than about the chunk just published while 10,000 are published, and comes
// back to zero.
func testDrain(t *testing.T, h Harness) {
	fx := h.New(t, Options{})
	depth := func() (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		return fx.Depth(ctx)
	}
	if _, err := depth(); errors.Is(err, errors.ErrUnsupported) {
		t.Skip("the fixture cannot read the server's backlog")
	}
	c := NewCollector()
	startUp(t, h, fx, c)
	const total, chunk, slack = 10_000, 2000, 1000
	maxDepth := 0
	for i := 0; i < total; i += chunk {
		publish(t, fx, Numbered(i, chunk, h.Headers), h.Timeout)
		d, err := depth()
		if err != nil {
			t.Fatalf("depth: %v", err)
		}
		maxDepth = max(maxDepth, d)
	}
	waitReal(t, c, total, h.Timeout)
	Eventually(t, h.Timeout, func() bool {
		d, err := depth()
		return err == nil && d == 0
	}, "the backlog to reach 0")
	t.Logf("largest backlog seen after publishing each %d of %d messages: %d", chunk, total, maxDepth)
	// A source that does not drain holds everything published so far (2,000, 4,000, …); one
	// that drains on a loaded machine may still be working through the chunk just published.
	if maxDepth > chunk+slack {
		t.Errorf("backlog reached %d while publishing: the source is not draining", maxDepth)
	}
}

// testReconnect: the server drops the connection; the runner reports reconnecting then up, and
// messages published after that flow again (topology or subscription restored).
func testReconnect(t *testing.T, h Harness) {
	fx := h.New(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	c := NewCollector()
	r := startUp(t, h, fx, c)
	before := Numbered(0, 100, h.Headers)
	publish(t, fx, before, h.Timeout)
	Eventually(t, h.Timeout, func() bool { return len(WithoutProbes(c.Messages())) >= len(before) },
		"the first %d messages", len(before))

	from := len(r.Changes())
	if err := fx.Kill(ctx); errors.Is(err, errors.ErrUnsupported) {
		t.Skip("the fixture cannot drop connections")
	} else if err != nil {
		t.Fatalf("kill: %v", err)
	}
	i := r.WaitState(t, from, source.Reconnecting, h.Timeout)
	if err := r.Changes()[i].Err; err == nil {
		t.Errorf("state reconnecting came without the error that caused it")
	} else {
		t.Logf("reconnecting after: %v", err)
	}
	r.WaitState(t, i, source.Up, h.Timeout)
	WaitFlowing(t, fx, c, h.Timeout)

	after := Numbered(len(before), 100, h.Headers)
	publish(t, fx, after, h.Timeout)
	Eventually(t, h.Timeout, func() bool {
		return len(WithoutProbes(c.Messages())) >= len(before)+len(after)
	}, "the messages published after the reconnect")
	CheckSequence(t, c.Messages(), keyed(fx, append(before, after...)))
	if n := r.Runner.Info().Reconnects; n < 1 {
		t.Errorf("Info().Reconnects = %d, want ≥ 1", n)
	}
}

// testAtLeastOnceDrop: with acknowledgement after routing, the connection dropped while the
// router holds the source back loses nothing: what was not acknowledged comes again.
func testAtLeastOnceDrop(t *testing.T, h Harness) {
	if !h.AtLeastOnce {
		t.Skip("the adapter has no at-least-once mode")
	}
	fx := h.New(t, Options{AtLeastOnce: true})
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	const total, hold = 3000, 1000
	c := NewCollector()
	c.SetLimit(hold)
	r := Start(t, fx.Source(t), c.Emit)
	r.WaitState(t, 0, source.Up, h.Timeout)
	publish(t, fx, Numbered(0, total, h.Headers), h.Timeout)
	c.WaitLen(t, hold, h.Timeout)

	from := len(r.Changes())
	if err := fx.Kill(ctx); errors.Is(err, errors.ErrUnsupported) {
		t.Skip("the fixture cannot drop connections")
	} else if err != nil {
		t.Fatalf("kill: %v", err)
	}
	c.SetLimit(-1)
	i := r.WaitState(t, from, source.Reconnecting, h.Timeout)
	r.WaitState(t, i, source.Up, h.Timeout)
	missing := func() int { return total - len(numbersSeen(c.Messages())) }
	Eventually(t, h.Timeout, func() bool { return missing() == 0 }, "every message (%d missing)", missing)
	t.Logf("%d deliveries for %d messages across the drop", c.Len(), total)
}

// testAtLeastOnceStop: a source stopped while the router holds it back gives back what the
// router did not take, and the next source on the same stream receives it.
func testAtLeastOnceStop(t *testing.T, h Harness) {
	if !h.AtLeastOnce {
		t.Skip("the adapter has no at-least-once mode")
	}
	fx := h.New(t, Options{AtLeastOnce: true})
	const total, hold = 3000, 1000
	first := NewCollector()
	first.SetLimit(hold)
	r := Start(t, fx.Source(t), first.Emit)
	r.WaitState(t, 0, source.Up, h.Timeout)
	publish(t, fx, Numbered(0, total, h.Headers), h.Timeout)
	first.WaitLen(t, hold, h.Timeout)
	r.Stop()

	second := NewCollector()
	r2 := Start(t, fx.Source(t), second.Emit)
	r2.WaitState(t, 0, source.Up, h.Timeout)
	missing := func() int {
		seen := numbersSeen(first.Messages())
		maps.Copy(seen, numbersSeen(second.Messages()))
		return total - len(seen)
	}
	Eventually(t, h.Timeout, func() bool { return missing() == 0 }, "every message (%d missing)", missing)
	dup := 0
	a := numbersSeen(first.Messages())
	for i := range numbersSeen(second.Messages()) {
		if _, ok := a[i]; ok {
			dup++
		}
	}
	t.Logf("first source took %d, second %d, %d of them twice", first.Len(), second.Len(), dup)
}

func numbersSeen(msgs []*stream.Message) map[int]struct{} {
	seen := make(map[int]struct{}, len(msgs))
	for _, m := range WithoutProbes(msgs) {
		if i := Number(m); i >= 0 {
			seen[i] = struct{}{}
		}
	}
	return seen
}

// errKilled is what a killed source's router answers it (DurableAcrossKill).
var errKilled = errors.New("sourcetest: the process was killed")

// testDurableStop: a durable source stopped cleanly (SIGTERM) in the middle of a stream, more
// published while none runs, and the next source on the same place gets everything after what
// the first took, each message once.
func testDurableStop(t *testing.T, h Harness) {
	testDurable(t, h, false)
}

// testDurableKill: the same with the first source killed (SIGKILL): its connection dropped by
// the server and its router gone at once, so that it acknowledges nothing more. Everything
// arrives at least once; the duplicates are what it had taken without the server knowing,
// at most Harness.InFlight.
func testDurableKill(t *testing.T, h Harness) {
	testDurable(t, h, true)
}

func testDurable(t *testing.T, h Harness, kill bool) {
	if !h.Durable {
		t.Skip("the adapter has no durable mode")
	}
	fx := h.New(t, Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	const before, during, hold = 2000, 1000, 700
	first := NewCollector()
	first.SetLimit(hold)
	r := Start(t, fx.Source(t), first.Emit)
	r.WaitState(t, 0, source.Up, h.Timeout)
	publish(t, fx, Numbered(0, before, h.Headers), h.Timeout)
	first.WaitLen(t, hold, h.Timeout)
	if kill {
		first.Refuse(errKilled)
		if err := fx.Kill(ctx); errors.Is(err, errors.ErrUnsupported) {
			t.Skip("the fixture cannot drop connections")
		} else if err != nil {
			t.Fatalf("kill: %v", err)
		}
	}
	r.Stop()
	publish(t, fx, Numbered(before, during, h.Headers), h.Timeout)

	second := NewCollector()
	r2 := Start(t, fx.Source(t), second.Emit)
	r2.WaitState(t, 0, source.Up, h.Timeout)
	total := before + during
	seen := func() map[int]struct{} {
		s := numbersSeen(first.Messages())
		maps.Copy(s, numbersSeen(second.Messages()))
		return s
	}
	Eventually(t, h.Timeout, func() bool { return len(seen()) == total }, "every message (%d missing)", func() int { return total - len(seen()) })
	r2.Stop()
	a, b := WithoutProbes(first.Messages()), WithoutProbes(second.Messages())
	// After a clean stop, each source's messages in order (after a kill, what comes again
	// may come before or among the rest).
	for _, run := range [][]*stream.Message{a, b} {
		for i := 1; i < len(run) && !kill; i++ {
			if Number(run[i]) <= Number(run[i-1]) {
				t.Fatalf("out of order or repeated: %d after %d", Number(run[i]), Number(run[i-1]))
			}
		}
	}
	dup := 0
	firstSeen := numbersSeen(a)
	for _, m := range b {
		if _, ok := firstSeen[Number(m)]; ok {
			dup++
		}
	}
	again := len(a) + len(b) - total // every message taken more than once
	t.Logf("first source took %d, second %d: %d taken by both, %d taken more than once in all", len(a), len(b), dup, again)
	switch {
	case !kill && again != 0:
		t.Errorf("after a clean stop, %d messages were delivered twice", again)
	case kill && again > h.InFlight:
		t.Errorf("after a kill, %d messages were delivered twice, more than the %d in flight", again, h.InFlight)
	}
}

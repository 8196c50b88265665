package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/sequence"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/supervisor"
)

// declare declares a named durable queue of type kind (quorum, stream) and deletes it when the
// test ends.
func (b *broker) declare(name, kind string) {
	b.t.Helper()
	if err := b.do(func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclare(name, true, false, false, false, amqp091.Table{"x-queue-type": kind})
		return err
	}); err != nil {
		b.t.Fatalf("declare %s queue %s: %v", kind, name, err)
	}
	b.t.Cleanup(func() { b.deleteQueue(name) })
}

// publishN publishes the bodies first…first+n-1 (decimal) to queue, through the default exchange.
func (b *broker) publishN(t *testing.T, queue string, first, n int) {
	t.Helper()
	msgs := make([]amqp091.Publishing, n)
	keys := make([]string, n)
	for i := range msgs {
		msgs[i], keys[i] = amqp091.Publishing{Body: []byte(strconv.Itoa(first + i))}, queue
	}
	if err := b.publishKeys(ctxT(t), "", keys, msgs...); err != nil {
		t.Fatal(err)
	}
}

// bodies returns the messages' bodies as numbers.
func bodies(t *testing.T, msgs []*stream.Message) []int {
	t.Helper()
	out := make([]int, len(msgs))
	for i, m := range msgs {
		n, err := strconv.Atoi(string(m.Body))
		if err != nil {
			t.Fatalf("message %d: body %q", i, m.Body)
		}
		out[i] = n
	}
	return out
}

// checkRun checks that got holds exactly the bodies first…first+n-1, in order.
func checkRun(t *testing.T, got []int, first, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d messages %v, want %d from %d", len(got), clip(got), n, first)
	}
	for i, v := range got {
		if v != first+i {
			t.Fatalf("message %d is %d, want %d (all: %v)", i, v, first+i, clip(got))
		}
	}
}

func clip(v []int) []int {
	if len(v) > 20 {
		return v[:20]
	}
	return v
}

func streamSource(t *testing.T, url, queue, offset string, st source.Store) *amqp.Source {
	t.Helper()
	s := newSource(t, amqp.Config{URL: url, Queue: queue, QueueType: amqp.QueueStream, Offset: offset})
	if st != nil {
		s.UseStore(st)
	}
	return s
}

// TestStreamOffsets: each offset reads a stream from where it says, every message carries its
// offset as amqp_stream_offset and "<queue>:<offset>" as its upstream id.
func TestStreamOffsets(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	q := sourcetest.UniqueName(t)
	b.declare(q, amqp.QueueStream)
	before := time.Now().Add(-time.Minute)
	b.publishN(t, q, 0, 10)

	read := func(offset string, n int) []*stream.Message {
		t.Helper()
		c := sourcetest.NewCollector()
		r := sourcetest.Start(t, streamSource(t, b.url, q, offset, nil), c.Emit)
		r.WaitState(t, 0, source.Up, wait)
		c.WaitLen(t, n, wait)
		r.Stop()
		return c.Messages()
	}

	first := read("first", 10)
	checkRun(t, bodies(t, first), 0, 10)
	var offsets []int64
	for i, m := range first {
		off, err := strconv.ParseInt(m.Headers[amqp.HeaderStreamOffset], 10, 64)
		if err != nil {
			t.Fatalf("message %d: amqp_stream_offset %q", i, m.Headers[amqp.HeaderStreamOffset])
		}
		if i > 0 && off <= offsets[i-1] {
			t.Errorf("message %d: offset %d after %d", i, off, offsets[i-1])
		}
		offsets = append(offsets, off)
		if want := fmt.Sprintf("%s:%d", q, off); m.UpstreamID != want {
			t.Errorf("message %d: upstream id %q, want %q", i, m.UpstreamID, want)
		}
		if _, ok := m.Headers["x-stream-offset"]; ok {
			t.Errorf("message %d: the broker's x-stream-offset header is passed on under its own name", i)
		}
	}

	// From an offset: that message and the ones after it.
	got := bodies(t, read(strconv.FormatInt(offsets[6], 10), 4))
	checkRun(t, got, 6, 4)
	// From a time before the first: everything.
	checkRun(t, bodies(t, read(before.Format(time.RFC3339), 10)), 0, 10)
	// last: the last chunk, so at least the last message, in order. The chunk comes as
	// several deliveries: read until the last message is there.
	lc := sourcetest.NewCollector()
	lr := sourcetest.Start(t, streamSource(t, b.url, q, "last", nil), lc.Emit)
	lr.WaitState(t, 0, source.Up, wait)
	sourcetest.Eventually(t, wait, func() bool {
		got := bodies(t, lc.Messages())
		return len(got) > 0 && got[len(got)-1] == 9
	}, "offset last: a tail ending at 9")
	lr.Stop()
	if last := bodies(t, lc.Messages()); last[len(last)-1] != 9 || !slices.IsSorted(last) {
		t.Errorf("offset last: got %v, want a tail ending at 9, in order", last)
	}

	// next: nothing of what was there, then what comes.
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, streamSource(t, b.url, q, "next", nil), c.Emit)
	r.WaitState(t, 0, source.Up, wait)
	b.publishN(t, q, 10, 5)
	c.WaitLen(t, 5, wait)
	time.Sleep(100 * time.Millisecond) // nothing more is to come
	checkRun(t, bodies(t, c.Messages()), 10, 5)
}

// TestStreamResumesAcrossRestarts runs a stream source as the server does, under a supervisor
// with a data directory: stopped, then started again in a new "process" (a new directory
// handle, supervisor and adapter), it goes on right after the last message it took, though it
// reads from offset next; what was published while it was down arrives, nothing comes twice.
func TestStreamResumesAcrossRestarts(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	q := sourcetest.UniqueName(t)
	b.declare(q, amqp.QueueStream)
	b.publishN(t, q, -100, 100) // before the source ever ran: offset next skips them
	dir := t.TempDir()

	// run runs one streamux process until published(i) returned and the router has taken n
	// messages, and returns what it routed.
	run := func(published func(), n uint64) router.Counters {
		t.Helper()
		data, err := sequence.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer data.Close()
		src := streamSource(t, b.url, q, "next", nil)
		sup, err := supervisor.New([]supervisor.Source{{
			Name: "orders", Type: "amqp", Adapter: src, Backoff: sourcetest.TestBackoff,
		}}, supervisor.Options{Data: data, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sup.Run(ctx) }() // waited for below
		defer func() { cancel(); <-done }()
		sourcetest.Eventually(t, wait, func() bool { return sup.Sources()[0].State == source.Up }, "the source to be up")
		published()
		sourcetest.Eventually(t, wait, func() bool { return sup.Sources()[0].Counters.Received >= n }, "%d messages", n)
		time.Sleep(200 * time.Millisecond) // for any message too many
		return sup.Sources()[0].Counters
	}

	c1 := run(func() { b.publishN(t, q, 0, 300) }, 300)
	rec, err := os.ReadFile(filepath.Join(dir, "orders.state"))
	if err != nil {
		t.Fatalf("the place in the stream was not kept: %v", err)
	}
	if !strings.Contains(string(rec), fmt.Sprintf(`"queue":%q`, q)) {
		t.Errorf("the record %q does not name the queue", rec)
	}
	b.publishN(t, q, 300, 200) // while streamux is down
	c2 := run(func() { b.publishN(t, q, 500, 100) }, 300)
	if c1.Received != 300 || c2.Received != 300 {
		t.Errorf("the first run routed %d messages, the second %d; want 300 and 300 (the 200 published in between, and 100 more)", c1.Received, c2.Received)
	}
}

// TestStreamRecreated: a stream deleted and declared again holds none of the offsets recorded
// before; the source reads the new one from its first message and loses nothing of it, also
// when it is restarted before it took any.
func TestStreamRecreated(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	q := sourcetest.UniqueName(t)
	t.Cleanup(func() { b.deleteQueue(q) })
	data, err := sequence.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { data.Close() })
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, streamSource(t, b.url, q, "next", data.SourceState("s")), c.Emit)
	r.WaitState(t, 0, source.Up, wait) // declared the stream
	b.publishN(t, q, 0, 50)
	c.WaitLen(t, 50, wait)

	from := len(r.Changes())
	b.deleteQueue(q)
	i := r.WaitState(t, from, source.Reconnecting, wait)
	r.WaitState(t, i, source.Up, wait)
	b.publishN(t, q, 50, 10) // offsets 0… of the new stream, before the 50 of the old
	c.WaitLen(t, 60, wait)
	time.Sleep(100 * time.Millisecond)
	checkRun(t, bodies(t, c.Messages()), 0, 60)

	// Made anew again, and the source stopped before it took anything of the new stream: the
	// next one reads it from its first message, not from the old place nor from next.
	from = len(r.Changes())
	b.deleteQueue(q)
	i = r.WaitState(t, from, source.Reconnecting, wait)
	r.WaitState(t, i, source.Up, wait)
	r.Stop()
	b.publishN(t, q, 60, 10)
	c2 := sourcetest.NewCollector()
	r2 := sourcetest.Start(t, streamSource(t, b.url, q, "next", data.SourceState("s")), c2.Emit)
	r2.WaitState(t, 0, source.Up, wait)
	c2.WaitLen(t, 10, wait)
	time.Sleep(100 * time.Millisecond)
	checkRun(t, bodies(t, c2.Messages()), 60, 10)
}

// TestNotAStream: queue_type stream on an existing queue that is not a stream fails the source,
// saying so, rather than read it with no place to keep.
func TestNotAStream(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	q := sourcetest.UniqueName(t)
	b.declare(q, amqp.QueueClassic)
	b.publishN(t, q, 0, 1)
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, streamSource(t, b.url, q, "first", nil), c.Emit)
	i := r.WaitState(t, 0, source.Failed, wait)
	if err := r.Changes()[i].Err; err == nil || !strings.Contains(err.Error(), "not a stream") {
		t.Errorf("failed with %v, want the queue named as no stream", err)
	}
	if c.Len() != 0 {
		t.Errorf("%d messages passed on from a queue that is no stream", c.Len())
	}
}

// TestStreamDamagedPlace: a record the source cannot read fails it (state failed, saying what to
// do), rather than read the stream from somewhere else.
func TestStreamDamagedPlace(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	q := sourcetest.UniqueName(t)
	b.declare(q, amqp.QueueStream)
	st := &memStore{b: []byte(`{"queue":`)}
	r := sourcetest.Start(t, streamSource(t, b.url, q, "first", st), sourcetest.NewCollector().Emit)
	i := r.WaitState(t, 0, source.Failed, wait)
	if err := r.Changes()[i].Err; err == nil || !strings.Contains(err.Error(), ".state file") {
		t.Errorf("failed with %v, want the damaged record named", err)
	}
}

// memStore is a source.Store in memory whose Save can be frozen: it then blocks until thawed
// and fails, keeping nothing, as the disk of a process that was killed.
type memStore struct {
	mu     sync.Mutex
	b      []byte
	saves  int
	frozen chan struct{} // not nil: Save waits for it to close, then fails
}

func (m *memStore) Load() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.b, nil
}

func (m *memStore) Save(b []byte) error {
	m.mu.Lock()
	frozen := m.frozen
	m.mu.Unlock()
	if frozen != nil {
		<-frozen
		return errors.New("the process is dead")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.b = append([]byte(nil), b...)
	m.saves++
	return nil
}

// freeze makes Save wait, then fail, until revive.
func (m *memStore) freeze() (fail func()) {
	ch := make(chan struct{})
	m.mu.Lock()
	m.frozen = ch
	m.mu.Unlock()
	return func() { close(ch) }
}

func (m *memStore) revive() {
	m.mu.Lock()
	m.frozen = nil
	m.mu.Unlock()
}

// TestStreamKilledReadsAgainAtMostPrefetch: the place on disk lags what the router took by at
// most the prefetch window, since a delivery is acknowledged only once its place is recorded.
// With the disk frozen (the process dead to it), the source takes at most prefetch messages
// more; the next source reads again those, and no more.
func TestStreamKilledReadsAgainAtMostPrefetch(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	q := sourcetest.UniqueName(t)
	b.declare(q, amqp.QueueStream)
	const prefetch, total = 40, 2000
	st := &memStore{}
	mk := func() *amqp.Source {
		s := newSource(t, amqp.Config{URL: b.url, Queue: q, QueueType: amqp.QueueStream, Offset: "first", Prefetch: prefetch})
		s.UseStore(st)
		return s
	}
	first := sourcetest.NewCollector()
	r := sourcetest.Start(t, mk(), first.Emit)
	r.WaitState(t, 0, source.Up, wait)
	b.publishN(t, q, 0, total)
	first.WaitLen(t, 300, wait)
	fail := st.freeze()
	// The source goes on until the broker stops for want of acknowledgements.
	var n int
	sourcetest.Eventually(t, wait, func() bool {
		before := first.Len()
		time.Sleep(300 * time.Millisecond)
		n = first.Len()
		return n == before
	}, "the source to stop taking messages")
	if n == total {
		t.Fatalf("the source took all %d messages with its place frozen on disk", total)
	}
	fail()
	r.Stop()
	st.revive()

	second := sourcetest.NewCollector()
	r2 := sourcetest.Start(t, mk(), second.Emit)
	r2.WaitState(t, 0, source.Up, wait)
	a := bodies(t, first.Messages())
	checkRun(t, a, 0, len(a))
	again := bodies(t, second.Messages())
	sourcetest.Eventually(t, wait, func() bool {
		again = bodies(t, second.Messages())
		return len(again) > 0 && again[len(again)-1] == total-1
	}, "the rest of the stream")
	start := again[0]
	checkRun(t, again, start, total-start)
	read := len(a) - start
	t.Logf("the first source took %d messages, %d of them after the place on disk; the second read %d of them again", len(a), read, read)
	if start > len(a) {
		t.Errorf("the second source started at %d, after the %d the first took: lost", start, len(a))
	}
	if read > prefetch {
		t.Errorf("%d messages read again, more than the prefetch %d", read, prefetch)
	}
}

// TestQuorumDeliveryCount: a quorum queue counts each message's deliveries; one that comes again
// says how many times it came before, as amqp_delivery_count.
func TestQuorumDeliveryCount(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	q := sourcetest.UniqueName(t)
	b.declare(q, amqp.QueueQuorum)
	b.publishN(t, q, 0, 10)
	mk := func() *amqp.Source {
		return newSource(t, amqp.Config{URL: b.url, Queue: q, QueueType: amqp.QueueQuorum, Ack: amqp.AckAfterRoute})
	}
	first := sourcetest.NewCollector()
	first.SetLimit(3)
	r := sourcetest.Start(t, mk(), first.Emit)
	r.WaitState(t, 0, source.Up, wait)
	first.WaitLen(t, 3, wait)
	r.Stop()
	for i, m := range first.Messages() {
		if _, ok := m.Headers[amqp.HeaderDeliveryCount]; ok {
			t.Errorf("first delivery of message %d: amqp_delivery_count %q", i, m.Headers[amqp.HeaderDeliveryCount])
		}
	}

	second := sourcetest.NewCollector()
	r2 := sourcetest.Start(t, mk(), second.Emit)
	r2.WaitState(t, 0, source.Up, wait)
	second.WaitLen(t, 7, wait)
	got := bodies(t, second.Messages())
	checkRun(t, got, 3, 7)
	// The message the first source held in Emit, and those in its prefetch window, came before.
	m := second.Messages()[0]
	if m.Headers[amqp.HeaderDeliveryCount] != "1" || m.Headers[amqp.HeaderRedelivered] != "true" {
		t.Errorf("message 3 delivered again: amqp_delivery_count %q, amqp_redelivered %q; want 1 and true",
			m.Headers[amqp.HeaderDeliveryCount], m.Headers[amqp.HeaderRedelivered])
	}
	if _, ok := m.Headers["x-delivery-count"]; ok {
		t.Errorf("the broker's x-delivery-count header is passed on under its own name")
	}
}

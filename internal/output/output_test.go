package output

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func event(seq uint64) *stream.Event {
	return stream.NewMessage(&stream.Message{Source: "s", Seq: seq, Key: "k", Body: []byte(`{"n":1}`), Time: time.Now()})
}

// The ring wraps and grows without reordering, and an emptied ring that a burst grew is given
// back.
func TestQueueKeepsOrderAcrossGrowthAndWrap(t *testing.T) {
	o := New(1, Disconnect, Limits{Events: 100, Bytes: 1 << 30})
	var next, want uint64 = 1, 1
	var got []*stream.Event
	for round := range 50 {
		for range round % 7 {
			if !o.Offer(event(next)) {
				t.Fatalf("offer %d refused with %d queued", next, o.Depth())
			}
			next++
		}
		got, _ = o.Take(got[:0], 1+round%3)
		for _, ev := range got {
			if ev.Seq() != want {
				t.Fatalf("took seq %d, want %d", ev.Seq(), want)
			}
			want++
		}
	}
	for o.Depth() > 0 {
		got, _ = o.Take(got[:0], 1000)
		for _, ev := range got {
			if ev.Seq() != want {
				t.Fatalf("took seq %d, want %d", ev.Seq(), want)
			}
			want++
		}
	}
	if want != next {
		t.Fatalf("took %d events, offered %d", want-1, next-1)
	}
	for i := range uint64(keepRing + 1) {
		o.Offer(event(i))
	}
	o.Take(nil, 1000)
	if o.ring != nil || o.bytes != 0 {
		t.Fatalf("an emptied queue holds a ring of %d and %d bytes", len(o.ring), o.bytes)
	}
}

func TestQueueLimits(t *testing.T) {
	ev := event(1)
	byCount := New(1, Disconnect, Limits{Events: 3, Bytes: 1 << 30})
	for i := range 3 {
		if !byCount.Offer(ev) {
			t.Fatalf("offer %d refused", i)
		}
	}
	if byCount.Offer(ev) {
		t.Fatal("a fourth event fit a queue of 3")
	}
	byBytes := New(2, Drop, Limits{Events: 100, Bytes: int64(2*ev.Size() + ev.Size()/2)})
	if !byBytes.Offer(ev) || !byBytes.Offer(ev) || byBytes.Offer(ev) {
		t.Fatal("the byte limit is not kept")
	}
	if c := byBytes.Counters(); c.Depth != 2 || c.QueueBytes != int64(2*ev.Size()) {
		t.Fatalf("counters %+v", c)
	}
	byBytes.Take(nil, 1)
	if !byBytes.Offer(ev) {
		t.Fatal("taking an event did not free its bytes")
	}
	// A message larger than the byte limit reaches a client that keeps up: an empty queue
	// takes it, and what comes behind it waits for it to go (issue 16).
	small := New(3, Disconnect, Limits{Events: 100, Bytes: int64(ev.Size() / 2)})
	if !small.Offer(ev) {
		t.Fatal("an empty queue refused an event over its byte limit")
	}
	if small.Offer(ev) {
		t.Fatal("a second event went in behind one over the byte limit")
	}
	small.Take(nil, 1)
	if !small.Offer(ev) {
		t.Fatal("an emptied queue refused the next large event")
	}
}

func TestOfferPairIsBothOrNeither(t *testing.T) {
	o := New(1, Drop, Limits{Events: 3, Bytes: 1 << 30})
	told := 0
	o.SetNotify(func() { told++ })
	if !o.OfferPair(event(1), event(2)) || told != 1 {
		t.Fatalf("a pair into an empty queue: told %d times", told)
	}
	if o.OfferPair(event(3), event(4)) || o.Depth() != 2 {
		t.Fatalf("a pair went into one free slot: depth %d", o.Depth())
	}
	evs, _ := o.Take(nil, 1)
	if !o.OfferPair(event(3), event(4)) {
		t.Fatal("a pair did not fit two free slots")
	}
	evs, _ = o.Take(evs, 10)
	for i, ev := range evs {
		if ev.Seq() != uint64(i+1) {
			t.Fatalf("event %d is seq %d", i, ev.Seq())
		}
	}
	big := New(2, Drop, Limits{Events: 100, Bytes: int64(event(1).Size() + event(1).Size()/2)})
	if !big.Offer(event(0)) || big.OfferPair(event(1), event(2)) || big.Depth() != 1 {
		t.Fatal("a pair over the byte limit went in behind an event, or half of it did")
	}
	big.Take(nil, 1)
	if !big.OfferPair(event(1), event(2)) {
		t.Fatal("an empty queue refused a pair over its byte limit")
	}
}

// The consumer is told once per empty-to-queued change and when the output ends, never while it
// has events left to take.
func TestNotify(t *testing.T) {
	o := New(1, Disconnect, Limits{})
	o.Offer(event(1)) // before SetNotify: told at once by SetNotify
	var told atomic.Int32
	o.SetNotify(func() { told.Add(1) })
	if told.Load() != 1 {
		t.Fatalf("told %d times on SetNotify with an event queued", told.Load())
	}
	o.Offer(event(2))
	if told.Load() != 1 {
		t.Fatal("told again while events were queued")
	}
	evs, more := o.Take(nil, 1)
	if len(evs) != 1 || !more {
		t.Fatalf("took %d, more %v", len(evs), more)
	}
	o.Offer(event(3))
	if told.Load() != 1 {
		t.Fatal("told while the consumer had events left")
	}
	if evs, more = o.Take(nil, 10); len(evs) != 2 || more {
		t.Fatalf("took %d, more %v", len(evs), more)
	}
	o.Offer(event(4))
	if told.Load() != 2 {
		t.Fatalf("told %d times after the queue was emptied and refilled, want 2", told.Load())
	}
	o.Close(ErrKicked)
	o.Close(ErrShutdown)
	if told.Load() != 3 || !errors.Is(o.Err(), ErrKicked) {
		t.Fatalf("told %d times, err %v", told.Load(), o.Err())
	}
}

type sliceWriter struct {
	mu  sync.Mutex
	got []uint64
}

func (w *sliceWriter) Write(evs []*stream.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range evs {
		w.got = append(w.got, ev.Seq())
	}
	return nil
}

func (w *sliceWriter) Heartbeat() error { return nil }

func (w *sliceWriter) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.got)
}

// Pump delivers the backlog, then everything offered concurrently, in order, in batches of at
// most MaxBatch, and returns the output's reason when it ends.
func TestPump(t *testing.T) {
	o := New(1, Disconnect, Limits{Events: 1 << 16, Bytes: 1 << 30})
	w := &sliceWriter{}
	done := make(chan error, 1)
	go func() { // ends when o is closed: below, or by the cleanup if the test fails first
		done <- o.Pump(context.Background(), w, []*stream.Event{event(1), event(2)}, PumpOptions{MaxBatch: 7})
	}()
	t.Cleanup(func() { o.Close(ErrShutdown) })
	for i := uint64(3); i <= 5000; i++ {
		if !o.Offer(event(i)) { // the queue holds 65,536: it is never full here
			t.Fatalf("event %d refused", i)
		}
	}
	sourcetest.Eventually(t, 10*time.Second, func() bool { return w.len() >= 5000 }, "5000 events written (have %d)", w.len)
	o.Close(ErrShutdown)
	if err := <-done; !errors.Is(err, ErrShutdown) {
		t.Fatalf("Pump returned %v", err)
	}
	for i, seq := range w.got {
		if seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, seq)
		}
	}
	if len(w.got) != 5000 || o.Counters().Delivered != 5000 {
		t.Fatalf("delivered %d (counted %d), want 5000", len(w.got), o.Counters().Delivered)
	}
}

// BenchmarkOfferTake is the queue's cost per event for a router offering and a writer taking
// in batches.
func BenchmarkOfferTake(b *testing.B) {
	o := New(1, Disconnect, Limits{Events: 1024, Bytes: 1 << 30})
	ev := event(1)
	buf := make([]*stream.Event, 0, 64)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		o.Offer(ev)
		if i%16 == 15 {
			buf, _ = o.Take(buf[:0], 64)
		}
	}
}

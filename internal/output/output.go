// Package output is the client side of a subscription: a bounded queue that routers offer events
// to without ever waiting, and the pump that drains it into a transport.
//
// Concurrency: any number of routers call Offer and Close concurrently; exactly one consumer at a
// time drains the queue, with Pump (SSE and NDJSON, on the HTTP request goroutine) or with Take
// after SetNotify (WebSocket, whose writes happen on shared writer goroutines; Pump uses
// SetNotify too). The counters are atomics; the queue has its own short lock, which no two
// routers contend for unless they feed the same client.
package output

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/streamux/streamux/internal/stream"
)

// Policy says what happens when a subscription's queue is full.
type Policy uint8

// The slow-consumer policies.
const (
	// Disconnect ends the stream (WebSocket close 4008 "slow consumer").
	Disconnect Policy = iota
	// Drop skips the event and later tells the client how many it missed with a gap event.
	Drop
)

// ParsePolicy parses the policy query parameter; "" is Disconnect.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "", "disconnect":
		return Disconnect, nil
	case "drop":
		return Drop, nil
	}
	return 0, errors.New(`policy must be "disconnect" or "drop"`)
}

// String returns the policy's name as the query parameter spells it.
func (p Policy) String() string {
	if p == Drop {
		return "drop"
	}
	return "disconnect"
}

// Why an output ended.
var (
	ErrSlowConsumer = errors.New("slow consumer")
	ErrKicked       = errors.New("ended by an administrator")
	ErrShutdown     = errors.New("server shutting down")
	ErrClientGone   = errors.New("client went away")
	ErrExpired      = errors.New("credential expired")
	// ErrTooCostly: one evaluation of the subscription's predicate went over its cost limit
	// (predicate.ErrTooCostly); it would cost as much on the next such message.
	ErrTooCostly = errors.New("predicate too costly")
	// ErrReplay: in a cluster, the replay of a resume from the source's log could not go on
	// (the servers failed, or this node did not read the log up to the client's id in
	// time); a resume from the last id received takes it up again.
	ErrReplay = errors.New("replay from the log failed; resume from the last id received")
	// ErrSourceRemoved: a reload removed every source the stream read.
	ErrSourceRemoved = errors.New("source removed")
	// ErrRevoked: a reload removed, or changed, the API key that opened the stream.
	ErrRevoked = errors.New("credential revoked")
)

// Limits bound one output's queue.
type Limits struct {
	// Events is the most events queued. Defaults to 1024.
	Events int
	// Bytes is the most encoded bytes queued. Defaults to 1 MiB.
	Bytes int64
}

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	if l.Events <= 0 {
		l.Events = 1024
	}
	if l.Bytes <= 0 {
		l.Bytes = 1 << 20
	}
	return l
}

// Output is one client stream's queue.
//
// The queue is a ring that grows on demand up to its limit and is given back to the allocator
// once drained after a burst, so that an idle stream holds a few words, not a 1,024-slot buffer.
// Its mutex is held for a few instructions by Offer and Take only; it is the same cost as a
// channel's own lock, and no two routers ever wait on each other's outputs.
type Output struct {
	id        uint64
	policy    Policy
	maxEvents int
	maxBytes  int64

	mu      sync.Mutex
	ring    []*stream.Event // the queue: n events from head, wrapping
	head, n int
	bytes   int64  // the encoded size of what is queued
	notify  func() // how the consumer is told of events queued into an empty queue (SetNotify)

	done   chan struct{}
	once   sync.Once
	reason error // written once, before done is closed

	matched   atomic.Uint64
	delivered atomic.Uint64
	dropped   atomic.Uint64
	evalErrs  atomic.Uint64
	evalCost  atomic.Uint64 // the most one evaluation of the predicate has cost (NoteCost)
}

// keepRing is the largest ring an emptied queue keeps; a larger one, grown by a burst, is
// released until the next burst.
const keepRing = 64

// New returns an output with the given id, policy and queue limits.
func New(id uint64, p Policy, l Limits) *Output {
	l = l.WithDefaults()
	return &Output{id: id, policy: p, maxEvents: l.Events, maxBytes: l.Bytes, done: make(chan struct{})}
}

// ID is the subscription id.
func (o *Output) ID() uint64 { return o.id }

// Policy is the slow-consumer policy.
func (o *Output) Policy() Policy { return o.policy }

// Offer queues ev without waiting. It reports false when the queue is full, by count or by
// bytes; the caller then applies the policy. An empty queue takes any one event, however
// large: a message that a source accepted reaches a client that keeps up, whatever the byte
// limit (which then bounds what waits behind it). The first event queued after the consumer
// emptied the queue tells the consumer (SetNotify).
func (o *Output) Offer(ev *stream.Event) bool {
	size := int64(ev.Size())
	o.mu.Lock()
	if o.n >= o.maxEvents || o.n > 0 && o.bytes+size > o.maxBytes {
		o.mu.Unlock()
		return false
	}
	o.push(ev, size)
	tell := o.n == 1 // the consumer emptied the queue last time, so it waits to be told
	f := o.notify
	o.mu.Unlock()
	if tell && f != nil { // no consumer yet: SetNotify tells it of what is queued
		f()
	}
	return true
}

// OfferPair queues a and then b, or neither, and reports which. A router queues a gap event
// with the message that follows it this way: a gap alone would fit where a large message does
// not, and a queue kept full by large messages would fill with gaps of one message each. An
// empty queue takes the pair however large, as Offer takes one event.
func (o *Output) OfferPair(a, b *stream.Event) bool {
	sa, sb := int64(a.Size()), int64(b.Size())
	o.mu.Lock()
	if o.n+2 > o.maxEvents || o.n > 0 && o.bytes+sa+sb > o.maxBytes {
		o.mu.Unlock()
		return false
	}
	o.push(a, sa)
	o.push(b, sb)
	tell := o.n == 2
	f := o.notify
	o.mu.Unlock()
	if tell && f != nil {
		f()
	}
	return true
}

// push appends ev, of the given size, to the ring; o.mu is held and there is room.
func (o *Output) push(ev *stream.Event, size int64) {
	if o.n == len(o.ring) {
		o.grow()
	}
	i := o.head + o.n
	if i >= len(o.ring) {
		i -= len(o.ring)
	}
	o.ring[i] = ev
	o.n++
	o.bytes += size
}

// grow doubles the ring, up to the limit; o.mu is held.
func (o *Output) grow() {
	ring := make([]*stream.Event, min(max(2*len(o.ring), 4), o.maxEvents))
	k := copy(ring, o.ring[o.head:])
	copy(ring[k:], o.ring[:o.head])
	o.ring, o.head = ring, 0
}

// SetNotify makes f how the consumer learns that events were queued into an empty queue, or
// that the output ended. f is called from the goroutine that queued or closed, so it must not
// block. If events are already queued, or the output has ended, f is called at once.
func (o *Output) SetNotify(f func()) {
	o.mu.Lock()
	o.notify = f
	now := o.n > 0
	o.mu.Unlock()
	if now || o.Err() != nil {
		f()
	}
}

// Take moves up to max queued events, oldest first, to dst and returns it. more reports that
// events remain queued: the consumer must come back for them, for it will not be told again.
// Once Take empties the queue, the next Offer tells the consumer.
func (o *Output) Take(dst []*stream.Event, max int) (evs []*stream.Event, more bool) {
	o.mu.Lock()
	k := min(o.n, max)
	for ; k > 0; k-- {
		ev := o.ring[o.head]
		o.ring[o.head] = nil // let the event be collected once the history forgets it
		o.bytes -= int64(ev.Size())
		dst = append(dst, ev)
		o.head++
		if o.head == len(o.ring) {
			o.head = 0
		}
		o.n--
	}
	if o.n == 0 {
		o.head = 0
		if len(o.ring) > keepRing {
			o.ring = nil
		}
	}
	more = o.n > 0
	o.mu.Unlock()
	return dst, more
}

// Close ends the output; the first reason wins. Safe to call many times from many goroutines.
func (o *Output) Close(reason error) {
	o.once.Do(func() {
		o.reason = reason
		close(o.done)
		o.mu.Lock()
		f := o.notify
		o.mu.Unlock()
		if f != nil {
			f()
		}
	})
}

// Done is closed when the output has ended.
func (o *Output) Done() <-chan struct{} { return o.done }

// Err is why the output ended, or nil while it lives.
func (o *Output) Err() error {
	select {
	case <-o.done:
		return o.reason
	default:
		return nil
	}
}

// Depth is the number of events queued now.
func (o *Output) Depth() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// CountMatch records that a router matched an event for this output.
func (o *Output) CountMatch() { o.matched.Add(1) }

// CountDrop records n matching events that were not delivered.
func (o *Output) CountDrop(n uint64) { o.dropped.Add(n) }

// CountEvalError records a predicate that failed at run time on one message.
func (o *Output) CountEvalError() { o.evalErrs.Add(1) }

// NoteCost records what one evaluation of the subscription's predicate cost, where it is
// measured; the output keeps the most.
func (o *Output) NoteCost(c uint64) {
	for {
		old := o.evalCost.Load()
		if c <= old || o.evalCost.CompareAndSwap(old, c) {
			return
		}
	}
}

// Counters is a snapshot of an output's counters.
type Counters struct {
	Matched    uint64 `json:"matched"`
	Delivered  uint64 `json:"delivered"`
	Dropped    uint64 `json:"dropped"`
	EvalErrors uint64 `json:"predicate_errors"`
	// EvalCost is the most one evaluation of the predicate has cost, in CEL cost units, for a
	// predicate measured as it runs (predicate.Predicate.Measured); 0 for the others, which
	// their estimate bounds. Over limits.predicate_max_cost the subscription is cut.
	EvalCost   uint64 `json:"predicate_cost"`
	Depth      int    `json:"queue_depth"`
	QueueBytes int64  `json:"queue_bytes"`
}

// Counters returns the counters now.
func (o *Output) Counters() Counters {
	o.mu.Lock()
	depth, bytes := o.n, o.bytes
	o.mu.Unlock()
	return Counters{
		Matched: o.matched.Load(), Delivered: o.delivered.Load(), Dropped: o.dropped.Load(),
		EvalErrors: o.evalErrs.Load(), EvalCost: o.evalCost.Load(), Depth: depth, QueueBytes: bytes,
	}
}

// CountDelivered records n messages written to the client.
func (o *Output) CountDelivered(n uint64) { o.delivered.Add(n) }

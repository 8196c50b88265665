// Package output is the client side of a subscription: a bounded queue that routers offer events
// to without ever waiting, and the pump that drains it into a transport.
//
// Concurrency: any number of routers call Offer and Close concurrently; exactly one goroutine (the
// transport's, normally the HTTP request goroutine) drains the queue with Pump. Offer and the
// counters use atomics only; there is no lock on the per-message path.
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
type Output struct {
	id     uint64
	policy Policy
	q      chan *stream.Event
	bytes  atomic.Int64
	max    int64

	done   chan struct{}
	once   sync.Once
	reason error // written once, before done is closed

	matched   atomic.Uint64
	delivered atomic.Uint64
	dropped   atomic.Uint64
	evalErrs  atomic.Uint64
}

// New returns an output with the given id, policy and queue limits.
func New(id uint64, p Policy, l Limits) *Output {
	l = l.WithDefaults()
	return &Output{id: id, policy: p, q: make(chan *stream.Event, l.Events), max: l.Bytes, done: make(chan struct{})}
}

// ID is the subscription id.
func (o *Output) ID() uint64 { return o.id }

// Policy is the slow-consumer policy.
func (o *Output) Policy() Policy { return o.policy }

// Offer queues ev without waiting. It reports false when the queue is full, by count or by
// bytes, or the output has ended; the caller then applies the policy.
func (o *Output) Offer(ev *stream.Event) bool {
	n := int64(ev.Size())
	if o.bytes.Add(n) > o.max {
		o.bytes.Add(-n)
		return false
	}
	select {
	case o.q <- ev:
		return true
	default:
		o.bytes.Add(-n)
		return false
	}
}

// Close ends the output; the first reason wins. Safe to call many times from many goroutines.
func (o *Output) Close(reason error) {
	o.once.Do(func() {
		o.reason = reason
		close(o.done)
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
func (o *Output) Depth() int { return len(o.q) }

// CountMatch records that a router matched an event for this output.
func (o *Output) CountMatch() { o.matched.Add(1) }

// CountDrop records n matching events that were not delivered.
func (o *Output) CountDrop(n uint64) { o.dropped.Add(n) }

// CountEvalError records a predicate that failed at run time on one message.
func (o *Output) CountEvalError() { o.evalErrs.Add(1) }

// Counters is a snapshot of an output's counters.
type Counters struct {
	Matched    uint64 `json:"matched"`
	Delivered  uint64 `json:"delivered"`
	Dropped    uint64 `json:"dropped"`
	EvalErrors uint64 `json:"predicate_errors"`
	Depth      int    `json:"queue_depth"`
	QueueBytes int64  `json:"queue_bytes"`
}

// Counters returns the counters now.
func (o *Output) Counters() Counters {
	return Counters{
		Matched: o.matched.Load(), Delivered: o.delivered.Load(), Dropped: o.dropped.Load(),
		EvalErrors: o.evalErrs.Load(), Depth: len(o.q), QueueBytes: o.bytes.Load(),
	}
}

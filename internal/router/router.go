// Package router routes one source's messages to the subscriptions that match them.
//
// A Router is one goroutine (Run) that owns everything on the per-message path: the sequence
// counter, the history ring, the subscriber table and the predicate input. Other goroutines
// change the table only by sending work on the control channel, so the hot path takes no lock.
// The router never waits for a client: it offers each event to a subscription's queue and, when
// the queue is full, applies the subscription's policy.
//
// Messages reach the router through a buffered input (InputSize), so that a source hands one
// over without waiting for the router goroutine to be scheduled. The input keeps what a source
// relies on when it acknowledges a message once Emit returns nil:
//
//   - Every message accepted (Emit returned nil) is routed, in the order accepted, before Run
//     returns: on stop the router first refuses new messages, then routes what its input holds,
//     and only then ends its outputs. Once it has begun to stop, Emit returns ErrStopped and
//     never nil again.
//   - Every control operation (Add, Remove, History, Notify) is run only after the router has
//     routed every message accepted before the operation was sent, so that it sees the router
//     as the unbuffered hand-off did: a subscription's backlog holds what was emitted before it
//     joined, a status event follows the messages emitted before it.
//   - A full input blocks Emit: the source, and its broker, see back-pressure.
package router

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/sequence"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// ErrStopped is returned by calls on a router whose goroutine has ended.
var ErrStopped = errors.New("router stopped")

// DefaultHistory is the number of messages a router keeps for resume and /v1/check.
const DefaultHistory = 10000

// InputSize is how many accepted messages a router's input holds before Emit blocks. A source
// then hands a message over without waiting for the router goroutine to be scheduled, which,
// with hundreds of writer goroutines runnable, costs a scheduling round per message; and the
// bound keeps back-pressure on the source. At about a microsecond of routing per message with
// few matches, a full input is about a millisecond of work.
const InputSize = 1024

// Router routes one source. Create it with New, start Run once, then use the other methods from
// any goroutine.
type Router struct {
	name string
	log  *slog.Logger
	in   chan *stream.Message // buffered: InputSize
	ctl  chan func()
	// stopping is closed when Run begins to stop, so that an Emit waiting for room gives up.
	stopping chan struct{}
	done     chan struct{}

	// admit makes "accepted" and "stopped" exclusive: Emit sends on in only while holding it
	// for reading with closed false, and Run sets closed under the write lock before it routes
	// what in holds for the last time. So no message enters in after that last look.
	admit  sync.RWMutex
	closed bool

	// Owned by the Run goroutine.
	seq uint64
	// counter keeps seq across runs of the process (nil: in memory, from 1): first is this
	// run's first number, and numbers up to reserved are on disk as given out.
	counter  *sequence.Counter
	first    uint64
	reserved uint64
	table    table
	hist     ring
	input    predicate.Input
	gapsDue  bool
	dead     bool // an output ended during this message's delivery
	// logged: messages come numbered from a cluster log (FromLog), and the router takes
	// their Seq as it is.
	logged bool

	tally tally
}

// tally is a router's live counts: atomic, updated as it routes, and read by Counters, from any
// goroutine, into a snapshot. Throughout streamux a live count is a tally, and what is read from
// it, as code and JSON show it, Counters.
type tally struct {
	received   atomic.Uint64
	bytes      atomic.Uint64
	lastTime   atomic.Int64 // unix nanoseconds of the newest message
	matched    atomic.Uint64
	queued     atomic.Uint64
	dropped    atomic.Uint64
	evalErrors atomic.Uint64
	slowKicked atomic.Uint64
	tooCostly  atomic.Uint64
	subs       atomic.Int64
	lastSeq    atomic.Uint64
	lost       atomic.Uint64
}

// Counters is a snapshot of a router's counters, as GET /v1/sources shows them.
type Counters struct {
	Received uint64 `json:"received"`
	Bytes    uint64 `json:"bytes"`
	Matched  uint64 `json:"matched"`
	// Queued counts events handed to a subscription's queue, to be written. (What reached a
	// client, written, is each subscription's Delivered: output.Counters.)
	Queued        uint64 `json:"queued"`
	Dropped       uint64 `json:"dropped"`
	EvalErrors    uint64 `json:"predicate_errors"`
	SlowConsumers uint64 `json:"slow_consumers"`
	// TooCostly counts the subscriptions cut because one evaluation of their predicate went
	// over its cost limit (predicate.ErrTooCostly).
	TooCostly     uint64 `json:"predicate_too_costly"`
	Subscriptions int64  `json:"subscriptions"`
	LastSeq       uint64 `json:"last_seq"`
	// Lost counts messages the source received but could not pass on (too large), which
	// every subscription was told of with a gap.
	Lost uint64 `json:"lost"`
	// LastMessage is when the newest message was received; zero (left out of JSON) before the
	// first.
	LastMessage time.Time `json:"last_message,omitzero"`
}

// History bounds what a router keeps for resume and /v1/check.
type History struct {
	// Size is the most messages kept. Defaults to DefaultHistory.
	Size int
	// MaxAge, if set, forgets messages received longer ago than this.
	MaxAge time.Duration
	// MaxBytes, if set, bounds the memory the messages kept hold (their encoded events, and
	// their bodies where the event does not hold them), forgetting the oldest beyond it.
	MaxBytes int64
}

// New returns a router for the source name.
func New(name string, h History, log *slog.Logger) *Router {
	if h.Size <= 0 {
		h.Size = DefaultHistory
	}
	if log == nil {
		log = slog.Default()
	}
	return &Router{
		name:     name,
		log:      log.With("source", name),
		in:       make(chan *stream.Message, InputSize),
		ctl:      make(chan func()),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
		table:    newTable(name),
		hist:     newRing(h),
		first:    1,
	}
}

// Persist makes the router number its messages from c, so that no id of an earlier run of the
// process names another message in this one: the first message is c.First(), and numbers are
// reserved on disk before they are given out. Call it before Run; Run closes c when it ends.
// Without it, messages are numbered from 1 in every run.
func (r *Router) Persist(c *sequence.Counter) {
	r.counter = c
	r.first = c.First()
	r.seq = c.First() - 1
	r.reserved = c.Reserved()
	r.tally.lastSeq.Store(r.seq)
}

// FromLog makes the router take each message's Seq as it comes, numbering none: in a
// cluster, messages come from the source's log, whose sequence is their id on every node.
// A Seq that skips numbers is a hole in what this node read (the log no longer held them):
// the history is forgotten, as it holds no run of numbers across the hole, and every
// subscription gets a gap of reason history. Call it before Run. With Persist too, the
// counter records the highest sequence routed, so that a log made again after it was lost
// can begin after it (the supervisor's Ensure).
func (r *Router) FromLog() { r.logged = true }

// Jump forgets the history and makes next the sequence expected next: where a node begins
// to read a log, and after the log was reset (the ids before next may name other messages
// in the new log, so the history must not answer for them). Only with FromLog.
func (r *Router) Jump(ctx context.Context, next uint64) error {
	return r.do(ctx, func() {
		r.hist.clear()
		r.seq = max(next, 1) - 1
		r.tally.lastSeq.Store(r.seq)
		if r.counter != nil && r.seq > r.reserved {
			r.reserve()
		}
	})
}

// Skip says that the log holds no message up to last that this node has not read: every
// subscription gets a gap for them (reason history), and the history is forgotten. Only with
// FromLog.
func (r *Router) Skip(ctx context.Context, last uint64) error {
	return r.do(ctx, func() { r.hole(last) })
}

// hole moves the router over the sequences after r.seq up to last, which it will never have.
func (r *Router) hole(last uint64) {
	if last <= r.seq {
		return
	}
	n := last - r.seq
	r.hist.clear()
	r.seq = last
	r.tally.lastSeq.Store(last)
	if r.counter != nil && r.seq > r.reserved {
		r.reserve()
	}
	r.gapAll(stream.NewGap(r.name, n, stream.GapHistory), n)
}

// reserveRetry is how many messages a router numbers past a reservation that failed before it
// tries again, so that a failing disk costs one attempt per that many messages, not one each.
const reserveRetry = 1024

// reserve puts r.seq in the counter's reservation. When the disk fails, the router goes on
// numbering, as losing messages would be worse, and says so: a crash before a reservation
// succeeds may let the next run give these numbers again.
func (r *Router) reserve() {
	reserved, err := r.counter.Reserve(r.seq)
	if err != nil {
		r.log.Error("cannot reserve sequence numbers on disk: if streamux is killed before this is mended, its next run may give ids of this run to other messages", "seq", r.seq, "err", err)
		reserved = r.seq + reserveRetry - 1
	}
	r.reserved = reserved
}

// Name is the source's name.
func (r *Router) Name() string { return r.name }

// Counters returns the router's counters now.
func (r *Router) Counters() Counters {
	s := &r.tally
	return Counters{
		Received: s.received.Load(), Bytes: s.bytes.Load(), Matched: s.matched.Load(), Queued: s.queued.Load(), Dropped: s.dropped.Load(),
		EvalErrors: s.evalErrors.Load(), SlowConsumers: s.slowKicked.Load(), TooCostly: s.tooCostly.Load(),
		Subscriptions: s.subs.Load(), LastSeq: s.lastSeq.Load(), LastMessage: unixNano(s.lastTime.Load()),
		Lost: s.lost.Load(),
	}
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Run routes until ctx is done. It then refuses new messages, routes every message it accepted,
// and closes every output it still feeds with output.ErrShutdown; from then on every call fails
// with ErrStopped.
func (r *Router) Run(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case m := <-r.in:
			r.route(m)
			// And what came meanwhile, without a select per message; at most InputSize of
			// them, so that control operations and the ticker still come in turn.
			r.catchUp()
		case f := <-r.ctl:
			r.catchUp()
			f()
		case now := <-tick.C:
			r.hist.trim(now)
			if r.gapsDue {
				r.flushGaps()
			}
		case <-ctx.Done():
			r.closeInput()
			r.catchUp() // no one sends any more: this empties the input for good
			for _, e := range r.table.byID {
				e.out.Close(output.ErrShutdown)
			}
			r.table = newTable(r.name)
			r.tally.subs.Store(0)
			if r.counter != nil {
				// From a log, the router may stop short of what an earlier run saw (it
				// began again from the log's last messages): Close keeps the highest.
				if err := r.counter.Close(r.seq); err != nil {
					r.log.Error("cannot record the last sequence number: the next run starts after a hole", "seq", r.seq, "err", err)
				}
			}
			return
		}
	}
}

// Emit hands m to the router; it is the source.Emit of this router's source. It returns nil once
// m is in the router's input, which guarantees that m will be routed: after every message
// accepted before it, before any control operation sent after Emit returns, and before Run
// returns. It waits while the input is full. It returns ctx.Err() if ctx ends first, and
// ErrStopped once the router has begun to stop; in both cases m was not accepted and will not be
// routed.
func (r *Router) Emit(ctx context.Context, m *stream.Message) error {
	r.admit.RLock()
	defer r.admit.RUnlock()
	if r.closed {
		return ErrStopped
	}
	// While the input has room, one channel's lock, not the three of the select below.
	select {
	case r.in <- m:
		return nil
	default:
	}
	select {
	case r.in <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.stopping:
		// Run waits for the write lock, which this Emit holds: give up rather than wait
		// for room that will not come.
		return ErrStopped
	}
}

// closeInput makes every later Emit fail, and waits for those under way to return (they stop
// waiting for room once stopping is closed). When it returns, what in holds is all that was
// ever accepted and not yet routed. The caller is the router goroutine.
func (r *Router) closeInput() {
	close(r.stopping)
	r.admit.Lock()
	r.closed = true
	r.admit.Unlock()
}

// catchUp routes the messages that are in the input now: every message whose Emit returned
// before a control operation was sent is among them, so the operation sees it routed. Only this
// goroutine receives from in, so the len messages are there to take.
func (r *Router) catchUp() {
	for n := len(r.in); n > 0; n-- {
		r.route(<-r.in)
	}
}

var _ source.Emit = (*Router)(nil).Emit

func (r *Router) route(m *stream.Message) {
	if m.Lost > 0 {
		r.lost(m.Lost, m.LostReason)
		return
	}
	if r.logged {
		if m.Seq <= r.seq {
			// Read twice (a reader that started again too early): routed already.
			return
		}
		r.hole(m.Seq - 1)
		r.seq = m.Seq
		if r.counter != nil && r.seq > r.reserved {
			r.reserve()
		}
	} else {
		r.seq++
		if r.counter != nil && r.seq > r.reserved {
			r.reserve()
		}
		m.Seq = r.seq
	}
	m.Source = r.name
	// The event shows the time to the millisecond; a predicate must see the same time, or
	// time == timestamp(…) copied from an event would not match it.
	m.Time = m.Time.Truncate(time.Millisecond)
	size := len(m.Body) // as received: encoding the event may point Body at its compacted JSON
	ev := stream.NewMessage(m)
	r.hist.push(ev)
	r.tally.received.Add(1)
	r.tally.bytes.Add(uint64(size))
	r.tally.lastSeq.Store(r.seq)
	r.tally.lastTime.Store(m.Time.UnixNano())

	r.input.Reset(m)
	r.dead = false
	t := &r.table
	if gs := t.byKey[m.Key]; gs != nil {
		r.visit(gs, ev)
	}
	r.visitFields(m, ev) // the groups filed under the message's headers and body values: index.go
	r.visit(t.residual, ev)
	if r.dead {
		r.sweep()
	}
}

// visit offers ev to every subscription of the groups that match it.
func (r *Router) visit(gs []*group, ev *stream.Event) {
	for _, g := range gs {
		if !g.all && !g.decided && !r.match(g) {
			continue
		}
		for _, e := range g.entries {
			r.tally.matched.Add(1)
			e.out.CountMatch()
			if !r.deliver(e, ev) {
				r.dead = true
			}
		}
	}
}

// match evaluates g's predicate on the current message, once for all its subscriptions; a
// panic in a predicate is recovered and counted as a run-time failure of that predicate, so that
// it stops nothing else. A predicate that went over its cost limit cuts its subscriptions: it
// was held to the limit this time, but it would cost as much on every such message, for every
// other subscriber of the source to wait for.
func (r *Router) match(g *group) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("predicate panicked", "predicate", g.pred.String(), "panic", p, "stack", string(debug.Stack()))
			r.evalFailed(g)
			ok = false
		}
	}()
	ok, err := g.pred.Match(&r.input)
	if g.pred.Measured() {
		c := r.input.Cost()
		for _, e := range g.entries {
			e.out.NoteCost(c)
		}
	}
	if err != nil {
		if errors.Is(err, predicate.ErrTooCostly) {
			r.cut(g, err)
			return false
		}
		r.evalFailed(g)
	}
	return ok
}

// cut ends g's subscriptions, whose predicate went over its cost limit on this message; sweep
// then removes them.
func (r *Router) cut(g *group, err error) {
	for _, e := range g.entries {
		e.out.Close(output.ErrTooCostly)
		r.tally.tooCostly.Add(1)
	}
	r.dead = true
	r.log.Info("predicate too costly: subscriptions cut", "subscriptions", len(g.entries), "seq", r.seq, "err", err)
}

// CountTooCostly records a subscription cut because its predicate went over its cost limit on
// a message of this source's history, as the supervisor matched its backlog.
func (r *Router) CountTooCostly() { r.tally.tooCostly.Add(1) }

func (r *Router) evalFailed(g *group) {
	for _, e := range g.entries {
		e.out.CountEvalError()
	}
	r.tally.evalErrors.Add(1)
}

// deliver offers ev to e without waiting. It reports false when e's output was ended for being
// slow and must be removed from the table.
func (r *Router) deliver(e *entry, ev *stream.Event) bool {
	var queued bool
	if e.missed > 0 {
		// The gap goes with the message after it, or not at all: see OfferPair.
		if queued = e.out.OfferPair(stream.NewGap(r.name, e.missed, stream.GapDropped), ev); queued {
			e.missed = 0
		}
	} else {
		queued = e.out.Offer(ev)
	}
	if queued {
		r.tally.queued.Add(1)
		return true
	}
	return r.refused(e, 1)
}

// refused applies e's policy to n messages that its queue had no room for. It reports false
// when e's output was ended for being slow and must be removed from the table.
func (r *Router) refused(e *entry, n uint64) bool {
	e.out.CountDrop(n)
	r.tally.dropped.Add(n)
	if e.out.Policy() == output.Drop {
		e.missed += n
		r.gapsDue = true
		return true
	}
	r.tally.slowKicked.Add(1)
	e.out.Close(output.ErrSlowConsumer)
	return false
}

// lost tells every subscription that the source received n messages here that it could not
// pass on (m.Lost): a gap, since no one can know whom they would have matched. A queue with no
// room for the gap counts them as its own drops.
func (r *Router) lost(n uint64, reason string) {
	if reason == "" {
		reason = stream.GapTooLarge
	}
	r.tally.lost.Add(n)
	r.gapAll(stream.NewGap(r.name, n, reason), n)
}

// gapAll offers the gap ev, for n messages, to every subscription.
func (r *Router) gapAll(ev *stream.Event, n uint64) {
	r.dead = false
	for _, e := range r.table.byID {
		if !e.out.Offer(ev) && !r.refused(e, n) {
			r.dead = true
		}
	}
	if r.dead {
		r.sweep()
	}
}

// offerGap tries to queue the gap event for what e missed.
func (r *Router) offerGap(e *entry) bool {
	if !e.out.Offer(stream.NewGap(r.name, e.missed, stream.GapDropped)) {
		return false
	}
	e.missed = 0
	return true
}

// flushGaps sends pending gap events even when no further message matches.
func (r *Router) flushGaps() {
	r.gapsDue = false
	for _, e := range r.table.byID {
		if e.missed > 0 && !r.offerGap(e) {
			r.gapsDue = true
		}
	}
}

// sweep removes the entries whose output has ended.
func (r *Router) sweep() {
	for id, e := range r.table.byID {
		if e.out.Err() != nil {
			r.table.remove(id)
		}
	}
	r.tally.subs.Store(int64(r.table.len()))
}

// do runs f on the router goroutine, after every message accepted before the call (catchUp), and
// waits for it.
func (r *Router) do(ctx context.Context, f func()) error {
	ran := make(chan struct{})
	g := func() { f(); close(ran) }
	select {
	case r.ctl <- g:
	case <-r.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	<-ran // the router runs g right after taking it
	return nil
}

// Resume says where a new subscription starts.
type Resume struct {
	// After is the sequence number of the last message the client has; the subscription
	// starts with the history after it.
	After uint64
	// Set is false for a subscription that does not resume by sequence number.
	Set bool
	// Since, when Set is false and Since is not zero, starts the subscription with the
	// history received at this time or after: how a source that a multi-source client has seen
	// no event of resumes, from the time of the events it has seen of the others.
	Since time.Time
	// Log, in a cluster (FromLog), says that the source's log can serve what the history
	// cannot: when Set and the history does not hold every message after After (forgotten,
	// or not read yet), Add registers nothing and returns a Backlog with FromLog set.
	Log bool
	// Queue has Add offer the backlog to the output's queue, each message matched against
	// the predicate, on the router goroutine, so that it comes before every live event: how
	// a replay from the log joins the live stream. The Backlog's Events are then empty.
	Queue bool
}

// Backlog is the part of the history a new subscription must be sent before live events.
type Backlog struct {
	// Events are the messages after the resume point still in the history, oldest first, not
	// yet filtered by the predicate.
	Events []*stream.Event
	// Missed counts the messages after the resume point that the history no longer holds.
	Missed uint64
	// Unknown is set when the resume point is ahead of this router: the id came from
	// elsewhere (another data directory, or an earlier process that kept no sequence on
	// disk), and the whole history is in Events.
	Unknown bool
	// Restart is set when messages after the resume point were numbered by an earlier run of
	// the process: Missed counts them with those this run no longer holds (after a run that
	// was killed, it also counts the numbers that run reserved and never gave out).
	Restart bool
	// Last is the newest sequence number when the subscription began: the stream's position
	// in this source until an event of it is delivered.
	Last uint64
	// ResumeTime is when the message at Resume.After was received, if the history holds it.
	ResumeTime time.Time
	// FromLog says that nothing was registered: the history cannot serve Resume.After, and
	// the log must (Resume.Log).
	FromLog bool
}

// Add registers a subscription. Live events start right after the backlog it returns, with no
// message missing or repeated between the two, because both are decided on the router goroutine:
// the backlog ends at the last message routed, and a message still in the input is routed after
// the subscription joined. Messages accepted before Add was called are routed before it, so they
// are in the backlog (if the resume point asks for them), never live.
func (r *Router) Add(ctx context.Context, out *output.Output, p *predicate.Predicate, from Resume) (Backlog, error) {
	var b Backlog
	err := r.do(ctx, func() {
		if _, ok := r.table.byID[out.ID()]; ok {
			return
		}
		switch {
		case from.Set:
			b = r.hist.after(from.After, r.seq)
			if from.Log && (b.Missed > 0 || b.Unknown) {
				b = Backlog{FromLog: true, Last: r.seq}
				return
			}
			// From a log, ids do not depend on this process's runs.
			b.Restart = !r.logged && !b.Unknown && from.After+1 < r.first
			if ev := r.hist.at(from.After, r.seq); ev != nil {
				b.ResumeTime = ev.Msg.Time
			}
		case !from.Since.IsZero():
			b = r.hist.since(from.Since, r.seq)
		}
		b.Last = r.seq
		r.add(out, p)
		if from.Queue {
			r.queue(r.table.byID[out.ID()], p, b.Events)
			b.Events = nil
		}
	})
	return b, err
}

// queue offers the events of evs that match p to e, as routing them would; the caller is the
// router goroutine.
func (r *Router) queue(e *entry, p *predicate.Predicate, evs []*stream.Event) {
	r.dead = false
	for _, ev := range evs {
		if p != nil && !p.MatchesAll() {
			r.input.Reset(ev.Msg)
			ok, err := p.Match(&r.input)
			if errors.Is(err, predicate.ErrTooCostly) {
				e.out.Close(output.ErrTooCostly)
				r.tally.tooCostly.Add(1)
				r.dead = true
				break
			}
			if err != nil {
				e.out.CountEvalError()
				r.tally.evalErrors.Add(1)
			}
			if !ok {
				continue
			}
		}
		e.out.CountMatch()
		if !r.deliver(e, ev) {
			r.dead = true
			break
		}
	}
	if r.dead {
		r.sweep()
	}
}

// add puts a subscription in the table; the caller is the router goroutine.
func (r *Router) add(out *output.Output, p *predicate.Predicate) {
	r.table.add(out, p)
	r.tally.subs.Store(int64(r.table.len()))
}

// Remove forgets the subscription id. When it returns, the router holds no reference to it.
func (r *Router) Remove(ctx context.Context, id uint64) error {
	err := r.do(ctx, func() {
		r.table.remove(id)
		r.tally.subs.Store(int64(r.table.len()))
	})
	if errors.Is(err, ErrStopped) {
		return nil // a stopped router holds nothing
	}
	return err
}

// Len is the number of subscriptions in the table.
func (r *Router) Len() int { return int(r.tally.subs.Load()) }

// Read returns up to max messages of the history after the id seq, oldest first, without
// registering anything: how a sink reads, by position. Missed counts the messages after seq
// that the history no longer holds, Unknown says seq is ahead of the router, Last is the newest
// sequence number.
func (r *Router) Read(ctx context.Context, seq uint64, max int) (Backlog, error) {
	var b Backlog
	err := r.do(ctx, func() {
		b = r.hist.afterN(seq, r.seq, max)
		b.Last = r.seq
	})
	return b, err
}

// History returns the messages in the history, oldest first.
func (r *Router) History(ctx context.Context) ([]*stream.Event, error) {
	var evs []*stream.Event
	err := r.do(ctx, func() { evs = r.hist.after(0, r.seq).Events })
	return evs, err
}

// Notify tells every subscription of this source that the source changed state. It is the
// source.Runner's notify function for this router's source. The status event is queued after
// every message accepted before Notify was called (a control operation catches up first), so a
// client sees it after the messages the source emitted before the change, as it would with no
// input buffer.
func (r *Router) Notify(s source.State, err error) {
	text := ""
	if err != nil {
		text = err.Error()
	}
	r.tell(stream.NewStatus(r.name, string(s), text))
}

// NotifyLeader tells every subscription of this source that another node reads it upstream
// now (leader; "" for none), in a cluster; state is the source's as this node knows it.
func (r *Router) NotifyLeader(s source.State, leader string) {
	r.tell(stream.NewLeaderStatus(r.name, string(s), leader))
}

// tell offers the status event ev to every subscription, after the messages accepted before.
func (r *Router) tell(ev *stream.Event) {
	// Status changes are rare and must not be lost to a busy router, so wait for it; a
	// stopped router has no one to tell.
	_ = r.do(context.Background(), func() {
		for _, e := range r.table.byID {
			e.out.Offer(ev) // a full queue will see the consequences of the state soon enough
		}
	})
}

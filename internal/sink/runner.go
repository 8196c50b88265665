// Package sink runs outputs that live on the server (API.md, "Sinks"): each sink reads its
// sources by position, as a resuming client does, matches each message against its predicate,
// and delivers what matches, in order, in batches, to a destination that cannot hold a
// connection open (a webhook, another broker, the console).
//
// A sink never holds a router back: it holds no queue a router offers to, but reads the history
// after its position (Reader), at its own pace. What it delivered is acknowledged by its
// destination before its position moves past it and is saved (PositionStore), so that delivery
// is at least once, and resumes after a restart where it stopped. A batch the destination keeps
// refusing for a reason that may pass (a timeout, a 5xx) is tried again with exponential backoff
// and jitter for Retry.MaxAge, then given up as a gap of the sink, counted and logged; one it
// refuses for good (a 4xx) fails the sink until it is changed. Messages the history no longer
// holds when the sink gets to them are a gap too.
//
// Concurrency: a Runner is one goroutine (Run), which owns its position, its destination and
// its batch; Info may be called from any goroutine.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// Destination delivers batches of events to one place: a sink's type.
type Destination interface {
	// Deliver sends evs, in order, and returns nil once the destination acknowledged them
	// all. A *PermanentError fails the sink; any other error is tried again (after
	// RetryAfter, when the destination said).
	Deliver(ctx context.Context, evs []*stream.Event) error
	// Close releases what the destination holds.
	Close() error
}

// Page is a part of one source's history after a position, as a Reader returns it.
type Page struct {
	// Events are the messages after the position, oldest first, with a gap event in front
	// of them for what the history no longer holds (or could not tell, for a position from
	// elsewhere).
	Events []*stream.Event
	// Next is the position after this page: the last sequence it covers.
	Next uint64
	// Newest is the source's newest sequence, for the lag.
	Newest uint64
}

// Reader reads the sources' histories by position; the supervisor is one.
type Reader interface {
	// Read returns up to max messages of source after the position after.
	Read(ctx context.Context, source string, after uint64, max int) (Page, error)
}

// Position is a sink's place in each of its sources: the last sequence it is done with.
type Position map[string]uint64

// PositionStore keeps sinks' positions across restarts.
type PositionStore interface {
	// Load returns the position saved for the sink name, nil if there is none.
	Load(name string) (Position, error)
	// Save replaces the position saved for the sink name, durably.
	Save(name string, p Position) error
}

// Settings are how a Runner reads and delivers.
type Settings struct {
	// Name is the sink's.
	Name string
	// Sources are the sources it reads, in the order it reads them.
	Sources []string
	// Predicate selects the messages it delivers; nil delivers all.
	Predicate *predicate.Predicate
	// BatchMax is the most events one delivery carries. Defaults to 1.
	BatchMax int
	// BatchWait is how long a batch that is not full waits for more events. 0: it goes at
	// once.
	BatchWait time.Duration
	// RetryMaxAge is how long a batch is tried again before it is given up as a gap.
	// Defaults to DefaultRetryMaxAge.
	RetryMaxAge time.Duration
	// Backoff paces the tries again. Defaults to 100ms up to 30s.
	Backoff source.Backoff
	// Poll is how often a sink with nothing to deliver looks again. Defaults to 50ms.
	Poll time.Duration
}

// DefaultRetryMaxAge is Settings.RetryMaxAge when none is given.
const DefaultRetryMaxAge = 24 * time.Hour

// The states of a sink, as GET /v1/sinks shows them.
const (
	StateUp       = "up"
	StateRetrying = "retrying"
	StateFailed   = "failed"
)

// Info is what GET /v1/sinks shows of a sink's delivery.
type Info struct {
	State     string   `json:"state"`
	Position  Position `json:"position"`
	Delivered uint64   `json:"delivered"`
	// Failed counts the deliveries the destination refused (each try).
	Failed uint64 `json:"failed_attempts"`
	// Gaps counts the messages the sink will never deliver: given up after Retry.MaxAge, or
	// gone from the history before the sink got to them.
	Gaps      uint64 `json:"gaps"`
	LastError string `json:"last_error"`
	// Lag is how many messages of its sources the sink has not got to yet.
	Lag uint64 `json:"lag"`
	// LagSeconds is how long ago the oldest event of the batch being delivered was received;
	// 0 when it is caught up.
	LagSeconds float64 `json:"lag_seconds"`
}

// Runner delivers one sink. Create it with NewRunner, then Run it once.
type Runner struct {
	set   Settings
	dest  Destination
	read  Reader
	store PositionStore
	log   *slog.Logger

	pos   Position // owned by Run
	in    predicate.Input
	batch []*stream.Event

	mu   sync.Mutex // guards info
	info Info
}

// NewRunner returns a runner of the sink set describes, delivering to dest, reading from read
// and saving its position in store; start is where a sink with no saved position begins, per
// source (its newest sequence, to deliver from now on).
func NewRunner(set Settings, dest Destination, read Reader, store PositionStore, log *slog.Logger) *Runner {
	if set.BatchMax <= 0 {
		set.BatchMax = 1
	}
	if set.RetryMaxAge <= 0 {
		set.RetryMaxAge = DefaultRetryMaxAge
	}
	if set.Poll <= 0 {
		set.Poll = 50 * time.Millisecond
	}
	if log == nil {
		log = slog.Default()
	}
	return &Runner{set: set, dest: dest, read: read, store: store, log: log.With("sink", set.Name), info: Info{State: StateUp}}
}

// Info returns the sink's delivery as it stands.
func (r *Runner) Info() Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.info
	in.Position = make(Position, len(r.info.Position))
	for k, v := range r.info.Position {
		in.Position[k] = v
	}
	return in
}

func (r *Runner) update(f func(*Info)) {
	r.mu.Lock()
	f(&r.info)
	r.mu.Unlock()
}

// Run delivers until ctx ends, or the destination refuses a batch for good (the sink is then
// failed, and Run returns that error). start gives, for a source the saved position does not
// name, where to begin: its newest sequence now, to deliver what comes from now on.
func (r *Runner) Run(ctx context.Context, start func(source string) uint64) error {
	defer r.dest.Close()
	pos, err := r.store.Load(r.set.Name)
	if err != nil {
		return fmt.Errorf("sink %s: position: %w", r.set.Name, err)
	}
	r.pos = make(Position, len(r.set.Sources))
	for _, s := range r.set.Sources {
		if p, ok := pos[s]; ok {
			r.pos[s] = p
		} else {
			r.pos[s] = start(s)
		}
	}
	r.update(func(in *Info) { in.Position = copyPosition(r.pos) })
	if err := r.store.Save(r.set.Name, r.pos); err != nil {
		return fmt.Errorf("sink %s: position: %w", r.set.Name, err)
	}
	saved := time.Now()
	moved := false // another node took the sink over: nothing more to save
	defer func() {
		// What was passed over since the last save.
		if moved {
			return
		}
		if err := r.store.Save(r.set.Name, r.pos); errors.Is(err, ErrMoved) {
			r.log.Info("sink: another node delivers the sink now", "err", err)
		} else if err != nil {
			r.log.Error("sink: cannot save the position", "err", err)
		}
	}()
	for ctx.Err() == nil {
		next, err := r.fill(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.log.Warn("sink: reading the sources failed", "err", err)
			if sleep(ctx, r.set.Poll) != nil {
				return nil
			}
			continue
		}
		if len(r.batch) > 0 {
			if err := r.deliver(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		advanced := false
		for s, p := range next {
			advanced = advanced || p != r.pos[s]
			r.pos[s] = p
		}
		if advanced {
			r.update(func(in *Info) { in.Position = copyPosition(r.pos) })
		}
		// After every delivered batch; after passing over messages, now and then.
		if advanced && (len(r.batch) > 0 || time.Since(saved) >= saveEvery) {
			if err := r.store.Save(r.set.Name, r.pos); errors.Is(err, ErrMoved) {
				moved = true
				return fmt.Errorf("sink %s: %w", r.set.Name, err)
			} else if err != nil {
				r.log.Error("sink: cannot save the position: a restart would deliver again what was delivered since the last save", "err", err)
			}
			saved = time.Now()
		}
		if len(r.batch) == 0 && !advanced {
			if sleep(ctx, r.set.Poll) != nil {
				return nil
			}
		}
		clear(r.batch)
		r.batch = r.batch[:0]
	}
	return nil
}

// readPage is how many messages the runner reads of a source at a time, whatever its batch:
// reading one message per call, for a sink of small batches whose predicate matches little,
// would cost a round on the router for each.
const readPage = 256

// saveEvery bounds how often a position that moved only over messages the sink does not
// deliver is saved: after a crash those are read again, and match nothing again.
const saveEvery = time.Second

// fill reads the sources after the position into the batch, matched, until it holds
// BatchMax events or the sources hold nothing more, waiting up to BatchWait for a batch that
// is not full. It returns the position after what it read: after the last message it took
// into the batch, or looked at and passed over.
func (r *Runner) fill(ctx context.Context) (Position, error) {
	next := copyPosition(r.pos)
	var deadline time.Time
	for {
		var lag uint64
		for _, s := range r.set.Sources {
			if len(r.batch) >= r.set.BatchMax {
				break
			}
			page, err := r.read.Read(ctx, s, next[s], readPage)
			if err != nil {
				return next, fmt.Errorf("read %s: %w", s, err)
			}
			full := false
			for _, ev := range page.Events {
				ok, err := r.match(ev)
				if err != nil {
					return next, err
				}
				if ok {
					r.batch = append(r.batch, ev)
				}
				if ev.Kind != stream.KindMessage {
					continue // a gap goes with the message after it
				}
				next[s] = ev.Seq()
				if len(r.batch) >= r.set.BatchMax {
					full = true
					break
				}
			}
			if !full {
				next[s] = page.Next
			}
			if page.Newest > next[s] {
				lag += page.Newest - next[s]
			}
		}
		r.update(func(in *Info) { in.Lag = lag })
		if len(r.batch) >= r.set.BatchMax || len(r.batch) == 0 || r.set.BatchWait <= 0 {
			return next, nil
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(r.set.BatchWait)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return next, nil
		}
		if sleep(ctx, min(wait, r.set.Poll)) != nil {
			return next, ctx.Err()
		}
	}
}

// match reports whether ev goes to the destination: a message that matches the predicate, or a
// gap. A predicate over its cost limit fails the sink: it would cost as much on every such
// message.
func (r *Runner) match(ev *stream.Event) (bool, error) {
	p := r.set.Predicate
	if ev.Kind != stream.KindMessage || p == nil || p.MatchesAll() {
		return true, nil
	}
	r.in.Reset(ev.Msg)
	ok, err := p.Match(&r.in)
	if errors.Is(err, predicate.ErrTooCostly) {
		r.fail(err)
		return false, Permanent(err)
	}
	return ok && err == nil, nil
}

// deliver sends the batch until the destination acknowledges it, trying again with backoff for
// RetryMaxAge; past it, the batch is given up as a gap. A permanent refusal fails the sink.
func (r *Runner) deliver(ctx context.Context) error {
	first := time.Now()
	oldest := r.batch[0]
	if oldest.Msg != nil {
		r.update(func(in *Info) { in.LagSeconds = time.Since(oldest.Msg.Time).Seconds() })
	}
	for attempt := 1; ; attempt++ {
		err := r.dest.Deliver(ctx, r.batch)
		if err == nil {
			n := uint64(len(r.batch))
			r.update(func(in *Info) {
				in.Delivered += n
				in.State = StateUp
				in.LagSeconds = 0
			})
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.update(func(in *Info) {
			in.Failed++
			in.LastError = err.Error()
		})
		if IsPermanent(err) {
			r.fail(err)
			return err
		}
		wait := r.set.Backoff.Delay(attempt)
		if after := RetryAfter(err); after > 0 {
			wait = after
		}
		if time.Since(first)+wait > r.set.RetryMaxAge {
			n := messages(r.batch)
			r.log.Error("sink: a batch was given up after retry.max_age: a gap", "messages", n, "first", eventName(r.batch[0]), "err", err)
			r.update(func(in *Info) {
				in.Gaps += n
				in.State = StateUp
			})
			return nil
		}
		r.update(func(in *Info) { in.State = StateRetrying })
		r.log.Warn("sink: delivery failed; trying again", "attempt", attempt, "in", wait.Round(time.Millisecond), "err", err)
		if sleep(ctx, wait) != nil {
			return ctx.Err()
		}
	}
}

// fail marks the sink failed with err.
func (r *Runner) fail(err error) {
	r.log.Error("sink failed: it delivers nothing more until it is changed or removed", "err", err)
	r.update(func(in *Info) {
		in.State = StateFailed
		in.LastError = err.Error()
	})
}

// messages counts the messages in evs.
func messages(evs []*stream.Event) uint64 {
	var n uint64
	for _, ev := range evs {
		if ev.Kind == stream.KindMessage {
			n++
		}
	}
	return n
}

func eventName(ev *stream.Event) string {
	if ev.Msg != nil {
		return ev.Msg.ID()
	}
	return ev.Source
}

func copyPosition(p Position) Position {
	q := make(Position, len(p))
	for k, v := range p {
		q[k] = v
	}
	return q
}

// sleep waits d, or until ctx ends (its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"
)

// Backoff is the delay between reconnect attempts: exponential with full jitter.
type Backoff struct {
	// Initial is the first delay. Defaults to 100ms.
	Initial time.Duration
	// Max caps the delay. Defaults to 30s.
	Max time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	return b
}

// delay returns the wait before attempt n (n ≥ 1 failures in a row): a random duration between
// half and all of min(Max, Initial·2^(n-1)), so that many sources do not reconnect in step.
func (b Backoff) delay(n int) time.Duration {
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d/2 + rand.N(d/2+1)
}

// Info is a snapshot of a runner's state, as GET /v1/sources shows it.
type Info struct {
	Name      string
	Type      string
	Required  bool
	State     State
	LastError string
	// LastErrorAt is when LastError last happened (a retry failing the same way moves it on);
	// zero before the first error.
	LastErrorAt time.Time
	Since       time.Time // when State was entered
	Reconnects  uint64
}

// Runner runs one Source for the life of the process: it connects, reads until an error, and
// reconnects with backoff, never giving up while its context lives.
type Runner struct {
	name, typ string
	src       Source
	backoff   Backoff
	required  bool
	log       *slog.Logger

	mu   sync.Mutex // guards info; taken on state changes only, never per message
	info Info
}

// NewRunner returns a Runner for src; typ is the source's configured type, for display.
func NewRunner(name, typ string, src Source, b Backoff, required bool, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.Default()
	}
	return &Runner{
		name: name, typ: typ, src: src, backoff: b.withDefaults(), required: required,
		log:  log.With("source", name, "type", typ),
		info: Info{Name: name, Type: typ, Required: required, State: Connecting, Since: time.Now()},
	}
}

// Name is the source's name.
func (r *Runner) Name() string { return r.name }

// Info returns the current state.
func (r *Runner) Info() Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info
}

// Run runs the source until ctx is done. Each state change is reported to notify (from this
// goroutine), with the error that caused it, if any. A panic in the adapter is recovered and
// treated as a failed connection, so that one broken source restarts alone.
func (r *Runner) Run(ctx context.Context, emit Emit, notify func(State, error)) {
	failures := 0
	for ctx.Err() == nil {
		if failures == 0 {
			r.set(Connecting, nil, notify)
		}
		wasUp := false
		err := r.runOnce(ctx, emit, func() {
			wasUp = true
			failures = 0
			r.set(Up, nil, notify)
		})
		if ctx.Err() != nil {
			break
		}
		if err == nil {
			err = errors.New("source ended")
		}
		if wasUp {
			failures = 0
		}
		failures++
		r.mu.Lock()
		r.info.Reconnects++
		r.mu.Unlock()
		d, state := r.backoff.delay(failures), Reconnecting
		if errors.As(err, new(*permanentError)) {
			d, state = r.backoff.Max, Failed
		}
		r.log.Warn("source failed; reconnecting", "err", err, "in", d.Round(time.Millisecond))
		r.set(state, err, notify)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	r.set(Stopped, nil, notify)
}

func (r *Runner) runOnce(ctx context.Context, emit Emit, up func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("source panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("%s: panic: %v", r.name, p)
		}
	}()
	return r.src.Run(ctx, up, emit)
}

// set records the state s. The subscribers are told of a change of state, or of a new error in
// the same state, not of every retry that fails as the last one did. They are told first, so
// that whoever sees the new state (GET /v1/sources, /readyz) and then subscribes is not told of
// it again: only this goroutine changes the state, so reading it and writing it under two locks
// is safe.
func (r *Runner) set(s State, err error, notify func(State, error)) {
	r.mu.Lock()
	changed := r.info.State != s
	newErr := err != nil && err.Error() != r.info.LastError
	r.mu.Unlock()
	if changed || newErr {
		if s == Up {
			r.log.Info("source up")
		}
		if notify != nil {
			notify(s, err)
		}
	}
	r.mu.Lock()
	now := time.Now()
	r.info.State = s
	if err != nil {
		r.info.LastError = err.Error()
		r.info.LastErrorAt = now
	}
	if changed {
		r.info.Since = now
	}
	r.mu.Unlock()
}

// Permanent marks err as one that retrying soon will not cure (bad credentials, a missing
// exchange checked passively): the source shows the state failed and retries at the longest
// backoff only.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Delay is how long to wait before the nth attempt after n failures in a row (n ≥ 1), with
// jitter, for the defaults of the zero fields: the Runner's own schedule, for other loops that
// try again.
func (b Backoff) Delay(n int) time.Duration { return b.withDefaults().delay(n) }

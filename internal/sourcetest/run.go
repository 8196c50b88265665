package sourcetest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// Collector is an Emit that stands in for the router: it keeps every message it takes, in order.
// With a limit set it stops taking messages (Emit blocks until the limit is raised or the
// source's context ends), which is how tests hold a source mid-stream.
type Collector struct {
	mu     sync.Mutex
	msgs   []*stream.Message
	limit  int           // < 0: none
	refuse error         // not nil: Emit refuses every message with it
	wake   chan struct{} // closed and replaced on every change, for waiters
}

// NewCollector returns a Collector with no limit.
func NewCollector() *Collector {
	return &Collector{limit: -1, wake: make(chan struct{})}
}

// Emit takes m, or blocks while the collector holds limit messages. It returns ctx.Err() if ctx
// ends first, as the router does.
func (c *Collector) Emit(ctx context.Context, m *stream.Message) error {
	for {
		c.mu.Lock()
		if c.refuse != nil {
			c.mu.Unlock()
			return c.refuse
		}
		if c.limit < 0 || len(c.msgs) < c.limit {
			c.msgs = append(c.msgs, m)
			c.changedLocked()
			c.mu.Unlock()
			return nil
		}
		wake := c.wake
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// SetLimit makes Emit block once n messages are held; n < 0 removes the limit.
func (c *Collector) SetLimit(n int) {
	c.mu.Lock()
	c.limit = n
	c.changedLocked()
	c.mu.Unlock()
}

// Refuse makes Emit refuse every message from now on with err, waiting ones too, as a router
// of a process that is going away would: nothing more is taken, and the source must not count
// the refused messages as delivered.
func (c *Collector) Refuse(err error) {
	c.mu.Lock()
	c.refuse = err
	c.changedLocked()
	c.mu.Unlock()
}

func (c *Collector) changedLocked() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// Len is how many messages were taken.
func (c *Collector) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// Messages returns the messages taken so far, in order.
func (c *Collector) Messages() []*stream.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*stream.Message(nil), c.msgs...)
}

// WaitLen waits until at least n messages were taken, failing the test after timeout.
func (c *Collector) WaitLen(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() bool { return c.Len() >= n }, "%d messages (have %d)", n, c.Len)
}

// Eventually polls cond every few milliseconds until it holds, and fails the test if it still
// does not after timeout. The message is formatted with args; an argument that is a func() int
// is called at the time of failure, so the message can show the last value.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			for i, a := range args {
				if f, ok := a.(func() int); ok {
					args[i] = f()
				}
			}
			t.Fatalf("sourcetest: gave up after %v waiting for "+format, append([]any{timeout}, args...)...)
		}
		<-tick.C
	}
}

// Change is one state change reported by a Runner.
type Change struct {
	State source.State
	Err   error
	At    time.Time
}

// Running is a Source run by a source.Runner in its own goroutine.
type Running struct {
	// Runner is the runner, for its Info.
	Runner *source.Runner

	t      testing.TB
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	changes []Change
}

// TestBackoff is the short backoff Start uses, so that reconnects happen within a test.
var TestBackoff = source.Backoff{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond}

// Start runs src through a source.Runner with emit until Stop or the end of the test. The
// runner logs to the test's output.
func Start(t testing.TB, src source.Source, emit source.Emit) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := &Running{
		Runner: source.NewRunner("test", "test", src, TestBackoff, false, log),
		t:      t,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	// Waited for by Stop, which the test's cleanup calls.
	go func() {
		defer close(r.done)
		r.Runner.Run(ctx, emit, r.notify)
	}()
	t.Cleanup(r.Stop)
	return r
}

func (r *Running) notify(s source.State, err error) {
	r.mu.Lock()
	r.changes = append(r.changes, Change{State: s, Err: err, At: time.Now()})
	r.mu.Unlock()
}

// Stop cancels the runner and waits for it; the test fails if the source does not return
// within 10 s (it must release everything promptly when its context ends). Stop may be called
// more than once.
func (r *Running) Stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.t.Errorf("sourcetest: the source did not return within 10s of its context ending")
		<-r.done
	}
}

// Changes returns the state changes so far, in order.
func (r *Running) Changes() []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Change(nil), r.changes...)
}

// WaitState waits for a change to state s at index from or later in Changes, and returns its
// index. It fails the test after timeout.
func (r *Running) WaitState(t testing.TB, from int, s source.State, timeout time.Duration) int {
	t.Helper()
	idx := -1
	Eventually(t, timeout, func() bool {
		ch := r.Changes()
		for i := from; i < len(ch); i++ {
			if ch[i].State == s {
				idx = i
				return true
			}
		}
		return false
	}, "state %q after change %d (%d changes so far)", s, from, func() int { return len(r.Changes()) })
	return idx
}

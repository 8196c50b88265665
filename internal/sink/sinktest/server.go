package sinktest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
	"github.com/streamux/streamux/internal/supervisor"
)

// SourceName is the name of a Server's one source.
const SourceName = "in"

// feed is a source whose messages a test hands it.
type feed struct{ ch chan *stream.Message }

func (f *feed) Run(ctx context.Context, up func(), emit source.Emit) error {
	up()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-f.ch:
			if err := emit(ctx, m); err != nil {
				return nil
			}
		}
	}
}

// Server is a supervisor with one source, SourceName, that the test feeds: the Reader of the
// sinks a test runs.
type Server struct {
	sup  *supervisor.Supervisor
	feed *feed
	sent uint64
}

// NewServer starts a server whose history holds 100,000 messages, and stops it when the test
// ends.
func NewServer(t testing.TB) *Server { return NewServerOf(t, 100000) }

// NewServerOf starts a server whose history holds history messages, and stops it when the test
// ends.
func NewServerOf(t testing.TB, history int) *Server {
	t.Helper()
	f := &feed{ch: make(chan *stream.Message)}
	sup, err := supervisor.New([]supervisor.Source{{Name: SourceName, Type: "test", Adapter: f}},
		supervisor.Options{History: router.History{Size: history}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sup.Run(ctx) }() // waited for by the cleanup
	t.Cleanup(func() { cancel(); <-done })
	return &Server{sup: sup, feed: f}
}

// Publish hands msgs to the source, in order, and waits until its router has numbered them
// all. The router takes the messages: the test must not change them after.
func (s *Server) Publish(t testing.TB, msgs ...*stream.Message) {
	t.Helper()
	for _, m := range msgs {
		select {
		case s.feed.ch <- m:
		case <-time.After(10 * time.Second):
			t.Fatal("sinktest: the source does not take messages")
		}
	}
	s.sent += uint64(len(msgs))
	sourcetest.Eventually(t, 10*time.Second, func() bool { return s.sup.Sources()[0].Counters.LastSeq >= s.sent },
		"sinktest: %d messages routed", s.sent)
}

// Supervisor is the server's supervisor: the Reader a sink Runner reads from.
func (s *Server) Supervisor() *supervisor.Supervisor { return s.sup }

// Sent is how many messages the source took: the sequence of the last.
func (s *Server) Sent() uint64 { return s.sent }

// Running is a sink Runner that a test runs on a Server.
type Running struct {
	r    *sink.Runner
	stop context.CancelFunc
	err  chan error
}

// Run runs a sink of settings on s, delivering to d from the source's first message, until
// the test ends (or Stop). Settings default to the source SourceName, a 5ms poll and a backoff
// of 10ms to 200ms, so that a test that makes the destination fail does not wait long.
func Run(t testing.TB, s *Server, set sink.Settings, d sink.Destination) *Running {
	t.Helper()
	if set.Name == "" {
		set.Name = "test"
	}
	if set.Sources == nil {
		set.Sources = []string{SourceName}
	}
	if set.Poll == 0 {
		set.Poll = 5 * time.Millisecond
	}
	if set.Backoff == (source.Backoff{}) {
		set.Backoff = source.Backoff{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond}
	}
	r := sink.NewRunner(set, d, s.sup, &sink.MemoryStore{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	run := &Running{r: r, stop: cancel, err: make(chan error, 1)}
	go func() { run.err <- r.Run(ctx, func(string) uint64 { return 0 }) }() // waited for by Stop
	t.Cleanup(func() { _ = run.Stop() })
	return run
}

// Info is the sink's, as GET /v1/sinks shows it.
func (r *Running) Info() sink.Info { return r.r.Info() }

// Stop stops the sink, waits for its Run (which closes the destination) and returns Run's
// error. It may be called more than once.
func (r *Running) Stop() error {
	r.stop()
	err := <-r.err
	r.err <- err
	return err
}

// WaitPosition waits until the sink is done with the source's message seq.
func (r *Running) WaitPosition(t testing.TB, seq uint64, timeout time.Duration) {
	t.Helper()
	r.wait(t, timeout, func(in sink.Info) bool { return in.Position[SourceName] >= seq }, fmt.Sprintf("the sink at %d", seq))
}

// WaitState waits until the sink is in state.
func (r *Running) WaitState(t testing.TB, state string, timeout time.Duration) {
	t.Helper()
	r.wait(t, timeout, func(in sink.Info) bool { return in.State == state }, "the sink "+state)
}

// wait polls the sink's Info until cond holds, failing the test after timeout with the Info.
func (r *Running) wait(t testing.TB, timeout time.Duration, cond func(sink.Info) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for in := r.Info(); !cond(in); in = r.Info() {
		if time.Now().After(deadline) {
			t.Fatalf("sinktest: gave up after %v waiting for %s: %+v", timeout, what, in)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Failed waits for the sink to fail and returns its error.
func (r *Running) Failed(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-r.err:
		r.err <- err
		if err == nil {
			t.Fatal("sinktest: the sink stopped without an error")
		}
		return err
	case <-time.After(timeout):
		t.Fatalf("sinktest: the sink did not fail in %v: %+v", timeout, r.Info())
		return nil
	}
}

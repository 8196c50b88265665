package supervisor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// fixed is a source that emits its messages once, then waits for its context to end.
type fixed struct {
	bodies []string
	done   chan struct{} // closed once every message was accepted
}

func (f *fixed) Run(ctx context.Context, up func(), emit source.Emit) error {
	up()
	for _, b := range f.bodies {
		if err := emit(ctx, &stream.Message{Key: "k", Body: []byte(b), Time: time.Now()}); err != nil {
			return nil
		}
	}
	close(f.done)
	<-ctx.Done()
	return nil
}

// A resume whose backlog holds a message that the predicate cannot afford is cut as a live
// message would cut it: the backlog before that message is sent, the stream ends with
// output.ErrTooCostly, and the source counts it.
func TestBacklogTooCostly(t *testing.T) {
	t.Parallel()
	src := &fixed{done: make(chan struct{}), bodies: []string{
		`{"s":"aaa"}`, `{"s":"` + strings.Repeat("a", 10_000) + `"}`, `{"s":"aa"}`,
	}}
	s, err := New([]Source{{Name: "s", Type: "fixed", Adapter: src}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }() // waited for below
	defer func() { cancel(); <-done }()
	<-src.done

	p, err := predicate.Compile(`body.s.matches("(.*.*.*.*.*.*.*.*){1000}x") || body.s.size() < 10`, predicate.Limits{MaxCost: 10_000_000})
	if err != nil {
		t.Fatal(err)
	}
	// Accepted before History was asked, so routed before it answers.
	if history, err := s.History(ctx, "s"); err != nil || len(history) != 3 {
		t.Fatalf("history: %d messages, %v", len(history), err)
	}
	sub, err := s.Subscribe(ctx, Request{Sources: []string{"s"}, Predicate: p, From: map[string]uint64{"s": 0}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if !errors.Is(sub.Out.Err(), output.ErrTooCostly) {
		t.Errorf("the subscription ended with %v, want %v", sub.Out.Err(), output.ErrTooCostly)
	}
	if len(sub.Backlog) != 1 || sub.Backlog[0].Seq() != 1 {
		t.Errorf("backlog of %d events, want the first message only", len(sub.Backlog))
	}
	if k := s.Sources()[0].Counters; k.TooCostly != 1 {
		t.Errorf("predicate_too_costly %d, want 1", k.TooCostly)
	}
}

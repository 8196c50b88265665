package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// counting is a source that, once started, emits numbered messages until its context ends, then
// one more on its way out, as a source that flushes what it buffered does. It counts the
// messages its router accepted.
type counting struct {
	ready    chan struct{} // closed once up has returned: the router has told its clients
	start    chan struct{}
	accepted atomic.Int64
	last     chan error // the result of the emit on the way out
}

func newCounting() *counting {
	return &counting{ready: make(chan struct{}), start: make(chan struct{}), last: make(chan error, 1)}
}

func (c *counting) Run(ctx context.Context, up func(), emit source.Emit) error {
	up()
	close(c.ready)
	select {
	case <-c.start:
	case <-ctx.Done():
		return nil
	}
	for n := 0; ; n++ {
		if emit(ctx, &stream.Message{Key: "k", Body: fmt.Appendf(nil, `{"n":%d}`, n), Time: time.Now()}) != nil {
			break
		}
		c.accepted.Add(1)
	}
	err := emit(context.Background(), &stream.Message{Key: "last", Body: []byte(`{}`), Time: time.Now()})
	if err == nil {
		c.accepted.Add(1)
	}
	c.last <- err
	return nil
}

// On shutdown the routers outlive their sources: what a source emits up to its very end is
// routed, and its last state reaches the clients, before the routers end the streams.
func TestRoutersStopAfterSources(t *testing.T) {
	t.Parallel()
	a, b := newCounting(), newCounting()
	sup, err := New([]Source{{Name: "a", Type: "test", Adapter: a}, {Name: "b", Type: "test", Adapter: b}}, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- sup.Run(ctx) }() // waited for below
	<-a.ready
	<-b.ready
	sub, err := sup.Subscribe(ctx, Request{Policy: output.Drop, Queue: output.Limits{Events: 1 << 20, Bytes: 1 << 40}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	close(a.start)
	close(b.start)
	deadline := time.Now().Add(10 * time.Second)
	for a.accepted.Load() < 2000 || b.accepted.Load() < 2000 {
		if time.Now().After(deadline) {
			t.Fatalf("the sources emitted %d and %d messages", a.accepted.Load(), b.accepted.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, c := range []*counting{a, b} {
		if err := <-c.last; err != nil {
			t.Errorf("the emit on a source's way out failed: %v", err)
		}
	}
	accepted := uint64(a.accepted.Load() + b.accepted.Load())
	routed := uint64(0)
	for _, si := range sup.Sources() {
		routed += si.Counters.Received
	}
	if routed != accepted {
		t.Errorf("the routers routed %d of the %d messages they accepted", routed, accepted)
	}
	// Each router offered the subscription every message, then the source's stopped state, and
	// then ended it.
	c := sub.Out.Counters()
	if c.Matched != accepted || c.Dropped != 0 || c.Depth != int(accepted)+2 || !errors.Is(sub.Out.Err(), output.ErrShutdown) {
		t.Errorf("the subscription matched %d, dropped %d, holds %d events, ended with %v; want %d messages and 2 status events",
			c.Matched, c.Dropped, c.Depth, sub.Out.Err(), accepted)
	}
}

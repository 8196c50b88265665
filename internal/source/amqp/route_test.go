package amqp_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// TestAfterRouteRouterStoppedFirst: with ack after_route and a real router whose input is kept
// full (many subscriptions make routing slower than the broker's deliveries), stopping the
// router while the source still consumes, the opposite of the supervisor's order, loses nothing:
// every message the router accepted is routed (and so may be acknowledged), and every other one
// comes to the next consumer of the queue.
func TestAfterRouteRouterStoppedFirst(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, sourcetest.Options{AtLeastOnce: true})
	const total = 5000

	r := router.New("amqp", router.History{Size: 2 * total}, slog.New(slog.DiscardHandler))
	rctx, stopRouter := context.WithCancel(context.Background())
	routed := make(chan struct{})
	go func() { defer close(routed); r.Run(rctx) }() // waited for below
	defer func() { stopRouter(); <-routed }()
	// Distinct predicates are evaluated one by one, and every subscription's small queue is
	// soon full: a few hundred µs of work per message.
	for i := range 1000 {
		p, err := predicate.Compile(fmt.Sprintf(`body.i != %d`, -1-i), predicate.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Add(context.Background(), output.New(uint64(i+1), output.Drop, output.Limits{Events: 4}), p, router.Resume{}); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu       sync.Mutex
		accepted []int // the numbers of the messages whose Emit returned nil, in order
	)
	emit := func(ctx context.Context, m *stream.Message) error {
		n := sourcetest.Number(m) // read before m is the router's
		err := r.Emit(ctx, m)
		if err == nil {
			mu.Lock()
			accepted = append(accepted, n)
			mu.Unlock()
		}
		return err
	}
	nAccepted := func() int { mu.Lock(); defer mu.Unlock(); return len(accepted) }
	first := sourcetest.Start(t, fx.Source(t), emit)
	first.WaitState(t, 0, source.Up, wait) // the queue is declared and bound
	msgs := sourcetest.Numbered(0, total, false)
	for i := 0; i < total; i += 1000 {
		if err := fx.Publish(ctxT(t), msgs[i:i+1000]...); err != nil {
			t.Fatal(err)
		}
	}
	// The router is stopped with its input at least half full, which is what this test is
	// about: a router that keeps up would leave it empty, and the test would prove nothing.
	queued := func() int { return nAccepted() - int(r.Counters().Received) }
	sourcetest.Eventually(t, wait, func() bool { return nAccepted() >= 1200 && queued() >= router.InputSize/2 },
		"1200 messages accepted and half the router's input full (%d queued)", queued)
	inInput := queued()
	stopRouter()
	<-routed
	first.Stop()

	mu.Lock()
	took := append([]int(nil), accepted...)
	mu.Unlock()
	if c := r.Counters(); c.Received != uint64(len(took)) {
		t.Fatalf("the router accepted %d messages and routed %d", len(took), c.Received)
	}
	t.Logf("the router routed all %d messages it accepted, about %d of them still in its input when it was stopped", len(took), inInput)
	for i, n := range took {
		if n != i {
			t.Fatalf("accepted message %d is number %d: one consumer of a fresh queue gets them in order", i, n)
		}
	}

	// What the first source acknowledged is exactly what its router routed: the rest comes again.
	second := sourcetest.NewCollector()
	sourcetest.Start(t, fx.Source(t), second.Emit).WaitState(t, 0, source.Up, wait)
	seen := make(map[int]bool, total)
	for _, n := range took {
		seen[n] = true
	}
	missing := func() int {
		for _, m := range second.Messages() {
			seen[sourcetest.Number(m)] = true
		}
		return total - len(seen)
	}
	sourcetest.Eventually(t, wait, func() bool { return missing() == 0 }, "every message (%d missing)", missing)
	again := 0
	for _, m := range second.Messages() {
		if sourcetest.Number(m) < len(took) {
			again++
		}
	}
	if again > 0 {
		t.Errorf("%d messages the router had routed came again: they were not acknowledged", again)
	}
	t.Logf("the second source received the other %d", second.Len())
}

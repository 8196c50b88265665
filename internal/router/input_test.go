package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// everything returns an output that keeps every event a test can produce.
func everything(id uint64) *output.Output {
	return output.New(id, output.Drop, output.Limits{Events: 1 << 20, Bytes: 1 << 40})
}

// takeAll empties the queue of a live output that no router is offering to, as a transport's
// pump would.
func takeAll(out *output.Output) []*stream.Event {
	if out.Depth() == 0 {
		return nil
	}
	var evs []*stream.Event
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_ = out.Pump(ctx, writerFunc(func(batch []*stream.Event) error {
		evs = append(evs, batch...)
		if out.Depth() == 0 {
			cancel()
		}
		return nil
	}), nil, output.PumpOptions{MaxBatch: 1 << 16})
	return evs
}

// numbered is message n of producer p.
func numbered(p, n int) *stream.Message {
	return &stream.Message{Key: fmt.Sprint(p), Body: fmt.Appendf(nil, `{"p":%d,"n":%d}`, p, n), Time: time.Now()}
}

func number(t *testing.T, ev *stream.Event) (p, n int) {
	t.Helper()
	if _, err := fmt.Sscanf(string(ev.Msg.Payload()), `{"p":%d,"n":%d}`, &p, &n); err != nil {
		t.Fatalf("event %s: %v", ev.JSON(), err)
	}
	return p, n
}

// A message whose Emit returned nil is routed, even when the router is stopped with its input
// full and producers waiting for room; Emit returns ErrStopped from then on, never nil.
func TestAcceptedIsRoutedWhenStopped(t *testing.T) {
	t.Parallel()
	// More than the producers have time to emit: producer 1, whose count stops the router,
	// may be scheduled far less than the three others (93,069 messages were seen with 1 << 16).
	const history = 1 << 20
	for round := range 20 {
		r := New("src", History{Size: history}, nil)
		out := everything(1)
		r.add(out, nil) // before Run: the table is the test's until then

		// Fill the input before the router runs, so it is full when the stop comes.
		for n := range InputSize {
			if err := r.Emit(context.Background(), numbered(0, n)); err != nil {
				t.Fatal(err)
			}
		}
		const producers = 4
		accepted := make([]int, producers+1) // messages accepted per producer, in order
		accepted[0] = InputSize
		errs := make([]error, producers+1)
		ctx, cancel := context.WithCancel(context.Background())
		// Odd rounds stop mid-stream: producer 1 stops the router once it has had a random
		// number of its messages accepted, which the router has to make room for first.
		stopAfter := -1
		if round%2 == 1 {
			stopAfter = 1 + rand.IntN(InputSize)
		}
		var wg sync.WaitGroup
		for p := 1; p <= producers; p++ {
			wg.Go(func() { // a producer that emits until refused; waited for by wg
				for n := 0; ; n++ {
					if err := r.Emit(context.Background(), numbered(p, n)); err != nil {
						errs[p] = err
						return
					}
					accepted[p]++
					if p == 1 && accepted[p] == stopAfter {
						cancel()
					}
				}
			})
		}
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }() // waited for below
		if round%2 == 0 {
			cancel() // stop at once, the input full and the producers waiting
		}
		<-done
		cancel() // already called; vet cannot see that producer 1 did
		wg.Wait()
		for p := 1; p <= producers; p++ {
			if !errors.Is(errs[p], ErrStopped) {
				t.Fatalf("round %d: producer %d ended with %v, want ErrStopped", round, p, errs[p])
			}
		}
		// Everything accepted was routed, in each producer's order (the history shows it), and
		// offered to the subscription before its output ended.
		next := make([]int, producers+1)
		evs := r.hist.after(0, r.seq).Events // Run has returned: the history is the test's
		if uint64(len(evs)) != r.seq {
			t.Fatalf("round %d: the history holds %d of %d messages", round, len(evs), r.seq)
		}
		for i, ev := range evs {
			if ev.Seq() != uint64(i+1) {
				t.Fatalf("round %d: event %d has seq %d", round, i, ev.Seq())
			}
			p, n := number(t, ev)
			if n != next[p] {
				t.Fatalf("round %d: producer %d: got message %d, want %d", round, p, n, next[p])
			}
			next[p]++
		}
		total := 0
		for p := range next {
			total += accepted[p]
			if next[p] != accepted[p] {
				t.Fatalf("round %d: producer %d had %d messages accepted, %d routed", round, p, accepted[p], next[p])
			}
		}
		if c := r.Counters(); c.Received != uint64(total) || c.LastSeq != uint64(total) || c.Queued != uint64(total) || c.Subscriptions != 0 {
			t.Fatalf("round %d: counters %+v after %d accepted", round, c, total)
		}
		if c := out.Counters(); c.Matched != uint64(total) || c.Depth != total || !errors.Is(out.Err(), output.ErrShutdown) {
			t.Fatalf("round %d: output %+v, ended with %v, after %d accepted", round, c, out.Err(), total)
		}
		// The input is empty now, yet a stopped router takes nothing more.
		for range 100 {
			if err := r.Emit(context.Background(), numbered(0, 0)); !errors.Is(err, ErrStopped) {
				t.Fatalf("round %d: Emit after stop returned %v, want ErrStopped", round, err)
			}
		}
		if _, err := r.History(context.Background()); !errors.Is(err, ErrStopped) {
			t.Fatalf("History after stop: %v", err)
		}
	}
}

// A full input blocks Emit (back-pressure) until the router makes room or ctx ends.
func TestFullInputBlocksEmit(t *testing.T) {
	t.Parallel()
	r := New("src", History{Size: 10}, nil)
	for n := range InputSize {
		if err := r.Emit(context.Background(), numbered(0, n)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Emit(ctx, numbered(0, InputSize)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Emit into a full input returned %v, want the context's error", err)
	}
	blocked := make(chan error, 1)
	go func() { blocked <- r.Emit(context.Background(), numbered(0, InputSize)) }() // waited for below
	// That this Emit has not returned after 20 ms can only be watched for a while: a correct
	// router never fails here, however slow the machine, and the DeadlineExceeded above is the
	// deterministic proof that a full input blocks.
	select {
	case err := <-blocked:
		t.Fatalf("Emit into a full input returned %v before the router ran", err)
	case <-time.After(20 * time.Millisecond):
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(rctx) }() // waited for below
	defer func() { stop(); <-done }()
	if err := <-blocked; err != nil {
		t.Fatalf("Emit once the router ran: %v", err)
	}
	if _, err := r.History(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := r.Counters(); c.Received != InputSize+1 {
		t.Fatalf("received %d, want %d", c.Received, InputSize+1)
	}
}

// A control operation sees every message accepted before it was sent: History and a resumed
// subscription's backlog hold them, and a status event is queued after them.
func TestControlFollowsAcceptedMessages(t *testing.T) {
	t.Parallel()
	r := start(t, 1000)
	ctx := context.Background()
	live := everything(1)
	if _, err := r.Add(ctx, live, nil, Resume{}); err != nil {
		t.Fatal(err)
	}
	for round := range 50 {
		n := 1 + rand.IntN(InputSize)
		last := r.Counters().LastSeq + uint64(n) // everything before is routed (Remove below)
		for i := range n {
			if err := r.Emit(ctx, numbered(0, i)); err != nil {
				t.Fatal(err)
			}
		}
		r.Notify(source.Reconnecting, errors.New("test"))
		evs := takeAll(live)
		if len(evs) != n+1 || evs[n].Kind != stream.KindStatus || evs[n-1].Seq() != last {
			t.Fatalf("round %d: %d messages then a status: got %d events, the last %s", round, n, len(evs), evs[len(evs)-1].JSON())
		}
		for i := range n {
			if err := r.Emit(ctx, numbered(0, i)); err != nil {
				t.Fatal(err)
			}
		}
		last += uint64(n)
		hist, err := r.History(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := hist[len(hist)-1].Seq(); got != last {
			t.Fatalf("round %d: history ends at %d, want %d", round, got, last)
		}
		out := everything(uint64(100 + round))
		b, err := r.Add(ctx, out, nil, Resume{After: last - 1, Set: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Events) != 1 || b.Events[0].Seq() != last || b.Last != last {
			t.Fatalf("round %d: backlog after %d: %d events, last %d", round, last-1, len(b.Events), b.Last)
		}
		out.Close(output.ErrClientGone)
		if err := r.Remove(ctx, out.ID()); err != nil {
			t.Fatal(err)
		}
		takeAll(live)
	}
}

// Subscriptions that join while messages flow through a full input see every message after
// their resume point exactly once: the backlog, then live events, with no gap and no repeat.
func TestAddWhileInputFullHasNoGapNoRepeat(t *testing.T) {
	t.Parallel()
	r := start(t, 1<<16) // more than all the messages: a backlog is never cut short
	ctx := context.Background()
	// The producer emits as many messages as it is granted, then says it has finished them.
	// finished holds one, for a test that fails half-way does not receive it.
	grants, finished, produced := make(chan int), make(chan struct{}, 1), make(chan struct{})
	total := 0     // messages accepted; the producer's, read once it has finished a batch
	var perr error // the producer's error, read once produced is closed
	go func() {    // the producer; the test waits for it through produced
		defer close(produced)
		for n := range grants {
			for range n {
				if perr = r.Emit(ctx, numbered(0, total)); perr != nil {
					return // the test gives up on finished
				}
				total++
			}
			finished <- struct{}{}
		}
	}()
	defer func() { close(grants); <-produced }() // first, should the test fail half-way
	type sub struct {
		out   *output.Output
		after uint64
		b     Backlog
	}
	var subs []sub
	for i := range 30 {
		s := sub{out: everything(uint64(i + 1))}
		back := uint64(0)
		if i%4 >= 2 {
			back = uint64(rand.IntN(500))
		}
		if i%2 == 0 {
			// Half join behind a full input and a producer waiting for room: the router is
			// held (a control operation that waits) while the producer fills its input.
			s.after, s.b = addBehindFullInput(t, r, s.out, back, grants)
		} else {
			// The others join wherever the producer has got to in a batch of random size.
			grants <- 1 + rand.IntN(InputSize)
			s.after = r.Counters().LastSeq
			s.after -= min(s.after, back)
			b, err := r.Add(ctx, s.out, nil, Resume{After: s.after, Set: true})
			if err != nil {
				t.Fatal(err)
			}
			s.b = b
		}
		subs = append(subs, s)
		select {
		case <-finished:
		case <-produced:
			t.Fatalf("the producer: %v", perr)
		}
	}
	if _, err := r.History(ctx); err != nil { // the last message is routed
		t.Fatal(err)
	}
	for _, s := range subs {
		want := s.after + 1
		for _, ev := range append(s.b.Events, takeAll(s.out)...) {
			if ev.Seq() != want {
				t.Fatalf("subscription resumed after %d (backlog to %d): got seq %d, want %d", s.after, s.b.Last, ev.Seq(), want)
			}
			want++
		}
		if want != uint64(total)+1 {
			t.Fatalf("subscription resumed after %d: ends before %d, want %d", s.after, want, total+1)
		}
	}
}

// addBehindFullInput adds out, resuming back messages before the last one routed, while the
// router's input is full and the producer waits for room: a control operation holds the
// router, the producer is granted more messages than the input holds, Add is called once the
// input is full, and the router is let go. It returns the resume point and the backlog.
func addBehindFullInput(t *testing.T, r *Router, out *output.Output, back uint64, grants chan<- int) (uint64, Backlog) {
	t.Helper()
	ctx := context.Background()
	held, release, holding := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() { holding <- r.do(ctx, func() { close(held); <-release }) }() // waited for by let
	let := sync.OnceFunc(func() {
		close(release)
		if err := <-holding; err != nil {
			t.Errorf("holding the router: %v", err)
		}
	})
	defer let()
	<-held
	grants <- InputSize + 1 + rand.IntN(100)
	sourcetest.Eventually(t, 10*time.Second, func() bool { return len(r.in) == cap(r.in) }, "the producer to fill the router's input")
	after := r.Counters().LastSeq // the router is held: nothing is routed meanwhile
	after -= min(after, back)
	var b Backlog
	added := make(chan error, 1)
	go func() { // Add waits for the router, which is held; waited for just below
		var err error
		b, err = r.Add(ctx, out, nil, Resume{After: after, Set: true})
		added <- err
	}()
	let()
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	return after, b
}

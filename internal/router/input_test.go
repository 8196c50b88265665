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
	if _, err := fmt.Sscanf(string(ev.Msg.Body), `{"p":%d,"n":%d}`, &p, &n); err != nil {
		t.Fatalf("event %s: %v", ev.JSON(), err)
	}
	return p, n
}

// A message whose Emit returned nil is routed, even when the router is stopped with its input
// full and producers waiting for room; Emit returns ErrStopped from then on, never nil.
func TestAcceptedIsRoutedWhenStopped(t *testing.T) {
	t.Parallel()
	const history = 1 << 16 // more than the producers have time to emit
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
		var wg sync.WaitGroup
		for p := 1; p <= producers; p++ {
			wg.Go(func() { // a producer that emits until refused; waited for by wg
				for n := 0; ; n++ {
					if err := r.Emit(context.Background(), numbered(p, n)); err != nil {
						errs[p] = err
						return
					}
					accepted[p]++
				}
			})
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }() // waited for below
		if round%2 == 0 {
			cancel() // stop at once, the input full and the producers waiting
		} else {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) // stop mid-stream
			cancel()
		}
		<-done
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
	const total = 20000
	r := start(t, total)
	ctx := context.Background()
	produced := make(chan struct{})
	go func() { // the producer; the test waits for it through produced
		defer close(produced)
		for n := range total {
			if err := r.Emit(ctx, numbered(0, n)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	type sub struct {
		out   *output.Output
		after uint64
		b     Backlog
	}
	var subs []sub
	for i := 0; i < 50; i++ {
		select {
		case <-produced:
		default:
			after := r.Counters().LastSeq
			if i%2 == 1 && after > 0 {
				after -= uint64(rand.IntN(int(min(after, 500))))
			}
			s := sub{out: everything(uint64(i + 1)), after: after}
			b, err := r.Add(ctx, s.out, nil, Resume{After: after, Set: true})
			if err != nil {
				t.Fatal(err)
			}
			s.b = b
			subs = append(subs, s)
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			continue
		}
		break
	}
	<-produced
	if _, err := r.History(ctx); err != nil { // the last message is routed
		t.Fatal(err)
	}
	if len(subs) < 5 {
		t.Logf("only %d subscriptions joined while messages flowed", len(subs))
	}
	for _, s := range subs {
		want := s.after + 1
		for _, ev := range append(s.b.Events, takeAll(s.out)...) {
			if ev.Seq() != want {
				t.Fatalf("subscription resumed after %d (backlog to %d): got seq %d, want %d", s.after, s.b.Last, ev.Seq(), want)
			}
			want++
		}
		if want != total+1 {
			t.Fatalf("subscription resumed after %d: ends before %d, want %d", s.after, want, total+1)
		}
	}
}

package sink_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/sequence"
	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sink/sinktest"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// server is sinktest's server, with history messages of history, fed numbered messages.
type server struct {
	*sinktest.Server
	next int
}

func newServer(t *testing.T, history int) *server {
	t.Helper()
	return &server{Server: sinktest.NewServerOf(t, history)}
}

// publish hands n numbered messages to the source, n from where the last call stopped, and
// waits until its router has numbered them.
func (s *server) publish(t *testing.T, n int) {
	t.Helper()
	msgs := make([]*stream.Message, n)
	for i := range msgs {
		msgs[i] = &stream.Message{Key: fmt.Sprint(s.next % 3), Body: fmt.Appendf(nil, `{"n":%d}`, s.next), Time: time.Now()}
		s.next++
	}
	s.Publish(t, msgs...)
}

// dest is a test destination: it records what it acknowledged, and refuses as refuse says.
type dest struct {
	mu      sync.Mutex
	batches [][]*stream.Event
	tries   int
	refuse  func(try int, evs []*stream.Event) error
	closed  bool
}

func (d *dest) Deliver(ctx context.Context, evs []*stream.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tries++
	if d.refuse != nil {
		if err := d.refuse(d.tries, evs); err != nil {
			return err
		}
	}
	d.batches = append(d.batches, append([]*stream.Event(nil), evs...))
	return nil
}

func (d *dest) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	return nil
}

// numbers are the body numbers of the messages acknowledged, in order, and the gaps' counts.
func (d *dest) numbers(t *testing.T) (ns []int, gaps []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, b := range d.batches {
		for _, ev := range b {
			if ev.Kind != stream.KindMessage {
				gaps = append(gaps, string(ev.JSON()))
				continue
			}
			var v struct{ N int }
			if err := json.Unmarshal(ev.Msg.Payload(), &v); err != nil {
				t.Fatal(err)
			}
			ns = append(ns, v.N)
		}
	}
	return ns, gaps
}

func (d *dest) sizes() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	var s []int
	for _, b := range d.batches {
		s = append(s, len(b))
	}
	return s
}

// running is a Runner run by a test.
type running struct {
	r    *sink.Runner
	stop func()
	err  chan error
}

func run(t *testing.T, s *server, set sink.Settings, d sink.Destination, store sink.PositionStore) *running {
	t.Helper()
	if set.Sources == nil {
		set.Sources = []string{"in"}
	}
	if set.Poll == 0 {
		set.Poll = 5 * time.Millisecond
	}
	r := sink.NewRunner(set, d, s.Supervisor(), store, nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, func(string) uint64 { return 0 }) }() // waited for by stop
	var once sync.Once
	var err error
	stop := func() {
		once.Do(func() {
			cancel()
			err = <-errc
			errc <- err
		})
	}
	t.Cleanup(stop)
	return &running{r: r, stop: stop, err: errc}
}

// A destination that refuses half its deliveries (and answers some slowly) gets every
// matching message, in order, in batches no larger than the sink's; what comes twice is a
// batch tried again whole.
func TestRunnerDeliversInOrderThroughFailures(t *testing.T) {
	s := newServer(t, 10000)
	p, err := predicate.Compile(`body.n % 2 == 0`, predicate.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	d := &dest{refuse: func(int, []*stream.Event) error {
		if rand.IntN(2) == 0 {
			return sink.Retry(errors.New("503"), time.Millisecond)
		}
		return nil
	}}
	r := run(t, s, sink.Settings{Name: "even", Predicate: p, BatchMax: 7, BatchWait: 2 * time.Millisecond,
		Backoff: source.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}}, d, &sink.MemoryStore{})
	s.publish(t, 1000)
	sourcetest.Eventually(t, 30*time.Second, func() bool { return r.r.Info().Position["in"] == 1000 }, "the sink at 1000 (%d)", func() int { return int(r.r.Info().Position["in"]) })
	ns, gaps := d.numbers(t)
	if len(gaps) != 0 {
		t.Errorf("gaps: %v", gaps)
	}
	if len(ns) != 500 {
		t.Fatalf("%d messages delivered, want 500", len(ns))
	}
	for i, n := range ns {
		if n != 2*i {
			t.Fatalf("message %d is %d", i, n)
		}
	}
	for _, n := range d.sizes() {
		if n > 7 {
			t.Errorf("a batch of %d", n)
		}
	}
	in := r.r.Info()
	if in.Delivered != 500 || in.Failed == 0 || in.State != sink.StateUp || in.Lag != 0 {
		t.Errorf("info %+v", in)
	}
}

// The position is saved as batches are acknowledged: a sink started again with the same store
// goes on after the last acknowledged batch, with nothing missed.
func TestRunnerResumesFromTheSavedPosition(t *testing.T) {
	s := newServer(t, 10000)
	dir, err := sequence.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	store := sink.FileStore{Dir: dir}
	// The first sink acknowledges every batch that ends by seq 300, then is stopped while the
	// batch that goes past it is on its way. Batches are cut by what the history holds when
	// the sink reads, so where they end is not known in advance: the test waits for the held
	// batch, and checks the position against what was acknowledged.
	held, release := make(chan struct{}), make(chan struct{})
	var holding sync.Once
	first := &dest{refuse: func(_ int, evs []*stream.Event) error {
		if evs[len(evs)-1].Seq() > 300 {
			holding.Do(func() { close(held) })
			<-release
			return errors.New("stopped")
		}
		return nil
	}}
	r1 := run(t, s, sink.Settings{Name: "resume", BatchMax: 10}, first, store)
	s.publish(t, 1000)
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatalf("the first sink did not reach seq 300: %+v", r1.r.Info())
	}
	go func() { time.Sleep(50 * time.Millisecond); close(release) }() // while r1.stop waits
	r1.stop()
	a, _ := first.numbers(t)
	saved, err := store.Load("resume")
	if err != nil || len(a) == 0 || saved["in"] != uint64(len(a)) {
		t.Fatalf("saved %v, %v; want in:%d, the last of %d acknowledged", saved, err, len(a), len(a))
	}
	second := &dest{}
	r2 := run(t, s, sink.Settings{Name: "resume", BatchMax: 10}, second, store)
	sourcetest.Eventually(t, 10*time.Second, func() bool { return r2.r.Info().Position["in"] == 1000 }, "the second at 1000")
	b, _ := second.numbers(t)
	all := append(a, b...)
	if len(all) != 1000 {
		t.Fatalf("delivered %d messages in all (%d, then %d); want 1000", len(all), len(a), len(b))
	}
	for i, n := range all {
		if n != i {
			t.Fatalf("message %d is %d: the second began at %d after the first's %d", i, n, b[0], len(a))
		}
	}
}

// A destination that refuses for good fails the sink; one that keeps refusing for a passing
// reason has its batch given up after retry.max_age, as a gap, and the sink goes on.
func TestRunnerFailsAndGivesUp(t *testing.T) {
	s := newServer(t, 10000)
	d := &dest{refuse: func(int, []*stream.Event) error { return sink.Permanent(errors.New("410 gone")) }}
	r := run(t, s, sink.Settings{Name: "gone"}, d, &sink.MemoryStore{})
	s.publish(t, 3)
	var err error
	select {
	case err = <-r.err:
		r.err <- err
	case <-time.After(10 * time.Second):
		t.Fatal("the sink did not fail")
	}
	if in := r.r.Info(); !sink.IsPermanent(err) || in.State != sink.StateFailed || in.LastError != "410 gone" || in.Position["in"] != 0 {
		t.Errorf("%v, info %+v", err, in)
	}

	d2 := &dest{refuse: func(try int, _ []*stream.Event) error {
		if try <= 3 {
			return sink.Retry(errors.New("timeout"), 0)
		}
		return nil
	}}
	r2 := run(t, s, sink.Settings{Name: "patient", RetryMaxAge: 20 * time.Millisecond,
		Backoff: source.Backoff{Initial: 15 * time.Millisecond, Max: 15 * time.Millisecond}}, d2, &sink.MemoryStore{})
	sourcetest.Eventually(t, 10*time.Second, func() bool { return r2.r.Info().Position["in"] == 3 }, "the sink at 3")
	ns, _ := d2.numbers(t)
	if in := r2.r.Info(); in.Gaps != 1 || len(ns) != 2 || ns[0] != 1 {
		t.Errorf("delivered %v, info %+v; want the first given up as a gap, then 1 and 2", ns, in)
	}
}

// What the history no longer holds when the sink gets to it is a gap in front of what follows.
func TestRunnerHistoryGap(t *testing.T) {
	s := newServer(t, 10)
	s.publish(t, 25)
	sourcetest.Eventually(t, 5*time.Second, func() bool { return s.Supervisor().Sources()[0].Counters.LastSeq == 25 }, "25 routed")
	d := &dest{}
	r := run(t, s, sink.Settings{Name: "late", BatchMax: 100}, d, &sink.MemoryStore{})
	sourcetest.Eventually(t, 10*time.Second, func() bool { return r.r.Info().Position["in"] == 25 }, "the sink at 25")
	ns, gaps := d.numbers(t)
	if len(gaps) != 1 || gaps[0] != `{"type":"gap","source":"in","missed":15,"reason":"history"}` || len(ns) != 10 || ns[0] != 15 {
		t.Errorf("gaps %v, messages %v", gaps, ns)
	}
}

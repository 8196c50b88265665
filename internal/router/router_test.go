package router

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/sequence"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustCompile(tb testing.TB, src string) *predicate.Predicate {
	tb.Helper()
	p, err := predicate.Compile(src, predicate.Limits{})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func message(key string, n int) *stream.Message {
	return &stream.Message{Key: key, Body: fmt.Appendf(nil, `{"n":%d,"amount":%d.5,"tier":"gold"}`, n, n%200), Time: time.Now()}
}

// start runs a router for the test and stops it at the end.
func start(t *testing.T, history int) *Router {
	r := New("src", History{Size: history}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// drain takes the events queued in out until it is empty or has ended (a pump writes nothing
// of an output that has ended).
func drain(out *output.Output) []*stream.Event {
	var evs []*stream.Event
	for out.Depth() > 0 && out.Err() == nil {
		if ev := recv(out); ev != nil {
			evs = append(evs, ev)
		}
	}
	return evs
}

// recv takes one event from the output's queue, as a transport's pump would.
func recv(out *output.Output) *stream.Event {
	var got *stream.Event
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_ = out.Pump(ctx, writerFunc(func(evs []*stream.Event) error {
		got = evs[0]
		cancel()
		return errStop
	}), nil, output.PumpOptions{MaxBatch: 1})
	return got
}

type writerFunc func([]*stream.Event) error

func (f writerFunc) Write(evs []*stream.Event) error { return f(evs) }
func (f writerFunc) Heartbeat() error                { return nil }

var errStop = fmt.Errorf("stop")

func TestRouteMatchesAndNumbers(t *testing.T) {
	r := start(t, 100)
	ctx := context.Background()
	even := output.New(1, output.Disconnect, output.Limits{})
	all := output.New(2, output.Disconnect, output.Limits{})
	if _, err := r.Add(ctx, even, mustCompile(t, `key == "even" && body.n > 2`), Resume{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(ctx, all, mustCompile(t, ``), Resume{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		key := "odd"
		if i%2 == 0 {
			key = "even"
		}
		if err := r.Emit(ctx, message(key, i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.History(ctx); err != nil { // a round trip: everything emitted is routed
		t.Fatal(err)
	}
	var got []uint64
	for _, ev := range drain(even) {
		got = append(got, ev.Seq())
	}
	if fmt.Sprint(got) != "[4 6 8 10]" {
		t.Fatalf("even got %v", got)
	}
	evs := drain(all)
	if len(evs) != 10 || evs[0].Msg.Source != "src" || evs[9].Seq() != 10 {
		t.Fatalf("all got %d events", len(evs))
	}
	// The same encoded bytes are shared by both outputs.
	if &evs[3].JSON()[0] != &r.hist.buf[4%100].JSON()[0] {
		t.Fatal("events are not shared")
	}
}

func TestResumeBacklog(t *testing.T) {
	r := start(t, 5)
	ctx := context.Background()
	for i := 1; i <= 8; i++ {
		_ = r.Emit(ctx, message("k", i))
	}
	cases := []struct {
		after   uint64
		want    string
		missed  uint64
		unknown bool
	}{
		{after: 8, want: "[]"},
		{after: 6, want: "[7 8]"},
		{after: 3, want: "[4 5 6 7 8]"},
		{after: 1, want: "[4 5 6 7 8]", missed: 2},
		{after: 0, want: "[4 5 6 7 8]", missed: 3},
		{after: 99, want: "[4 5 6 7 8]", missed: 3, unknown: true},
	}
	for i, c := range cases {
		out := output.New(uint64(10+i), output.Disconnect, output.Limits{})
		b, err := r.Add(ctx, out, nil, Resume{After: c.after, Set: true})
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, ev := range b.Events {
			seqs = append(seqs, ev.Seq())
		}
		if fmt.Sprint(seqs) != c.want && !(len(seqs) == 0 && c.want == "[]") || b.Missed != c.missed || b.Unknown != c.unknown {
			t.Errorf("after %d: got %v missed %d unknown %v; want %s missed %d unknown %v", c.after, seqs, b.Missed, b.Unknown, c.want, c.missed, c.unknown)
		}
	}
}

// A router numbered from a data directory goes on after the numbers of its earlier runs, and
// tells a resume point of an earlier run from one of its own: a restart gap for the first,
// whatever the history holds.
func TestResumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	run := func(emit int, kill bool, check func(r *Router)) uint64 {
		d, err := sequence.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		c, err := d.Counter("src")
		if err != nil {
			t.Fatal(err)
		}
		r := New("src", History{Size: 5}, nil)
		r.Persist(c)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		for i := range emit {
			_ = r.Emit(ctx, message("k", i))
		}
		check(r)
		if kill {
			// As a killed process leaves it: no clean stop is written.
			d.Close()
			r.counter = nil
		}
		cancel()
		<-done
		return r.Counters().LastSeq
	}
	backlog := func(r *Router, after uint64) Backlog {
		out := output.New(after+1000, output.Disconnect, output.Limits{})
		b, err := r.Add(context.Background(), out, nil, Resume{After: after, Set: true})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	last := run(8, false, func(r *Router) {})
	if last != 8 {
		t.Fatalf("first run ended at %d", last)
	}
	last = run(3, true, func(r *Router) {
		if b := backlog(r, 8); b.Restart || b.Missed != 0 || len(b.Events) != 3 || b.Events[0].Seq() != 9 {
			t.Errorf("after a clean stop, from the last id: %+v", b)
		}
		if b := backlog(r, 6); !b.Restart || b.Missed != 2 || len(b.Events) != 3 {
			t.Errorf("from an earlier run's id: %+v", b)
		}
		if b := backlog(r, 9); b.Restart || b.Missed != 0 || len(b.Events) != 2 {
			t.Errorf("from this run's id: %+v", b)
		}
	})
	if last != 11 {
		t.Fatalf("second run ended at %d", last)
	}
	run(1, false, func(r *Router) {
		b := backlog(r, 11)
		if !b.Restart || b.Missed != sequence.Block-3 || len(b.Events) != 1 || b.Events[0].Seq() != 9+sequence.Block {
			t.Errorf("after a kill, from its last id: restart %v, missed %d, events %d", b.Restart, b.Missed, len(b.Events))
		}
	})
}

// A message the source could not pass on is a too_large gap for every subscription, in its
// place among the messages, numbering nothing; under drop a full queue counts it as missed.
func TestLost(t *testing.T) {
	r := start(t, 10)
	ctx := context.Background()
	out := output.New(1, output.Disconnect, output.Limits{})
	full := output.New(2, output.Drop, output.Limits{Events: 1})
	for _, o := range []*output.Output{out, full} {
		if _, err := r.Add(ctx, o, mustCompile(t, `key == "never"`), Resume{}); err != nil {
			t.Fatal(err)
		}
	}
	_ = r.Emit(ctx, message("a", 1))
	_ = r.Emit(ctx, &stream.Message{Lost: 2})
	_ = r.Emit(ctx, &stream.Message{Lost: 1})
	if _, err := r.History(ctx); err != nil { // routed all three
		t.Fatal(err)
	}
	evs := drain(out)
	if len(evs) != 2 || !strings.Contains(string(evs[0].JSON()), `"missed":2,"reason":"too_large"`) {
		t.Fatalf("events %d: %s", len(evs), evs[0].JSON())
	}
	if c := r.Counters(); c.Lost != 3 || c.LastSeq != 1 {
		t.Fatalf("counters %+v", c)
	}
	if got := drain(full); len(got) != 1 || full.Counters().Dropped != 1 {
		t.Fatalf("a full drop queue: %d events, %d dropped", len(got), full.Counters().Dropped)
	}
}

// Subscribers come and go from many goroutines while messages flow; run under -race.
func TestConcurrentSubscribeUnsubscribePublish(t *testing.T) {
	r := start(t, 1000)
	ctx := context.Background()
	preds := []*predicate.Predicate{mustCompile(t, `key == "a"`), mustCompile(t, `body.n % 2 == 0`), mustCompile(t, ``)}
	stop, published := make(chan struct{}), make(chan struct{})
	go func() { // the publisher, until the churners are done; the test waits for it through published
		defer close(published)
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = r.Emit(ctx, message([]string{"a", "b"}[i%2], i))
		}
	}()
	// The churners start once messages flow, and the publisher goes on until they are done.
	sourcetest.Eventually(t, 10*time.Second, func() bool { return r.Counters().Received > 0 }, "a first message routed")
	var id sync.Mutex
	next := uint64(0)
	var churners sync.WaitGroup
	for range 4 {
		churners.Go(func() { // a subscriber churner; waited for just below
			for i := 0; i < 200; i++ {
				id.Lock()
				next++
				n := next
				id.Unlock()
				out := output.New(n, output.Policy(i%2), output.Limits{Events: 8})
				if _, err := r.Add(ctx, out, preds[i%3], Resume{After: uint64(rand.IntN(50)), Set: i%4 == 0}); err != nil {
					t.Error(err)
					return
				}
				drain(out)
				out.Close(output.ErrClientGone)
				if err := r.Remove(ctx, n); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	churners.Wait()
	close(stop)
	<-published
	if n := r.Len(); n != 0 {
		t.Fatalf("table has %d entries after every subscriber left", n)
	}
}

func TestSlowConsumerPolicies(t *testing.T) {
	r := New("src", History{Size: 10}, nil)
	disc := output.New(1, output.Disconnect, output.Limits{Events: 2})
	drop := output.New(2, output.Drop, output.Limits{Events: 2})
	r.add(disc, nil)
	r.add(drop, nil)
	for i := 1; i <= 5; i++ {
		r.route(message("k", i))
	}
	if disc.Err() != output.ErrSlowConsumer || r.Len() != 1 {
		t.Fatalf("disconnect policy: err %v, table %d", disc.Err(), r.Len())
	}
	if got := drain(drop); len(got) != 2 || got[1].Seq() != 2 {
		t.Fatalf("drop policy kept %d events", len(got))
	}
	r.route(message("k", 6)) // the gap goes first, then the message
	got := drain(drop)
	if len(got) != 2 || got[0].Kind != stream.KindGap || string(got[0].JSON()) != `{"type":"gap","source":"src","missed":3,"reason":"dropped"}` || got[1].Seq() != 6 {
		t.Fatalf("after the drops: %d events: %s", len(got), got[0].JSON())
	}
	if c := drop.Counters(); c.Dropped != 3 || c.Matched != 6 {
		t.Fatalf("counters %+v", c)
	}
}

// A queue kept full by large messages has room for a gap event long before it has room for
// the next message; the gap must wait for it, or the client gets a row of gaps of one each.
func TestDropGapsComeWithAMessage(t *testing.T) {
	r := New("src", History{Size: 10}, nil)
	big := func(n int) *stream.Message {
		return &stream.Message{Key: "k", Body: fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, n, strings.Repeat("x", 4000)), Time: time.Now()}
	}
	size := stream.NewMessage(big(1)).Size()
	out := output.New(1, output.Drop, output.Limits{Events: 100, Bytes: int64(3*size + size/2)})
	r.add(out, nil)
	const total = 200
	var got []*stream.Event
	for i := 1; i <= total; i++ {
		r.route(big(i))
		if i%4 == 0 { // the client reads one event for every four published
			got = append(got, recv(out))
		}
	}
	got = append(got, drain(out)...)
	r.flushGaps() // what was missed at the end goes alone
	got = append(got, drain(out)...)
	var delivered, missed uint64
	for i, ev := range got {
		if ev.Kind != stream.KindGap {
			delivered++
			continue
		}
		var g struct{ Missed uint64 }
		if err := json.Unmarshal(ev.JSON(), &g); err != nil {
			t.Fatal(err)
		}
		missed += g.Missed
		if i+1 < len(got) && got[i+1].Kind == stream.KindGap {
			t.Fatalf("gaps at %d and %d in a row: %s %s", i, i+1, ev.JSON(), got[i+1].JSON())
		}
	}
	if delivered+missed != total || missed == 0 {
		t.Fatalf("%d delivered and %d missed of %d", delivered, missed, total)
	}
}

// A predicate sees the time that the event shows, to the millisecond.
func TestTimeAsTheEventShowsIt(t *testing.T) {
	r := New("src", History{Size: 10}, nil)
	out := output.New(1, output.Drop, output.Limits{})
	r.add(out, mustCompile(t, `time == timestamp("2026-11-25T16:00:00.123Z")`))
	m := message("k", 1)
	m.Time = time.Date(2026, 11, 25, 16, 0, 0, 123456789, time.UTC)
	r.route(m)
	got := drain(out)
	if len(got) != 1 || !strings.Contains(string(got[0].JSON()), `"time":"2026-11-25T16:00:00.123Z"`) {
		t.Fatalf("the predicate on the event's own time matched %d events", len(got))
	}
}

func TestHistoryMaxAge(t *testing.T) {
	h := newRing(History{Size: 10, MaxAge: time.Minute})
	now := time.Now()
	for i := 1; i <= 6; i++ {
		m := message("k", i)
		m.Seq = uint64(i)
		m.Time = now.Add(time.Duration(i-6) * 20 * time.Second) // 100s, 80s, … 0s ago
		h.push(stream.NewMessage(m))
	}
	h.trim(now)
	b := h.after(0, 6)
	if len(b.Events) != 4 || b.Events[0].Seq() != 3 || b.Missed != 2 { // exactly a minute old is kept
		t.Fatalf("kept %d events from %d, missed %d; want 4 from seq 3", len(b.Events), b.Events[0].Seq(), b.Missed)
	}
	h.trim(now.Add(time.Hour))
	if b := h.after(0, 6); len(b.Events) != 0 || b.Missed != 6 || h.bytes != 0 {
		t.Fatalf("after an hour: %d events, missed %d, %d bytes", len(b.Events), b.Missed, h.bytes)
	}
}

// The history keeps within its bytes, counting a text body beside its event and a JSON body
// once (the event holds it), and keeps none of a message larger than all of it.
func TestHistoryMaxBytes(t *testing.T) {
	h := newRing(History{Size: 1000, MaxBytes: 100 << 10})
	push := func(seq int, body []byte) *stream.Event {
		ev := stream.NewMessage(&stream.Message{Seq: uint64(seq), Body: body, Time: time.Now()})
		h.push(ev)
		if h.bytes > h.maxBytes {
			t.Fatalf("seq %d: %d bytes held, over %d", seq, h.bytes, h.maxBytes)
		}
		return ev
	}
	text := bytes.Repeat([]byte("t"), 10<<10)
	json := append(append([]byte(`"`), text...), '"')
	for i := 1; i <= 100; i++ {
		push(i, text)
	}
	textKept := h.n
	for i := 101; i <= 200; i++ {
		ev := push(i, json)
		js := ev.JSON() // encodes the event: its body is the event's from then on
		if &ev.Msg.Payload()[0] != &js[bytes.Index(js, json)] {
			t.Fatal("a JSON body is kept beside its event")
		}
	}
	if textKept < 4 || h.n < 2*textKept-1 {
		t.Fatalf("kept %d text messages of 10 KiB and %d JSON ones in 100 KiB", textKept, h.n)
	}
	push(201, bytes.Repeat([]byte("x"), 200<<10))
	if b := h.after(0, 201); len(b.Events) != 0 || h.bytes != 0 {
		t.Fatalf("a message over max_bytes: %d events kept, %d bytes", len(b.Events), h.bytes)
	}
	push(202, text)
	if b := h.after(200, 202); len(b.Events) != 1 || b.Events[0].Seq() != 202 || b.Missed != 1 {
		t.Fatalf("after it: %+v", b)
	}
}

// A router fed 200 messages of 1 MB keeps its history within max_bytes: the process's live
// heap stays near the bound, not at a gigabyte (issue 16: 1,000 × 1 MB posts took RSS to 2.4 GB).
func TestHistoryMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("routes a gigabyte")
	}
	const maxBytes = 16 << 20
	r := New("src", History{Size: DefaultHistory, MaxBytes: maxBytes}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 200 {
		body := bytes.Repeat([]byte{'a' + byte(i%26)}, 1<<20)
		if i%2 == 0 {
			body[0], body[len(body)-1] = '"', '"' // JSON: kept once; text: kept twice
		}
		if err := r.Emit(ctx, &stream.Message{Body: body, Time: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := r.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 || evs[len(evs)-1].Seq() != 200 {
		t.Fatalf("the history holds %d events", len(evs))
	}
	evs = nil
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 2*maxBytes {
		t.Fatalf("the live heap grew by %d MB for a history of %d MB", grew>>20, maxBytes>>20)
	}
}

package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/stream"
)

var matchColumns = []column{
	{"predicates", func(r Result) string { return r.Predicates }},
	{"subscriptions", func(r Result) string { return commas(int64(r.Subscriptions)) }},
	{"messages", func(r Result) string { return commas(int64(r.RoutedMessages)) }},
	{"ns/message", func(r Result) string { return num(r.NsPerMessage) }},
	{"CPU ns/message", func(r Result) string { return num(r.CPUNsPerMessage) }},
	{"matches/message", func(r Result) string { return num(r.MatchesPerMsg) }},
	{"CPU ns/match", func(r Result) string { return num(r.NsPerMatch) }},
	{"allocs/message", func(r Result) string { return num(r.AllocsPerMessage) }},
}

// matchSets are the subscription tables match measures: i is the subscription's index, k the
// number of keys.
var matchSets = []struct {
	name string
	pred func(i, k int) string
}{
	{"key == (no match)", func(i, k int) string { return fmt.Sprintf(`key == "x%d"`, i%k) }},
	{"key ==", func(i, k int) string { return fmt.Sprintf(`key == "k%d"`, i%k) }},
	{"mixed", mixedPredicate},
}

// mixedPredicate is issue 6's mixed table: equality on the key plus body and header tests,
// with 1% of the predicates without any atom an index could use. Each one matches about one
// message in k (two in k for the `in` ones).
func mixedPredicate(i, k int) string {
	a, b := i%k, (i*7+1)%k
	switch j := i % 100; {
	case j == 0:
		return fmt.Sprintf(`body.n %% %d == %d`, k, a)
	case j < 40:
		return fmt.Sprintf(`key == "k%d" && body.amount > %d`, a, (i/100)%10*10)
	case j < 60:
		return fmt.Sprintf(`key in ["k%d", "k%d"] && body.tier == "gold"`, a, b)
	case j < 80:
		return fmt.Sprintf(`key == "k%d" && headers.region == "eu"`, a)
	}
	return fmt.Sprintf(`key == "k%d" && body.customer.tier != "none" && body.n >= 0`, a)
}

// match routes messages through one router holding N subscriptions, in this process, with no
// network and no writers: the cost of finding the recipients and queueing the shared event.
// Each message is handed over with the router's Emit from this goroutine (a channel hand-off
// included in the figure) and each run ends with a round trip, so every message is routed.
func (r *runner) match(ctx context.Context, rep *Report) error {
	rep.columns = matchColumns
	k := r.opt.MatchKeys
	// The messages cycle through the keys, so in a round of limit messages each
	// subscription matches at most about 2*limit/k of them: 8, in queues of 16 that never
	// fill, so nothing is dropped. Between rounds the queues are emptied; deeper queues would
	// make the collector scan millions of queued events per cycle, which a server that writes
	// what it queues does not.
	const queue = 16
	limit := queue / 2 * k / 2
	msgs := make([]*stream.Message, 2*k)
	for i := range msgs {
		tier := "gold"
		if i%3 == 0 {
			tier = "silver"
		}
		msgs[i] = &stream.Message{
			Key: fmt.Sprintf("k%d", i%k), Headers: map[string]string{"region": "eu"},
			Body: fmt.Appendf(nil, `{"n":%d,"amount":%d.5,"tier":%q,"customer":{"id":"c%d","tier":%q}}`, i, i%100, tier, i%97, tier),
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if r.opt.CPUProfile != "" {
		f, err := os.Create(r.opt.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// No subscription at all: what every message costs whoever reads it (the hand-off, the
	// sequence number, the history, encoding the event once).
	res, err := r.matchOne(ctx, 0, "none", nil, msgs, queue, limit, log)
	if err != nil {
		return err
	}
	rep.Results = append(rep.Results, res)
	for _, n := range r.opt.Subs {
		for _, set := range matchSets {
			res, err := r.matchOne(ctx, n, set.name, func(i int) string { return set.pred(i, k) }, msgs, queue, limit, log)
			if err != nil {
				return err
			}
			rep.Results = append(rep.Results, res)
		}
	}
	rep.Summary = append(rep.Summary,
		"targets: ns/message grows with matches, not subscriptions; 100,000 `key ==` subscriptions under 2,000 ns a message",
		"         excluding delivery (compare the \"no match\" rows, less the \"none\" row); 100,000 mixed predicates under 50,000 ns a message")
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("messages cycle over %d keys with a small JSON body and a header; each row routes for -duration (%v), in rounds of %s messages between which the queues are emptied (not timed)",
			k, r.opt.Duration, commas(int64(limit))),
		"measured on one P (GOMAXPROCS 1), so that handing each message to the router goroutine (Emit) is a goroutine switch, not a thread wake-up;",
		"CPU ns is the process's CPU time (getrusage) over the same messages: unlike the wall time, it does not count time other processes took the core;",
		"ns/message includes that switch, the history (the \"none\" row: no subscription), encoding the event once if",
		"anything matches it, and queueing the event for each match; \"no match\" subscriptions read keys no message has; allocs/message counts the whole process, the bench's copy of each message included")
	return nil
}

func (r *runner) matchOne(ctx context.Context, n int, setName string, pred func(int) string, msgs []*stream.Message, queue, limit int, log *slog.Logger) (Result, error) {
	rt := router.New("bench", router.History{Size: 1024}, log)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); rt.Run(rctx) }() // waited for below
	defer func() { cancel(); <-done }()

	emit := func(i int) error {
		t := msgs[i%len(msgs)]
		return rt.Emit(ctx, &stream.Message{Key: t.Key, Headers: t.Headers, Body: t.Body, Time: time.Now()})
	}
	// Fill the history (1,024) first: from then on each message replaces one, as in a
	// server that has run a while. Before any subscription, so that no queue fills.
	for i := range 1100 {
		if err := emit(i); err != nil {
			return Result{}, err
		}
	}
	if _, err := rt.History(ctx); err != nil {
		return Result{}, err
	}
	cache := map[string]*predicate.Predicate{}
	outs := make([]*output.Output, n)
	for i := range n {
		src := pred(i)
		p, ok := cache[src]
		if !ok {
			var err error
			if p, err = predicate.Compile(src, predicate.Limits{}); err != nil {
				return Result{}, fmt.Errorf("match: %q: %w", src, err)
			}
			cache[src] = p
		}
		out := output.New(uint64(i+1), output.Drop, output.Limits{Events: queue, Bytes: 1 << 40})
		outs[i] = out
		if _, err := rt.Add(ctx, out, p, router.Resume{}); err != nil {
			return Result{}, err
		}
		if i%1000 == 999 {
			r.prog.show("[match] %s: %s/%s subscriptions", setName, commas(int64(i+1)), commas(int64(n)))
		}
	}
	// Rounds of at most limit messages, timed; between them, untimed, the queues are emptied
	// as a writer would empty them, so that each round starts as the first did.
	runtime.GC()
	c0 := rt.Counters()
	var (
		count        int
		elapsed, cpu time.Duration
		mallocs      uint64
		ms0, ms1     runtime.MemStats
		deadline     = time.Now().Add(r.opt.Duration)
		errRound     error
	)
	for count == 0 || time.Now().Before(deadline) && ctx.Err() == nil {
		runtime.ReadMemStats(&ms0)
		// On one P, Emit hands the message straight to the router goroutine and back: on
		// two, each hand-off wakes a parked thread (a futex call, several µs on this
		// machine), which would hide the routing cost this measures.
		procs := runtime.GOMAXPROCS(1)
		cpu0, _, _ := procStat(0)
		start := time.Now()
		i := 0
		for ; i < limit && errRound == nil; i++ {
			errRound = emit(count + i)
		}
		if errRound == nil {
			_, errRound = rt.History(ctx) // a round trip: the last message is routed
		}
		elapsed += time.Since(start)
		cpu1, _, _ := procStat(0)
		runtime.GOMAXPROCS(procs)
		runtime.ReadMemStats(&ms1)
		if errRound != nil {
			return Result{}, errRound
		}
		cpu += cpu1 - cpu0
		mallocs += ms1.Mallocs - ms0.Mallocs
		count += i
		drainAll(outs)
	}
	c1 := rt.Counters()
	matched := float64(c1.Matched - c0.Matched)
	res := Result{
		Server: "router", Predicates: setName, Subscriptions: n, RoutedMessages: uint64(count),
		NsPerMessage:     float64(elapsed.Nanoseconds()) / float64(count),
		CPUNsPerMessage:  float64(cpu.Nanoseconds()) / float64(count),
		MatchesPerMsg:    matched / float64(count),
		AllocsPerMessage: float64(mallocs) / float64(count),
	}
	if matched > 0 {
		res.NsPerMatch = float64(cpu.Nanoseconds()) / matched
	}
	if d := c1.Dropped - c0.Dropped; d > 0 {
		res.Dropped = int64(d)
	}
	r.prog.show("[match] %s × %s: %s ns/message (%s of CPU)", setName, commas(int64(n)), num(res.NsPerMessage), num(res.CPUNsPerMessage))
	return res, nil
}

// drainAll empties every output's queue through its own Pump, as a transport would, and
// returns; the outputs stay subscribed.
func drainAll(outs []*output.Output) {
	for _, o := range outs {
		if o.Depth() == 0 {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		_ = o.Pump(ctx, drainer{o: o, cancel: cancel}, nil, output.PumpOptions{MaxBatch: 1 << 16})
		cancel()
	}
}

// drainer is a Writer that discards events and stops its Pump once the queue is empty.
type drainer struct {
	o      *output.Output
	cancel context.CancelFunc
}

func (d drainer) Write([]*stream.Event) error {
	if d.o.Depth() == 0 {
		d.cancel()
	}
	return nil
}

func (d drainer) Heartbeat() error { return nil }

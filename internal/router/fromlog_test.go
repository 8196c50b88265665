package router

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/sequence"
	"github.com/streamux/streamux/internal/stream"
)

// logged is message seq of a log, as a cluster's Reader hands it over: numbered already.
func logged(seq uint64) *stream.Message {
	return &stream.Message{Seq: seq, Key: "k", Body: fmt.Appendf(nil, `{"n":%d}`, seq), Time: time.Now()}
}

// startLogged runs a router that takes its sequences from a log, from next on.
func startLogged(t *testing.T, history int, next uint64) *Router {
	t.Helper()
	r := New("src", History{Size: history}, nil)
	r.FromLog()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }() // waited for by the cleanup
	t.Cleanup(func() { cancel(); <-done })
	if err := r.Jump(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	return r
}

// describe writes evs as a test reads them: "5" for message 5, "gap:history:3" for a gap.
func describe(evs []*stream.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		switch ev.Kind {
		case stream.KindMessage:
			fmt.Fprint(&b, ev.Seq())
		default:
			j := string(ev.JSON())
			fmt.Fprintf(&b, "%s:%s", ev.Kind, j[strings.Index(j, `"reason"`)+10:strings.LastIndex(j, `"`)])
		}
	}
	return b.String()
}

// A router fed by a log keeps the log's sequences, numbers nothing, and skips what it has
// routed already; a hole in the numbers is a gap, and the history forgets what came before it,
// so that a resume from before the hole is not served a run with a hole in it.
func TestFromLogTakesTheLogsSequences(t *testing.T) {
	t.Parallel()
	r := startLogged(t, 100, 41)
	ctx := context.Background()
	out := everything(1)
	if _, err := r.Add(ctx, out, nil, Resume{}); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{41, 42, 42, 43, 47, 48} {
		if err := r.Emit(ctx, logged(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Skip(ctx, 50); err != nil {
		t.Fatal(err)
	}
	if err := r.Emit(ctx, logged(51)); err != nil {
		t.Fatal(err)
	}
	evs, _ := r.History(ctx) // after everything emitted before
	// The gaps' counts: TestFromLogHoleCounts.
	if got, want := describe(takeAll(out)), "41 42 43 gap:history 47 48 gap:history 51"; got != want {
		t.Errorf("delivered %q, want %q", got, want)
	}
	if got := describe(evs); got != "51" {
		t.Errorf("history %q, want only what followed the last hole", got)
	}
	if c := r.Counters(); c.LastSeq != 51 || c.Received != 6 {
		t.Errorf("last_seq %d, received %d; want 51, 6", c.LastSeq, c.Received)
	}
	// A resume from before the hole: the history cannot serve it, and with Log says so
	// without registering anything.
	out2 := everything(2)
	b, err := r.Add(ctx, out2, nil, Resume{After: 44, Set: true, Log: true})
	if err != nil {
		t.Fatal(err)
	}
	if !b.FromLog || r.Len() != 1 {
		t.Errorf("resume from 44 after a hole: FromLog %v, %d subscriptions; want true, 1", b.FromLog, r.Len())
	}
	// From the last one: served, with nothing to replay.
	b, err = r.Add(ctx, out2, nil, Resume{After: 51, Set: true, Log: true})
	if err != nil || b.FromLog || len(b.Events) != 0 || r.Len() != 2 {
		t.Errorf("resume from 51: %+v, %v, %d subscriptions", b, err, r.Len())
	}
}

// The gaps a hole gives count the sequences missing.
func TestFromLogHoleCounts(t *testing.T) {
	t.Parallel()
	r := startLogged(t, 100, 1)
	ctx := context.Background()
	out := everything(1)
	if _, err := r.Add(ctx, out, nil, Resume{}); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{1, 5} {
		if err := r.Emit(ctx, logged(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Skip(ctx, 9); err != nil {
		t.Fatal(err)
	}
	if err := r.Skip(ctx, 9); err != nil { // a skip of nothing new is nothing
		t.Fatal(err)
	}
	_, _ = r.History(ctx)
	var got []string
	for _, ev := range takeAll(out) {
		got = append(got, string(ev.JSON()))
	}
	want := []string{
		`"seq":1`,
		`{"type":"gap","source":"src","missed":3,"reason":"history"}`,
		`"seq":5`,
		`{"type":"gap","source":"src","missed":4,"reason":"history"}`,
	}
	if len(got) != len(want) {
		t.Fatalf("delivered %q", got)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("event %d: %s, want %s", i, got[i], want[i])
		}
	}
}

// A Jump (a node's start, a reset of the log) forgets the history: a resume from before it
// goes to the log.
func TestJumpForgetsTheHistory(t *testing.T) {
	t.Parallel()
	r := startLogged(t, 100, 1)
	ctx := context.Background()
	for seq := uint64(1); seq <= 5; seq++ {
		if err := r.Emit(ctx, logged(seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Jump(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if evs, _ := r.History(ctx); len(evs) != 0 {
		t.Errorf("history after a jump: %q", describe(evs))
	}
	if c := r.Counters(); c.LastSeq != 99 {
		t.Errorf("last_seq %d after a jump to 100, want 99", c.LastSeq)
	}
	b, err := r.Add(ctx, everything(1), nil, Resume{After: 3, Set: true, Log: true})
	if err != nil || !b.FromLog {
		t.Errorf("resume from before a jump: %+v, %v; want FromLog", b, err)
	}
	// Ahead of the router (not read yet): the log too.
	b, err = r.Add(ctx, everything(2), nil, Resume{After: 120, Set: true, Log: true})
	if err != nil || !b.FromLog {
		t.Errorf("resume from ahead of the router: %+v, %v; want FromLog", b, err)
	}
	if r.Len() != 0 {
		t.Errorf("%d subscriptions registered by resumes the log serves", r.Len())
	}
}

// A replay joins with Queue: the history after its last id goes to the queue, matched, before
// any live message, on the router goroutine.
func TestAddQueuesTheBacklog(t *testing.T) {
	t.Parallel()
	r := startLogged(t, 100, 1)
	ctx := context.Background()
	for seq := uint64(1); seq <= 6; seq++ {
		if err := r.Emit(ctx, logged(seq)); err != nil {
			t.Fatal(err)
		}
	}
	out := everything(1)
	b, err := r.Add(ctx, out, mustCompile(t, `body.n % 2 == 0`), Resume{After: 2, Set: true, Log: true, Queue: true})
	if err != nil || b.FromLog || len(b.Events) != 0 {
		t.Fatalf("join: %+v, %v", b, err)
	}
	for seq := uint64(7); seq <= 8; seq++ {
		if err := r.Emit(ctx, logged(seq)); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = r.History(ctx)
	if got := describe(takeAll(out)); got != "4 6 8" {
		t.Errorf("delivered %q, want the history after 2 that matches, then live: 4 6 8", got)
	}
	if c := out.Counters(); c.Matched != 3 {
		t.Errorf("matched %d, want 3", c.Matched)
	}
}

// A queued backlog that does not fit the queue is the subscription's policy, as live messages
// that do not fit are: a gap under drop.
func TestAddQueueOverflowIsAGap(t *testing.T) {
	t.Parallel()
	r := startLogged(t, 100, 1)
	ctx := context.Background()
	for seq := uint64(1); seq <= 10; seq++ {
		if err := r.Emit(ctx, logged(seq)); err != nil {
			t.Fatal(err)
		}
	}
	out := output.New(1, output.Drop, output.Limits{Events: 4, Bytes: 1 << 20})
	if _, err := r.Add(ctx, out, nil, Resume{After: 0, Set: true, Log: true, Queue: true}); err != nil {
		t.Fatal(err)
	}
	first := describe(takeAll(out))
	if err := r.Emit(ctx, logged(11)); err != nil {
		t.Fatal(err)
	}
	_, _ = r.History(ctx)
	if got := first + " " + describe(takeAll(out)); got != "1 2 3 4 gap:dropped 11" {
		t.Errorf("delivered %q, want the four that fit, then a gap with the next message", got)
	}
}

// From a log, with its numbers kept on disk, a router that stops short of what an earlier run
// saw (it began again from the log's last messages) leaves the highest recorded: a log made
// again after it was lost must begin after every id it ever gave.
func TestFromLogKeepsTheHighestOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(next uint64, emit []uint64) uint64 {
		d, err := sequence.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		c, err := d.Counter("src")
		if err != nil {
			t.Fatal(err)
		}
		first := c.First()
		r := New("src", History{Size: 10}, nil)
		r.FromLog()
		r.Persist(c)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }() // waited for below
		if err := r.Jump(ctx, next); err != nil {
			t.Fatal(err)
		}
		for _, seq := range emit {
			if err := r.Emit(ctx, logged(seq)); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		<-done
		return first
	}
	run(1, []uint64{1, 2, 3, 1000})
	if first := run(995, []uint64{995}); first != 1001 {
		t.Errorf("the second run's counter began at %d, want 1001", first)
	}
	if first := run(1, nil); first != 1001 {
		t.Errorf("after a run that stopped at 995, the counter begins at %d, want 1001", first)
	}
}

// A notice of messages a source could not pass on gives its reason, too_large by default.
func TestLostNoticeReason(t *testing.T) {
	t.Parallel()
	r := start(t, 10)
	ctx := context.Background()
	out := everything(1)
	if _, err := r.Add(ctx, out, nil, Resume{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*stream.Message{{Lost: 2}, {Lost: 3, LostReason: stream.GapNotStored}} {
		if err := r.Emit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	_, _ = r.History(ctx)
	if got := describe(takeAll(out)); got != "gap:too_large gap:not_stored" {
		t.Errorf("delivered %q", got)
	}
	if c := r.Counters(); c.Lost != 5 || c.LastSeq != 0 {
		t.Errorf("lost %d, last_seq %d; want 5 and no number given", c.Lost, c.LastSeq)
	}
}

// Read serves a position's next messages, a page at a time, without registering anything.
func TestReadPages(t *testing.T) {
	t.Parallel()
	r := start(t, 5)
	ctx := context.Background()
	for i := range 8 {
		if err := r.Emit(ctx, message("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		after  uint64
		max    int
		want   string
		missed uint64
	}{
		{0, 2, "4 5", 3}, {4, 2, "5 6", 0}, {6, 0, "7 8", 0}, {8, 3, "", 0}, {9, 3, "4 5 6", 3},
	} {
		b, err := r.Read(ctx, c.after, c.max)
		if err != nil {
			t.Fatal(err)
		}
		if got := describe(b.Events); got != c.want || b.Missed != c.missed || b.Last != 8 || b.Unknown != (c.after > 8) {
			t.Errorf("Read(%d, %d): %q, missed %d, last %d, unknown %v", c.after, c.max, got, b.Missed, b.Last, b.Unknown)
		}
	}
	if r.Len() != 0 {
		t.Errorf("Read registered %d subscriptions", r.Len())
	}
}

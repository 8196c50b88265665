package supervisor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/stream"
)

// A reload removes a source, adds one and replaces one while streams are open: the stream that
// read only the removed source is told it stopped, then ends; the one that read it and another
// goes on with the other; the replaced source's router stays, so its stream stays subscribed and
// its sequence numbers go on.
func TestReconfigure(t *testing.T) {
	t.Parallel()
	a, b := newCounting(), newCounting()
	sup, err := New([]Source{{Name: "a", Type: "test", Adapter: a}, {Name: "b", Type: "test", Adapter: b}}, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- sup.Run(ctx) }() // waited for below
	defer func() { cancel(); <-ran }()
	<-a.ready
	<-b.ready
	big := output.Limits{Events: 1 << 20, Bytes: 1 << 40}
	both, err := sup.Subscribe(ctx, Request{Policy: output.Drop, Queue: big})
	if err != nil {
		t.Fatal(err)
	}
	defer both.Close()
	onlyB, err := sup.Subscribe(ctx, Request{Sources: []string{"b"}, Policy: output.Drop, Queue: big})
	if err != nil {
		t.Fatal(err)
	}
	defer onlyB.Close()
	close(a.start)
	waitFor(t, func() bool { return a.accepted.Load() > 100 })

	a2, c := newCounting(), newCounting()
	err = sup.Reconfigure(ctx, Change{
		Remove:  []string{"b"},
		Replace: []Source{{Name: "a", Type: "test", Adapter: a2}},
		Add:     []Source{{Name: "c", Type: "test", Adapter: c}},
	})
	if err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	if got := sup.Names(); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("Names after the reload: %v, want [a c]", got)
	}
	if sup.Has("b") || sup.Adapter("c") != c {
		t.Errorf("Has(b) = %v, Adapter(c) = %v", sup.Has("b"), sup.Adapter("c"))
	}
	<-c.ready
	<-a2.ready
	// The stream of b alone: b's stopped state, then its end.
	select {
	case <-onlyB.Out.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of the removed source alone did not end")
	}
	if !errors.Is(onlyB.Out.Err(), output.ErrSourceRemoved) {
		t.Errorf("it ended with %v, want %v", onlyB.Out.Err(), output.ErrSourceRemoved)
	}
	if evs := take(onlyB.Out); !hasStatus(evs, "b", "stopped") {
		t.Errorf("the stream of the removed source got no stopped status: %s", joinJSON(evs))
	}
	// The stream of both is still open, and a's messages go on after the restart, numbered on.
	before := a.accepted.Load()
	close(a2.start)
	waitFor(t, func() bool { return a2.accepted.Load() > 100 })
	select {
	case <-both.Out.Done():
		t.Fatalf("the stream of both sources ended: %v", both.Out.Err())
	default:
	}
	// Removing a as well ends it, having delivered everything of a's.
	if err := sup.Reconfigure(ctx, Change{Remove: []string{"a"}}); err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	<-both.Out.Done()
	if !errors.Is(both.Out.Err(), output.ErrSourceRemoved) {
		t.Errorf("the stream of both ended with %v once both were removed, want %v", both.Out.Err(), output.ErrSourceRemoved)
	}
	evs := take(both.Out)
	if !hasStatus(evs, "b", "stopped") || !hasStatus(evs, "a", "stopped") || !hasStatus(evs, "a", "up") {
		t.Errorf("the stream of both missed a status: %s", joinJSON(evs))
	}
	var last uint64
	n := 0
	for _, ev := range evs {
		if ev.Kind == stream.KindGap {
			t.Fatalf("a gap: %s", ev.JSON())
		}
		if ev.Kind != stream.KindMessage || ev.Msg.Source != "a" {
			continue
		}
		if ev.Seq() != last+1 {
			t.Fatalf("a's message %d follows %d", ev.Seq(), last)
		}
		last = ev.Seq()
		n++
	}
	if total := a.accepted.Load() + a2.accepted.Load(); int64(n) != total || n <= int(before) {
		t.Errorf("the stream got %d of a's messages; the two adapters emitted %d (the first %d)", n, total, before)
	}
	// A subscription to the new source works.
	sub, err := sup.Subscribe(ctx, Request{Sources: []string{"c"}})
	if err != nil {
		t.Fatalf("subscribe to the added source: %v", err)
	}
	sub.Close()
	if _, err := sup.Subscribe(ctx, Request{Sources: []string{"b"}}); !errors.Is(err, ErrUnknownSource) {
		t.Errorf("subscribe to the removed source: %v, want %v", err, ErrUnknownSource)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

func take(o *output.Output) []*stream.Event {
	var all []*stream.Event
	for {
		evs, _ := o.Take(nil, 1<<20)
		if len(evs) == 0 {
			return all
		}
		all = append(all, evs...)
	}
}

func hasStatus(evs []*stream.Event, source, state string) bool {
	want := []byte(`"source":"` + source + `","state":"` + state + `"`)
	for _, ev := range evs {
		if ev.Kind == stream.KindStatus && bytes.Contains(ev.JSON(), want) {
			return true
		}
	}
	return false
}

func joinJSON(evs []*stream.Event) []byte {
	var b []byte
	for _, ev := range evs {
		if ev.Kind != stream.KindMessage {
			b = append(append(b, ev.JSON()...), '\n')
		}
	}
	return b
}

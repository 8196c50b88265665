package router

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/stream"
)

// A subscription whose predicate goes over its cost limit on a message is cut, with its reason
// and a count, and the router routes on: the other subscriptions get that message and the next.
// The regex is the one of issue 16, let through by a raised limit: on a 10 KB body it would
// take seconds, for every other subscriber of the source to wait for.
func TestTooCostlyPredicateIsCut(t *testing.T) {
	t.Parallel()
	r := start(t, 100)
	ctx := context.Background()
	lim := predicate.Limits{MaxCost: 10_000_000}
	costly := []struct {
		src string
		lim predicate.Limits
	}{
		{`body.s.matches("(.*.*.*.*.*.*.*.*){1000}x")`, lim},
		{`body.items.exists(i, i == "needle")`, lim},
		{`body.s.replace("", "0123456789") != ""`, predicate.Limits{}},
	}
	var cut []*output.Output
	for i, c := range costly {
		p, err := predicate.Compile(c.src, c.lim)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		for j := range 2 { // two subscriptions sharing one evaluation: both are cut
			out := output.New(uint64(10*i+j+1), output.Disconnect, output.Limits{})
			if _, err := r.Add(ctx, out, p, Resume{}); err != nil {
				t.Fatal(err)
			}
			cut = append(cut, out)
		}
	}
	measured, err := predicate.Compile(`body.s.matches("^a+$")`, lim)
	if err != nil {
		t.Fatal(err)
	}
	ordinary := output.New(100, output.Disconnect, output.Limits{})
	regexOK := output.New(101, output.Disconnect, output.Limits{})
	for out, p := range map[*output.Output]*predicate.Predicate{ordinary: nil, regexOK: measured} {
		if _, err := r.Add(ctx, out, p, Resume{}); err != nil {
			t.Fatal(err)
		}
	}
	small := &stream.Message{Key: "k", Body: []byte(`{"s":"aaa","items":["needle"]}`), Time: time.Now()}
	big := &stream.Message{Key: "k", Body: []byte(`{"s":"` + strings.Repeat("a", 10_000) + `","items":[` +
		strings.Repeat(`"hay",`, 2000) + `"needle"]}`), Time: time.Now()}
	after := &stream.Message{Key: "k", Body: []byte(`{"s":"b"}`), Time: time.Now()}
	for _, m := range []*stream.Message{small, big, after} {
		if err := r.Emit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.History(ctx); err != nil { // waits until the router has routed all three
		t.Fatal(err)
	}
	for _, out := range cut {
		if !errors.Is(out.Err(), output.ErrTooCostly) {
			t.Errorf("subscription %d: ended with %v, want %v", out.ID(), out.Err(), output.ErrTooCostly)
		}
	}
	if got := len(drain(ordinary)); got != 3 {
		t.Errorf("the ordinary subscription got %d messages, want 3", got)
	}
	if got := len(drain(regexOK)); got != 2 {
		t.Errorf("the affordable regex got %d messages, want 2", got)
	}
	if c := regexOK.Counters().EvalCost; c < 5*10_001 {
		t.Errorf("the affordable regex's predicate_cost is %d, want the 10 KB body's", c)
	}
	k := r.Counters()
	if k.TooCostly != uint64(len(cut)) || k.Subscriptions != 2 || k.EvalErrors != 0 {
		t.Errorf("counters %+v: want %d too costly, 2 subscriptions left, no predicate errors", k, len(cut))
	}
}

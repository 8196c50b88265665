package router

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/stream"
)

// Whatever the index files a subscription under, each subscription receives exactly the
// messages its predicate matches when evaluated on its own.
func TestIndexAgreesWithEvaluation(t *testing.T) {
	preds := []string{
		``, `true`, `key == "a"`, `key == "b"`, `key in ["a", "c", "a"]`, `"a" == key`,
		`headers.r == "eu"`, `headers.r in ["eu", "us"] && key == "b"`, `key == "a" && body.n > 5`,
		`source == "src"`, `source == "other"`, `source == "src" && key == "c"`, `source in ["x", "src"] && headers.r == "us"`,
		`key == "a" || key == "b"`, `body.n % 2 == 0`, `headers.r == "eu" && headers.t == "1"`, `key != "a"`,
	}
	r := New("src", History{Size: 10}, nil)
	type sub struct {
		out  *output.Output
		pred *predicate.Predicate
	}
	var subs []sub
	for i := 0; i < 3*len(preds); i++ {
		p := mustCompile(t, preds[i%len(preds)])
		o := output.New(uint64(i+1), output.Drop, output.Limits{Events: 10000, Bytes: 1 << 30})
		r.add(o, p)
		subs = append(subs, sub{o, p})
	}
	// Remove a few, so that groups shrink and some disappear.
	for _, i := range []int{0, 2, 2 + len(preds), 2 + 2*len(preds)} {
		r.table.remove(subs[i].out.ID())
		subs[i].out = nil
	}
	rng := rand.New(rand.NewPCG(1, 2))
	keys, regions := []string{"a", "b", "c", "d"}, []string{"eu", "us", "ap", ""}
	var msgs []*stream.Message
	for i := 1; i <= 400; i++ {
		m := message(keys[rng.IntN(len(keys))], rng.IntN(10))
		m.Headers = map[string]string{}
		if reg := regions[rng.IntN(len(regions))]; reg != "" {
			m.Headers["r"] = reg
		}
		if rng.IntN(2) == 0 {
			m.Headers["t"] = "1"
		}
		r.route(m)
		msgs = append(msgs, m)
	}
	var in predicate.Input
	for _, s := range subs {
		if s.out == nil {
			continue
		}
		var want []uint64
		for _, m := range msgs {
			in.Reset(m)
			if ok, _ := s.pred.Match(&in); ok {
				want = append(want, m.Seq)
			}
		}
		var got []uint64
		for _, ev := range drain(s.out) {
			got = append(got, ev.Seq())
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: got %d messages, want %d\ngot  %v\nwant %v", s.pred.String(), len(got), len(want), got, want)
		}
	}
	// Removing everyone empties every bucket.
	for _, s := range subs {
		if s.out != nil {
			r.table.remove(s.out.ID())
		}
	}
	tb := &r.table
	if len(tb.byID) != 0 || len(tb.groups) != 0 || len(tb.byKey) != 0 || len(tb.byHeader) != 0 || len(tb.residual) != 0 {
		t.Fatalf("table not empty: %d ids, %d groups, %d keys, %d headers, %d residual", len(tb.byID), len(tb.groups), len(tb.byKey), len(tb.byHeader), len(tb.residual))
	}
}

// Identical predicates share one group and one evaluation; atoms decide what they can.
func TestIndexFiling(t *testing.T) {
	tb := newTable("src")
	add := func(id uint64, src string) *group {
		tb.add(output.New(id, output.Drop, output.Limits{}), mustCompile(t, src))
		return tb.byID[id].g
	}
	g1, g2 := add(1, `key == "a"`), add(2, `key == "a"`)
	if g1 != g2 || !g1.decided || !g1.onKey || len(tb.byKey["a"]) != 1 {
		t.Fatalf("identical predicates: %+v %+v", g1, g2)
	}
	if g := add(3, `key == "a" && body.n > 1`); g.decided || !g.onKey {
		t.Fatalf("key and body: %+v", g)
	}
	if g := add(4, `headers.r == "eu" && key == "b"`); !g.onKey || g.decided {
		t.Fatalf("two atoms: filed on the key, not decided: %+v", g)
	}
	if g := add(5, `source == "other" && key == "a"`); !g.never {
		t.Fatalf("another source's predicate: %+v", g)
	}
	if g := add(6, `source == "src"`); !g.all {
		t.Fatalf("this source's predicate: %+v", g)
	}
	if g := add(7, `body.n > 1`); g.onKey || g.header != "" || len(tb.residual) != 2 {
		t.Fatalf("residual: %+v, %d residual", g, len(tb.residual))
	}
}

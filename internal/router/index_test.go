package router

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/streamux/streamux/internal/output"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/predicate/predicatetest"
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
		`body.n == 3`, `body.n in [1, 2.0, 3u]`, `body.n == 4 && body.u == "u1"`, `body.u == "u1"`, `body.u in ["u1", "u2"]`,
		`body.n == 1.5`, `body.u == "u2" && body.n > 4`, `has(body.u) && body.u == "u1"`, `body.n in []`,
		`headers.r in [] && body.u == "u1"`, `source == "src" && body.u == "u2"`, `body.n == 5 && body.n == 5.0`,
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
	bodies := []string{`{"n":%d,"u":"u1"}`, `{"n":%d,"u":"u2"}`, `{"n":%d.5}`, `{"n":%d}`, `[%d]`, `%d`, `{"n":"%d","u":null}`}
	for i := 1; i <= 400; i++ {
		m := message(keys[rng.IntN(len(keys))], rng.IntN(10))
		if rng.IntN(2) == 0 {
			m.Body = fmt.Appendf(nil, bodies[rng.IntN(len(bodies))], rng.IntN(6))
		}
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
	var live []*output.Output
	var livePreds []*predicate.Predicate
	for _, s := range subs {
		if s.out != nil {
			live, livePreds = append(live, s.out), append(livePreds, s.pred)
		}
	}
	agree(t, r, live, livePreds, msgs)
	// Removing everyone empties every bucket.
	for _, o := range live {
		r.table.remove(o.ID())
	}
	empty := func(tb *table) bool {
		return len(tb.byID) == 0 && len(tb.groups) == 0 && len(tb.byKey) == 0 && len(tb.byHeader) == 0 &&
			len(tb.bodies) == 0 && len(tb.bodyPaths) == 0 && len(tb.residual) == 0
	}
	if tb := &r.table; !empty(tb) {
		t.Fatalf("table not empty: %d ids, %d groups, %d keys, %d headers, %d body paths (%d), %d residual",
			len(tb.byID), len(tb.groups), len(tb.byKey), len(tb.byHeader), len(tb.bodies), len(tb.bodyPaths), len(tb.residual))
	}
}

// agree checks that, after r routed msgs, each output got exactly the messages its predicate
// matches when evaluated on its own, and that the error counters, the output's and the
// router's, are what evaluating every predicate on every message makes them. It returns how
// many deliveries it checked.
func agree(t *testing.T, r *Router, outs []*output.Output, preds []*predicate.Predicate, msgs []*stream.Message) int {
	t.Helper()
	var in predicate.Input
	var wantErrs uint64
	failed := map[string]bool{} // the predicates that failed on a message: counted once per group
	delivered := 0
	for i, o := range outs {
		var want []uint64
		var errs uint64
		for _, m := range msgs {
			in.Reset(m)
			ok, err := preds[i].Match(&in)
			if ok {
				want = append(want, m.Seq)
			}
			if err != nil {
				errs++
				if k := fmt.Sprint(m.Seq, preds[i].String()); !failed[k] {
					failed[k] = true
					wantErrs++
				}
			}
		}
		var got []uint64
		for _, ev := range drain(o) {
			got = append(got, ev.Seq())
		}
		delivered += len(got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: got %d messages, want %d\ngot  %v\nwant %v", preds[i].String(), len(got), len(want), got, want)
		}
		if c := o.Counters(); c.EvalErrors != errs || c.Matched != uint64(len(want)) {
			t.Errorf("%q: %d predicate errors and %d matched, want %d and %d", preds[i].String(), c.EvalErrors, c.Matched, errs, len(want))
		}
	}
	if got := r.Counters().EvalErrors; got != wantErrs {
		t.Errorf("the router counted %d predicate errors, want %d", got, wantErrs)
	}
	return delivered
}

// For random predicates and messages (the predicate package's differential generators, with
// conjunctions of atoms on the key, headers and body paths), the indexed router delivers, and
// counts, exactly what evaluating every predicate on every message would.
func TestIndexAgreesWithEvaluationRandom(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	rounds := 40
	if testing.Short() {
		rounds = 8
	}
	data := make([]byte, 64)
	fill := func() *predicatetest.Gen {
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		return &predicatetest.Gen{Data: data}
	}
	var delivered, onBody, decidedOnBody int
	for round := 0; round < rounds; round++ {
		r := New("orders", History{Size: 10}, nil)
		var outs []*output.Output
		var preds []*predicate.Predicate
		var srcs []string
		for len(srcs) < 60 {
			g := fill()
			src := g.Conjunction()
			if g.Pick(5) == 0 {
				src = g.BoolExpr(0)
			}
			if g.Pick(4) == 0 && len(srcs) > 0 {
				src = srcs[g.Pick(len(srcs))] // a group of several
			}
			p, err := predicate.Compile(src, predicate.Limits{MaxCost: 1 << 40})
			if err != nil {
				continue
			}
			srcs = append(srcs, src)
			o := output.New(uint64(len(outs)+1), output.Drop, output.Limits{Events: 10000, Bytes: 1 << 30})
			r.add(o, p)
			outs, preds = append(outs, o), append(preds, p)
		}
		// Some leave, so that groups shrink and some disappear.
		for i := 0; i < 10; i++ {
			j := rng.IntN(len(outs))
			r.table.remove(outs[j].ID())
			outs = append(outs[:j], outs[j+1:]...)
			preds = append(preds[:j], preds[j+1:]...)
		}
		for _, g := range r.table.groups {
			if g.body != nil {
				onBody++
				if g.decided {
					decidedOnBody++
				}
			}
		}
		var msgs []*stream.Message
		for i := 0; i < 150; i++ {
			g := fill()
			m := g.Record()
			if g.Pick(4) == 0 {
				m = g.Message()
			}
			r.route(m)
			msgs = append(msgs, m)
		}
		delivered += agree(t, r, outs, preds, msgs)
		if t.Failed() {
			t.Fatalf("round %d, seed %d", round, seed)
		}
	}
	t.Logf("%d deliveries; %d groups filed under a body path, %d of them decided", delivered, onBody, decidedOnBody)
	if onBody < rounds || decidedOnBody == 0 {
		t.Errorf("%d groups filed under a body path, %d of them decided: too few to tell", onBody, decidedOnBody)
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
	if g := add(7, `body.n > 1`); g.onKey || g.header != "" || g.body != nil || len(tb.residual) != 2 {
		t.Fatalf("residual: %+v, %d residual", g, len(tb.residual))
	}
	// Body atoms, when there is no key or header atom: the one with the fewest values.
	if g := add(8, `body.u == "u1"`); g.body == nil || g.body.String() != "body.u" || !g.decided {
		t.Fatalf("body atom: %+v", g)
	}
	if g := add(9, `body["u"] in ["u1", "u2"] && source == "src"`); g.body == nil || !g.decided || len(g.keys) != 2 {
		t.Fatalf("body atom and source: %+v", g)
	}
	if g := add(10, `body.u in ["u1", "u2"] && body.n in [1.0, 2] && body.m in [1, 1u, 1.0]`); g.body == nil || g.body.String() != "body.m" || g.decided || len(g.keys) != 1 {
		t.Fatalf("two body atoms: %+v", g)
	}
	if g := add(11, `body.u == "u1" && headers.r in ["eu", "us"]`); g.header != "r" || g.body != nil {
		t.Fatalf("body and header atoms: %+v", g)
	}
	if len(tb.bodies) != 2 || len(tb.bodyPaths) != 2 || len(tb.bodyPaths["body.u"].all) != 2 || len(tb.bodyPaths["body.u"].byValue) != 2 {
		t.Fatalf("%d body paths: %v", len(tb.bodies), tb.bodyPaths)
	}
	// An atom in [] is false whatever its field is, even missing: nothing to file.
	if g := add(12, `body.u in [] && body.n > 1`); !g.never {
		t.Fatalf("in []: %+v", g)
	}
	// A header in a list without strings is false, or an error when the header is missing.
	if g := add(13, `headers.r in [1, true]`); g.header != "r" || len(g.values) != 0 || !g.decided || len(tb.byHeader["r"].all) != 2 {
		t.Fatalf("header in numbers: %+v", g)
	}
	if g := add(14, `key in [1, "b", "b"]`); !g.onKey || fmt.Sprint(g.values) != "[b]" {
		t.Fatalf("key in mixed list: %+v", g)
	}
	for id := uint64(8); id <= 10; id++ {
		tb.remove(id)
	}
	if len(tb.bodies) != 0 || len(tb.bodyPaths) != 0 {
		t.Fatalf("%d body paths left", len(tb.bodies))
	}
}

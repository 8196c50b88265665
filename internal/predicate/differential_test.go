package predicate

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/cel-go/common/types"

	"github.com/streamux/streamux/internal/predicate/predicatetest"
	"github.com/streamux/streamux/internal/stream"
)

// differ evaluates src both ways on m and reports whether they agree, with each other and with
// what an index reads of the predicate's atoms (indexAgrees).
func differ(t *testing.T, src string, m *stream.Message) bool {
	t.Helper()
	p, err := Compile(src, Limits{MaxCost: 1 << 40})
	if err != nil {
		return true // not well typed: the generator does not know types
	}
	if p.MatchesAll() {
		return true
	}
	if p.fast == nil {
		t.Errorf("%s: outside the fast subset", src)
		return false
	}
	var fastIn, celIn Input
	fastIn.Reset(m)
	celIn.Reset(m)
	fastOK, fastErr := p.fast(&fastIn)
	// Again, now from the paths the first evaluation kept.
	if ok, err := p.fast(&fastIn); ok != fastOK || (err != nil) != (fastErr != nil) {
		t.Errorf("%s on body %q: %v, %v, then %v, %v", src, m.Body, fastOK, fastErr, ok, err)
		return false
	}
	out, _, celErr := p.prg.Eval((*activation)(&celIn))
	celOK := celErr == nil && out == types.True
	celFailed := celErr != nil || (out != types.True && out != types.False)
	if fastOK != celOK || (fastErr != nil) != celFailed {
		t.Errorf("%s\non body %q key %q headers %v:\nfast %v, %v\ncel  %v, %v", src, m.Body, m.Key, m.Headers, fastOK, fastErr, out, celErr)
		return false
	}
	return indexAgrees(t, p, m)
}

// differential writes a differential case: a predicate from the fast subset and a message, or a
// third of the time a conjunction with atoms and, mostly, a message with an object for a body,
// so that what an index reads of atoms is checked too.
func differential(g *predicatetest.Gen) (string, *stream.Message) {
	if g.Pick(3) != 0 {
		return g.BoolExpr(0), g.Message()
	}
	src := g.Conjunction()
	if g.Pick(4) == 0 {
		return src, g.Message()
	}
	return src, g.Record()
}

func FuzzDifferential(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("the quick brown fox jumps over the lazy dog"))
	f.Add([]byte{8, 0, 9, 0, 1, 4, 3, 2, 7, 6, 5, 200, 100, 50, 25})
	for i := 0; i < 20; i++ {
		f.Add(binary.BigEndian.AppendUint64(nil, uint64(i)*0x9e3779b97f4a7c15))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &predicatetest.Gen{Data: data}
		src, m := differential(g)
		differ(t, src, m)
	})
}

// TestDifferential runs the differential check on random inputs in every test run, beyond the
// fuzzer's seeds.
func TestDifferential(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 0))
	n := 5000
	if testing.Short() {
		n = 500
	}
	data := make([]byte, 96)
	for i := 0; i < n; i++ {
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		g := &predicatetest.Gen{Data: data}
		if src, m := differential(g); !differ(t, src, m) {
			t.Fatalf("seed %d, case %d", seed, i)
		}
	}
}

// The fast subset is what the common predicates use.
func TestFastSubset(t *testing.T) {
	t.Parallel()
	in := []string{
		`key == "k1"`,
		`source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]`,
		`key.startsWith("eu.") && has(body.customer) && body.customer.tier == "gold"`,
		`!(key.endsWith(".test") || key.contains("debug"))`,
		`body.items[0].sku == "A-1001" && body["currency"] != "USD"`,
		`seq >= 100 && time > timestamp("2026-01-01T00:00:00Z")`,
		`"tenant" in headers && has(headers.region) && body.active`,
		`body.n in [1, 2.0, 3u] || body.status in ["a", "b"]`,
		`1 < body.amount`, `body.amount <= body.limit`, `headers.region == body.region`,
	}
	out := []string{
		`body.n % 3 == 0`,
		`body.items.exists(i, i.qty > 1)`,
		`size(body.items) > 1`,
		`key.matches("^eu")`,
		`body.a == body.b`, // may compare lists
		`headers == {"a": "b"}`,
		`body.n in [1, null]`,
		`key in body.keys`,
		`body.a ? true : false`,
		`key.lowerAscii() == "eu"`,
		`time - timestamp("2026-01-01T00:00:00Z") > duration("1h")`,
	}
	for _, src := range in {
		p, err := Compile(src, Limits{})
		if err != nil {
			t.Errorf("%s: %v", src, err)
		} else if p.fast == nil {
			t.Errorf("%s: not in the fast subset", src)
		}
	}
	for _, src := range out {
		p, err := Compile(src, Limits{})
		if err != nil {
			t.Errorf("%s: %v", src, err)
		} else if p.fast != nil {
			t.Errorf("%s: in the fast subset", src)
		}
	}
}

// The fast path allocates nothing: not on a match, not on a miss, not on an error.
func TestFastZeroAllocs(t *testing.T) {
	m := benchMessage()
	for _, src := range []string{
		`key == "eu.order.created"`,
		`source == "orders" && body.amount > 100 && body.customer.tier == "gold"`,
		`source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]`,
		`key.startsWith("eu.") && has(body.customer) && body.customer.email.endsWith("@example.com")`,
		`body.items[1].qty == 1 && body.tags[0] in ["new", "old"] && time > timestamp("2020-01-01T00:00:00Z")`,
		`body.nosuch == 1`, // an error
		`body.amount > 1000 || body.currency == "USD"`,
	} {
		p, err := Compile(src, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if p.fast == nil {
			t.Fatalf("%s: not in the fast subset", src)
		}
		var in Input
		in.Reset(m)
		p.Match(&in) // decode the body once
		if n := testing.AllocsPerRun(100, func() { p.Match(&in) }); n != 0 {
			t.Errorf("%s: %v allocations per Match", src, n)
		}
		// And per message, once the Input is warm.
		if n := testing.AllocsPerRun(100, func() { in.Reset(m); p.Match(&in) }); n != 0 {
			t.Errorf("%s: %v allocations per Reset and Match", src, n)
		}
	}
}

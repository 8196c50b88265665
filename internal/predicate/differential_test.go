package predicate

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/common/types"

	"github.com/streamux/streamux/internal/stream"
)

// gen turns bytes into choices: a fuzzer's input, or random bytes, drive it.
type gen struct {
	data []byte
}

func (g *gen) pick(n int) int {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return int(b) % n
}

func (g *gen) of(choices ...string) string { return choices[g.pick(len(choices))] }

// boolExpr writes a predicate from the fast subset.
func (g *gen) boolExpr(depth int) string {
	n := 10
	if depth > 3 {
		n = 8 // leaves only
	}
	switch g.pick(n) {
	case 0:
		return g.compare()
	case 1:
		return g.operand(true) + " in [" + g.constList() + "]"
	case 2:
		return g.operand(false) + "." + g.of("startsWith", "endsWith", "contains") + "(" + g.stringOperand() + ")"
	case 3:
		return "has(" + g.of("body", "body.a", "body.b", "body.l[0]", "headers", "body.s") + "." + g.field() + ")"
	case 4:
		return g.bodyPath() // a bool, or an error
	case 5:
		return g.of("true", "false")
	case 6:
		return `"` + g.of("region", "x-y", "nope") + `" in headers`
	case 7:
		return g.compare()
	case 8:
		return "(" + g.boolExpr(depth+1) + " " + g.of("&&", "||") + " " + g.boolExpr(depth+1) + ")"
	default:
		return "!(" + g.boolExpr(depth+1) + ")"
	}
}

func (g *gen) compare() string {
	op := g.of("==", "!=", "<", "<=", ">", ">=")
	l := g.operand(true)
	r := g.operand(false) // no body path on the right of == and !=, as the subset wants
	if g.pick(2) == 0 {
		l, r = r, l
	}
	return l + " " + op + " " + r
}

func (g *gen) field() string { return g.of("a", "b", "c", "n", "s", "l", "x", "d") }

func (g *gen) bodyPath() string {
	p := "body"
	for i, n := 0, g.pick(4); i < n; i++ {
		switch g.pick(4) {
		case 0:
			p += `["` + g.field() + `"]`
		case 1:
			p += "[" + g.of("0", "1", "-1", "5") + "]"
		default:
			p += "." + g.field()
		}
	}
	return p
}

func (g *gen) operand(bodyOK bool) string {
	n := 4
	if bodyOK {
		n = 6
	}
	switch g.pick(n) {
	case 0, 1:
		return g.constant()
	case 2:
		return g.of("source", "key", "seq", "time")
	case 3:
		return g.of("headers.region", `headers["x-y"]`, "headers.nope")
	default:
		return g.bodyPath()
	}
}

func (g *gen) stringOperand() string {
	switch g.pick(3) {
	case 0:
		return g.of("key", "source", "headers.region")
	case 1:
		return g.bodyPath()
	}
	return g.of(`""`, `"a"`, `"eu"`, `"é"`, `"A"`, `"x"`)
}

func (g *gen) constant() string {
	return g.of(`""`, `"a"`, `"eu"`, `"gold"`, `"1"`, `"é"`,
		"0", "1", "-1", "100", "9223372036854775807", "-9223372036854775808", "4611686018427387904",
		"0u", "1u", "18446744073709551615u",
		"0.0", "-0.0", "1.5", "100.0", "1e19", "9.223372036854776e18", "-1e300", "4.611686018427388e18",
		"true", "false", "null", `timestamp("2026-11-25T16:00:00Z")`)
}

func (g *gen) constList() string {
	n := g.pick(4)
	elems := make([]string, n)
	for i := range elems {
		// Literals only, but not null or timestamps: those lists are not in the subset.
		for {
			c := g.constant()
			if c != "null" && !strings.HasPrefix(c, "timestamp") {
				elems[i] = c
				break
			}
		}
	}
	return strings.Join(elems, ", ")
}

// jsonValue writes a random JSON value.
func (g *gen) jsonValue(depth int) string {
	n := 12
	if depth > 2 {
		n = 9
	}
	switch g.pick(n) {
	case 0:
		return g.of("0", "1", "-1", "100", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
			"18446744073709551615", "18446744073709551616", "4611686018427387904", "-0")
	case 1:
		return g.of("0.0", "-0.0", "1.5", "100.0", "1e2", "1e19", "9.223372036854776e18", "1e400", "-1e400", "5e-324", "1E+2")
	case 2, 3:
		return g.of(`""`, `"a"`, `"eu"`, `"gold"`, `"1"`, `"é"`, `"\u00e9"`, `"a\"b"`, `"\ud800"`, `"A"`, `"x"`)
	case 4:
		return g.of("true", "false")
	case 5:
		return "null"
	case 6:
		return `"2026-11-25T16:00:00Z"`
	case 7, 8:
		return g.of(`"eu"`, "100", "true")
	case 9:
		elems := make([]string, g.pick(4))
		for i := range elems {
			elems[i] = g.jsonValue(depth + 1)
		}
		return "[" + strings.Join(elems, ",") + "]"
	default:
		var b strings.Builder
		b.WriteByte('{')
		for i, n := 0, g.pick(5); i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"` + g.field() + `":` + g.jsonValue(depth+1))
		}
		b.WriteByte('}')
		return b.String()
	}
}

func (g *gen) message() *stream.Message {
	m := &stream.Message{
		Source: g.of("orders", "", "a"),
		Seq:    uint64(g.pick(3)),
		Key:    g.of("eu", "", "a", "é", "1", "gold"),
		Time:   time.Date(2026, 11, 25, 16, 0, g.pick(2), 0, time.UTC),
	}
	switch g.pick(4) {
	case 0:
	case 1:
		m.Headers = map[string]string{}
	default:
		m.Headers = map[string]string{"region": g.of("eu", "", "a"), "x-y": g.of("1", "é")}
	}
	switch g.pick(8) {
	case 0:
		m.Body = []byte(g.of("", "text", "eu", "{", "\xff\xfe", "[1,2", "nan"))
	case 1:
		m.Body = []byte(g.jsonValue(3))
	default:
		m.Body = []byte(g.jsonValue(0))
	}
	return m
}

// differ evaluates src both ways on m and reports whether they agree.
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
	return true
}

func FuzzDifferential(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("the quick brown fox jumps over the lazy dog"))
	f.Add([]byte{8, 0, 9, 0, 1, 4, 3, 2, 7, 6, 5, 200, 100, 50, 25})
	for i := 0; i < 20; i++ {
		f.Add(binary.BigEndian.AppendUint64(nil, uint64(i)*0x9e3779b97f4a7c15))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &gen{data: data}
		differ(t, g.boolExpr(0), g.message())
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
		g := &gen{data: data}
		src := g.boolExpr(0)
		if !differ(t, src, g.message()) {
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

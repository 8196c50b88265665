// Package predicatetest generates predicates and messages from bytes, for the tests that hold the
// predicate package, and the index built on its atoms, to CEL's semantics: a fuzzer's input, or
// random bytes, drive every choice, so a failure is reproduced from its bytes.
package predicatetest

import (
	"strings"
	"time"

	"github.com/streamux/streamux/internal/stream"
)

// Gen turns bytes into choices: a fuzzer's input, or random bytes, drive it.
type Gen struct {
	// Data is what is left to choose from; when it runs out, every choice is the first.
	Data []byte
}

// Pick chooses a number in [0, n).
func (g *Gen) Pick(n int) int {
	if len(g.Data) == 0 {
		return 0
	}
	b := g.Data[0]
	g.Data = g.Data[1:]
	return int(b) % n
}

// Of chooses one of the choices.
func (g *Gen) Of(choices ...string) string { return choices[g.Pick(len(choices))] }

// BoolExpr writes a predicate from the fast subset of the predicate package; depth is how deep
// it is nested already (0 at the top).
func (g *Gen) BoolExpr(depth int) string {
	n := 10
	if depth > 3 {
		n = 8 // leaves only
	}
	switch g.Pick(n) {
	case 0:
		return g.compare()
	case 1:
		return g.operand(true) + " in [" + g.ConstList() + "]"
	case 2:
		return g.operand(false) + "." + g.Of("startsWith", "endsWith", "contains") + "(" + g.stringOperand() + ")"
	case 3:
		return "has(" + g.Of("body", "body.a", "body.b", "body.l[0]", "headers", "body.s") + "." + g.field() + ")"
	case 4:
		return g.bodyPath() // a bool, or an error
	case 5:
		return g.Of("true", "false")
	case 6:
		return `"` + g.Of("region", "x-y", "nope") + `" in headers`
	case 7:
		return g.compare()
	case 8:
		return "(" + g.BoolExpr(depth+1) + " " + g.Of("&&", "||") + " " + g.BoolExpr(depth+1) + ")"
	default:
		return "!(" + g.BoolExpr(depth+1) + ")"
	}
}

func (g *Gen) compare() string {
	op := g.Of("==", "!=", "<", "<=", ">", ">=")
	l := g.operand(true)
	r := g.operand(false) // no body path on the right of == and !=, as the subset wants
	if g.Pick(2) == 0 {
		l, r = r, l
	}
	return l + " " + op + " " + r
}

func (g *Gen) field() string { return g.Of("a", "b", "c", "n", "s", "l", "x", "d") }

func (g *Gen) bodyPath() string {
	p := "body"
	for i, n := 0, g.Pick(4); i < n; i++ {
		switch g.Pick(4) {
		case 0:
			p += `["` + g.field() + `"]`
		case 1:
			p += "[" + g.Of("0", "1", "-1", "5") + "]"
		default:
			p += "." + g.field()
		}
	}
	return p
}

func (g *Gen) operand(bodyOK bool) string {
	n := 4
	if bodyOK {
		n = 6
	}
	switch g.Pick(n) {
	case 0, 1:
		return g.Constant()
	case 2:
		return g.Of("source", "key", "seq", "time")
	case 3:
		return g.Of("headers.region", `headers["x-y"]`, "headers.nope")
	default:
		return g.bodyPath()
	}
}

func (g *Gen) stringOperand() string {
	switch g.Pick(3) {
	case 0:
		return g.Of("key", "source", "headers.region")
	case 1:
		return g.bodyPath()
	}
	return g.Of(`""`, `"a"`, `"eu"`, `"é"`, `"A"`, `"x"`)
}

// Constant writes a literal: a string, a number (ints, uints and doubles at the edges of
// exactness), a bool, null or a timestamp.
func (g *Gen) Constant() string {
	return g.Of(`""`, `"a"`, `"eu"`, `"gold"`, `"1"`, `"é"`,
		"0", "1", "-1", "100", "9223372036854775807", "-9223372036854775808", "4611686018427387904",
		"0u", "1u", "18446744073709551615u",
		"0.0", "-0.0", "1.5", "100.0", "1e19", "9.223372036854776e18", "-1e300", "4.611686018427388e18",
		"true", "false", "null", `timestamp("2026-11-25T16:00:00Z")`)
}

// ConstList writes the elements of a list of up to three literals, without brackets: neither
// null nor timestamps, which no list in the fast subset holds.
func (g *Gen) ConstList() string {
	n := g.Pick(4)
	elems := make([]string, n)
	for i := range elems {
		// Literals only, but not null or timestamps: those lists are not in the subset.
		for {
			c := g.Constant()
			if c != "null" && !strings.HasPrefix(c, "timestamp") {
				elems[i] = c
				break
			}
		}
	}
	return strings.Join(elems, ", ")
}

// JSONValue writes a JSON value nested at most about 3-depth levels further: numbers at the edges
// of int64, uint64 and double, strings with escapes, objects over the names that BoolExpr reads.
func (g *Gen) JSONValue(depth int) string {
	n := 12
	if depth > 2 {
		n = 9
	}
	switch g.Pick(n) {
	case 0:
		return g.Of("0", "1", "-1", "100", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
			"18446744073709551615", "18446744073709551616", "4611686018427387904", "-0")
	case 1:
		return g.Of("0.0", "-0.0", "1.5", "100.0", "1e2", "1e19", "9.223372036854776e18", "1e400", "-1e400", "5e-324", "1E+2")
	case 2, 3:
		return g.Of(`""`, `"a"`, `"eu"`, `"gold"`, `"1"`, `"é"`, `"\u00e9"`, `"a\"b"`, `"\ud800"`, `"A"`, `"x"`)
	case 4:
		return g.Of("true", "false")
	case 5:
		return "null"
	case 6:
		return `"2026-11-25T16:00:00Z"`
	case 7, 8:
		return g.Of(`"eu"`, "100", "true")
	case 9:
		elems := make([]string, g.Pick(4))
		for i := range elems {
			elems[i] = g.JSONValue(depth + 1)
		}
		return "[" + strings.Join(elems, ",") + "]"
	default:
		var b strings.Builder
		b.WriteByte('{')
		for i, n := 0, g.Pick(5); i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"` + g.field() + `":` + g.JSONValue(depth+1))
		}
		b.WriteByte('}')
		return b.String()
	}
}

// Message makes a message whose source, key, headers and body the generated predicates read:
// headers absent, empty or set; the body JSON (mostly an object), text or bytes.
func (g *Gen) Message() *stream.Message {
	m := &stream.Message{
		Source: g.Of("orders", "", "a"),
		Seq:    uint64(g.Pick(3)),
		Key:    g.Of("eu", "", "a", "é", "1", "gold"),
		Time:   time.Date(2026, 11, 25, 16, 0, g.Pick(2), 0, time.UTC),
	}
	switch g.Pick(4) {
	case 0:
	case 1:
		m.Headers = map[string]string{}
	default:
		m.Headers = map[string]string{"region": g.Of("eu", "", "a"), "x-y": g.Of("1", "é")}
	}
	switch g.Pick(8) {
	case 0:
		m.Body = []byte(g.Of("", "text", "eu", "{", "\xff\xfe", "[1,2", "nan"))
	case 1:
		m.Body = []byte(g.JSONValue(3))
	default:
		m.Body = []byte(g.JSONValue(0))
	}
	return m
}

// Atom writes a conjunct shaped like an atom: a field == a constant (either way round) or a
// field in a list of constants. Some are no atoms (a list index in the path, a number beyond
// what an index compares exactly, null), and some are ill-typed (key == 1), as a client's may be.
// Half of them compare with the values that Record's fields hold most often, so that they hold
// often enough.
func (g *Gen) Atom() string {
	field := g.Of("key", "source", "headers.region", `headers["x-y"]`, "headers.nope",
		"body", "body.a", "body.n", "body.a.b", `body["s"]`, "body.d.n", "body.l[0]")
	likely := func() string { return g.Of(`"eu"`, `"gold"`, `"a"`, "100", "100.0", "1.5", "true", "0") }
	switch g.Pick(6) {
	case 0:
		return field + " == " + g.Constant()
	case 1:
		return g.Constant() + " == " + field
	case 2:
		return field + " in [" + g.ConstList() + "]"
	case 3:
		return field + " in [" + likely() + ", " + likely() + "]"
	}
	return field + " == " + likely()
}

// Conjunction writes a top-level && of one to three atom-shaped conjuncts (Atom) and, sometimes,
// another predicate (BoolExpr), in any order: what an index files under its atoms.
func (g *Gen) Conjunction() string {
	var conj []string
	if g.Pick(3) == 0 {
		conj = append(conj, "("+g.BoolExpr(2)+")")
	}
	for n := g.Pick(3) + 1; n > 0; n-- {
		conj = append(conj, g.Atom())
	}
	for i := len(conj) - 1; i > 0; i-- {
		j := g.Pick(i + 1)
		conj[i], conj[j] = conj[j], conj[i]
	}
	return strings.Join(conj, " && ")
}

// Record makes a message as Message does, but with a JSON object for a body, whose fields hold
// mostly the values that Atom compares with (some nested one level, some null or lists): the
// messages that atoms on body paths most often hold or fail on.
func (g *Gen) Record() *stream.Message {
	m := g.Message()
	name := func() string { return g.Of("a", "n", "s", "d", "l", "b") }
	likely := func() string {
		return g.Of(`"eu"`, `"gold"`, `"a"`, "100", "1e2", "1.5", "true", "-0.0", "null", "[1]")
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := 0, g.Pick(6); i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + name() + `":`)
		switch g.Pick(5) {
		case 0:
			b.WriteString(g.JSONValue(1))
		case 1:
			b.WriteString(`{"` + name() + `":` + likely() + `}`)
		default:
			b.WriteString(likely())
		}
	}
	b.WriteByte('}')
	m.Body = []byte(b.String())
	return m
}

package predicate

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/streamux/streamux/internal/predicate/predicatetest"
)

func TestAtoms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src  string
		want []string
	}{
		{`key == "k1"`, []string{`key == "k1"`}},
		{`"k1" == key`, []string{`key == "k1"`}},
		{`source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]`,
			[]string{`source == "orders"`, `headers.region in ["eu", "us"]`}},
		{`key.startsWith("eu.") && has(body.customer) && body.customer.tier == "gold"`,
			[]string{`body.customer.tier == "gold"`}},
		{`(key == "a" && source == "s") && (body.n == 3 && body["a b"].c == 1.5)`,
			[]string{`key == "a"`, `source == "s"`, `body.n == 3`, `body["a b"].c == 1.5`}},
		{`headers["x-y"] == "z" && body.ok == true && body.u == 7u && body.f == 2.0`,
			[]string{`headers["x-y"] == "z"`, `body.ok == true`, `body.u == 7u`, `body.f == 2.0`}},
		{`key in []`, []string{`key in []`}},
		{`body == "text"`, []string{`body == "text"`}},
		{`body.a in ["x", 1, 2.0, 1.5, 3u, true] && body.b == -9007199254740991`,
			[]string{`body.a in ["x", 1, 2.0, 1.5, 3u, true]`, `body.b == -9007199254740991`}},
		{`body.x.y in ["eu"] && (body.a == 1 || key == "k") && body.n > 1`, []string{`body.x.y == "eu"`}},
		// Not required by every match, or not an equality with constants.
		{`key == "a" || key == "b"`, nil},
		{`body.a == "x" || body.b == "y"`, nil},
		{`!(key == "a")`, nil},
		{`!(body.a == "x")`, nil},
		{`key != "a"`, nil},
		{`body.a != "x"`, nil},
		{`body.ok ? body.a == "x" : false`, nil},
		{`body.items.exists(i, i.sku == "x")`, nil},
		{`body.items.all(i, body.a == "x")`, nil},
		{`[1].exists(x, body.a == "x" && key == "k")`, nil},
		{`body.items[0].sku == "x"`, nil},
		{`body.n == body.m`, nil},
		{`body.n == key`, nil},
		{`body.n == 1 + 1`, nil},
		{`body.s == "a" + "b"`, nil},
		{`body.n == null`, nil},
		{`body.t == timestamp("2026-01-01T00:00:00Z")`, nil},
		{`body.n in [1, null]`, nil},
		{`body.n in body.list`, nil},
		{`key in ["a", key]`, nil},
		{`time == timestamp("2026-01-01T00:00:00Z")`, nil},
		{`seq == 3`, nil},
		{`body.active`, nil},
		{`has(body.a)`, nil},
		// Numbers that CEL's == and in compare inexactly (beyond 2^53) are no atoms.
		{`body.n == 9007199254740992`, nil},
		{`body.n == 9223372036854775807`, nil},
		{`body.n == 18446744073709551615u`, nil},
		{`body.n == 1e19`, nil},
		{`body.n in [1, 9007199254740993]`, nil},
		{`body.n == 4.611686018427388e18 && key == "a"`, []string{`key == "a"`}},
		{``, nil},
		{`true`, nil},
	}
	for _, c := range cases {
		p, err := Compile(c.src, Limits{})
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		var got []string
		for _, a := range p.Atoms() {
			got = append(got, a.String())
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Atoms(%s) = %q, want %q", c.src, got, c.want)
		}
	}
	p, _ := Compile(`headers.region in ["eu", "us"] && body.customer.tier == "gold" && body.n == 1`, Limits{})
	want := []Atom{
		{Var: "headers", Path: []string{"region"}, Values: []any{"eu", "us"}},
		{Var: "body", Path: []string{"customer", "tier"}, Values: []any{"gold"}},
		{Var: "body", Path: []string{"n"}, Values: []any{int64(1)}},
	}
	if got := p.Atoms(); !reflect.DeepEqual(got, want) {
		t.Errorf("Atoms() = %#v, want %#v", got, want)
	}
}

// Every atom holds for every message that matches: checked on conjunctions of atoms and the
// differential generator's predicates, over its messages. (FuzzDifferential checks more: what
// the index reads of each atom.)
func TestAtomsRequired(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 128)
	checked := 0
	for i := 0; i < 20000 && checked < 300; i++ {
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		g := &predicatetest.Gen{Data: data}
		src := g.Conjunction()
		p, err := Compile(src, Limits{MaxCost: 1 << 40})
		if err != nil || len(p.Atoms()) == 0 {
			continue
		}
		var in Input
		for tries := 0; tries < 20; tries++ {
			m := g.Message()
			in.Reset(m)
			if ok, _ := p.Match(&in); !ok {
				continue
			}
			for _, a := range p.Atoms() {
				checked++
				q, err := Compile(a.String(), Limits{})
				if err != nil {
					t.Fatalf("%s: atom %s: %v", src, a, err)
				}
				if ok, err := q.Match(&in); !ok {
					t.Errorf("%s matches %q, but its atom %s does not (%v)", src, m.Body, a, err)
				}
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d atoms were checked", checked)
	}
	t.Logf("%d atoms of matching predicates checked", checked)
}

func TestDecided(t *testing.T) {
	for src, want := range map[string]bool{
		`key == "a"`:                             true,
		`body.user == "u1"`:                      true,
		`source == "s" && body.a.b in [1, 2.5]`:  true,
		`body.user == "u1" && body.n > 1`:        false,
		`body.n == 9007199254740993`:             false,
		`body.a == "x" && body.l[0] == 1`:        false,
		`key in ["a", "b"] && headers.r == "eu"`: true,
		`"a" == key && source == "s"`:            true,
		`key == "a" && body.n > 1`:               false,
		`key == "a" || key == "b"`:               false,
		`body.n > 1`:                             false,
		``:                                       false,
		`true`:                                   false,
	} {
		p, err := Compile(src, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Decided() != want {
			t.Errorf("%q: Decided() = %v", src, p.Decided())
		}
	}
}

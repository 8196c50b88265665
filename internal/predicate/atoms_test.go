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
		// Not required by every match, or not an equality with constants.
		{`key == "a" || key == "b"`, nil},
		{`!(key == "a")`, nil},
		{`key != "a"`, nil},
		{`body.items[0].sku == "x"`, nil},
		{`body.n == body.m`, nil},
		{`body.n == null`, nil},
		{`key in ["a", key]`, nil},
		{`time == timestamp("2026-01-01T00:00:00Z")`, nil},
		{`seq == 3`, nil},
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
// differential generator's predicates, over its messages.
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

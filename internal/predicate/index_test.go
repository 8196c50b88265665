package predicate

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/streamux/streamux/internal/stream"
)

// Keys are CEL's equality: values that == makes equal share a Key, others do not.
func TestKeys(t *testing.T) {
	t.Parallel()
	key := func(c any) Key {
		t.Helper()
		k, ok := constKey(c)
		if !ok {
			t.Fatalf("%v (%T): no key", c, c)
		}
		return k
	}
	for _, same := range [][]any{
		{int64(1), uint64(1), float64(1)},
		{int64(0), uint64(0), float64(0), math.Copysign(0, -1)},
		{int64(-3), float64(-3)},
		{int64(1<<53 - 1), uint64(1<<53 - 1), float64(1<<53 - 1)},
		{1.5},
		{"1"},
		{true},
	} {
		for _, c := range same[1:] {
			if key(c) != key(same[0]) {
				t.Errorf("%v (%T) and %v (%T): different keys", c, c, same[0], same[0])
			}
		}
	}
	distinct := []any{int64(1), 1.5, "1", true, false, "", int64(0), -1.5, 0.5, "true", int64(1<<53 - 1), int64(-(1<<53 - 1))}
	for i, a := range distinct {
		for _, b := range distinct[i+1:] {
			if key(a) == key(b) {
				t.Errorf("%v (%T) and %v (%T): one key", a, a, b, b)
			}
		}
	}
	for _, c := range []any{int64(1 << 53), int64(-(1 << 53)), uint64(1 << 53), float64(1 << 53), 1e19, math.Inf(1), math.NaN(), int64(math.MaxInt64), nil} {
		if _, ok := constKey(c); ok {
			t.Errorf("%v (%T) has a key", c, c)
		}
	}
}

// A BodyField reads what CEL reads, and a Key as the atom's Keys compare it.
func TestBodyField(t *testing.T) {
	t.Parallel()
	type want struct {
		key  any  // the constant whose key the value has, if ok
		ok   bool // the value has a key
		fail bool // reading the field fails
	}
	for _, c := range []struct {
		path []string
		body string
		want
	}{
		{[]string{"a", "b"}, `{"a":{"b":"x"}}`, want{key: "x", ok: true}},
		{[]string{"a", "b"}, `{"a":{"b":"x"},"a":{"c":1}}`, want{fail: true}}, // the last "a" counts
		{[]string{"a"}, `{"a":1,"a":2.0}`, want{key: int64(2), ok: true}},
		{[]string{"n"}, `{"n":1.0}`, want{key: int64(1), ok: true}},
		{[]string{"n"}, `{"n":-0.0}`, want{key: int64(0), ok: true}},
		{[]string{"n"}, `{"n":1e2}`, want{key: int64(100), ok: true}},
		{[]string{"n"}, `{"n":0.25}`, want{key: 0.25, ok: true}},
		{[]string{"n"}, `{"n":9007199254740993}`, want{}},
		{[]string{"n"}, `{"n":1e400}`, want{}},
		{[]string{"n"}, `{"n":true}`, want{key: true, ok: true}},
		{[]string{"n"}, `{"n":null}`, want{}},
		{[]string{"n"}, `{"n":[1]}`, want{}},
		{[]string{"n"}, `{"n":{"m":1}}`, want{}},
		{[]string{"n"}, `{"m":1}`, want{fail: true}},
		{[]string{"n"}, `[{"n":1}]`, want{fail: true}},
		{[]string{"n"}, `"n"`, want{fail: true}},
		{[]string{"n"}, `null`, want{fail: true}},
		{[]string{"n"}, `n`, want{fail: true}},
		{[]string{"n"}, "\xff", want{fail: true}},
		{[]string{"n"}, ``, want{fail: true}},
		{[]string{"é", "a b"}, `{"\u00e9":{"a b":"\ud83d\ude00"}}`, want{key: "😀", ok: true}},
		{nil, `text`, want{key: "text", ok: true}},
		{nil, `"text"`, want{key: "text", ok: true}},
		{nil, `{}`, want{}},
		{nil, strings.Repeat("[", 301) + strings.Repeat("]", 301), want{fail: true}}, // deeper than fastjson parses
	} {
		f := NewBodyField(c.path)
		var in Input
		in.Reset(&stream.Message{Body: []byte(c.body)})
		k, ok, err := f.Key(&in)
		if (err != nil) != c.fail || ok != c.ok {
			t.Errorf("%s on %q: %v, %v, %v; want ok %v, failure %v", f, c.body, k, ok, err, c.ok, c.fail)
			continue
		}
		if ok {
			if w, _ := constKey(c.key); k != w {
				t.Errorf("%s on %q: key %v, want %v's", f, c.body, k, c.key)
			}
		}
	}
	if got := NewBodyField([]string{"a", "b c", "in"}).String(); got != `body.a["b c"]["in"]` {
		t.Errorf("String() = %s", got)
	}
	var in Input
	if _, _, err := NewBodyField([]string{"a"}).Key(&in); err == nil {
		t.Error("an Input never Reset: no error")
	}
}

// The index reads nothing else, and allocates nothing, per message.
func TestBodyFieldZeroAllocs(t *testing.T) {
	m := benchMessage()
	f := NewBodyField([]string{"customer", "tier"})
	p, err := Compile(`body.customer.tier == "gold" && body.amount > 100`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	in.Reset(m)
	f.Key(&in)
	if n := testing.AllocsPerRun(100, func() {
		in.Reset(m)
		if _, ok, _ := f.Key(&in); !ok {
			t.Fatal("no key")
		}
		p.Match(&in)
	}); n != 0 {
		t.Errorf("%v allocations per Reset, Key and Match", n)
	}
}

// indexAgrees checks, for p on m, what an index relies on: each atom, read as an index reads it
// (the key or a header's value, or a BodyField's Key, against the atom's Keys), is true, false,
// or an error when the field is missing; a false atom makes p false without error, an error
// makes p not match, and a Decided p is exactly the && of its atoms. It reads the fields first
// and then matches on the same Input, as a router does, and compares with a fresh Input.
func indexAgrees(t *testing.T, p *Predicate, m *stream.Message) bool {
	t.Helper()
	var in, fresh Input
	in.Reset(m)
	fresh.Reset(m)
	anyFalse, anyErr := false, false
	for _, a := range p.Atoms() {
		var k Key
		var hasKey, failed bool
		switch a.Var {
		case "source":
			k, hasKey = indexKey(val{k: kString, s: m.Source})
		case "key":
			k, hasKey = indexKey(val{k: kString, s: m.Key})
		case "headers":
			v, ok := m.Headers[a.Path[0]]
			k, hasKey = indexKey(val{k: kString, s: v})
			failed = !ok
		default:
			var err error
			k, hasKey, err = NewBodyField(a.Path).Key(&in)
			failed = err != nil
		}
		switch {
		case len(a.Values) == 0:
			anyFalse = true // in [] is false, whatever the field is, even missing
		case failed:
			anyErr = true
		case !hasKey || !slices.Contains(a.Keys(), k):
			anyFalse = true
		}
	}
	ok, err := p.Match(&in)
	if ok2, err2 := p.Match(&fresh); ok2 != ok || (err2 != nil) != (err != nil) {
		t.Errorf("%s on body %q: %v, %v after the index read it, %v, %v without", p, m.Body, ok, err, ok2, err2)
		return false
	}
	bad := false
	switch {
	case anyFalse:
		bad = ok || err != nil
	case anyErr:
		bad = ok || p.Decided() && err == nil
	case p.Decided():
		bad = !ok || err != nil
	}
	if bad {
		t.Errorf("%s (decided %v) on body %q key %q headers %v: an atom false %v, an atom failed %v; Match %v, %v",
			p, p.Decided(), m.Body, m.Key, m.Headers, anyFalse, anyErr, ok, err)
		return false
	}
	return true
}

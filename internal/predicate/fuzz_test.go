package predicate

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"

	"github.com/streamux/streamux/internal/stream"
)

func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		``, `true`, `key == "even"`,
		`source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]`,
		`key.startsWith("eu.") && has(body.customer) && body.customer.tier == "gold"`,
		`body.items.exists(i, body.items.all(j, i == j))`, `key ==`, `"\xff"`, `((((((`,
		`body.s.matches("(a+)+$")`, `time > timestamp("2026-01-01T00:00:00Z")`, `[1,2,3].map(x, x * 2)[0] == 2`,
		`body.s.replace("a", "bb").replace("b", "cc").size() > 1000`, `"%s".format([body])  == ""`,
	} {
		f.Add(s)
	}
	msg := order()
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Compile(src, Limits{})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Compile(%q): error %T, want *Error", src, err)
			}
			switch e.Code {
			case CodeInvalid, CodeTooLong, CodeTooCostly:
			default:
				t.Fatalf("Compile(%q): code %q", src, e.Code)
			}
			if e.Message == "" || e.Position < -1 || e.Position > utf8.RuneCountInString(src) {
				t.Fatalf("Compile(%q): message %q, position %d", src, e.Message, e.Position)
			}
			return
		}
		if p.String() != src {
			t.Fatalf("String() = %q", p.String())
		}
		// Every atom compiles back to itself, and has its Keys (Keys panics otherwise).
		for _, a := range p.Atoms() {
			a.Keys()
			q, err := Compile(a.String(), Limits{})
			if err != nil || len(q.Atoms()) != 1 || q.Atoms()[0].String() != a.String() {
				t.Fatalf("Compile(%q): atom %s does not compile to itself: %v", src, a, err)
			}
		}
		var in Input
		in.Reset(msg)
		if ok, err := p.Match(&in); ok && err != nil {
			t.Fatalf("Match(%q) = true with error %v", src, err)
		}
		// Every comparison a check may warn of is CEL source of its own, and says what it saw.
		for _, c := range p.Comparisons() {
			if _, err := Compile(c.Text, Limits{}); err != nil {
				t.Fatalf("Compile(%q): comparison %q does not compile: %v", src, c.Text, err)
			}
			if holds, bad := c.Mismatch(&in); bad && (holds == "" || c.Warning(holds, 1, 1) == "") {
				t.Fatalf("Compile(%q): comparison %q: a mismatch without words", src, c.Text)
			}
		}
	})
}

func FuzzMatch(f *testing.F) {
	for _, b := range []string{
		`{"amount":120.5,"customer":{"tier":"gold"},"n":9}`, `{"amount":"x"}`, `[]`, `null`, `12345678901234567890`,
		`-0`, `1e400`, `"\ud800"`, `{"a":1,"a":"x"}`, `hello`, "\xff\x00", ``, ` {"n": 3} `, `{"n":3}x`,
		strings.Repeat("[", 301) + strings.Repeat("]", 301), `{"amount":1.5e2,"n":-9223372036854775808}`,
		"\"\a\\b\"", "{\"n\":\"\xff\"}",
	} {
		f.Add([]byte(b), "eu.order", "eu")
	}
	var preds []*Predicate
	for _, src := range []string{
		`key == "eu.order"`,
		`source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]`,
		`key.startsWith("eu.") && has(body.customer) && body.customer.tier == "gold"`,
		`body.n % 3 == 0 || body == "hello"`,
		`body.items.exists(i, i.qty > 1) || size(body) > 2`,
		`body.a == 1 || body.a.b.c == "x" || body[0] == 1`,
		`string(body).contains("x")`,
		`body.n == "9" || body.amount in [120.5, 1] || body.customer.tier != true`,
	} {
		p, err := Compile(src, Limits{})
		if err != nil {
			f.Fatal(err)
		}
		preds = append(preds, p)
	}
	var comparisons []*Predicate // each comparison of preds alone, to hold Mismatch to CEL
	for _, p := range preds {
		for _, c := range p.Comparisons() {
			q, err := Compile(c.Text, Limits{})
			if err != nil {
				f.Fatal(err)
			}
			comparisons = append(comparisons, q)
		}
	}
	var in Input
	f.Fuzz(func(t *testing.T, body []byte, key, region string) {
		m := &stream.Message{Source: "orders", Seq: 1, Key: key, Headers: map[string]string{"region": region}, Body: body}
		in.Reset(m)
		for _, p := range preds {
			if ok, err := p.Match(&in); ok && err != nil {
				t.Fatalf("%s: true with error %v", p, err)
			}
		}
		// A comparison said to mismatch is one that CEL makes false (== and in) or true (!=).
		for _, q := range comparisons {
			c := q.Comparisons()[0]
			if _, bad := c.Mismatch(&in); bad {
				ok, err := q.Match(&in)
				if err != nil || ok != strings.Contains(c.Text, "!=") {
					t.Fatalf("%s on %q: a mismatch, yet it is %v, %v", c.Text, body, ok, err)
				}
			}
		}
		// The body is what its event shows.
		kind := in.body.classify()
		want := map[stream.BodyEncoding]bodyKind{stream.BodyJSON: bodyJSON, stream.BodyText: bodyText, stream.BodyBase64: bodyBase64}[stream.ClassifyBody(body)]
		if kind != want && !(kind == bodyTooDeep && want == bodyJSON) {
			t.Fatalf("body %q: kind %d, want %d", body, kind, want)
		}
		if kind == bodyText {
			if s, ok := in.body.cel().(types.String); !ok || string(s) != string(body) {
				t.Fatalf("text body %q: CEL value %v", body, in.body.cel())
			}
		}
	})
}

package predicate_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/stream"
)

// A predicate reads the message's source, key, headers, body, seq and time.
func Example() {
	m := &stream.Message{
		Source:  "orders",
		Seq:     1042,
		Key:     "eu.order.created",
		Headers: map[string]string{"region": "eu"},
		Body:    []byte(`{"amount":120.5,"n":9,"customer":{"tier":"gold"},"tags":["new","sale"]}`),
		Time:    time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC),
	}
	var in predicate.Input // a router keeps one and Resets it for each message
	in.Reset(m)
	for _, src := range []string{
		`key == "eu.order.created"`,
		`source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]`,
		`key.startsWith("eu.") && has(body.customer) && body.customer.tier == "gold"`,
		`body.n % 3 == 0 && "sale" in body.tags`,
		`!key.endsWith(".created") || headers.region != "eu"`,
		`seq > 1000 && time >= timestamp("2026-11-25T00:00:00Z")`,
		`body.tags.exists(t, t.startsWith("s"))`,
		`key.split(".")[1] == "order" && headers.region.upperAscii() == "EU"`,
	} {
		p, err := predicate.Compile(src, predicate.Limits{})
		if err != nil {
			fmt.Println(err)
			continue
		}
		ok, err := p.Match(&in)
		fmt.Println(ok, err, src)
	}
	// Output:
	// true <nil> key == "eu.order.created"
	// true <nil> source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]
	// true <nil> key.startsWith("eu.") && has(body.customer) && body.customer.tier == "gold"
	// true <nil> body.n % 3 == 0 && "sale" in body.tags
	// false <nil> !key.endsWith(".created") || headers.region != "eu"
	// true <nil> seq > 1000 && time >= timestamp("2026-11-25T00:00:00Z")
	// true <nil> body.tags.exists(t, t.startsWith("s"))
	// true <nil> key.split(".")[1] == "order" && headers.region.upperAscii() == "EU"
}

// A body that is not JSON is a string: the text, or base64 for binary.
func Example_textBody() {
	p, _ := predicate.Compile(`body.startsWith("ERROR")`, predicate.Limits{})
	var in predicate.Input
	for _, body := range []string{"ERROR: disk full", "INFO: all good", `{"level":"ERROR"}`} {
		in.Reset(&stream.Message{Body: []byte(body)})
		ok, err := p.Match(&in)
		fmt.Println(ok, err != nil)
	}
	// Output:
	// true false
	// false false
	// false true
}

// A message whose body lacks a field, or has it with the wrong type, does not match; the error
// says why and is counted by the caller.
func ExamplePredicate_Match() {
	p, _ := predicate.Compile(`body.amount > 100`, predicate.Limits{})
	var in predicate.Input
	for _, body := range []string{`{"amount":120.5}`, `{"amount":99}`, `{"total":120}`, `{"amount":"lots"}`} {
		in.Reset(&stream.Message{Body: []byte(body)})
		ok, err := p.Match(&in)
		fmt.Println(ok, err)
	}
	// Output:
	// true <nil>
	// false <nil>
	// false no such key: amount
	// false no such overload
}

// Compile errors carry a code and a position for the HTTP layer.
func ExampleCompile_errors() {
	for _, src := range []string{
		`key == "a" &&`,
		`key == "a" && colour == "red"`,
		`key + "!"`,
		`body.items.exists(a, body.items.exists(b, a.id == b.parent))`,
	} {
		_, err := predicate.Compile(src, predicate.Limits{})
		var e *predicate.Error
		if errors.As(err, &e) {
			fmt.Printf("%s %d: %s\n", e.Code, e.Position, e.Message)
		}
	}
	// Output:
	// invalid_predicate 13: the predicate ends where a value was expected (a field such as body.x, a number, a "string", or a parenthesis)
	// invalid_predicate 14: unknown name 'colour': a predicate reads source, key, headers, body, seq and time (a field of a JSON body is body.colour)
	// invalid_predicate 0: predicate must be a bool expression, but its type is string
	// predicate_too_costly -1: predicate is too costly: its estimated worst-case cost is 15207426, the cost limit is 100000
}

// The empty predicate, and true, match everything without evaluation.
func ExamplePredicate_MatchesAll() {
	for _, src := range []string{"", "true", `key != ""`} {
		p, _ := predicate.Compile(src, predicate.Limits{})
		fmt.Printf("%q %v\n", src, p.MatchesAll())
	}
	// Output:
	// "" true
	// "true" true
	// "key != \"\"" false
}

// Atoms are the equality and in tests that every match requires, for an index to find the
// predicates a message could match.
func ExamplePredicate_Atoms() {
	p, _ := predicate.Compile(`source == "orders" && headers.region in ["eu", "us"] && body.customer.tier == "gold" && body.amount > 100`, predicate.Limits{})
	for _, a := range p.Atoms() {
		fmt.Printf("%s (%s %q %v)\n", a, a.Var, a.Path, a.Values)
	}
	// Output:
	// source == "orders" (source [] [orders])
	// headers.region in ["eu", "us"] (headers ["region"] [eu us])
	// body.customer.tier == "gold" (body ["customer" "tier"] [gold])
}

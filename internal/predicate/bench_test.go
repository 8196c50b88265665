package predicate

import (
	"testing"
	"time"

	"github.com/google/cel-go/cel"

	"github.com/streamux/streamux/internal/stream"
)

// benchBody is a ~350-byte order, the size DESIGN.md measures with.
const benchBody = `{"id":"ord-20261125-000042","amount":120.5,"currency":"EUR","status":"created",` +
	`"customer":{"id":7781,"tier":"gold","email":"ana@example.com","country":"PT"},` +
	`"items":[{"sku":"A-1001","qty":2,"price":35.25},{"sku":"B-2002","qty":1,"price":50}],` +
	`"shipping":{"method":"express","address":{"city":"Lisbon","zip":"1100-148"}},` +
	`"tags":["new","priority"],"created":"2026-11-25T16:00:00.123Z"}`

func benchMessage() *stream.Message {
	return &stream.Message{
		Source: "orders", Seq: 1042, Key: "eu.order.created",
		Headers: map[string]string{"region": "eu", "tenant": "acme"},
		Body:    []byte(benchBody), Time: time.Now(),
	}
}

// BenchmarkMatch measures one predicate on one new message: Reset, then Match, so a predicate
// that reads the body pays for decoding it. The "warm" cases share one decoded message, as the
// second and later predicates on a message do. The "cel-go" cases evaluate the same predicate
// with cel-go instead of the fast closure, for comparison.
func BenchmarkMatch(b *testing.B) {
	for _, c := range []struct{ name, src string }{
		{"key", `key == "eu.order.created"`},
		{"body3", `source == "orders" && body.amount > 100 && body.customer.tier == "gold"`},
		{"mixed3", `source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]`},
		{"comprehension", `body.items.exists(i, i.qty > 1)`},
		{"regex", `key.matches("^eu\\.order\\.")`},
		{"stringop", `body.customer.email.lowerAscii().endsWith("@example.com")`},
	} {
		p, err := Compile(c.src, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		m := benchMessage()
		run := func(name string, p *Predicate) {
			b.Run(name, func(b *testing.B) {
				var in Input
				b.ReportAllocs()
				for b.Loop() {
					in.Reset(m)
					if ok, err := p.Match(&in); !ok || err != nil {
						b.Fatal(ok, err)
					}
				}
			})
			b.Run(name+"/warm", func(b *testing.B) {
				var in Input
				in.Reset(m)
				b.ReportAllocs()
				for b.Loop() {
					if ok, err := p.Match(&in); !ok || err != nil {
						b.Fatal(ok, err)
					}
				}
			})
		}
		run(c.name, p)
		if p.fast != nil {
			slow := *p
			slow.fast = nil
			run(c.name+"/cel-go", &slow)
		}
		if p.measured {
			// The same predicate as cel-go runs it without a limit: the price of measuring.
			plain := *p
			plain.prg, plain.measured = unmeasured(b, c.src), false
			run(c.name+"/unmeasured", &plain)
		}
	}
}

// unmeasured is src as cel-go runs it with no cost tracking, and none of this package's checks.
func unmeasured(b *testing.B, src string) cel.Program {
	env, err := celEnv()
	if err != nil {
		b.Fatal(err)
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		b.Fatal(iss.Err())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		b.Fatal(err)
	}
	return prg
}

// BenchmarkDecode measures the per-message body work that predicates share: parsing and
// validating the JSON (what the fast evaluator needs), and converting it to CEL values (what
// cel-go needs in addition).
func BenchmarkDecode(b *testing.B) {
	m := benchMessage()
	b.Run("parse", func(b *testing.B) {
		var in Input
		b.ReportAllocs()
		b.SetBytes(int64(len(m.Body)))
		for b.Loop() {
			in.Reset(m)
			if in.body.classify() != bodyJSON {
				b.Fatal("not JSON")
			}
		}
	})
	b.Run("parse+cel", func(b *testing.B) {
		var in Input
		b.ReportAllocs()
		b.SetBytes(int64(len(m.Body)))
		for b.Loop() {
			in.Reset(m)
			in.body.cel()
		}
	})
}

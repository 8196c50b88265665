package predicate

import (
	"testing"
	"time"

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
// second and later predicates on a message do.
func BenchmarkMatch(b *testing.B) {
	for _, c := range []struct{ name, src string }{
		{"key", `key == "eu.order.created"`},
		{"body3", `source == "orders" && body.amount > 100 && body.customer.tier == "gold"`},
		{"mixed3", `source == "orders" && body.amount > 100 && headers.region in ["eu", "us"]`},
		{"comprehension", `body.items.exists(i, i.qty > 1)`},
	} {
		p, err := Compile(c.src, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		m := benchMessage()
		b.Run(c.name, func(b *testing.B) {
			var in Input
			b.ReportAllocs()
			for b.Loop() {
				in.Reset(m)
				if ok, err := p.Match(&in); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
		b.Run(c.name+"/warm", func(b *testing.B) {
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
}

//go:build !race

// The race detector allocates on channel operations, so allocation counts are checked in a
// build without it (the README's test command runs both).

package router

import (
	"testing"

	"github.com/streamux/streamux/internal/stream"
)

// Routing through the body index allocates no more per message than routing by the key does to
// as many recipients, and neither does accounting for the messages that lack the field
// (counted as predicate errors): the index's own work allocates nothing.
func TestRouteBodyIndexAllocs(t *testing.T) {
	perMsg := func(pred, body string, n int) float64 {
		r, outs := filled(t, n, func(int) string { return pred })
		msgs := make([]*stream.Message, 200)
		for i := range msgs {
			msgs[i] = message("k1", i)
			msgs[i].Body = []byte(body)
		}
		i := 0
		a := testing.AllocsPerRun(100, func() {
			r.route(msgs[i])
			i++
		})
		empty(outs)
		return a
	}
	for _, n := range []int{1, 100} {
		base := perMsg(`key == "k1"`, `{"user":"u1","n":1}`, n)
		for _, c := range []struct{ pred, body string }{
			{`body.user == "u1"`, `{"user":"u1","n":1}`},                       // decided by the lookup
			{`body.user in ["u1", "u2"] && body.n > 0`, `{"user":"u1","n":1}`}, // filed, then evaluated
			{`body.user == "u1"`, `{"n":1}`},                                   // missing: an error, counted
			{`body.user == "u1" && body.n > 5`, `{"n":1}`},                     // missing: evaluated, false
			{`body.user == "u1"`, `{"user":"u2"}`},                             // another bucket
			{`body.n == 1`, `{"n":1.0}`},
		} {
			if a := perMsg(c.pred, c.body, n); a > base {
				t.Errorf("%s on %s, %d recipients: %.1f allocations per message; by key, %.1f", c.pred, c.body, n, a, base)
			}
		}
	}
}

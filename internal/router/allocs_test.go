//go:build !race

// The race detector allocates on channel operations, so allocation counts are checked in a
// build without it (the README's test command runs both).

package router

import (
	"testing"

	"github.com/streamux/streamux/internal/stream"
)

// The router's work per recipient allocates nothing: the allocations per message do not grow
// with the number of recipients, and a message costs one (its encoding).
func TestRouteAllocsDoNotGrowWithRecipients(t *testing.T) {
	for _, pred := range []string{``, `key == "k1"`} {
		perMsg := func(n int) float64 {
			r, outs := filled(t, n, func(int) string { return pred })
			msgs := make([]*stream.Message, 200)
			for i := range msgs {
				msgs[i] = message("k1", i)
			}
			i := 0
			taken := make([]*stream.Event, 0, 8)
			a := testing.AllocsPerRun(100, func() {
				r.route(msgs[i])
				i++
				// The writers keep up, as they do but in bursts: a queue that a burst grows
				// allocates its ring then (and gives it back once drained).
				for _, o := range outs {
					taken, _ = o.Take(taken[:0], 8)
				}
			})
			empty(outs)
			return a
		}
		one, many := perMsg(1), perMsg(100)
		if many > one || one > 1 {
			t.Errorf("predicate %q: %.1f allocations per message with 1 recipient, %.1f with 100; want at most 1", pred, one, many)
		}
	}
}

//go:build !race

// The race detector allocates on channel operations, so allocation counts are checked in a
// build without it (the README's test command runs both).

package router

import (
	"testing"

	"github.com/streamux/streamux/internal/stream"
)

// The router's work per recipient allocates nothing: the allocations per message do not grow
// with the number of recipients.
func TestRouteAllocsDoNotGrowWithRecipients(t *testing.T) {
	for _, pred := range []string{``, `key == "k1"`} {
		perMsg := func(n int) float64 {
			r, outs := filled(t, n, func(int) string { return pred })
			msgs := make([]*stream.Message, 200)
			for i := range msgs {
				msgs[i] = message("k1", i)
			}
			i := 0
			a := testing.AllocsPerRun(100, func() {
				r.route(msgs[i])
				i++
			})
			empty(outs)
			return a
		}
		one, many := perMsg(1), perMsg(100)
		if many > one {
			t.Errorf("predicate %q: %.1f allocations per message with 1 recipient, %.1f with 100", pred, one, many)
		}
	}
}

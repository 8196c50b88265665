package redisstreams_test

import (
	"syscall"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/redisstreams"
	"github.com/streamux/streamux/internal/sourcetest"
)

// A restart of Redis itself (a redis-server of the test's own, appendonly yes, everysec) in the
// middle of a stream, stopped with SIGTERM and, separately, killed: the router holds the source
// back, so that it has read entries it has not acknowledged, while Redis goes down and comes
// back; more entries are added once it is back, before the source reads again. Every entry
// arrives, in order, none lost; what comes twice is at most one read's count. (Redis writes
// its append-only file before it answers, so even a kill keeps every entry and acknowledgement
// it answered; only the machine's crash could lose the last second.)
func TestBrokerRestart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			rs := sourcetest.StartRedis(t)
			client := goredis.NewClient(&goredis.Options{Addr: rs.Addr()})
			t.Cleanup(func() { _ = client.Close() })
			s := &server{url: "redis://" + rs.Addr(), client: client}
			ctx := testContext(t)
			const stream, before, hold, after = "restart", 1000, 300, 500
			c := s.config(stream, fixtureGroup, "restart")
			c.Start, c.KeyField = redisstreams.StartAll, "key"
			src := newSource(t, c)
			col := sourcetest.NewCollector()
			col.SetLimit(hold)
			r := sourcetest.Start(t, src, col.Emit)
			r.WaitState(t, 0, source.Up, wait)
			if _, err := s.add(ctx, stream, sourcetest.Numbered(0, before, false)...); err != nil {
				t.Fatal(err)
			}
			col.WaitLen(t, hold, wait)
			// The source has read up to a count beyond what the router took, unacknowledged.
			g, err := s.groupInfo(ctx, stream, fixtureGroup)
			if err != nil {
				t.Fatal(err)
			}
			stopped := rs.Stop(sig)
			started := rs.Start()
			t.Logf("%d pending at the %v; Redis stopped in %v, started in %v", g.Pending, sig, stopped, started)
			if _, err := s.add(ctx, stream, sourcetest.Numbered(before, after, false)...); err != nil {
				t.Fatalf("add after the restart: %v", err)
			}
			col.SetLimit(-1)

			const total = before + after
			count := func() map[int]int {
				n := map[int]int{}
				for _, m := range col.Messages() {
					n[sourcetest.Number(m)]++
				}
				return n
			}
			sourcetest.Eventually(t, wait, func() bool { return len(count()) == total }, "all %d entries (have %d)", total, func() int { return len(count()) })
			msgs := col.Messages()
			dup, highest := len(msgs)-total, -1
			for _, m := range msgs {
				// In order: a redelivered entry may repeat one already taken, never skip ahead
				// of one not yet taken.
				n := sourcetest.Number(m)
				if n > highest+1 {
					t.Fatalf("entry %d came before %d", n, highest+1)
				}
				highest = max(highest, n)
			}
			t.Logf("%d deliveries of %d entries: %d twice; state changes %v", len(msgs), total, dup, states(r.Changes()))
			if dup > redisstreams.DefaultCount {
				t.Errorf("%d entries came twice, more than a read's %d", dup, redisstreams.DefaultCount)
			}
			// Nothing is left pending or unread in the group.
			sourcetest.Eventually(t, wait, func() bool {
				g, err := s.groupInfo(ctx, stream, fixtureGroup)
				return err == nil && g.Pending == 0 && g.Lag == 0
			}, "the group to have nothing pending or unread")
		})
	}
}

// states is the states of changes, in order.
func states(changes []sourcetest.Change) []source.State {
	out := make([]source.State, len(changes))
	for i, c := range changes {
		out[i] = c.State
	}
	return out
}

package jetstream_test

import (
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/natstest"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/jetstream"
	"github.com/streamux/streamux/internal/source/nats"
	"github.com/streamux/streamux/internal/sourcetest"
)

// The server restarts (an in-process nats-server of the test's own, storing in files) while the
// router holds the source back: the source goes reconnecting, comes back up, and everything
// published before and after arrives, what it had not acknowledged again.
func TestServerRestart(t *testing.T) {
	tc := natstest.Start(t, 1)
	s := connect(t, tc.URL(0))
	name, subjects := s.stream(t, natsjs.FileStorage)
	c := sourcetest.NewCollector()
	c.SetLimit(200)
	src := newSource(t, jetstream.Config{
		Conn:      nats.Conn{URL: tc.URL(0), ConnectTimeout: 2 * time.Second},
		JetStream: nats.JetStream{Stream: name, Consumer: "restart", AckWait: 3 * time.Second},
	})
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, source.Up, wait)
	const before, after = 300, 300
	if err := s.publish(ctxFor(t), subjects, sourcetest.Numbered(0, before, false)...); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 200, wait)

	from := len(r.Changes())
	tc.Kill(0)
	i := r.WaitState(t, from, source.Reconnecting, wait)
	t.Logf("reconnecting after: %v", r.Changes()[i].Err)
	if err := tc.Restart(0); err != nil {
		t.Fatal(err)
	}
	if err := tc.WaitJetStream(wait); err != nil {
		t.Fatal(err)
	}
	r.WaitState(t, i, source.Up, wait)
	c.SetLimit(-1)
	s2 := connect(t, tc.URL(0))
	if err := s2.publish(ctxFor(t), subjects, sourcetest.Numbered(before, after, false)...); err != nil {
		t.Fatal(err)
	}
	seen := func() int {
		n := map[int]bool{}
		for _, m := range c.Messages() {
			n[sourcetest.Number(m)] = true
		}
		return len(n)
	}
	sourcetest.Eventually(t, wait, func() bool { return seen() == before+after }, "every message (%d seen)", seen)
	st := src.Counters().(jetstream.Counters)
	t.Logf("%d deliveries of %d messages; counters %+v", c.Len(), before+after, st)
	if st.Connects < 2 {
		t.Errorf("%d connects, want 2 or more", st.Connects)
	}
}

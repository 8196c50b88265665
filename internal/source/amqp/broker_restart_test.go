package amqp_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/sourcetest"
)

// A restart of RabbitMQ itself under a stream source: a node of the test's own
// (sourcetest.StartRabbitMQ; the machine's node, which other tests use at the same time, is
// never restarted), stopped with SIGTERM in the middle of a stream while the router holds the
// source back, so that it has received messages beyond what the router took. More are
// published once the node and the queue are back, before the source reads again. The source
// goes on right after the last message the router took: every message once, in order.
//
// Not SIGKILL: a single node killed that way (RabbitMQ 3.x here) did not bring its stream
// queue back within 3 minutes of starting again ("home node ... is down or inaccessible"), a
// recovery of the broker's own that no client can hasten; docs/sources/amqp.md says so.
func TestBrokerRestartStream(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			node := sourcetest.StartRabbitMQ(t)
			url := "amqp://guest:guest@" + node.Addr() + "/"
			b := dialBroker(t, url)
			q := sourcetest.UniqueName(t)
			b.declare(q, amqp.QueueStream)
			const before, hold, after = 1000, 300, 500
			col := sourcetest.NewCollector()
			col.SetLimit(hold)
			src := streamSource(t, url, q, "first", nil)
			r := sourcetest.Start(t, src, col.Emit)
			r.WaitState(t, 0, source.Up, 2*wait)
			if err := b.publishNumbered(ctxT(t), q, 0, before); err != nil {
				t.Fatal(err)
			}
			col.WaitLen(t, hold, wait)

			stopped := node.Stop(sig)
			started := node.Start()
			t.Logf("RabbitMQ stopped in %v (%v), started again in %v", stopped.Round(time.Millisecond), sig, started.Round(time.Millisecond))
			b = dialBroker(t, url)
			// A stream queue comes back some time after its node: until then a message to it
			// is dropped by the default exchange (and confirmed all the same).
			sourcetest.Eventually(t, 3*time.Minute, func() bool {
				ch, err := b.conn.Channel()
				if err != nil {
					return false
				}
				defer ch.Close()
				_, err = ch.QueueDeclarePassive(q, true, false, false, false, nil)
				return err == nil
			}, "queue %s back after the restart", q)
			if err := b.publishNumbered(ctxT(t), q, before, after); err != nil {
				t.Fatalf("publish after the restart: %v", err)
			}
			col.SetLimit(-1)

			const total = before + after
			distinct := func() int {
				n := map[int]bool{}
				for _, m := range col.Messages() {
					n[sourcetest.Number(m)] = true
				}
				return len(n)
			}
			sourcetest.Eventually(t, 2*wait, func() bool { return distinct() == total }, "all %d messages (have %d)", total, distinct)
			time.Sleep(200 * time.Millisecond) // for any message too many
			msgs := col.Messages()
			t.Logf("%d deliveries of %d messages; state changes %v", len(msgs), total, states(r.Changes()))
			for i, m := range msgs {
				if n := sourcetest.Number(m); n != i {
					t.Fatalf("message %d is number %d: want each once, in order", i, n)
				}
			}
		})
	}
}

// dialBroker connects to the RabbitMQ at url, as newBroker does to the machine's.
func dialBroker(t *testing.T, url string) *broker {
	t.Helper()
	var conn *amqp091.Connection
	// A node that has just opened its port may refuse a connection for a moment more.
	sourcetest.Eventually(t, wait, func() bool {
		c, err := amqp091.Dial(url)
		conn = c
		return err == nil
	}, "a connection to %s", url)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &broker{t: t, url: url, conn: conn, ch: ch}
}

// publishNumbered publishes sourcetest.Numbered(first, n) to queue through the default exchange.
func (b *broker) publishNumbered(ctx context.Context, queue string, first, n int) error {
	msgs := sourcetest.Numbered(first, n, false)
	pubs := make([]amqp091.Publishing, n)
	keys := make([]string, n)
	for i, m := range msgs {
		pubs[i], keys[i] = amqp091.Publishing{Body: m.Body, DeliveryMode: amqp091.Persistent}, queue
	}
	return b.publishKeys(ctx, "", keys, pubs...)
}

// states is the states of changes, in order.
func states(changes []sourcetest.Change) []source.State {
	out := make([]source.State, len(changes))
	for i, c := range changes {
		out[i] = c.State
	}
	return out
}

package main_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/sourcetest"
)

// An amqp stream source on three nodes keeps its place in the stream in the cluster's state:
// its leader killed (SIGKILL), the node that takes the source over reads on from the place the
// killed one recorded, not from the source's offset (first), and the log holds every message
// once, in order. The nodes keep no data directory: the place is the cluster's alone.
func TestClusterStreamPlaceMoves(t *testing.T) {
	urls := sourcetest.RequireJetStream(t)
	amqpURL := sourcetest.RequireAMQP(t)
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatalf("connect to RabbitMQ: %v", err)
	}
	name := sourcetest.UniqueName(t)
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(name, false, false, false)
			_ = ch.Close()
		}
		_ = conn.Close()
	})
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, amqp091.Table{"x-queue-type": "stream"}); err != nil {
		t.Fatalf("declare stream %s: %v", name, err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	publish := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", name, false, false, amqp091.Publishing{
				ContentType: "application/json", Body: fmt.Appendf(nil, `{"n":%d}`, i),
			})
			if err == nil {
				var ok bool
				if ok, err = dc.WaitContext(ctx); err == nil && !ok {
					err = fmt.Errorf("message %d not confirmed", i)
				}
			}
			cancel()
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
	}

	nodes, prefix := startNodes(t, clusterSpec{
		urls: oneURL(urls),
		sources: fmt.Sprintf("  - {name: st, type: amqp, url: %q, queue: %q, queue_type: stream, offset: first, ack: after_route, prefetch: 16}\n",
			amqpURL, name),
	})
	v := viewJetStream(t, urls, prefix)
	const first, second = 300, 200
	publish(0, first)
	eventually(t, 30*time.Second, fmt.Sprintf("the log of st at %d", first), func() bool { return v.lastSeq("st") >= first })
	leader, _, err := v.lease("st")
	if err != nil || leader == "" {
		t.Fatalf("the lease of st: %q %v", leader, err)
	}
	var rest []*cnode
	for _, n := range nodes {
		if n.name == leader {
			n.kill()
		} else {
			rest = append(rest, n)
		}
	}
	publish(first, second)
	total := uint64(first + second)
	eventually(t, 30*time.Second, fmt.Sprintf("the log of st at %d", total), func() bool { return v.lastSeq("st") >= total })
	// What the nodes that took over read from RabbitMQ: the messages after the killed
	// leader's place (which the log stored already, at most a prefetch of 16, are read
	// again), not the whole stream from its first.
	received := uint64(0)
	for _, n := range rest {
		received += n.mustSource("st").Adapter.Received
	}
	if received >= total {
		t.Errorf("the nodes that took over received %d messages from RabbitMQ: they read the stream from its first (%d), not from the place kept", received, total)
	}
	r := rest[0].openReader(t, "source=st&from=st:0", false, "")
	r.waitSeq(t, total, 60*time.Second)
	evs, _ := r.snapshot()
	r.stop()
	ms := checkRun(t, rest[0].name+" reading the log of st", evs, 1, total, true)
	for i, ev := range ms {
		if n := bodyN(t, ev); n != i {
			t.Fatalf("the log's message %d is n=%d: a message twice or missing", i+1, n)
		}
	}
	if got := v.lastSeq("st"); got != total {
		t.Errorf("the log holds %d messages, %d were published", got, total)
	}
	t.Logf("%s killed; the others received %d messages from RabbitMQ for the %d published after", leader, received, second)
}

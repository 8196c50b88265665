package main_test

// RabbitMQ for the cluster tests: a durable queue of the test's own, a publisher that sends
// numbered messages at a steady rate with a message id each, and a look at the queue.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/sourcetest"
)

// rabbitQueue is a durable queue that the test declares, and deletes when it ends.
type rabbitQueue struct {
	url  string
	name string
	conn *amqp091.Connection
}

// declareRabbitQueue declares a durable queue of the test's own on the RabbitMQ that the tests
// use (skipping the test if there is none, failing with CI=true).
func declareRabbitQueue(t *testing.T) *rabbitQueue {
	t.Helper()
	u := sourcetest.RequireAMQP(t)
	sourcetest.RequireCommand(t, "rabbitmqctl") // checkRabbitLog asks it for unacknowledged messages
	conn, err := amqp091.Dial(u)
	if err != nil {
		t.Fatalf("connect to RabbitMQ: %v", err)
	}
	q := &rabbitQueue{url: u, name: sourcetest.UniqueName(t), conn: conn}
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q.name, false, false, false)
			_ = ch.Close()
		}
		_ = conn.Close()
	})
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(q.name, true, false, false, false, nil); err != nil {
		t.Fatalf("declare queue %s: %v", q.name, err)
	}
	return q
}

// sourceYAML is the amqp source named name that reads the queue, acknowledging after the
// log stored each message.
func (q *rabbitQueue) sourceYAML(name string) string {
	return fmt.Sprintf("  - {name: %s, type: amqp, url: %q, queue: %q, ack: after_route, prefetch: 64}\n", name, q.url, q.name)
}

// state is the queue's ready messages and consumers, as RabbitMQ says now.
func (q *rabbitQueue) state() (ready, consumers int, err error) {
	ch, err := q.conn.Channel()
	if err != nil {
		return 0, 0, err
	}
	defer ch.Close()
	st, err := ch.QueueDeclarePassive(q.name, true, false, false, false, nil)
	if err != nil {
		return 0, 0, err
	}
	return st.Messages, st.Consumers, nil
}

// publisher sends {"n":N} with message id m-N, N = 0, 1, …, one every interval, each confirmed
// by RabbitMQ before the next, on a goroutine of its own until stop.
type publisher struct {
	cancel   context.CancelFunc
	stopping chan struct{}
	done     chan struct{}
	once     sync.Once

	mu   sync.Mutex
	sent int // messages 0..sent-1 are confirmed
	err  error
}

// startPublisher starts publishing into q; the test's cleanup stops it.
func startPublisher(t *testing.T, q *rabbitQueue, interval time.Duration) *publisher {
	t.Helper()
	ch, err := q.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	// ctx ends a publish at the test's end; stopping waits for the one under way, so that
	// every message sent is counted.
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{cancel: cancel, stopping: make(chan struct{}), done: make(chan struct{})}
	go func() { // ends with stop or ctx; both wait for it
		defer close(p.done)
		defer ch.Close()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-p.stopping:
				return
			case <-tick.C:
			}
			err := func() error {
				pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
				defer pcancel()
				dc, err := ch.PublishWithDeferredConfirmWithContext(pctx, "", q.name, false, false, amqp091.Publishing{
					ContentType: "application/json", DeliveryMode: amqp091.Persistent,
					MessageId: fmt.Sprintf("m-%d", n), Body: fmt.Appendf(nil, `{"n":%d}`, n),
				})
				if err != nil {
					return err
				}
				if ok, err := dc.WaitContext(pctx); err != nil || !ok {
					return fmt.Errorf("message %d not confirmed (%v)", n, err)
				}
				return nil
			}()
			p.mu.Lock()
			if err != nil {
				if ctx.Err() == nil {
					p.err = err
				}
				p.mu.Unlock()
				return
			}
			p.sent = n + 1
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

// count is how many messages were published and confirmed so far.
func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// stop stops publishing and returns how many messages were published, failing the test if a
// publish failed.
func (p *publisher) stop(t *testing.T) int {
	t.Helper()
	p.once.Do(func() { close(p.stopping) })
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		t.Fatalf("publish to RabbitMQ: %v", p.err)
	}
	return p.sent
}

// checkRabbitLog checks, once the publisher has stopped after published messages, that the
// source's log holds every one of them exactly once, under consecutive seqs from 1: it waits
// until RabbitMQ has nothing left for the source (no message ready or unacknowledged), so that
// no redelivery can come later, then reads the whole log through node n. It returns how many
// messages the log holds as RabbitMQ redelivered them (amqp_redelivered: the one that read it
// before had not appended it).
func checkRabbitLog(t *testing.T, n *cnode, v *jsView, q *rabbitQueue, source string, published int) (redelivered int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("the log of %s holds the %d messages published", source, published), func() bool {
		return v.lastSeq(source) >= uint64(published)
	})
	eventually(t, 30*time.Second, "RabbitMQ has no message ready or unacknowledged", func() bool {
		ready, _, err := q.state()
		if err != nil || ready > 0 {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		unacked, err := sourcetest.AMQPUnacknowledged(ctx, q.name)
		return err == nil && unacked == 0
	})
	last := v.lastSeq(source)
	r := n.openReader(t, "source="+source+"&from="+source+":0", false, "")
	r.waitSeq(t, last, 60*time.Second)
	evs, _ := r.snapshot()
	r.stop()
	ms := checkRun(t, n.name+" reading the log of "+source, evs, 1, last, true)
	seen := make(map[int]uint64, len(ms))
	for _, ev := range ms {
		k := bodyN(t, ev)
		if first, dup := seen[k]; dup {
			t.Errorf("message m-%d is in the log twice: %s:%d and %s", k, source, first, ev.ID)
		}
		seen[k] = ev.Seq
		if ev.Headers["amqp_redelivered"] == "true" {
			redelivered++
		}
	}
	for k := range published {
		if _, ok := seen[k]; !ok {
			t.Errorf("message m-%d, published and confirmed, is not in the log", k)
		}
	}
	if last != uint64(published) {
		t.Errorf("the log holds %d messages, %d were published", last, published)
	}
	return redelivered
}

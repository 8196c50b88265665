package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/sequence"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/sourcetest"
)

// broker is a test's own connection to RabbitMQ, for publishing and inspecting.
type broker struct {
	t    testing.TB
	url  string
	conn *amqp091.Connection

	mu sync.Mutex // serialises publishing on ch
	ch *amqp091.Channel
}

func newBroker(t testing.TB) *broker {
	url := sourcetest.RequireAMQP(t)
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatalf("connect to RabbitMQ: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	b := &broker{t: t, url: url, conn: conn, ch: ch}
	t.Cleanup(func() { _ = conn.Close() })
	return b
}

// do runs f on a fresh channel, for calls that may close their channel.
func (b *broker) do(f func(*amqp091.Channel) error) error {
	ch, err := b.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return f(ch)
}

// exchange declares a non-durable topic exchange (the source's default is durable: it must use
// an existing exchange as it is) and deletes it when the test ends.
func (b *broker) exchange(name, kind string) {
	b.t.Helper()
	if err := b.do(func(ch *amqp091.Channel) error {
		return ch.ExchangeDeclare(name, kind, false, false, false, false, nil)
	}); err != nil {
		b.t.Fatalf("declare exchange %s: %v", name, err)
	}
	b.t.Cleanup(func() { b.deleteExchange(name) })
}

func (b *broker) deleteExchange(name string) {
	_ = b.do(func(ch *amqp091.Channel) error { return ch.ExchangeDelete(name, false, false) })
}

func (b *broker) deleteQueue(name string) {
	_ = b.do(func(ch *amqp091.Channel) error { _, err := ch.QueueDelete(name, false, false, false); return err })
}

// publish publishes msgs to exchange in order and waits for the broker's confirms.
func (b *broker) publish(ctx context.Context, exchange string, msgs ...amqp091.Publishing) error {
	return b.publishKeys(ctx, exchange, nil, msgs...)
}

func (b *broker) publishKeys(ctx context.Context, exchange string, keys []string, msgs ...amqp091.Publishing) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	confirms := make([]*amqp091.DeferredConfirmation, 0, len(msgs))
	for i, m := range msgs {
		key := ""
		if keys != nil {
			key = keys[i]
		}
		dc, err := b.ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, m)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("wait for confirm: %w", err)
		}
		if !ok {
			return errors.New("the broker rejected a message")
		}
	}
	return nil
}

// readyMessages returns the ready messages of a named, non-exclusive queue.
func (b *broker) readyMessages(name string) (int, error) {
	n := 0
	err := b.do(func(ch *amqp091.Channel) error {
		q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
		n = q.Messages
		return err
	})
	return n, err
}

// fixture is the conformance suite's view of one private exchange (and, for at-least-once,
// durable, quorum and stream fixtures, one named queue).
type fixture struct {
	*broker
	exch, queue, connName string
	ack                   string
	queueType             string
	durable               bool
	prefetch              int
	// store keeps a stream source's place for the next source of the fixture, as the data
	// directory does for the next run of streamux.
	store source.Store

	bound []string // the queues bound to exch, found once with rabbitmqctl
}

// fixtures returns the suite's fixture maker for a queue type: "" (classic; server-named
// unless at-least-once or durable), quorum or stream (always named and durable).
func fixtures(queueType string) func(t *testing.T, o sourcetest.Options) sourcetest.Fixture {
	return func(t *testing.T, o sourcetest.Options) sourcetest.Fixture {
		b := newBroker(t)
		id := sourcetest.UniqueName(t)
		f := &fixture{broker: b, exch: id, connName: id, ack: amqp.AckAuto, queueType: queueType}
		b.exchange(id, "topic")
		named := o.AtLeastOnce || o.Durable || queueType != ""
		if named {
			f.queue = id
			t.Cleanup(func() { b.deleteQueue(id) })
		}
		if o.AtLeastOnce || o.Durable || queueType == amqp.QueueStream {
			f.ack = amqp.AckAfterRoute
		}
		f.durable = o.Durable || queueType != ""
		if queueType == amqp.QueueQuorum && !o.AtLeastOnce && !o.Durable {
			// A quorum queue delivers more slowly than a classic one: on a loaded machine,
			// with the default window, DrainedWithoutClients sees its publisher get ahead.
			f.prefetch = 1024
		}
		if queueType == amqp.QueueStream {
			d, err := sequence.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.Close() })
			f.store = d.SourceState("stream")
		}
		return f
	}
}

func newFixture(t *testing.T, o sourcetest.Options) sourcetest.Fixture { return fixtures("")(t, o) }

func (f *fixture) Source(t *testing.T) source.Source {
	durable := f.durable
	c := amqp.Config{
		URL: f.url, Exchange: f.exch, Queue: f.queue, Durable: &durable, Ack: f.ack, ConnectionName: f.connName,
		QueueType: f.queueType, Prefetch: f.prefetch,
	}
	s, err := amqp.New(c)
	if err != nil {
		t.Fatalf("amqp.New: %v", err)
	}
	if f.store != nil {
		s.UseStore(f.store)
	}
	return s
}

func (f *fixture) Publish(ctx context.Context, msgs ...sourcetest.Msg) error {
	pubs := make([]amqp091.Publishing, len(msgs))
	keys := make([]string, len(msgs))
	for i, m := range msgs {
		var h amqp091.Table
		if len(m.Headers) > 0 {
			h = amqp091.Table{}
			for k, v := range m.Headers {
				h[k] = v
			}
		}
		pubs[i] = amqp091.Publishing{Headers: h, Body: m.Body}
		keys[i] = m.Key
	}
	return f.publishKeys(ctx, f.exch, keys, pubs...)
}

func (f *fixture) Kill(ctx context.Context) error {
	sourcetest.RequireCommand(f.t, "rabbitmqctl")
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := sourcetest.CloseAMQPConnections(ctx, f.connName)
		if err != nil || n > 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no connection named %q to close", f.connName)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (f *fixture) Depth(ctx context.Context) (int, error) {
	if f.queueType == amqp.QueueStream {
		return 0, errors.ErrUnsupported // a stream keeps what was read: it never drains
	}
	if f.queue != "" {
		return f.readyMessages(f.queue)
	}
	sourcetest.RequireCommand(f.t, "rabbitmqctl")
	if f.bound == nil {
		q, err := sourcetest.AMQPBoundQueues(ctx, f.exch)
		if err != nil || len(q) == 0 {
			return 0, err
		}
		f.bound = q
	}
	n, err := sourcetest.AMQPReadyMessages(ctx, f.bound...)
	if err != nil {
		f.bound = nil // the queue changed (a reconnect); find it again next time
	}
	return n, err
}

// TestConformance runs the suite on classic queues: server-named, or named and durable with ack
// after_route for the at-least-once and durable cases. What a killed source had taken and not
// acknowledged comes again: at most the prefetch window.
func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{New: newFixture, Headers: true, AtLeastOnce: true, Durable: true, InFlight: amqp.DefaultPrefetch})
}

// TestConformanceQuorum runs the suite on quorum queues, as TestConformance does on classic ones.
// Not in parallel with the other suites: on a small machine, a quorum queue under the load of
// three suites at once falls behind the publisher in DrainedWithoutClients.
func TestConformanceQuorum(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{New: fixtures(amqp.QueueQuorum), Headers: true, AtLeastOnce: true, Durable: true, InFlight: amqp.DefaultPrefetch})
}

// TestConformanceStream runs the suite on stream queues read from offset next, each fixture's
// sources keeping their place in a data directory of its own. A killed source reads again what
// it took after the place on disk: no more than the prefetch window, which the source never
// gets further ahead of.
func TestConformanceStream(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{New: fixtures(amqp.QueueStream), Headers: true, AtLeastOnce: true, Durable: true, InFlight: amqp.DefaultStreamPrefetch})
}

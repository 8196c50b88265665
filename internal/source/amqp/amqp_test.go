package amqp_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/sourcetest"
)

const wait = 30 * time.Second

func newSource(t *testing.T, c amqp.Config) *amqp.Source {
	t.Helper()
	s, err := amqp.New(c)
	if err != nil {
		t.Fatalf("amqp.New: %v", err)
	}
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// TestHeadersAndProperties publishes a message with every property and typed headers through
// the real broker and checks the message the source makes of it.
func TestHeadersAndProperties(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	name := sourcetest.UniqueName(t)
	b.exchange(name, "topic")
	src := newSource(t, amqp.Config{URL: b.url, Exchange: name, Bindings: []string{"eu.#"}})
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, source.Up, wait)

	ts := time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)
	pub := amqp091.Publishing{
		Headers: amqp091.Table{
			"region": "eu", "count": int32(7), "big": int64(1) << 40, "ok": true, "ratio": 0.25,
			"when": ts, "nested": amqp091.Table{"a": int32(1), "b": []any{"x", int32(2)}},
		},
		ContentType: "application/json", ContentEncoding: "identity", DeliveryMode: amqp091.Persistent,
		Priority: 3, CorrelationId: "corr", ReplyTo: "replies", Expiration: "60000", MessageId: "msg-1",
		Timestamp: ts, Type: "order.created", UserId: "guest", AppId: "shop",
		Body: []byte(`{"amount":120.5}`),
	}
	start := time.Now()
	// Not bound: "us." does not match "eu.#".
	if err := b.publishKeys(ctxT(t), name, []string{"us.order.created", "eu.order.created"}, pub, pub); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 1, wait)
	m := c.Messages()[0]
	if m.Key != "eu.order.created" {
		t.Errorf("key %q, want eu.order.created", m.Key)
	}
	if string(m.Body) != `{"amount":120.5}` {
		t.Errorf("body %q", m.Body)
	}
	if m.Time.Before(start) || m.Time.After(time.Now()) {
		t.Errorf("time %v is not the time of receipt", m.Time)
	}
	want := map[string]string{
		"region": "eu", "count": "7", "big": "1099511627776", "ok": "true", "ratio": "0.25",
		"when": "2026-11-25T16:00:00Z", "nested": `{"a":1,"b":["x",2]}`,
		"amqp_content_type": "application/json", "amqp_content_encoding": "identity",
		"amqp_delivery_mode": "2", "amqp_priority": "3", "amqp_correlation_id": "corr",
		"amqp_reply_to": "replies", "amqp_expiration": "60000", "amqp_message_id": "msg-1",
		"amqp_timestamp": "2026-11-25T16:00:00Z", "amqp_type": "order.created", "amqp_user_id": "guest",
		"amqp_app_id": "shop", "amqp_exchange": name, "amqp_redelivered": "false",
	}
	for k, v := range want {
		if m.Headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, m.Headers[k], v)
		}
	}
	if len(m.Headers) != len(want) {
		t.Errorf("got %d headers, want %d: %v", len(m.Headers), len(want), m.Headers)
	}
	if st := src.Counters().(amqp.Counters); st.Received != 1 || st.Connects != 1 || st.Redelivered != 0 {
		t.Errorf("Counters() = %+v", st)
	}
}

// TestDeclaresExchangeIfAbsent: an exchange that does not exist is declared with the configured
// type and durability.
func TestDeclaresExchangeIfAbsent(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	name := sourcetest.UniqueName(t)
	t.Cleanup(func() { b.deleteExchange(name) })
	no := false
	src := newSource(t, amqp.Config{URL: b.url, Exchange: name, ExchangeType: "fanout", Durable: &no})
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, source.Up, wait)
	// A fanout exchange delivers whatever the routing key.
	if err := b.publishKeys(ctxT(t), name, []string{"any.key"}, amqp091.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 1, wait)
	// Declaring it again as a fanout, non-durable exchange succeeds only if that is what it is.
	if err := b.do(func(ch *amqp091.Channel) error {
		return ch.ExchangeDeclare(name, "fanout", false, false, false, false, nil)
	}); err != nil {
		t.Errorf("the exchange was not declared as configured: %v", err)
	}
}

// TestPassive: with passive, an existing exchange is used and a missing one fails the source
// (state failed, retried at the longest backoff), never declared.
func TestPassive(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	name := sourcetest.UniqueName(t)

	missing := newSource(t, amqp.Config{URL: b.url, Exchange: name + ".missing", Passive: true})
	r := sourcetest.Start(t, missing, sourcetest.NewCollector().Emit)
	i := r.WaitState(t, 0, source.Failed, wait)
	if err := r.Changes()[i].Err; err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("failed with %v, want the exchange named as missing", err)
	}
	if err := b.do(func(ch *amqp091.Channel) error {
		return ch.ExchangeDeclarePassive(name+".missing", "topic", false, false, false, false, nil)
	}); err == nil {
		t.Errorf("passive declared the exchange")
		b.deleteExchange(name + ".missing")
	}

	b.exchange(name, "direct")
	present := newSource(t, amqp.Config{URL: b.url, Exchange: name, Passive: true, Bindings: []string{"k"}})
	c := sourcetest.NewCollector()
	r2 := sourcetest.Start(t, present, c.Emit)
	r2.WaitState(t, 0, source.Up, wait)
	if err := b.publishKeys(ctxT(t), name, []string{"k"}, amqp091.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 1, wait)
}

// TestQueueDeleted: the broker cancels the consumer when its queue is deleted; the source
// reconnects, declares the queue again and goes on.
func TestQueueDeleted(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	name := sourcetest.UniqueName(t)
	b.exchange(name, "topic")
	t.Cleanup(func() { b.deleteQueue(name) })
	no := false
	src := newSource(t, amqp.Config{URL: b.url, Exchange: name, Queue: name, Durable: &no})
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, source.Up, wait)

	from := len(r.Changes())
	b.deleteQueue(name)
	i := r.WaitState(t, from, source.Reconnecting, wait)
	if err := r.Changes()[i].Err; err == nil || !strings.Contains(err.Error(), "cancelled by the broker") {
		t.Errorf("reconnecting because of %v, want the cancellation", err)
	}
	r.WaitState(t, i, source.Up, wait)
	if err := b.publishKeys(ctxT(t), name, []string{"a.b"}, amqp091.Publishing{Body: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 1, wait)
	if n, err := b.readyMessages(name); err != nil || n != 0 {
		t.Errorf("queue %s: %d ready, %v", name, n, err)
	}
}

// TestExistingQueueWithoutExchange: with only a queue, the source consumes it as it is (its own
// arguments kept), with no binding.
func TestExistingQueueWithoutExchange(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	name := sourcetest.UniqueName(t)
	if err := b.do(func(ch *amqp091.Channel) error {
		_, err := ch.QueueDeclare(name, false, false, false, false, amqp091.Table{"x-max-length": int32(100)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.deleteQueue(name) })
	src := newSource(t, amqp.Config{URL: b.url, Queue: name}) // durable by default: must not matter
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, source.Up, wait)
	if err := b.publishKeys(ctxT(t), "", []string{name}, amqp091.Publishing{Body: []byte("direct")}); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 1, wait)
	if m := c.Messages()[0]; m.Key != name || m.Headers["amqp_exchange"] != "" {
		t.Errorf("key %q, headers %v", m.Key, m.Headers)
	}
}

// TestBadCredentials: refused credentials are permanent: state failed.
func TestBadCredentials(t *testing.T) {
	t.Parallel()
	url := sourcetest.RequireAMQP(t)
	bad := strings.Replace(url, "guest:guest@", "guest:wrong-password@", 1)
	if bad == url {
		t.Skip("the test URL carries no guest:guest credentials to spoil")
	}
	src := newSource(t, amqp.Config{URL: bad, Exchange: "unused"})
	r := sourcetest.Start(t, src, sourcetest.NewCollector().Emit)
	i := r.WaitState(t, 0, source.Failed, wait)
	if err := r.Changes()[i].Err; strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// TestBackPressure: while the router does not take messages, the client holds no more than the
// prefetch window, and the broker keeps the rest.
func TestBackPressure(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	name := sourcetest.UniqueName(t)
	b.exchange(name, "topic")
	t.Cleanup(func() { b.deleteQueue(name) })
	no := false
	const prefetch, hold, total = 50, 10, 1000
	src := newSource(t, amqp.Config{URL: b.url, Exchange: name, Queue: name, Durable: &no, Prefetch: prefetch})
	c := sourcetest.NewCollector()
	c.SetLimit(hold)
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, source.Up, wait)
	msgs := make([]amqp091.Publishing, total)
	keys := make([]string, total)
	for i := range msgs {
		msgs[i], keys[i] = amqp091.Publishing{Body: []byte("x")}, "k"
	}
	if err := b.publishKeys(ctxT(t), name, keys, msgs...); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, hold, wait)
	// The source holds one message in Emit and at most the window in its buffer; acknowledged
	// ones (auto mode) free room that the broker fills again, up to the window.
	sourcetest.Eventually(t, wait, func() bool {
		n, err := b.readyMessages(name)
		return err == nil && n >= total-hold-1-2*prefetch
	}, "the broker to hold the rest")
	if got := src.Counters().(amqp.Counters).Received; got > hold+1+2*prefetch {
		t.Errorf("the source received %d messages while the router took %d: its buffer is not bounded by the prefetch %d", got, hold, prefetch)
	}
	c.SetLimit(-1)
	c.WaitLen(t, total, wait)
}

// TestStopDuringHandshake: a stop while the broker does not answer the handshake returns at once.
func TestStopDuringHandshake(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Accepts and holds connections without a word; waited for through ln.Close.
	done, accepted := make(chan struct{}), make(chan struct{}, 1)
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	src := newSource(t, amqp.Config{URL: "amqp://guest:guest@" + ln.Addr().String() + "/", Exchange: "x"})
	ctx, cancel := context.WithCancel(context.Background())
	ret := make(chan error, 1)
	// Waited for through ret below.
	go func() { ret <- src.Run(ctx, func() { t.Error("up without a broker") }, sourcetest.NewCollector().Emit) }()
	select {
	case <-accepted: // connected, now waiting for the broker's handshake
	case <-time.After(wait):
		t.Fatal("the source did not connect")
	}
	cancel()
	select {
	case err := <-ret:
		if err != nil {
			t.Errorf("Run returned %v after a stop, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	ln.Close()
	<-done
}

// TestQuietStreamAcknowledged: messages fewer than an acknowledgement's batch are acknowledged
// soon all the same, though no more come.
func TestQuietStreamAcknowledged(t *testing.T) {
	t.Parallel()
	sourcetest.RequireCommand(t, "rabbitmqctl")
	b := newBroker(t)
	name := sourcetest.UniqueName(t)
	b.exchange(name, "topic")
	t.Cleanup(func() { b.deleteQueue(name) })
	no := false
	src := newSource(t, amqp.Config{URL: b.url, Exchange: name, Queue: name, Durable: &no}) // batches of 64
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, source.Up, wait)
	const n = 5
	if err := b.publishKeys(ctxT(t), name, []string{"a", "b", "c", "d", "e"}, make([]amqp091.Publishing, n)...); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, n, wait)
	sourcetest.Eventually(t, wait, func() bool {
		unacked, err := sourcetest.AMQPUnacknowledged(ctxT(t), name)
		return err == nil && unacked == 0
	}, "the messages to be acknowledged")
}

package amqp_test

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sink/amqp"
	"github.com/streamux/streamux/internal/sink/sinktest"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// exchange declares a topic exchange of its own and a queue bound to everything it routes,
// consumed by the test; both are deleted when the test ends. It returns the broker's URL, the
// exchange's name and what the queue received.
func exchange(t *testing.T) (string, string, func() []sinktest.Got) {
	t.Helper()
	u := sourcetest.RequireAMQP(t)
	name := sourcetest.UniqueName(t)
	conn, err := amqp091.Dial(u)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(name, "topic", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err == nil {
		err = ch.QueueBind(q.Name, "#", name, false, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []sinktest.Got
	done := make(chan struct{})
	go func() { // waited for by the cleanup
		defer close(done)
		for d := range deliveries {
			g := sinktest.Got{Key: d.RoutingKey, Body: d.Body, Headers: map[string]string{}}
			for k, v := range d.Headers {
				g.Headers[k] = fmt.Sprint(v)
			}
			if d.DeliveryMode != amqp091.Persistent {
				g.Headers["delivery_mode"] = fmt.Sprint(d.DeliveryMode) // not as sent: Check says so
			}
			mu.Lock()
			got = append(got, g)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ch.ExchangeDelete(name, false, false)
		_ = conn.Close()
		<-done
	})
	return u, name, func() []sinktest.Got {
		mu.Lock()
		defer mu.Unlock()
		return append([]sinktest.Got(nil), got...)
	}
}

func newSink(t *testing.T, c amqp.Config) *amqp.Sink {
	t.Helper()
	s, err := amqp.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Through the Runner, in batches: every message reaches a queue bound to the exchange, in
// order, persistent, with the routing key its template makes and its headers and body byte for
// byte.
func TestDeliver(t *testing.T) {
	u, ex, got := exchange(t)
	srv := sinktest.NewServer(t)
	r := sinktest.Run(t, srv, sink.Settings{BatchMax: 13, BatchWait: time.Millisecond},
		newSink(t, amqp.Config{URL: u, Exchange: ex, RoutingKey: "{header.region}.{key}"}))
	msgs := sinktest.Messages(0, 300)
	srv.Publish(t, msgs...)
	r.WaitPosition(t, srv.Sent(), 30*time.Second)
	sourcetest.Eventually(t, 10*time.Second, func() bool { return len(got()) >= len(msgs) }, "%d messages", len(msgs))
	sinktest.Check(t, got(), msgs, func(m *stream.Message) string { return m.Headers["region"] + "." + m.Key }, false)
	if in := r.Info(); in.Delivered != 300 || in.State != sink.StateUp {
		t.Errorf("info %+v", in)
	}
}

// A broker that is away makes the sink retrying; once it is back, everything is delivered, at
// least once and in order, on a new connection.
func TestBrokerDown(t *testing.T) {
	u, ex, got := exchange(t)
	pu, _ := url.Parse(u)
	gate := sinktest.NewGate(t, pu.Host)
	pu.Host = gate.Addr()
	srv := sinktest.NewServer(t)
	r := sinktest.Run(t, srv, sink.Settings{BatchMax: 10},
		newSink(t, amqp.Config{URL: pu.String(), Exchange: ex, ConnectTimeout: time.Second, Timeout: 2 * time.Second}))
	msgs := sinktest.Messages(0, 100)
	srv.Publish(t, msgs[:40]...)
	r.WaitPosition(t, 40, 30*time.Second)
	gate.Close()
	srv.Publish(t, msgs[40:]...)
	r.WaitState(t, sink.StateRetrying, 30*time.Second)
	gate.Open()
	r.WaitPosition(t, 100, 30*time.Second)
	if in := r.Info(); in.State != sink.StateUp || in.Failed == 0 || in.LastError == "" {
		t.Errorf("info %+v", in)
	}
	sourcetest.Eventually(t, 10*time.Second, func() bool { return len(got()) >= len(msgs) }, "%d messages", len(msgs))
	sinktest.Check(t, got(), msgs, nil, true)
}

// What can never be published fails the sink, saying why: an exchange that does not exist,
// refused credentials, a routing key longer than AMQP carries.
func TestPermanent(t *testing.T) {
	u, ex, _ := exchange(t)
	pu, _ := url.Parse(u)
	pu.User = url.UserPassword("guest", "wrong")
	for _, c := range []struct {
		name string
		cfg  amqp.Config
		msg  *stream.Message
		says string
	}{
		{"no exchange", amqp.Config{URL: u, Exchange: ex + ".missing"}, &stream.Message{Key: "k", Body: []byte("1")}, "NOT_FOUND - no exchange"},
		{"password", amqp.Config{URL: pu.String(), Exchange: ex}, &stream.Message{Key: "k", Body: []byte("1")}, "username or password not allowed"},
		{"long key", amqp.Config{URL: u, Exchange: ex}, &stream.Message{Key: strings.Repeat("k", 256)}, "message in:1: routing key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := sinktest.NewServer(t)
			r := sinktest.Run(t, srv, sink.Settings{}, newSink(t, c.cfg))
			srv.Publish(t, c.msg)
			err := r.Failed(t, 30*time.Second)
			if !sink.IsPermanent(err) || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "wrong") {
				t.Errorf("%v, want a permanent error saying %q", err, c.says)
			}
		})
	}
}

func TestConfigProblems(t *testing.T) {
	for _, c := range []struct {
		cfg  amqp.Config
		want string
	}{
		{amqp.Config{}, "url is required"},
		{amqp.Config{URL: "http://x/"}, "url: "},
		{amqp.Config{URL: "amqp://x/", RoutingKey: "{nope}"}, `routing_key "{nope}": unknown placeholder {nope}`},
		{amqp.Config{URL: "amqp://x/", RoutingKey: strings.Repeat("k", 256)}, "routing_key"},
		{amqp.Config{URL: "amqp://x/", Exchange: strings.Repeat("e", 256)}, "exchange: 256 bytes"},
		{amqp.Config{URL: "amqp://x/", Heartbeat: -1}, "heartbeat"},
		{amqp.Config{URL: "amqp://x/", Timeout: -1}, "timeout"},
		{amqp.Config{URL: "amqp://x/", ConnectTimeout: -1}, "connect_timeout"},
		{amqp.Config{URL: "amqp://x/", TLS: source.TLS{InsecureSkipVerify: true}}, "use amqps://"},
	} {
		all := sourcetest.Problems(c.cfg.Validate())
		if !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
	}
	if errs := (&amqp.Config{URL: "amqp://guest:guest@x:5672/", Exchange: "orders"}).Validate(); len(errs) > 0 {
		t.Errorf("a valid configuration: %v", errors.Join(errs...))
	}
}

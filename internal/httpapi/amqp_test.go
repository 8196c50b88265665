package httpapi_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/config"
	"github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/sourcetest"
)

// RabbitMQ through the whole server: a client's predicate picks messages published to an
// exchange; when RabbitMQ drops the connection, the client stays connected, sees the source's
// status change, and receives what is published after the reconnect.
func TestRabbitMQEndToEnd(t *testing.T) {
	brokerURL := sourcetest.RequireAMQP(t)
	exchange := fmt.Sprintf("streamux.e2e.%d", time.Now().UnixNano())
	conn := fmt.Sprintf("streamux-e2e-%d", time.Now().UnixNano())
	e := newEnv(t, envOptions{extra: []config.Source{{
		Name: "orders", Type: "amqp", Backoff: config.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		Spec: &amqp.Config{URL: brokerURL, Exchange: exchange, Bindings: []string{"eu.#", "us.#"}, ConnectionName: conn},
	}}})
	waitFor(t, "the amqp source to be up", func() bool {
		for _, s := range e.sup.Sources() {
			if s.Name == "orders" {
				return s.State == "up"
			}
		}
		return false
	})

	pub, err := amqp091.Dial(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ch, err := pub.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = ch.ExchangeDelete(exchange, false, false)
	}()
	publish := func(key string, amount float64) {
		t.Helper()
		err := ch.PublishWithContext(context.Background(), exchange, key, false, false, amqp091.Publishing{
			ContentType: "application/json", Headers: amqp091.Table{"region": key[:2]},
			Body: fmt.Appendf(nil, `{"amount":%g}`, amount),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	c := e.ws(url.Values{"source": {"orders"}, "where": {`key.startsWith("eu.") && body.amount > 100 && headers.region == "eu"`}})
	defer c.close()
	publish("eu.order.created", 120.5)
	publish("us.order.created", 500)
	publish("eu.order.created", 50)
	publish("eu.order.paid", 101)
	for _, want := range []string{`eu.order.created {"amount":120.5}`, `eu.order.paid {"amount":101}`} {
		ev := c.next(t)
		if got := ev.Key + " " + string(ev.Body); got != want || ev.Headers["region"] != "eu" || ev.Headers["amqp_content_type"] != "application/json" {
			t.Fatalf("got %s (headers %v), want %s", got, ev.Headers, want)
		}
	}

	n, err := sourcetest.CloseAMQPConnections(context.Background(), conn)
	if err != nil || n == 0 {
		t.Fatalf("closing the connection from the server: %d, %v", n, err)
	}
	sawReconnecting := false
	for {
		ev := c.next(t)
		if ev.Type != "status" || ev.Source != "orders" {
			t.Fatalf("want status events, got %+v", ev)
		}
		if ev.State == "reconnecting" {
			sawReconnecting = true
		}
		if ev.State == "up" && sawReconnecting {
			break
		}
	}
	publish("eu.order.created", 999)
	if ev := c.next(t); ev.Type != "message" || string(ev.Body) != `{"amount":999}` {
		t.Fatalf("after the reconnect: %+v", ev)
	}
}

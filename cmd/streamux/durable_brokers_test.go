package main_test

// The durable sources of TestDurableAcrossRestart: for each, a private stream on its server
// (removed when the test ends), the source's YAML and a publisher of numbered messages through
// the server's own client.

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp091 "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/source/mqtt"
	"github.com/streamux/streamux/internal/source/redisstreams"
	"github.com/streamux/streamux/internal/sourcetest"
)

var durableBrokers = []durableBroker{
	{"jetstream", durableJetStream},
	{"redis-streams", durableRedisStreams},
	{"mqtt", durableMQTT},
	{"amqp-stream", func(t *testing.T) durableSource { return durableAMQP(t, amqp.QueueStream) }},
	{"amqp-quorum", func(t *testing.T) durableSource { return durableAMQP(t, amqp.QueueQuorum) }},
	{"kafka", durableKafka},
}

// jetStreamMaxAckPending is the consumer's max_ack_pending: what the server sends ahead of
// the router, so what a killed streamux receives again.
const jetStreamMaxAckPending = 500

// durableJetStream: a file stream of the test's own on the machine's nats-server, read through
// a durable consumer from its start.
func durableJetStream(t *testing.T) durableSource {
	natsURL := sourcetest.RequireJetStream(t)
	nc, err := natsgo.Connect(natsURL, natsgo.Name("streamux-durable-test"))
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	prefix := sourcetest.StreamPrefix()
	t.Cleanup(func() {
		nc.Close()
		sourcetest.DeleteStreams(natsURL, prefix)
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := prefix + "DURABLE"
	subject := sourcetest.UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject + ".>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	return durableSource{
		yaml: fmt.Sprintf("{name: src, type: jetstream, url: %s, stream: %s, consumer: durable, start: all, max_ack_pending: %d, ack_wait: 5s}",
			yamlString(natsURL), name, jetStreamMaxAckPending),
		publish: func(ctx context.Context, first, n int) error {
			futures := make([]jetstream.PubAckFuture, 0, n)
			for i := first; i < first+n; i++ {
				f, err := js.PublishAsync(fmt.Sprintf("%s.k%d", subject, i%4), durableBody(i))
				if err != nil {
					return err
				}
				futures = append(futures, f)
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					return err
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		},
		// ack_wait is 5 s: what the killed run had not acknowledged comes after it.
		inFlight: jetStreamMaxAckPending, lateAfterKill: true, settle: 12 * time.Second,
	}
}

// durableRedisStreams: a stream of the test's own on the machine's Redis, read through a
// consumer group from its start.
func durableRedisStreams(t *testing.T) durableSource {
	redisURL, _ := durableServerURL(t, "Redis", "STREAMUX_TEST_REDIS_URL", "redis://127.0.0.1:6379", "6379")
	opt, err := goredis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := goredis.NewClient(opt)
	key := sourcetest.UniqueName(t)
	t.Cleanup(func() {
		_ = rc.Del(context.Background(), key).Err()
		_ = rc.Close()
	})
	return durableSource{
		yaml: fmt.Sprintf("{name: src, type: redis-streams, url: %s, stream: %s, group: streamux, consumer: durable, start: \"0\"}",
			yamlString(redisURL), yamlString(key)),
		publish: func(ctx context.Context, first, n int) error {
			_, err := rc.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for i := first; i < first+n; i++ {
					p.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []string{"body", string(durableBody(i))}})
				}
				return nil
			})
			return err
		},
		inFlight: redisstreams.DefaultCount,
	}
}

// durableMQTT: a persistent session (clean_start false) on the machine's Mosquitto, topics
// under a prefix of the test's own, published with QoS 1. The session is ended when the test
// ends.
func durableMQTT(t *testing.T) durableSource {
	mqttURL, host := durableServerURL(t, "MQTT broker", "STREAMUX_TEST_MQTT_URL", "mqtt://127.0.0.1:1883", "1883")
	prefix := sourcetest.UniqueName(t)
	clientID := prefix + ".streamux"
	t.Cleanup(func() { endMQTTSession(t, host, clientID) })
	pc := dialMQTT(t, host, prefix+".publisher")
	return durableSource{
		yaml: fmt.Sprintf("{name: src, type: mqtt, url: %s, topics: [%s], qos: 1, client_id: %s, clean_start: false, session_expiry: 10m}",
			yamlString(mqttURL), yamlString(prefix+"/#"), yamlString(clientID)),
		publish: func(ctx context.Context, first, n int) error {
			for i := first; i < first+n; i++ {
				p := &paho.Publish{Topic: fmt.Sprintf("%s/k%d", prefix, i%4), QoS: 1, Payload: durableBody(i)}
				if _, err := pc.Publish(ctx, p); err != nil {
					return err
				}
			}
			return nil
		},
		inFlight: mqtt.ReceiveMaximum,
	}
}

// dialMQTT connects an MQTT client with a clean session, closed when the test ends.
func dialMQTT(t *testing.T, host, id string) *paho.Client {
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	pc := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pc.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
		_ = conn.Close()
		t.Fatalf("connect to the MQTT broker: %v", err)
	}
	t.Cleanup(func() {
		_ = pc.Disconnect(&paho.Disconnect{})
		_ = conn.Close()
		<-pc.Done()
	})
	return pc
}

// endMQTTSession ends the session the broker keeps for client id: a connection that starts
// clean and asks for none to be kept.
func endMQTTSession(t *testing.T, host, id string) {
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Logf("end the session %s: %v", id, err)
		return
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
		_ = conn.Close()
		t.Logf("end the session %s: %v", id, err)
		return
	}
	_ = c.Disconnect(&paho.Disconnect{})
	_ = conn.Close()
	<-c.Done()
}

// durableAMQP: a queue of the given type (stream or quorum) of the test's own, bound to a topic
// exchange of its own with "#", on the machine's RabbitMQ, published with confirms; a quorum
// queue is read with ack: after_route (a stream always is).
func durableAMQP(t *testing.T, queueType string) durableSource {
	amqpURL := sourcetest.RequireAMQP(t)
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatalf("connect to RabbitMQ: %v", err)
	}
	name := sourcetest.UniqueName(t)
	t.Cleanup(func() {
		if ch, err := conn.Channel(); err == nil {
			if _, err := ch.QueueDelete(name, false, false, false); err != nil {
				t.Logf("delete queue %s: %v", name, err)
			}
			_ = ch.Close()
		}
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(name, false, false)
			_ = ch.Close()
		}
		_ = conn.Close()
	})
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(name, "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("declare exchange %s: %v", name, err)
	}
	inFlight, offset := amqp.DefaultPrefetch, ""
	if queueType == amqp.QueueStream {
		inFlight, offset = amqp.DefaultStreamPrefetch, ", offset: first"
	}
	return durableSource{
		yaml: fmt.Sprintf("{name: src, type: amqp, url: %s, exchange: %s, exchange_type: topic, bindings: [\"#\"], queue: %s, queue_type: %s, ack: after_route%s}",
			yamlString(amqpURL), yamlString(name), yamlString(name), queueType, offset),
		publish: func(ctx context.Context, first, n int) error {
			confirms := make([]*amqp091.DeferredConfirmation, 0, n)
			for i := first; i < first+n; i++ {
				c, err := ch.PublishWithDeferredConfirmWithContext(ctx, name, fmt.Sprintf("k%d", i%4), false, false,
					amqp091.Publishing{ContentType: "application/json", DeliveryMode: amqp091.Persistent, Body: durableBody(i)})
				if err != nil {
					return err
				}
				confirms = append(confirms, c)
			}
			for _, c := range confirms {
				ok, err := c.WaitContext(ctx)
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("message %d: RabbitMQ refused it (nack)", c.DeliveryTag)
				}
			}
			return nil
		},
		inFlight: inFlight,
	}
}

// durableKafka: a topic of one partition on a kfake cluster in this process, read as a member
// of a consumer group from the earliest offset. The group commits every 5 s, so what a killed
// streamux had taken since the last commit (at most everything of this test) comes again.
func durableKafka(t *testing.T) durableSource {
	const topic = "durable"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	producer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	return durableSource{
		yaml: fmt.Sprintf("{name: src, type: kafka, brokers: [%s], topics: [%s], group: streamux, start: earliest}",
			yamlString(cluster.ListenAddrs()[0]), topic),
		publish: func(ctx context.Context, first, n int) error {
			rs := make([]*kgo.Record, 0, n)
			for i := first; i < first+n; i++ {
				rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%4), Value: durableBody(i)})
			}
			return producer.ProduceSync(ctx, rs...).FirstErr()
		},
		inFlight: durableTotal,
	}
}

// durableServerURL is the URL of a test server: $env, or def; the test is skipped when nothing
// answers there, or fails if CI=true (sourcetest.RequireServer).
func durableServerURL(t *testing.T, what, env, def, port string) (raw, host string) {
	t.Helper()
	raw = os.Getenv(env)
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("%s=%q is not a URL", env, raw)
	}
	host = u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), port)
	}
	sourcetest.RequireServer(t, what, host)
	return raw, host
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
	natsgo "github.com/nats-io/nats.go"
	amqp091 "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamux/streamux/internal/sourcetest"
)

// The conservation test's source paths: each source type against its real server, published to
// through that server's own client.

// brokerCap bounds the bodies of the brokers whose own limit is far beyond what a test can move
// in reasonable time under the race detector: RabbitMQ's max_message_size (128 MiB), Redis's
// proto-max-bulk-len (512 MB), MQTT's packet (256 MiB; Mosquitto sets no message_size_limit
// by default). 1 MiB crosses every buffer on those paths (RabbitMQ's frame_max of 128 KiB
// among them).
const brokerCap = 1 << 20

// brokerMsg is one message to publish: the body, and the key and headers as the broker's client
// sends them.
type brokerMsg struct {
	key     string
	headers map[string]string
	body    []byte
	what    string // how the body was made, for failure messages
}

// brokerMessages draws n messages (and a sentinel) of sizes up to limit (and either side of the
// extra boundaries), with keys from key and headers from headers (nil: none).
func (g gen) brokerMessages(n, limit int, extra []int, key func() string, headers func() map[string]string) []brokerMsg {
	var out []brokerMsg
	for _, size := range append(g.sizes(n, 0, limit, extra...), 20) {
		k := g.kind()
		m := brokerMsg{key: key(), body: g.body(k, size, bodyRules{})}
		m.what = describe(k, m.body)
		if headers != nil {
			m.headers = headers()
		}
		out = append(out, m)
	}
	return out
}

// headerMap draws up to max headers: names from name, values as headerValue.
func (g gen) headerMap(max int, name func() string) map[string]string {
	var h map[string]string
	for range g.r.IntN(max + 1) {
		if h == nil {
			h = map[string]string{}
		}
		h[name()] = g.headerValue()
	}
	return h
}

// expect makes the messages a path's clients must receive from what was published: the key the
// source gives it, and the headers, those published and those the source adds.
func expect(ms []brokerMsg, key func(brokerMsg) string, headers func(brokerMsg) map[string]string) []*message {
	out := make([]*message, len(ms))
	for i, m := range ms {
		out[i] = &message{what: m.what, key: key(m), headers: headers(m), body: wantFor(m.body)}
	}
	return out
}

// serverURL is the URL of a test server: $env, or def; the test is skipped when nothing answers
// there, or fails if CI=true (sourcetest.RequireServer).
func serverURL(t *testing.T, what, env, def, port string) (raw, host string) {
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

func yamlQuote(s string) string { return strconv.Quote(s) }

// conserveAMQP: RabbitMQ through a topic exchange of the test's own, bound with "#"; the routing
// key is the key, application headers (strings) are headers, beside amqp_exchange and
// amqp_redelivered. Published with confirms.
func conserveAMQP(t *testing.T, g gen, n int) {
	amqpURL := sourcetest.RequireAMQP(t)
	conn, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatalf("connect to RabbitMQ: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	exchange := sourcetest.UniqueName(t)
	if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.ExchangeDelete(exchange, false, false) })
	srv := startServer(t, fmt.Sprintf(`  - name: rabbit
    type: amqp
    url: %s
    exchange: %s
    bindings: ["#"]
`, yamlQuote(amqpURL), yamlQuote(exchange)))

	// RabbitMQ cuts a body into frames of frame_max (128 KiB) less their 8 bytes of framing.
	ms := g.brokerMessages(n, brokerCap, []int{131072 - 8}, func() string {
		var words []string
		for range 1 + g.r.IntN(3) {
			words = append(words, g.word(true))
		}
		return strings.Join(words, ".")
	}, func() map[string]string { return g.headerMap(3, func() string { return g.word(true) }) })
	msgs := expect(ms, func(m brokerMsg) string { return m.key }, func(m brokerMsg) map[string]string {
		h := maps.Clone(m.headers)
		if h == nil {
			h = map[string]string{}
		}
		h["amqp_exchange"], h["amqp_redelivered"] = exchange, "false"
		return h
	})
	publish := func(ctx context.Context, ms ...brokerMsg) error {
		var confirms []*amqp091.DeferredConfirmation
		for _, m := range ms {
			var table amqp091.Table
			for k, v := range m.headers {
				if table == nil {
					table = amqp091.Table{}
				}
				table[k] = v
			}
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, m.key, false, false, amqp091.Publishing{Headers: table, Body: m.body})
			if err != nil {
				return err
			}
			confirms = append(confirms, dc)
		}
		for _, dc := range confirms {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return fmt.Errorf("not confirmed (%v)", err)
			}
		}
		return nil
	}
	conserve(t, g, entry{srv: srv, source: "rabbit",
		publish:  func(ctx context.Context, idx []int) error { return publish(ctx, pick(ms, idx)...) },
		probe:    func(ctx context.Context) error { return publish(ctx, brokerMsg{key: "probe", body: []byte("probe")}) },
		probeKey: "probe",
	}, msgs)
}

func pick(ms []brokerMsg, idx []int) []brokerMsg {
	out := make([]brokerMsg, len(idx))
	for i, j := range idx {
		out[i] = ms[j]
	}
	return out
}

// conserveNATS: core NATS, the subjects under a prefix of the test's own; the subject is the key,
// NATS headers are headers. The server's max_payload bounds headers and body together.
func conserveNATS(t *testing.T, g gen, n int) {
	natsURL, _ := serverURL(t, "NATS", "STREAMUX_TEST_NATS_URL", "nats://127.0.0.1:4222", "4222")
	nc, err := natsgo.Connect(natsURL, natsgo.Name("streamux-conservation"))
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	t.Cleanup(nc.Close)
	prefix := sourcetest.UniqueName(t)
	srv := startServer(t, fmt.Sprintf(`  - name: nats
    type: nats
    url: %s
    subjects: [%s]
`, yamlQuote(natsURL), yamlQuote(prefix+".>")))

	limit := int(nc.MaxPayload())
	ms := g.brokerMessages(n, limit, nil, func() string { return g.word(false) + "." + g.word(false) },
		func() map[string]string { return g.headerMap(3, func() string { return "X-" + g.word(false) }) })
	for i := range ms {
		// max_payload counts the header block ("NATS/1.0\r\n", "Name: value\r\n" each, "\r\n"):
		// a body at the limit carries no headers, one near it gives way to them.
		if len(ms[i].body) >= limit-1 {
			ms[i].headers = nil
		} else if hl := natsHeaderLen(ms[i].headers); len(ms[i].body)+hl > limit {
			ms[i].body = ms[i].body[:limit-hl]
			ms[i].what += fmt.Sprintf(", cut to %d for its headers", len(ms[i].body))
		}
	}
	msgs := expect(ms, func(m brokerMsg) string { return prefix + "." + m.key }, func(m brokerMsg) map[string]string { return m.headers })
	publish := func(ctx context.Context, ms ...brokerMsg) error {
		for _, m := range ms {
			nm := natsgo.NewMsg(prefix + "." + m.key)
			nm.Data = m.body
			for k, v := range m.headers {
				nm.Header[k] = []string{v}
			}
			if err := nc.PublishMsg(nm); err != nil {
				return fmt.Errorf("%d bytes, %d of headers: %w", len(m.body), natsHeaderLen(m.headers), err)
			}
		}
		return nc.FlushWithContext(ctx)
	}
	conserve(t, g, entry{srv: srv, source: "nats",
		publish:  func(ctx context.Context, idx []int) error { return publish(ctx, pick(ms, idx)...) },
		probe:    func(ctx context.Context) error { return publish(ctx, brokerMsg{key: "probe", body: []byte("probe")}) },
		probeKey: prefix + ".probe",
	}, msgs)
}

// natsHeaderLen is the size of the header block that NATS sends for h.
func natsHeaderLen(h map[string]string) int {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, v := range h {
		n += len(k) + len(": ") + len(v) + len("\r\n")
	}
	return n
}

// conserveRedis: Redis pub/sub through a pattern; the channel is the key, and the pattern the
// header redis_pattern.
func conserveRedis(t *testing.T, g gen, n int) {
	redisURL, _ := serverURL(t, "Redis", "STREAMUX_TEST_REDIS_URL", "redis://127.0.0.1:6379", "6379")
	opt, err := goredis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := goredis.NewClient(opt)
	t.Cleanup(func() { _ = rc.Close() })
	prefix := sourcetest.UniqueName(t)
	pattern := prefix + ".*"
	srv := startServer(t, fmt.Sprintf(`  - name: redis
    type: redis
    url: %s
    patterns: [%s]
`, yamlQuote(redisURL), yamlQuote(pattern)))

	ms := g.brokerMessages(n, brokerCap, nil, func() string { return g.anyText(20) }, nil)
	msgs := expect(ms, func(m brokerMsg) string { return prefix + "." + m.key },
		func(brokerMsg) map[string]string { return map[string]string{"redis_pattern": pattern} })
	publish := func(ctx context.Context, ms ...brokerMsg) error {
		for _, m := range ms {
			if err := rc.Publish(ctx, prefix+"."+m.key, m.body).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	conserve(t, g, entry{srv: srv, source: "redis",
		publish:  func(ctx context.Context, idx []int) error { return publish(ctx, pick(ms, idx)...) },
		probe:    func(ctx context.Context) error { return publish(ctx, brokerMsg{key: "probe", body: []byte("probe")}) },
		probeKey: prefix + ".probe",
	}, msgs)
}

// conserveMQTT: MQTT 5 through a topic filter of the test's own, QoS 1, each publish
// acknowledged before the next; the topic is the key, user properties are headers.
func conserveMQTT(t *testing.T, g gen, n int) {
	mqttURL, host := serverURL(t, "MQTT broker", "STREAMUX_TEST_MQTT_URL", "mqtt://127.0.0.1:1883", "1883")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	pc := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pc.Connect(ctx, &paho.Connect{ClientID: sourcetest.UniqueName(t), KeepAlive: 30, CleanStart: true}); err != nil {
		_ = conn.Close()
		t.Fatalf("connect to the MQTT broker: %v", err)
	}
	t.Cleanup(func() {
		_ = pc.Disconnect(&paho.Disconnect{})
		_ = conn.Close()
		<-pc.Done()
	})
	prefix := sourcetest.UniqueName(t)
	srv := startServer(t, fmt.Sprintf(`  - name: mqtt
    type: mqtt
    url: %s
    topics: [%s]
`, yamlQuote(mqttURL), yamlQuote(prefix+"/#")))

	ms := g.brokerMessages(n, brokerCap, nil, func() string {
		var levels []string
		for range 1 + g.r.IntN(3) {
			levels = append(levels, g.word(true))
		}
		return strings.Join(levels, "/")
	}, func() map[string]string { return g.headerMap(3, func() string { return g.word(true) }) })
	msgs := expect(ms, func(m brokerMsg) string { return prefix + "/" + m.key }, func(m brokerMsg) map[string]string { return m.headers })
	publish := func(ctx context.Context, ms ...brokerMsg) error {
		for _, m := range ms {
			p := &paho.Publish{Topic: prefix + "/" + m.key, QoS: 1, Payload: m.body}
			if len(m.headers) > 0 {
				p.Properties = &paho.PublishProperties{}
				for k, v := range m.headers {
					p.Properties.User.Add(k, v)
				}
			}
			if _, err := pc.Publish(ctx, p); err != nil {
				return fmt.Errorf("%d bytes to %q: %w", len(m.body), p.Topic, err)
			}
		}
		return nil
	}
	conserve(t, g, entry{srv: srv, source: "mqtt",
		publish:  func(ctx context.Context, idx []int) error { return publish(ctx, pick(ms, idx)...) },
		probe:    func(ctx context.Context) error { return publish(ctx, brokerMsg{key: "probe", body: []byte("probe")}) },
		probeKey: prefix + "/probe",
	}, msgs)
}

// kafkaMaxBatch is kfake's message.max.bytes, the largest record batch a broker takes; the
// producer is allowed as much (franz-go's own default is 1,000,012).
const kafkaMaxBatch = 1_048_588

// conserveKafka: Kafka through kfake, one partition read from the earliest offset; the record
// key is the key, record headers are headers, beside kafka_topic, kafka_partition, kafka_offset
// and kafka_timestamp.
func conserveKafka(t *testing.T, g gen, n int) {
	const topic = "conservation"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	producer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchMaxBytes(kafkaMaxBatch))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	srv := startServer(t, fmt.Sprintf(`  - name: kafka
    type: kafka
    brokers: [%s]
    topics: [%s]
    start: earliest
`, yamlQuote(cluster.ListenAddrs()[0]), topic))

	// A record batch holds a header of 61 bytes and, per record, its framing (a few varints),
	// key and headers: a body of the limit less 512 bytes fits with the key and headers drawn.
	limit := kafkaMaxBatch - 512
	ms := g.brokerMessages(n, limit, nil, func() string { return g.anyText(12) },
		func() map[string]string { return g.headerMap(3, func() string { return g.word(true) }) })
	msgs := expect(ms, func(m brokerMsg) string { return m.key }, func(m brokerMsg) map[string]string { return maps.Clone(m.headers) })
	publish := func(ctx context.Context, idx []int) error {
		var rs []*kgo.Record
		for _, i := range idx {
			m := ms[i]
			r := &kgo.Record{Key: []byte(m.key), Value: m.body}
			for k, v := range m.headers {
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
			}
			rs = append(rs, r)
		}
		if err := producer.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			return err
		}
		for j, i := range idx {
			h := msgs[i].headers
			if h == nil {
				h = map[string]string{}
				msgs[i].headers = h
			}
			h["kafka_topic"], h["kafka_partition"] = topic, strconv.Itoa(int(rs[j].Partition))
			h["kafka_offset"] = strconv.FormatInt(rs[j].Offset, 10)
			h["kafka_timestamp"] = rs[j].Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		}
		return nil
	}
	conserve(t, g, entry{srv: srv, source: "kafka", publish: publish}, msgs)
}

// conserveWebSocket: an upstream WebSocket server of the test's own, which sends each message as
// one message of text (when UTF-8) or binary frames, whole in one frame or in fragments of a few
// bytes to a few KiB; the key is read from the JSON path "k" of the body, where the test put it
// in a JSON object. The source's read_limit (1 MiB by default) bounds a message.
func conserveWebSocket(t *testing.T, g gen, n int) {
	conns := make(chan *websocket.Conn, 1)
	upgrader := websocket.Upgrader{WriteBufferSize: 64 + g.r.IntN(8192)} // the size of the fragments NextWriter makes
	var handlers sync.WaitGroup
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A hijacked connection's handler is not waited for by the server's Close: the
		// cleanup below waits for it. (Added before the upgrade, while Close still waits
		// for the request, so that no Add comes after the Wait.)
		handlers.Add(1)
		defer handlers.Done()
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		select {
		case conns <- c:
		default:
			return // a second connection: the test sends on the first only, and fails on its loss
		}
		for { // read until the connection ends; gorilla answers the source's pings meanwhile
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	// After streamux has stopped (a cleanup registered later runs earlier), which closes its
	// side of the connection, and so ends the handler's read.
	t.Cleanup(func() {
		up.Close()
		handlers.Wait()
	})
	srv := startServer(t, fmt.Sprintf(`  - name: feed
    type: websocket
    url: %s
    key: k
`, yamlQuote("ws"+strings.TrimPrefix(up.URL, "http")+"/")))
	var conn *websocket.Conn
	select {
	case conn = <-conns:
	case <-time.After(30 * time.Second):
		t.Fatal("the source did not connect to the upstream within 30s")
	}

	const limit = 1 << 20 // wsdial's default read_limit: a message of that size is taken, one more is not
	var ms []brokerMsg
	boundary := map[int]bool{}
	for _, b := range []int{4095, 4096, 4097, 65535, 65536, 65537, limit - 1, limit} {
		boundary[b] = true
	}
	for _, size := range append(g.sizes(n, 0, limit), 20) {
		k := g.kind()
		m := brokerMsg{body: g.body(k, size, bodyRules{})}
		m.what = describe(k, m.body)
		// Put a key in a JSON object, but at the sizes that must stay exact.
		if w := wantFor(m.body); w.enc == "json" && w.json[0] == '{' && !boundary[size] && g.r.IntN(3) > 0 {
			key := g.anyText(12)
			i := bytes.IndexByte(m.body, '{') + 1
			keyed := append(append(append([]byte(nil), m.body[:i]...), fmt.Sprintf(`"k":%s,`, jsonString(key))...), m.body[i:]...)
			if len(keyed) <= limit {
				m.body, m.key = keyed, key
				m.what = describe(k, m.body) + ", its key at k"
			}
		}
		ms = append(ms, m)
	}
	msgs := expect(ms, func(m brokerMsg) string { return m.key }, func(brokerMsg) map[string]string { return nil })
	kinds := make([]int, len(ms))
	pieces := make([]int, len(ms))
	for i, m := range ms {
		kinds[i] = websocket.BinaryMessage
		if wantFor(m.body).enc != "base64" && g.r.IntN(3) > 0 {
			kinds[i] = websocket.TextMessage
		}
		if g.r.IntN(2) == 0 {
			pieces[i] = 1 + g.r.IntN(5000) // written in pieces: fragments
		}
	}
	publish := func(ctx context.Context, idx []int) error {
		for _, i := range idx {
			_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if pieces[i] == 0 {
				if err := conn.WriteMessage(kinds[i], ms[i].body); err != nil {
					return err
				}
				continue
			}
			w, err := conn.NextWriter(kinds[i])
			if err != nil {
				return err
			}
			for b := ms[i].body; len(b) > 0; b = b[min(len(b), pieces[i]):] {
				if _, err := w.Write(b[:min(len(b), pieces[i])]); err != nil {
					return err
				}
			}
			if err := w.Close(); err != nil {
				return err
			}
		}
		return nil
	}
	conserve(t, g, entry{srv: srv, source: "feed", publish: publish}, msgs)
}

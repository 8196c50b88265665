package mqtt_test

import (
	"context"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/mqtt"
	"github.com/streamux/streamux/internal/sourcetest"
)

// mqttURLEnv names the environment variable that points the tests at another MQTT broker.
const mqttURLEnv = "STREAMUX_TEST_MQTT_URL"

// broker is a test's own MQTT 5 connection, for publishing: to the Mosquitto on
// 127.0.0.1:1883 that every development and CI machine runs, or $STREAMUX_TEST_MQTT_URL.
// Without one the test is skipped, or fails if CI=true.
type broker struct {
	addr string
	mu   sync.Mutex // serialises publishing, so that messages keep their order
	c    *paho.Client
}

func newBroker(t testing.TB) *broker {
	t.Helper()
	raw := os.Getenv(mqttURLEnv)
	if raw == "" {
		raw = "mqtt://127.0.0.1:1883"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("%s is not an MQTT URL", mqttURLEnv)
	}
	sourcetest.RequireServer(t, "MQTT broker", u.Host)
	return dialBroker(t, u.Host)
}

// dialBroker connects a publisher to the broker at addr, and disconnects it when the test ends.
func dialBroker(t testing.TB, addr string) *broker {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: sourcetest.UniqueName(t), KeepAlive: 30, CleanStart: true}); err != nil {
		_ = conn.Close()
		t.Fatalf("connect to the MQTT broker: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{})
		_ = conn.Close()
		<-c.Done()
	})
	return &broker{addr: addr, c: c}
}

// publish sends msgs to prefix/KEY with QoS 1, each with its headers as user properties, one
// after the other, each acknowledged before the next.
func (b *broker) publish(ctx context.Context, prefix string, msgs ...sourcetest.Msg) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range msgs {
		p := &paho.Publish{Topic: prefix + "/" + m.Key, QoS: 1, Payload: m.Body}
		if len(m.Headers) > 0 {
			p.Properties = &paho.PublishProperties{}
			for k, v := range m.Headers {
				p.Properties.User.Add(k, v)
			}
		}
		if _, err := b.c.Publish(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func newFixture(t *testing.T, _ sourcetest.Options) sourcetest.Fixture {
	b := newBroker(t)
	prefix := sourcetest.UniqueName(t)
	return &sourcetest.PrefixFixture{
		Prefix: prefix, Sep: "/", Proxy: sourcetest.NewProxy(t, b.addr),
		NewSource: func(t *testing.T, addr string) source.Source {
			src, err := mqtt.New(mqtt.Config{URL: "mqtt://" + addr, Topics: []string{prefix + "/#"}})
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
		Send: func(ctx context.Context, msgs ...sourcetest.Msg) error { return b.publish(ctx, prefix, msgs...) },
	}
}

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{New: newFixture, Headers: true})
}

// persistent returns the configuration of a source with a persistent session on the broker at
// addr: client id id, clean_start false, a session that outlives a test, QoS 1.
func persistent(addr, id string, topics ...string) mqtt.Config {
	clean, expiry := false, mqtt.Expiry(5*time.Minute)
	return mqtt.Config{URL: "mqtt://" + addr, Topics: topics, ClientID: id, CleanStart: &clean, SessionExpiry: &expiry}
}

// newDurableFixture is a private Mosquitto (its queue unbounded: the machine broker's holds
// 1,000 messages a session, fewer than the suite leaves while no source runs). With
// Options.Durable or AtLeastOnce its sources all resume one persistent session: one client id,
// clean_start false, QoS 1 subscriptions; the suite's messages are published with QoS 1. Without
// either they are the type's default, clean sessions, as the cases that want every message
// exactly once across a server-side drop (ReconnectAfterServerDrop) expect: a persistent
// session sends again what was acknowledged and not yet received by the broker when the
// connection dropped. Kill drops the source's connections at a proxy between it and the broker.
func newDurableFixture(t *testing.T, o sourcetest.Options) sourcetest.Fixture {
	m := startMosquitto(t, mosquittoConf{})
	b := dialBroker(t, m.addr)
	prefix := sourcetest.UniqueName(t)
	cfg := func(addr string) mqtt.Config {
		if o.Durable || o.AtLeastOnce {
			return persistent(addr, prefix, prefix+"/#")
		}
		return mqtt.Config{URL: "mqtt://" + addr, Topics: []string{prefix + "/#"}}
	}
	return &sourcetest.PrefixFixture{
		Prefix: prefix, Sep: "/", Proxy: sourcetest.NewProxy(t, m.addr),
		NewSource: func(t *testing.T, addr string) source.Source {
			src, err := mqtt.New(cfg(addr))
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
		Send: func(ctx context.Context, msgs ...sourcetest.Msg) error { return b.publish(ctx, prefix, msgs...) },
	}
}

// The suite on a persistent session: what is published while no source runs reaches the next
// one, each message once after a stop, at most the receive maximum twice after a kill.
func TestConformanceDurable(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{
		New: newDurableFixture, Headers: true, AtLeastOnce: true, Durable: true,
		InFlight: mqtt.ReceiveMaximum,
	})
}

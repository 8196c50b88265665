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
	conn, err := net.Dial("tcp", u.Host)
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
	return &broker{addr: u.Host, c: c}
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

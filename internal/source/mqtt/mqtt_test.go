package mqtt_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/mqtt"
	"github.com/streamux/streamux/internal/sourcetest"
)

const wait = 30 * time.Second

// The topic is the key; user properties are headers, a repeated one joined; the content type
// and the retain flag have headers of their own; a plain message has none.
func TestHeaders(t *testing.T) {
	b := newBroker(t)
	prefix := sourcetest.UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// A retained message, there before the source subscribes; cleared at the end.
	if _, err := b.c.Publish(ctx, &paho.Publish{Topic: prefix + "/kept", QoS: 1, Retain: true, Payload: []byte("last value")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = b.c.Publish(context.Background(), &paho.Publish{Topic: prefix + "/kept", QoS: 1, Retain: true})
	})
	src, err := mqtt.New(mqtt.Config{URL: "mqtt://" + b.addr, Topics: []string{prefix + "/+"}})
	if err != nil {
		t.Fatal(err)
	}
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, "up", wait)
	c.WaitLen(t, 1, wait)

	p := &paho.Publish{Topic: prefix + "/a", QoS: 1, Payload: []byte(`{"n":1}`), Properties: &paho.PublishProperties{ContentType: "application/json"}}
	p.Properties.User.Add("region", "eu").Add("tag", "x").Add("tag", "y").Add(mqtt.RetainHeader, "true")
	if _, err := b.c.Publish(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.Publish(ctx, &paho.Publish{Topic: prefix + "/b", QoS: 0, Payload: []byte("plain")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.Publish(ctx, &paho.Publish{Topic: prefix + "/b/deeper", QoS: 1, Payload: []byte("not for +")}); err != nil {
		t.Fatal(err)
	}
	// A sentinel: the broker sends one publisher's messages of one QoS to a subscriber in the
	// order it received them, so once it has arrived, the deeper topic's would have too.
	if _, err := b.c.Publish(ctx, &paho.Publish{Topic: prefix + "/sentinel", QoS: 1, Payload: []byte("last")}); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 4, wait)
	got := c.Messages()
	if got[0].Key != prefix+"/kept" || got[0].Headers[mqtt.RetainHeader] != "true" || string(got[0].Body) != "last value" {
		t.Errorf("retained: key %q, headers %v, body %q", got[0].Key, got[0].Headers, got[0].Body)
	}
	h := got[1].Headers
	if got[1].Key != prefix+"/a" || h["region"] != "eu" || h["tag"] != "x, y" || h[mqtt.ContentTypeHeader] != "application/json" || h[mqtt.RetainHeader] != "" {
		t.Errorf("with properties: key %q, headers %v", got[1].Key, h)
	}
	if got[2].Key != prefix+"/b" || got[2].Headers != nil || string(got[2].Body) != "plain" {
		t.Errorf("plain: key %q, headers %v, body %q", got[2].Key, got[2].Headers, got[2].Body)
	}
	if got[3].Key != prefix+"/sentinel" {
		t.Errorf("fourth message: key %q, body %q; want the sentinel", got[3].Key, got[3].Body)
	}
	if n := c.Len(); n != 4 {
		t.Errorf("%d messages, want 4", n)
	}
}

func TestConfigProblems(t *testing.T) {
	three, minus := 3, -1
	keep, clean := false, true
	expiry := func(d time.Duration) *mqtt.Expiry { e := mqtt.Expiry(d); return &e }
	for _, c := range []struct {
		cfg  mqtt.Config
		want string
	}{
		{mqtt.Config{Topics: []string{"a"}}, "url is required"},
		{mqtt.Config{URL: "tcp://h:1883", Topics: []string{"a"}}, "scheme must be mqtt or mqtts"},
		{mqtt.Config{URL: "mqtt://h:1883"}, "topics is required"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a/#/b"}}, `"#" must be the last level`},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a/b+"}}, "wildcards are whole levels"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{""}}, "empty"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, QoS: &three}, "qos 3"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, QoS: &minus}, "qos -1"},
		{mqtt.Config{URL: "mqtt://u:p@h:1883", Topics: []string{"a"}, Username: "v"}, "give the user once"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, Password: "p"}, "password without username"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, TLS: mqtt.TLS{ServerName: "x"}}, "use mqtts://"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, KeepAlive: 20 * time.Hour}, "keep_alive"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, KeepAlive: 500 * time.Millisecond}, "keep_alive"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, CleanStart: &keep}, "client_id is required with clean_start: false"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, SessionExpiry: expiry(time.Hour)}, "session_expiry 1h0m0s is set but clean_start is true"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, CleanStart: &clean, SessionExpiry: expiry(time.Hour)}, "clean_start is true"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, ClientID: "x", CleanStart: &keep, SessionExpiry: expiry(0)}, "session_expiry 0s: must be between 1s"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, ClientID: "x", CleanStart: &keep, SessionExpiry: expiry(1500 * time.Millisecond)}, "whole seconds"},
		{mqtt.Config{URL: "mqtt://h:1883", Topics: []string{"a"}, ClientID: "x", CleanStart: &keep, SessionExpiry: expiry(200 * 365 * 24 * time.Hour)}, "about 136 years"},
	} {
		if all := sourcetest.Problems(c.cfg.Validate()); !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
	}
	zero, two := 0, 2
	never := mqtt.ExpiryNever
	for _, good := range []mqtt.Config{
		{URL: "mqtts://u:p@h", Topics: []string{"sensors/+/temp", "#", "+"}, QoS: &zero},
		{URL: "mqtt://h", Topics: []string{"a"}, ClientID: "streamux-a", CleanStart: &keep},
		{URL: "mqtt://h", Topics: []string{"a"}, ClientID: "streamux-a", CleanStart: &keep, SessionExpiry: &never, QoS: &two},
		{URL: "mqtt://h", Topics: []string{"a"}, ClientID: "streamux-a", CleanStart: &keep, SessionExpiry: expiry(time.Second)},
	} {
		if errs := good.Validate(); len(errs) != 0 {
			t.Errorf("a good config %+v: %v", good, errs)
		}
	}
}

// session_expiry is seconds, a duration or never, and the defaults follow clean_start.
func TestSessionExpiryYAML(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want mqtt.Expiry
		err  string
	}{
		{"3600", mqtt.Expiry(time.Hour), ""},
		{"90m", mqtt.Expiry(90 * time.Minute), ""},
		{"never", mqtt.ExpiryNever, ""},
		{"4294967295", mqtt.ExpiryNever, ""},
		{"-1", 0, "seconds between 1 and 4294967294"},
		{"soon", 0, `"soon" is not seconds`},
		{"[1]", 0, "session_expiry is seconds"},
	} {
		var cfg mqtt.Config
		err := yaml.Unmarshal([]byte("session_expiry: "+c.yaml), &cfg)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one saying %q", c.yaml, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.yaml, err)
		case cfg.SessionExpiry == nil || *cfg.SessionExpiry != c.want:
			t.Errorf("%s: %v, want %v", c.yaml, cfg.SessionExpiry, c.want)
		}
	}
	var cfg mqtt.Config
	if err := yaml.Unmarshal([]byte("url: mqtt://h\ntopics: [a]\nclient_id: streamux-a\nclean_start: false\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	src, err := mqtt.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !src.AcknowledgesAfterEmit() {
		t.Error("clean_start false: AcknowledgesAfterEmit is false")
	}
	if src, _ := mqtt.New(mqtt.Config{URL: "mqtt://h", Topics: []string{"a"}}); src.AcknowledgesAfterEmit() {
		t.Error("a clean session: AcknowledgesAfterEmit is true")
	}
}

// paho acknowledges a message when it hands it over: what it handed over before the connection
// broke is passed on, not dropped with the connection.
func TestReceivedSurviveADrop(t *testing.T) {
	b := newBroker(t)
	prefix := sourcetest.UniqueName(t)
	proxy := sourcetest.NewProxy(t, b.addr)
	acks := newAckCounter(t, proxy.Addr())
	src, err := mqtt.New(mqtt.Config{URL: "mqtt://" + acks.Addr(), Topics: []string{prefix + "/#"}})
	if err != nil {
		t.Fatal(err)
	}
	c := sourcetest.NewCollector()
	c.SetLimit(0) // the router takes nothing for now
	r := sourcetest.Start(t, src, c.Emit)
	r.WaitState(t, 0, "up", wait)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.publish(ctx, prefix, sourcetest.Numbered(0, 100, false)...); err != nil {
		t.Fatal(err)
	}
	// They reach the source, which holds them: paho has handed over, and acknowledged, all 100.
	sourcetest.Eventually(t, wait, func() bool { return acks.n.Load() >= 100 }, "100 PUBACKs from the source (have %d)", func() int { return int(acks.n.Load()) })
	from := len(r.Changes())
	proxy.Kill()
	c.SetLimit(-1)
	r.WaitState(t, from, "reconnecting", wait)
	c.WaitLen(t, 100, wait)
}

// A stop while the broker has not answered CONNECT returns at once.
func TestStopWhileConnecting(t *testing.T) {
	sourcetest.StopWhileConnecting(t, func(addr string) source.Source {
		src, err := mqtt.New(mqtt.Config{URL: "mqtt://" + addr, Topics: []string{"x"}, ConnectTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return src
	})
}

// ackCounter forwards TCP connections to target and counts the PUBACK packets that the client
// sends through it: how many QoS 1 messages paho has handed over to the source, for it
// acknowledges each when the source's callback has taken it.
type ackCounter struct {
	ln     net.Listener
	target string
	n      atomic.Int64

	mu     sync.Mutex
	conns  []net.Conn
	closed bool           // the test is over: new connections are closed, not tracked
	wg     sync.WaitGroup // the accept loop and every forwarding goroutine
}

// newAckCounter starts an ackCounter on a free loopback port, and stops it, with every
// connection through it, when the test ends.
func newAckCounter(t *testing.T, target string) *ackCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &ackCounter{ln: ln, target: target}
	a.wg.Go(a.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		a.mu.Lock()
		a.closed = true
		for _, c := range a.conns {
			_ = c.Close()
		}
		a.mu.Unlock()
		a.wg.Wait()
	})
	return a
}

func (a *ackCounter) Addr() string { return a.ln.Addr().String() }

func (a *ackCounter) accept() {
	for {
		client, err := a.ln.Accept()
		if err != nil {
			return // closed by the test's cleanup
		}
		server, err := net.Dial("tcp", a.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		a.mu.Lock()
		if a.closed {
			_ = client.Close()
			_ = server.Close()
		} else {
			a.conns = append(a.conns, client, server)
		}
		a.mu.Unlock()
		// Each direction closes both connections when it ends, so that the other ends too.
		a.wg.Go(func() {
			_, _ = io.Copy(client, server)
			_ = client.Close()
			_ = server.Close()
		})
		a.wg.Go(func() {
			// The client's packets are read as they are forwarded.
			r := io.TeeReader(client, server)
			for {
				p, err := packets.ReadPacket(r)
				if err != nil {
					break
				}
				if p.Type == packets.PUBACK {
					a.n.Add(1)
				}
			}
			_ = client.Close()
			_ = server.Close()
		})
	}
}

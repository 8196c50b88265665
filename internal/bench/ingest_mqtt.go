package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/streamux/streamux/internal/source/mqtt"
	"github.com/streamux/streamux/internal/supervisor"
)

func init() { registerIngest("mqtt", (*runner).ingestMQTT) }

// mqttSessionExpiry is the persistent sessions' expiry in the mqtt ingest scenario.
const mqttSessionExpiry = time.Hour

// mqttPublishers is how many goroutines preload a session at once, each waiting for its
// messages' PUBACKs one after the other.
const mqttPublishers = 16

// ingestMQTT measures how fast QoS 1 messages that waited in a persistent MQTT session leave it
// through streamux (its mqtt source with clean_start false, acknowledging each message once the
// router took it, run by the supervisor into a router with no subscriptions, in this process)
// and through bare paho.golang clients with the same settings, on the same Mosquitto in the
// same run. The broker is one of the bench's own, started from the machine's mosquitto binary
// with no limit on a session's queue (max_queued_messages 0: Mosquitto's default, 1,000, is far
// below a round). Each of Rounds rounds, for each consumer in turn, empties the consumer's
// session, preloads Messages messages into it while nothing is connected, then times
// connecting, resuming the session and taking and acknowledging them all; alternating spreads
// any change of load on the machine over all of them alike. Preloading, rather than publishing
// while consuming, keeps the publisher off the CPU the consumers are timed on and feeds each
// as fast as the broker sends, so the consumer is what is measured.
func (r *runner) ingestMQTT(ctx context.Context, rep *Report) error {
	o := r.opt
	rep.columns = ingestColumns
	broker, err := startBenchMosquitto()
	if err != nil {
		return err
	}
	defer broker.stop()
	prefix := fmt.Sprintf("streamux-bench/%d/", os.Getpid())
	body := []byte(`{"ts":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `,"pad":"` + strings.Repeat("x", max(o.Size-40, 0)) + `"}`)

	// Each consumer has a session and a topic of its own.
	var id, topic string
	n := o.Messages
	load := func(_ int, name string) error {
		id, topic = fmt.Sprintf("streamux-bench-%d-%s", os.Getpid(), name), prefix+name
		return preloadMQTT(ctx, broker.addr, id, topic, body, n)
	}
	err = r.ingestRounds(rep, "", load, nil, []ingestConsumer{
		{kindStreamux, func() error { return consumeMQTTStreamux(ctx, broker.addr, id, topic, n) }},
		{"bare-ack", func() error { return consumeMQTTBare(ctx, broker.addr, id, topic, n, false) }},
		{"bare-manual-ack", func() error { return consumeMQTTBare(ctx, broker.addr, id, topic, n, true) }},
	})
	if err != nil {
		return err
	}
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("a Mosquitto of the bench's own (%s, max_queued_messages 0); each round preloads the messages (QoS 1, %d bytes, a user property) into the consumer's persistent session while it is away, then times it from connecting until it has taken them all", broker.version, o.Size),
		fmt.Sprintf("every consumer: MQTT 5, clean_start false, session expiry %v, receive maximum %d, a QoS 1 subscription", mqttSessionExpiry, mqtt.ReceiveMaximum),
		"bare-ack: paho.golang alone, which acknowledges each message when its callback (a counter) returns; bare-manual-ack: paho's EnableManualAcknowledgment with Ack in the callback, which sends the acknowledgements every 50 ms",
		"streamux: the mqtt source (clean_start false: each message acknowledged once the router took it) run by the supervisor into a router with no subscription",
		"CPU µs/msg is this process's CPU (the broker's is not counted) while consuming")
	return nil
}

// benchMosquitto is the mqtt ingest scenario's broker: the machine's mosquitto binary run with a
// configuration of the bench's, on a free loopback port.
type benchMosquitto struct {
	addr    string
	version string
	dir     string
	cmd     *exec.Cmd
	exited  chan error // the process's end, from the goroutine that waits for it
}

// startBenchMosquitto starts the broker and waits until it accepts connections.
func startBenchMosquitto() (*benchMosquitto, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		return nil, fmt.Errorf("mqtt: the scenario starts a Mosquitto of its own, and mosquitto is not on PATH: %w", err)
	}
	version := "mosquitto"
	if out, err := exec.Command(bin, "-h").CombinedOutput(); err == nil || len(out) > 0 {
		if first, _, _ := strings.Cut(string(out), "\n"); strings.HasPrefix(first, "mosquitto version") {
			version = strings.TrimSpace(first)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	dir, err := os.MkdirTemp("", "streamux-bench-mosquitto-")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	cfg := "listener " + port + " 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nlog_dest none\n"
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	m := &benchMosquitto{addr: addr, version: version, dir: dir, cmd: exec.Command(bin, "-c", conf), exited: make(chan error, 1)}
	if err := m.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("mqtt: start mosquitto: %w", err)
	}
	go func() { m.exited <- m.cmd.Wait() }() // waited for by stop
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return m, nil
		}
		select {
		case werr := <-m.exited:
			m.exited <- werr
			m.stop()
			return nil, fmt.Errorf("mqtt: mosquitto exited at start: %v", werr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.stop()
			return nil, fmt.Errorf("mqtt: mosquitto does not accept connections at %s: %w", addr, err)
		}
	}
}

// stop ends the broker, waits for it and removes its directory.
func (m *benchMosquitto) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	_ = os.RemoveAll(m.dir)
}

// mqttConnect connects a paho client to addr as id, with the scenario's settings: clean start
// or not, the session expiry, the source's receive maximum.
func mqttConnect(ctx context.Context, addr, id string, clean bool, cfg paho.ClientConfig) (*paho.Client, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	cfg.Conn = conn
	cfg.ClientID = id
	c := paho.NewClient(cfg)
	expiry := uint32(mqttSessionExpiry / time.Second)
	recvMax := uint16(mqtt.ReceiveMaximum)
	if _, err := c.Connect(ctx, &paho.Connect{
		ClientID: id, KeepAlive: 30, CleanStart: clean,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry, ReceiveMaximum: &recvMax},
	}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("mqtt: connect %s: %w", id, err)
	}
	return c, nil
}

// mqttDisconnect ends c's connection and waits for its goroutines.
func mqttDisconnect(c *paho.Client) {
	_ = c.Disconnect(&paho.Disconnect{})
	<-c.Done()
}

// preloadMQTT gives client id an empty persistent session subscribed to topic (what an earlier
// consumer left in it is dropped with the old session), publishes n copies of body to topic
// with QoS 1 while id is away, and returns once the broker has acknowledged them all: Mosquitto
// queues a QoS 1 message for its subscribers before it acknowledges it.
func preloadMQTT(ctx context.Context, addr, id, topic string, body []byte, n int) error {
	sess, err := mqttConnect(ctx, addr, id, true, paho.ClientConfig{})
	if err != nil {
		return err
	}
	_, err = sess.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
	mqttDisconnect(sess)
	if err != nil {
		return fmt.Errorf("mqtt: subscribe: %w", err)
	}
	pub, err := mqttConnect(ctx, addr, id+"-publisher", true, paho.ClientConfig{})
	if err != nil {
		return err
	}
	defer mqttDisconnect(pub)
	var next atomic.Int64
	errs := make([]error, mqttPublishers)
	var wg sync.WaitGroup
	for g := range mqttPublishers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				p := &paho.Publish{Topic: topic, QoS: 1, Payload: body, Properties: &paho.PublishProperties{ContentType: "application/json"}}
				p.Properties.User.Add("region", "eu")
				if _, err := pub.Publish(ctx, p); err != nil {
					errs[g] = fmt.Errorf("mqtt: publish: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// consumeMQTTStreamux runs streamux's mqtt source on client id's persistent session under a
// supervisor, as the server does, until its router has received n messages.
func consumeMQTTStreamux(ctx context.Context, addr, id, topic string, n int) error {
	keep, expiry := false, mqtt.Expiry(mqttSessionExpiry)
	src, err := mqtt.New(mqtt.Config{URL: "mqtt://" + addr, Topics: []string{topic}, ClientID: id, CleanStart: &keep, SessionExpiry: &expiry})
	if err != nil {
		return err
	}
	return superviseUntil(ctx, "mqtt", src, n, supervisor.Options{}, nil)
}

// consumeMQTTBare is what a program with paho.golang alone does: resume client id's session
// and count its messages, acknowledged by paho when the callback returns, or (manual) with
// paho's manual acknowledgement.
func consumeMQTTBare(ctx context.Context, addr, id, topic string, n int, manual bool) error {
	var got atomic.Int64
	all := make(chan struct{})
	cfg := paho.ClientConfig{EnableManualAcknowledgment: manual}
	cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
		if manual {
			_ = pr.Client.Ack(pr.Packet)
		}
		if got.Add(1) == int64(n) {
			close(all)
		}
		return true, nil
	}}
	c, err := mqttConnect(ctx, addr, id, false, cfg)
	if err != nil {
		return err
	}
	defer mqttDisconnect(c)
	// The session has the subscription; subscribing again, as the source does, changes nothing.
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1, RetainHandling: 1}}}); err != nil {
		return fmt.Errorf("mqtt: subscribe: %w", err)
	}
	timeout := time.NewTimer(5 * time.Minute)
	defer timeout.Stop()
	select {
	case <-all:
		return nil
	case <-timeout.C:
		return fmt.Errorf("consumed %d of %d", got.Load(), n)
	case <-ctx.Done():
		return ctx.Err()
	case <-c.Done():
		return fmt.Errorf("consumed %d of %d: the connection ended", got.Load(), n)
	}
}

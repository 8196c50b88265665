package mqtt_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/mqtt"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// publishQoS sends msgs like publish, with QoS qos.
func (b *broker) publishQoS(ctx context.Context, qos byte, prefix string, msgs ...sourcetest.Msg) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range msgs {
		if _, err := b.c.Publish(ctx, &paho.Publish{Topic: prefix + "/" + m.Key, QoS: qos, Payload: m.Body}); err != nil {
			return err
		}
	}
	return nil
}

// dropSession ends the session the broker at addr keeps for client id: a connection that starts
// clean and asks for none to be kept. A test's cleanup, on the machine's broker.
func dropSession(t testing.TB, addr, id string) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Logf("drop the session %s: %v", id, err)
		return
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
		_ = conn.Close()
		t.Logf("drop the session %s: %v", id, err)
		return
	}
	_ = c.Disconnect(&paho.Disconnect{})
	<-c.Done()
}

// numbers are the sourcetest numbers of msgs, in order.
func numbers(msgs []*stream.Message) []int {
	out := make([]int, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, sourcetest.Number(m))
	}
	return out
}

// seq is first, first+1, … up to and excluding end.
func seq(first, end int) []int {
	out := make([]int, 0, end-first)
	for i := first; i < end; i++ {
		out = append(out, i)
	}
	return out
}

func counters(src source.Source) mqtt.Counters {
	return src.(source.Counted).Counters().(mqtt.Counters)
}

// On the machine's Mosquitto: a source with a persistent session is stopped, messages are
// published while none runs, and the next source with its client id gets them, each once and
// in order, at QoS 1 and 2; the retained message that came with the subscription does not come
// again with the session.
func TestPersistentSession(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("QoS%d", qos), func(t *testing.T) {
			b := newBroker(t)
			prefix := sourcetest.UniqueName(t)
			t.Cleanup(func() { dropSession(t, b.addr, prefix) })
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if _, err := b.c.Publish(ctx, &paho.Publish{Topic: prefix + "/kept", QoS: 1, Retain: true, Payload: []byte("last value")}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_, _ = b.c.Publish(context.Background(), &paho.Publish{Topic: prefix + "/kept", QoS: 1, Retain: true})
			})
			q := int(qos)
			cfg := persistent(b.addr, prefix, prefix+"/#")
			cfg.QoS = &q
			newSource := func() source.Source {
				src, err := mqtt.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				if !src.AcknowledgesAfterEmit() {
					t.Error("AcknowledgesAfterEmit is false with clean_start false")
				}
				return src
			}

			first := sourcetest.NewCollector()
			r := sourcetest.Start(t, newSource(), first.Emit)
			r.WaitState(t, 0, source.Up, wait)
			first.WaitLen(t, 1, wait) // the retained message
			if err := b.publishQoS(ctx, qos, prefix, sourcetest.Numbered(0, 100, false)...); err != nil {
				t.Fatal(err)
			}
			first.WaitLen(t, 101, wait)
			r.Stop()
			if err := b.publishQoS(ctx, qos, prefix, sourcetest.Numbered(100, 100, false)...); err != nil {
				t.Fatal(err)
			}

			second := sourcetest.NewCollector()
			src := newSource()
			r2 := sourcetest.Start(t, src, second.Emit)
			r2.WaitState(t, 0, source.Up, wait)
			second.WaitLen(t, 100, wait)
			// A sentinel: a retained message sent again would have come before it.
			if err := b.publishQoS(ctx, qos, prefix, sourcetest.Numbered(1000, 1, false)...); err != nil {
				t.Fatal(err)
			}
			second.WaitLen(t, 101, wait)
			r2.Stop()

			if got, want := numbers(first.Messages()[1:]), seq(0, 100); !slices.Equal(got, want) {
				t.Errorf("first source: %v, want 0…99", got)
			}
			if got, want := numbers(second.Messages()), append(seq(100, 200), 1000); !slices.Equal(got, want) {
				t.Errorf("second source: %v, want 100…199 and the sentinel 1000", got)
			}
			if m := first.Messages()[0]; m.Headers[mqtt.RetainHeader] != "true" {
				t.Errorf("first message %q, headers %v: want the retained one", m.Body, m.Headers)
			}
			// Redelivered is not checked: Mosquitto may set DUP on a message that it queued
			// while the session was away, and had not sent.
			if c := counters(src); c.SessionsResumed != 1 || c.SessionsLost != 0 || c.Messages != 101 {
				t.Errorf("second source's counters %+v: want 101 messages, 1 session resumed, none lost", c)
			}
		})
	}
}

// A broker restart: stopped with SIGTERM, Mosquitto saves its sessions (persistence true) and
// sends again, with DUP, what it had sent and not had acknowledged, and the rest of the queue;
// killed, it loses what it had not saved (every change since its last autosave, 30 min by
// default), and the source counts the session lost.
func TestBrokerRestart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			m := startMosquitto(t, mosquittoConf{persistence: true})
			b := dialBroker(t, m.addr)
			prefix := sourcetest.UniqueName(t)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			src, err := mqtt.New(persistent(m.addr, prefix, prefix+"/#"))
			if err != nil {
				t.Fatal(err)
			}
			c := sourcetest.NewCollector()
			r := sourcetest.Start(t, src, c.Emit)
			r.WaitState(t, 0, source.Up, wait)
			if err := b.publish(ctx, prefix, sourcetest.Numbered(0, 50, false)...); err != nil {
				t.Fatal(err)
			}
			c.WaitLen(t, 50, wait)
			// The router takes no more: the next 100 are in flight or queued on the broker.
			c.SetLimit(50)
			if err := b.publish(ctx, prefix, sourcetest.Numbered(50, 100, false)...); err != nil {
				t.Fatal(err)
			}
			from := len(r.Changes())
			m.stop(sig)
			m.start()
			c.SetLimit(-1)
			i := r.WaitState(t, from, source.Reconnecting, wait)
			r.WaitState(t, i, source.Up, wait)
			seen := func() map[int]int {
				n := map[int]int{}
				for _, i := range numbers(c.Messages()) {
					n[i]++
				}
				return n
			}

			if sig == syscall.SIGTERM {
				sourcetest.Eventually(t, wait, func() bool { return len(seen()) == 150 }, "all 150 messages (have %d)", func() int { return len(seen()) })
				cs := counters(src)
				t.Logf("%d deliveries of 150 messages; counters %+v", c.Len(), cs)
				if cs.SessionsResumed != 1 || cs.SessionsLost != 0 || cs.Redelivered == 0 {
					t.Errorf("counters %+v: want the session resumed once, none lost, some redelivered", cs)
				}
				if dup := c.Len() - 150; dup > mqtt.ReceiveMaximum {
					t.Errorf("%d messages twice, more than the %d in flight", dup, mqtt.ReceiveMaximum)
				}
				return
			}
			b2 := dialBroker(t, m.addr)
			if err := b2.publish(ctx, prefix, sourcetest.Numbered(1000, 1, false)...); err != nil {
				t.Fatal(err)
			}
			sourcetest.Eventually(t, wait, func() bool { return seen()[1000] == 1 }, "the message published after the restart")
			for i := range seen() {
				if i > 50 && i != 1000 {
					t.Errorf("message %d arrived: the killed broker had not saved it", i)
				}
			}
			if cs := counters(src); cs.SessionsLost != 1 || cs.SessionsResumed != 0 {
				t.Errorf("counters %+v: want the session lost once, none resumed", cs)
			}
		})
	}
}

// Mosquitto keeps at most max_queued_messages for a session while its client is away (1,000
// by default), the first that came: what comes after is dropped.
func TestQueueLimit(t *testing.T) {
	m := startMosquitto(t, mosquittoConf{maxQueued: 50})
	b := dialBroker(t, m.addr)
	prefix := sourcetest.UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	newSource := func() source.Source {
		src, err := mqtt.New(persistent(m.addr, prefix, prefix+"/#"))
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	r := sourcetest.Start(t, newSource(), sourcetest.NewCollector().Emit)
	r.WaitState(t, 0, source.Up, wait)
	r.Stop()
	if err := b.publish(ctx, prefix, sourcetest.Numbered(0, 80, false)...); err != nil {
		t.Fatal(err)
	}
	c := sourcetest.NewCollector()
	r2 := sourcetest.Start(t, newSource(), c.Emit)
	r2.WaitState(t, 0, source.Up, wait)
	if err := b.publish(ctx, prefix, sourcetest.Numbered(1000, 1, false)...); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 51, wait)
	r2.Stop()
	if got, want := numbers(c.Messages()), append(seq(0, 50), 1000); !slices.Equal(got, want) {
		t.Errorf("got %v, want 0…49 and the sentinel 1000", got)
	}
}

// A stop right after the router took a session's whole backlog leaves nothing to come again:
// every acknowledgement reaches the broker before the DISCONNECT, and the broker reads them
// (the source waits for it to close the connection: one closed at once, with the broker still
// sending, is reset, and the broker dropped thousands of acknowledgements unread so).
func TestStopAfterBacklog(t *testing.T) {
	m := startMosquitto(t, mosquittoConf{})
	b := dialBroker(t, m.addr)
	prefix := sourcetest.UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	newSource := func() source.Source {
		src, err := mqtt.New(persistent(m.addr, prefix, prefix+"/#"))
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	r := sourcetest.Start(t, newSource(), sourcetest.NewCollector().Emit)
	r.WaitState(t, 0, source.Up, wait)
	r.Stop()
	const n = 20_000
	if err := b.publish(ctx, prefix, sourcetest.Numbered(0, n, false)...); err != nil {
		t.Fatal(err)
	}
	c := sourcetest.NewCollector()
	r2 := sourcetest.Start(t, newSource(), c.Emit)
	c.WaitLen(t, n, wait)
	r2.Stop()

	again := sourcetest.NewCollector()
	r3 := sourcetest.Start(t, newSource(), again.Emit)
	r3.WaitState(t, 0, source.Up, wait)
	if err := b.publish(ctx, prefix, sourcetest.Numbered(n, 1, false)...); err != nil {
		t.Fatal(err)
	}
	sourcetest.Eventually(t, wait, func() bool { return slices.Contains(numbers(again.Messages()), n) }, "the sentinel")
	r3.Stop()
	if got := numbers(again.Messages()); len(got) != 1 {
		t.Errorf("after a clean stop, %d messages came again (of %d)", len(got)-1, n)
	}
	if got := numbers(c.Messages()); !slices.Equal(got, seq(0, n)) {
		t.Errorf("the backlog: %d messages, not 0…%d in order", len(got), n-1)
	}
}

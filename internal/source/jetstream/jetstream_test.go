package jetstream_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/jetstream"
	"github.com/streamux/streamux/internal/source/nats"
	"github.com/streamux/streamux/internal/sourcetest"
)

const wait = 30 * time.Second

func newSource(t *testing.T, c jetstream.Config) *jetstream.Source {
	t.Helper()
	src, err := jetstream.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// The subject is the key; NATS headers are headers, several values of one name joined, a
// publisher's jetstream_* replaced; the stream, its sequence and the delivery count are
// headers; the stream and sequence are the message's UpstreamID.
func TestHeadersAndUpstreamID(t *testing.T) {
	s := newServer(t)
	name, subjects := s.stream(t, natsjs.MemoryStorage)
	c := sourcetest.NewCollector()
	src := newSource(t, jetstream.Config{Conn: nats.Conn{URL: s.url}, JetStream: nats.JetStream{Stream: name, Start: nats.StartAll}})
	sourcetest.Start(t, src, c.Emit).WaitState(t, 0, source.Up, wait)

	m := natsgo.NewMsg(subjects + ".a")
	m.Data = []byte(`{"n":1}`)
	m.Header.Add("Region", "eu")
	m.Header.Add("Tag", "x")
	m.Header.Add("Tag", "y")
	m.Header.Set(jetstream.SeqHeader, "spoofed")
	if _, err := s.js.PublishMsg(ctxFor(t), m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.js.Publish(ctxFor(t), subjects+".b", []byte("plain")); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 2, wait)
	got := c.Messages()
	h := got[0].Headers
	if got[0].Key != subjects+".a" || string(got[0].Body) != `{"n":1}` || h["Region"] != "eu" || h["Tag"] != "x, y" {
		t.Errorf("first message: key %q, headers %v, body %s", got[0].Key, h, got[0].Body)
	}
	for i, m := range got {
		want := map[string]string{jetstream.StreamHeader: name, jetstream.SeqHeader: strconv.Itoa(i + 1), jetstream.DeliveredHeader: "1"}
		for k, v := range want {
			if m.Headers[k] != v {
				t.Errorf("message %d: header %s = %q, want %q", i, k, m.Headers[k], v)
			}
		}
		if id := name + ":" + strconv.Itoa(i+1); m.UpstreamID != id {
			t.Errorf("message %d: UpstreamID %q, want %q", i, m.UpstreamID, id)
		}
		if m.Time.IsZero() || time.Since(m.Time) > time.Minute {
			t.Errorf("message %d: time %v is not the time of receipt", i, m.Time)
		}
	}
	if len(got[1].Headers) != 3 {
		t.Errorf("a message without headers has %v, want the source's three", got[1].Headers)
	}
	if !src.AcknowledgesAfterEmit() {
		t.Error("AcknowledgesAfterEmit is false")
	}
	var _ source.Acknowledging = src
	var _ source.Counted = src
	sourcetest.Eventually(t, wait, func() bool {
		st := src.Counters().(jetstream.Counters)
		return st.Received == 2 && st.Acked == 2 && st.Messages == 2 && st.Connects == 1 && st.Redelivered == 0
	}, "counters %+v", func() int { t.Logf("%+v", src.Counters()); return 0 })
}

// start says where a consumer that streamux makes begins: new, all, seq:N, time:T.
func TestStart(t *testing.T) {
	s := newServer(t)
	name, subjects := s.stream(t, natsjs.MemoryStorage)
	ctx := ctxFor(t)
	// Messages 0–4, a moment, then 5–9: message i is at stream sequence i+1.
	if err := s.publish(ctx, subjects, sourcetest.Numbered(0, 5, false)...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	if err := s.publish(ctx, subjects, sourcetest.Numbered(5, 5, false)...); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		start string
		first int // the first message the source gets; the rest follow
	}{
		{nats.StartAll, 0},
		{"seq:4", 3},
		{"time:" + mid.Format(time.RFC3339Nano), 5},
		{nats.StartNew, 10},
		{"", 10}, // the default
	} {
		t.Run(c.start, func(t *testing.T) {
			col := sourcetest.NewCollector()
			src := newSource(t, jetstream.Config{
				Conn:      nats.Conn{URL: s.url},
				JetStream: nats.JetStream{Stream: name, Consumer: "start-" + strconv.Itoa(i), Start: c.start},
			})
			sourcetest.Start(t, src, col.Emit).WaitState(t, 0, source.Up, wait)
			// A message published once the source is up comes to every one of them.
			if err := s.publish(ctx, subjects, sourcetest.Msg{Key: "marker", Body: []byte(`{"key":"marker","i":-1,"x":0}`)}); err != nil {
				t.Fatal(err)
			}
			sourcetest.Eventually(t, wait, func() bool {
				msgs := col.Messages()
				return len(msgs) > 0 && msgs[len(msgs)-1].Key == subjects+".marker"
			}, "the marker")
			var got []int
			for _, m := range col.Messages() {
				if n := sourcetest.Number(m); n >= 0 {
					got = append(got, n)
				}
			}
			want := []int{}
			for i := c.first; i < 10; i++ {
				want = append(want, i)
			}
			if len(got) != len(want) || (len(got) > 0 && got[0] != want[0]) {
				t.Errorf("start %q: got messages %v, want %v", c.start, got, want)
			}
		})
	}
}

// A stop while the router holds the source back gives the messages back: the next source gets
// them first, each marked delivered twice, and counts them redelivered.
func TestRedeliveriesVisible(t *testing.T) {
	s := newServer(t)
	name, subjects := s.stream(t, natsjs.MemoryStorage)
	cfg := jetstream.Config{Conn: nats.Conn{URL: s.url}, JetStream: nats.JetStream{Stream: name, Consumer: "redeliveries", Start: nats.StartAll}}
	if err := s.publish(ctxFor(t), subjects, sourcetest.Numbered(0, 10, false)...); err != nil {
		t.Fatal(err)
	}
	first := sourcetest.NewCollector()
	first.SetLimit(3)
	src1 := newSource(t, cfg)
	r := sourcetest.Start(t, src1, first.Emit)
	first.WaitLen(t, 3, wait)
	r.Stop()
	st1 := src1.Counters().(jetstream.Counters)
	if st1.Acked != 3 || st1.Nacked != 7 || st1.Messages != 3 {
		t.Errorf("first source's counters %+v: want 3 acknowledged and passed on, 7 given back", st1)
	}

	second := sourcetest.NewCollector()
	src2 := newSource(t, cfg)
	sourcetest.Start(t, src2, second.Emit)
	second.WaitLen(t, 7, wait)
	for i, m := range second.Messages() {
		if n := sourcetest.Number(m); n != 3+i || m.Headers[jetstream.DeliveredHeader] != "2" {
			t.Errorf("second source's message %d: number %d, %s %q; want %d, delivered twice", i, n, jetstream.DeliveredHeader, m.Headers[jetstream.DeliveredHeader], 3+i)
		}
	}
	if st := src2.Counters().(jetstream.Counters); st.Redelivered != 7 || st.Received != 7 {
		t.Errorf("second source's counters %+v: want 7 received, 7 of them redelivered", st)
	}
}

// A consumer that exists is read as it is (here its filter), with the settings given
// explicitly changed to the configuration's; one that cannot be read fails the source.
func TestExistingConsumer(t *testing.T) {
	s := newServer(t)
	name, subjects := s.stream(t, natsjs.MemoryStorage)
	ctx := ctxFor(t)
	if _, err := s.js.CreateConsumer(ctx, name, natsjs.ConsumerConfig{
		Durable: "eu-only", FilterSubject: subjects + ".eu.>", AckPolicy: natsjs.AckExplicitPolicy, AckWait: time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	c := sourcetest.NewCollector()
	src := newSource(t, jetstream.Config{Conn: nats.Conn{URL: s.url}, JetStream: nats.JetStream{Stream: name, Consumer: "eu-only", AckWait: 7 * time.Second}})
	sourcetest.Start(t, src, c.Emit).WaitState(t, 0, source.Up, wait)
	if err := s.publish(ctx, subjects, sourcetest.Numbered(0, 8, false)...); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 4, wait) // the keys rotate over eu.order.created, us.…, eu.order.paid, ap.…
	if err := s.publish(ctx, subjects, sourcetest.Msg{Key: "eu.last", Body: []byte(`{"key":"eu.last"}`)}); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 5, wait)
	for _, m := range c.Messages() {
		if !strings.HasPrefix(m.Key, subjects+".eu.") {
			t.Errorf("a message on %s passed the consumer's filter", m.Key)
		}
	}
	info, err := s.js.Consumer(ctx, name, "eu-only")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := info.CachedInfo().Config; cfg.AckWait != 7*time.Second || cfg.FilterSubject != subjects+".eu.>" {
		t.Errorf("the consumer after the source: ack_wait %v, filter %q; want 7s, unchanged", cfg.AckWait, cfg.FilterSubject)
	}

	// A consumer that acknowledges nothing, and a push consumer, cannot be read.
	if _, err := s.js.CreateConsumer(ctx, name, natsjs.ConsumerConfig{Durable: "no-acks", AckPolicy: natsjs.AckNonePolicy}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.nc.Subscribe("streamux-test-push-target."+name, func(*natsgo.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.js.CreateOrUpdatePushConsumer(ctx, name, natsjs.ConsumerConfig{
		Durable: "pushed", DeliverSubject: "streamux-test-push-target." + name, AckPolicy: natsjs.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	for consumer, want := range map[string]string{"no-acks": "acknowledges nothing", "pushed": "push consumer"} {
		r := sourcetest.Start(t, newSource(t, jetstream.Config{Conn: nats.Conn{URL: s.url}, JetStream: nats.JetStream{Stream: name, Consumer: consumer}}), sourcetest.NewCollector().Emit)
		i := r.WaitState(t, 0, source.Failed, wait)
		if err := r.Changes()[i].Err; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("consumer %s: failed with %v, want %q", consumer, err, want)
		}
	}
}

// A stream that does not exist fails the source (retried at the longest backoff), without
// making anything.
func TestMissingStream(t *testing.T) {
	s := newServer(t)
	r := sourcetest.Start(t, newSource(t, jetstream.Config{Conn: nats.Conn{URL: s.url}, JetStream: nats.JetStream{Stream: s.prefix + "missing"}}), sourcetest.NewCollector().Emit)
	i := r.WaitState(t, 0, source.Failed, wait)
	if err := r.Changes()[i].Err; err == nil || !strings.Contains(err.Error(), "stream not found") {
		t.Errorf("failed with %v, want stream not found", err)
	}
}

// A stop while the server has not answered the handshake returns at once.
func TestStopWhileConnecting(t *testing.T) {
	sourcetest.StopWhileConnecting(t, func(addr string) source.Source {
		return newSource(t, jetstream.Config{Conn: nats.Conn{URL: "nats://" + addr, ConnectTimeout: time.Minute}, JetStream: nats.JetStream{Stream: "S"}})
	})
}

// The default consumer's name is the same for the same stream and filter, different for
// another, and a name JetStream takes.
func TestDefaultConsumer(t *testing.T) {
	a, b := nats.DefaultConsumer("ORDERS", "orders.eu.>"), nats.DefaultConsumer("ORDERS", "orders.us.>")
	if a != nats.DefaultConsumer("ORDERS", "orders.eu.>") || a == b || a == nats.DefaultConsumer("ORDERS", "") {
		t.Errorf("names %q, %q", a, b)
	}
	if !strings.HasPrefix(a, "streamux_") || strings.ContainsAny(a, ".*> ") {
		t.Errorf("name %q", a)
	}
	src := newSource(t, jetstream.Config{Conn: nats.Conn{URL: "nats://h:4222"}, JetStream: nats.JetStream{Stream: "ORDERS"}, FilterSubject: "orders.eu.>"})
	if src.ConsumerName() != a {
		t.Errorf("ConsumerName %q, want %q", src.ConsumerName(), a)
	}
}

// The consumer streamux makes has the configuration's settings, inactive_threshold included.
func TestConsumerMade(t *testing.T) {
	s := newServer(t)
	name, subjects := s.stream(t, natsjs.MemoryStorage)
	src := newSource(t, jetstream.Config{
		Conn:          nats.Conn{URL: s.url},
		JetStream:     nats.JetStream{Stream: name, AckWait: 9 * time.Second, MaxAckPending: 64, InactiveThreshold: time.Hour},
		FilterSubject: subjects + ".eu.>",
	})
	sourcetest.Start(t, src, sourcetest.NewCollector().Emit).WaitState(t, 0, source.Up, wait)
	c, err := s.js.Consumer(ctxFor(t), name, src.ConsumerName())
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	if cfg.Durable != src.ConsumerName() || cfg.AckPolicy != natsjs.AckExplicitPolicy || cfg.AckWait != 9*time.Second ||
		cfg.MaxAckPending != 64 || cfg.InactiveThreshold != time.Hour || cfg.FilterSubject != subjects+".eu.>" ||
		cfg.DeliverPolicy != natsjs.DeliverNewPolicy {
		t.Errorf("the consumer made: %+v", cfg)
	}
}

package kafka_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sink/kafka"
	"github.com/streamux/streamux/internal/sink/sinktest"
	kafkasource "github.com/streamux/streamux/internal/source/kafka"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// cluster starts a Kafka (kfake, in process) with opts, stopped when the test ends.
func cluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// records reads n records of topic from the start, in the order of its one partition.
func records(t *testing.T, brokers []string, topic string, n int) []sinktest.Got {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []sinktest.Got
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records read: %v", len(got), n, fs.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			g := sinktest.Got{Key: string(r.Key), Body: r.Value, Headers: map[string]string{}}
			if g.Body == nil {
				g.Body = []byte{}
			}
			for _, h := range r.Headers {
				g.Headers[h.Key] = string(h.Value)
			}
			got = append(got, g)
		})
	}
	return got
}

func newSink(t *testing.T, c kafka.Config) *kafka.Sink {
	t.Helper()
	s, err := kafka.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Through the Runner, in batches, to topics made by a template: every record in order, with
// its key, headers and value byte for byte.
func TestDeliver(t *testing.T) {
	c := cluster(t, kfake.SeedTopics(1, "orders-eu", "orders-us", "orders-ap"))
	srv := sinktest.NewServer(t)
	r := sinktest.Run(t, srv, sink.Settings{BatchMax: 29, BatchWait: time.Millisecond},
		newSink(t, kafka.Config{Brokers: c.ListenAddrs(), Topic: "orders-{header.region}"}))
	msgs := sinktest.Messages(0, 300)
	srv.Publish(t, msgs...)
	r.WaitPosition(t, srv.Sent(), 30*time.Second)
	for _, region := range []string{"eu", "us", "ap"} {
		var want []*stream.Message
		for _, m := range msgs {
			if m.Headers["region"] == region {
				want = append(want, m)
			}
		}
		sinktest.Check(t, records(t, c.ListenAddrs(), "orders-"+region, len(want)), want, func(m *stream.Message) string { return m.Key }, false)
	}
	if in := r.Info(); in.Delivered != 300 || in.State != sink.StateUp {
		t.Errorf("info %+v", in)
	}
}

// A cluster that is away makes the sink retrying; once it is back (the same port, the same
// data), everything is delivered, at least once and in order.
func TestClusterDown(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir), kfake.SeedTopics(1, "orders")}
	first, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	brokers := []string{"127.0.0.1:" + strconv.Itoa(port)}
	srv := sinktest.NewServer(t)
	r := sinktest.Run(t, srv, sink.Settings{BatchMax: 10},
		newSink(t, kafka.Config{Brokers: brokers, Topic: "orders", Timeout: 5 * time.Second, ConnectTimeout: time.Second}))
	msgs := sinktest.Messages(0, 100)
	srv.Publish(t, msgs[:40]...)
	r.WaitPosition(t, 40, 30*time.Second)
	first.Close()
	srv.Publish(t, msgs[40:]...)
	r.WaitState(t, sink.StateRetrying, 30*time.Second)
	cluster(t, opts...)
	r.WaitPosition(t, 100, 60*time.Second)
	if in := r.Info(); in.State != sink.StateUp || in.Failed == 0 || in.LastError == "" {
		t.Errorf("info %+v", in)
	}
	sinktest.Check(t, records(t, brokers, "orders", 100), msgs, nil, true)
}

// What can never be produced fails the sink, saying why: a topic that does not exist, a record
// too large, a topic name its template makes invalid.
func TestPermanent(t *testing.T) {
	c := cluster(t, kfake.SeedTopics(1, "orders"))
	for _, tc := range []struct {
		name string
		cfg  kafka.Config
		msg  *stream.Message
		says string
	}{
		{"no topic", kafka.Config{Brokers: c.ListenAddrs(), Topic: "missing"}, &stream.Message{Body: []byte("1")}, "the topic does not exist"},
		{"too large", kafka.Config{Brokers: c.ListenAddrs(), Topic: "orders"}, &stream.Message{Body: make([]byte, 2<<20)}, "MESSAGE_TOO_LARGE"},
		{"bad topic", kafka.Config{Brokers: c.ListenAddrs(), Topic: "orders-{key}"}, &stream.Message{Key: "a/b", Body: []byte("1")},
			`message in:1: topic "orders-a/b" (from "orders-{key}"): it has "/"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := sinktest.NewServer(t)
			r := sinktest.Run(t, srv, sink.Settings{}, newSink(t, tc.cfg))
			srv.Publish(t, tc.msg)
			err := r.Failed(t, 60*time.Second)
			if !sink.IsPermanent(err) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%v, want a permanent error saying %q", err, tc.says)
			}
		})
	}
}

// Refused credentials: kfake closes the connection where Kafka answers
// SASL_AUTHENTICATION_FAILED (which fails the sink: TestClassify), so here the sink retries, and
// its last error says both that nothing was acknowledged and what the brokers answer.
func TestRefusedCredentials(t *testing.T) {
	c := cluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "secret"), kfake.SeedTopics(1, "orders"))
	srv := sinktest.NewServer(t)
	r := sinktest.Run(t, srv, sink.Settings{}, newSink(t, kafka.Config{Brokers: c.ListenAddrs(), Topic: "orders", Timeout: 2 * time.Second,
		SASL: kafkasource.SASL{Mechanism: "PLAIN", Username: "admin", Password: "wrong"}}))
	srv.Publish(t, &stream.Message{Body: []byte("1")})
	r.WaitState(t, sink.StateRetrying, 30*time.Second)
	if in := r.Info(); !strings.Contains(in.LastError, "no acknowledgement within 2s") || !strings.Contains(in.LastError, "the brokers:") {
		t.Errorf("last error %q, want the timeout and the brokers' answer", in.LastError)
	}
}

func TestConfigProblems(t *testing.T) {
	b := []string{"127.0.0.1:9092"}
	for _, c := range []struct {
		cfg  kafka.Config
		want string
	}{
		{kafka.Config{Topic: "t"}, "brokers is required"},
		{kafka.Config{Brokers: []string{"nohost"}, Topic: "t"}, `brokers: "nohost": want host:port`},
		{kafka.Config{Brokers: b}, "topic is required"},
		{kafka.Config{Brokers: b, Topic: "a/b"}, `topic "a/b": it has "/"`},
		{kafka.Config{Brokers: b, Topic: "t-{nope}"}, `topic "t-{nope}": unknown placeholder {nope}`},
		{kafka.Config{Brokers: b, Topic: "t", Key: "{key"}, `key "{key": a { without a }`},
		{kafka.Config{Brokers: b, Topic: "t", Timeout: -1}, "timeout"},
		{kafka.Config{Brokers: b, Topic: "t", SASL: kafkasource.SASL{Mechanism: "MD5"}}, `sasl.mechanism "MD5"`},
	} {
		all := sourcetest.Problems(c.cfg.Validate())
		if !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
	}
	if errs := (&kafka.Config{Brokers: b, Topic: "events-{source}", Key: "{header.customer}"}).Validate(); len(errs) > 0 {
		t.Errorf("a valid configuration: %v", errors.Join(errs...))
	}
}

package nats_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sink/nats"
	"github.com/streamux/streamux/internal/sink/sinktest"
	natssource "github.com/streamux/streamux/internal/source/nats"
	"github.com/streamux/streamux/internal/sourcetest"
	"github.com/streamux/streamux/internal/stream"
)

// subscriber collects what core NATS delivers on subject.
func subscriber(t *testing.T, url, subject string) func() []sinktest.Got {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	var got []sinktest.Got
	if _, err := nc.Subscribe(subject, func(m *natsgo.Msg) {
		mu.Lock()
		got = append(got, received(m))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() []sinktest.Got {
		mu.Lock()
		defer mu.Unlock()
		return append([]sinktest.Got(nil), got...)
	}
}

func received(m *natsgo.Msg) sinktest.Got {
	g := sinktest.Got{Key: m.Subject, Body: m.Data, Headers: map[string]string{}}
	for k, vs := range m.Header {
		g.Headers[k] = strings.Join(vs, ", ")
	}
	if g.Body == nil {
		g.Body = []byte{}
	}
	return g
}

// jetStream returns a client of the server and a stream of its own that binds prefix.>,
// deleted when the test ends.
func jetStream(t *testing.T, url, prefix string) (jetstream.JetStream, string) {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := sourcetest.StreamPrefix() + "SINK"
	t.Cleanup(func() { sourcetest.DeleteStreams(url, name) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	return js, name
}

// stored reads every message the stream holds.
func stored(t *testing.T, js jetstream.JetStream, name string) []sinktest.Got {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got []sinktest.Got
	for uint64(len(got)) < info.State.Msgs {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			got = append(got, received(&natsgo.Msg{Subject: m.Subject(), Data: m.Data(), Header: m.Headers()}))
		}
		if batch.Error() != nil {
			t.Fatal(batch.Error())
		}
	}
	return got
}

func newSink(t *testing.T, c nats.Config) *nats.Sink {
	t.Helper()
	s, err := nats.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Through the Runner, in batches, to a subject that no stream binds: every message reaches a
// subscriber in order, on the subject its template makes, with its headers and body byte for
// byte.
func TestDeliverCore(t *testing.T) {
	url := sourcetest.RequireJetStream(t)
	prefix := sourcetest.UniqueName(t)
	got := subscriber(t, url, prefix+".>")
	srv := sinktest.NewServer(t)
	r := sinktest.Run(t, srv, sink.Settings{BatchMax: 17, BatchWait: time.Millisecond},
		newSink(t, nats.Config{Conn: natssource.Conn{URL: url}, Subject: prefix + ".{header.region}.{key}"}))
	msgs := sinktest.Messages(0, 300)
	srv.Publish(t, msgs...)
	r.WaitPosition(t, srv.Sent(), 30*time.Second)
	sourcetest.Eventually(t, 10*time.Second, func() bool { return len(got()) >= len(msgs) }, "%d messages", len(msgs))
	sinktest.Check(t, got(), msgs, func(m *stream.Message) string { return prefix + "." + m.Headers["region"] + "." + m.Key }, false)
	if in := r.Info(); in.Delivered != 300 || in.State != sink.StateUp {
		t.Errorf("info %+v", in)
	}
}

// To a subject a stream binds, found out (jetstream unset) or said (jetstream: true), the
// stream's PubAck acknowledges: the stream holds every message, in order, intact.
func TestDeliverJetStream(t *testing.T) {
	url := sourcetest.RequireJetStream(t)
	for _, c := range []struct {
		name string
		js   *bool
	}{{"found", nil}, {"said", new(true)}} {
		t.Run(c.name, func(t *testing.T) {
			prefix := sourcetest.UniqueName(t)
			js, name := jetStream(t, url, prefix)
			srv := sinktest.NewServer(t)
			r := sinktest.Run(t, srv, sink.Settings{BatchMax: 50},
				newSink(t, nats.Config{Conn: natssource.Conn{URL: url}, Subject: prefix + ".{key}", JetStream: c.js}))
			msgs := sinktest.Messages(0, 250)
			srv.Publish(t, msgs...)
			r.WaitPosition(t, srv.Sent(), 30*time.Second)
			sinktest.Check(t, stored(t, js, name), msgs, func(m *stream.Message) string { return prefix + "." + m.Key }, false)
		})
	}
}

// A server that is away makes the sink retrying; once it is back, everything is delivered,
// at least once and in order, on a new connection.
func TestServerDown(t *testing.T) {
	url := sourcetest.RequireJetStream(t)
	prefix := sourcetest.UniqueName(t)
	js, name := jetStream(t, url, prefix)
	gate := sinktest.NewGate(t, strings.TrimPrefix(url, "nats://"))
	srv := sinktest.NewServer(t)
	r := sinktest.Run(t, srv, sink.Settings{BatchMax: 10},
		newSink(t, nats.Config{Conn: natssource.Conn{URL: "nats://" + gate.Addr(), ConnectTimeout: time.Second}, Subject: prefix + ".{key}", Timeout: time.Second}))
	msgs := sinktest.Messages(0, 100)
	srv.Publish(t, msgs[:40]...)
	r.WaitPosition(t, 40, 30*time.Second)
	gate.Close()
	srv.Publish(t, msgs[40:]...)
	r.WaitState(t, sink.StateRetrying, 30*time.Second)
	gate.Open()
	r.WaitPosition(t, 100, 30*time.Second)
	if in := r.Info(); in.State != sink.StateUp || in.Failed == 0 || in.LastError == "" {
		t.Errorf("info %+v", in)
	}
	sinktest.Check(t, stored(t, js, name), msgs, nil, true)
}

// What can never be published fails the sink, saying which message and why: a subject its
// template makes empty-tokened or wildcarded, a header name NATS cannot carry, a body over
// max_payload, a subject no stream binds with jetstream: true.
func TestPermanent(t *testing.T) {
	url := sourcetest.RequireJetStream(t)
	prefix := sourcetest.UniqueName(t)
	for _, c := range []struct {
		name string
		cfg  nats.Config
		msg  *stream.Message
		says string
	}{
		{"missing header", nats.Config{Subject: prefix + ".{header.region}.x"}, &stream.Message{Key: "k", Body: []byte("1")},
			`message in:1: subject "` + prefix + `..x" (from "` + prefix + `.{header.region}.x"): it has an empty token`},
		{"wildcard key", nats.Config{Subject: prefix + ".{key}"}, &stream.Message{Key: "eu.*", Body: []byte("1")}, "the wildcard '*'"},
		{"header name", nats.Config{Subject: prefix + ".x"}, &stream.Message{Headers: map[string]string{"a b": "1"}}, `header "a b"`},
		{"too large", nats.Config{Subject: prefix + ".x"}, &stream.Message{Body: make([]byte, 2<<20)}, "over the server's max_payload"},
		{"no stream", nats.Config{Subject: prefix + ".x", JetStream: new(true)}, &stream.Message{Body: []byte("1")}, "no JetStream stream binds it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.URL = url
			c.cfg.Timeout = 2 * time.Second
			srv := sinktest.NewServer(t)
			r := sinktest.Run(t, srv, sink.Settings{}, newSink(t, c.cfg))
			srv.Publish(t, c.msg)
			err := r.Failed(t, 30*time.Second)
			if !sink.IsPermanent(err) || !strings.Contains(err.Error(), c.says) {
				t.Errorf("%v, want a permanent error saying %q", err, c.says)
			}
			if in := r.Info(); in.State != sink.StateFailed || in.Position[sinktest.SourceName] != 0 {
				t.Errorf("info %+v", in)
			}
		})
	}
}

// inProcess starts a NATS server in the test's process with opts on a free loopback port,
// and returns its URL.
func inProcess(t *testing.T, opts server.Options) string {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, true
	s, err := server.NewServer(&opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start() // stopped by the cleanup, which waits for it
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	return s.ClientURL()
}

// Credentials the server refuses, and a subject the user may not publish to, fail the sink.
func TestRefused(t *testing.T) {
	url := inProcess(t, server.Options{Users: []*server.User{{Username: "u", Password: "p",
		Permissions: &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"allowed.>"}}}}}})
	hostPort := strings.TrimPrefix(url, "nats://")
	ev := stream.NewMessage(&stream.Message{Source: "in", Seq: 1, Body: []byte("1")})
	for _, c := range []struct {
		url, subject, says string
	}{
		{"nats://u:wrong@" + hostPort, "allowed.x", "authorization violation"},
		{"nats://u:p@" + hostPort, "denied.x", "permissions violation"},
	} {
		s := newSink(t, nats.Config{Conn: natssource.Conn{URL: c.url}, Subject: c.subject})
		err := s.Deliver(context.Background(), []*stream.Event{ev})
		if !sink.IsPermanent(err) || !strings.Contains(strings.ToLower(err.Error()), c.says) || strings.Contains(err.Error(), "wrong") {
			t.Errorf("%s: %v, want a permanent error saying %q, without the password", c.subject, err, c.says)
		}
		s.Close()
	}
	ok := newSink(t, nats.Config{Conn: natssource.Conn{URL: "nats://u:p@" + hostPort}, Subject: "allowed.x"})
	defer ok.Close()
	if err := ok.Deliver(context.Background(), []*stream.Event{ev}); err != nil {
		t.Errorf("allowed: %v", err)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, c := range []struct {
		cfg  nats.Config
		want string
	}{
		{nats.Config{Subject: "x"}, "url is required"},
		{nats.Config{Conn: natssource.Conn{URL: "http://x"}, Subject: "x"}, "url: the scheme must be nats or tls"},
		{nats.Config{Conn: natssource.Conn{URL: "nats://x"}}, "subject is required"},
		{nats.Config{Conn: natssource.Conn{URL: "nats://x"}, Subject: "orders.{body}"}, `subject "orders.{body}": unknown placeholder {body}`},
		{nats.Config{Conn: natssource.Conn{URL: "nats://x"}, Subject: "orders.{key"}, "subject \"orders.{key\": a { without a }"},
		{nats.Config{Conn: natssource.Conn{URL: "nats://x"}, Subject: "orders..{key}"}, "empty token"},
		{nats.Config{Conn: natssource.Conn{URL: "nats://x"}, Subject: "orders.>"}, "wildcard"},
		{nats.Config{Conn: natssource.Conn{URL: "nats://x"}, Subject: "orders {key}"}, "whitespace"},
		{nats.Config{Conn: natssource.Conn{URL: "nats://x"}, Subject: "x", Timeout: -1}, "timeout"},
	} {
		all := sourcetest.Problems(c.cfg.Validate())
		if !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
		if _, err := nats.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New: %v", err)
		}
	}
	if errs := (&nats.Config{Conn: natssource.Conn{URL: "nats://x"}, Subject: "a.{key}.{header.h}-{source}"}).Validate(); len(errs) > 0 {
		t.Errorf("a valid configuration: %v", errors.Join(errs...))
	}
}

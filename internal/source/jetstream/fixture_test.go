package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/jetstream"
	"github.com/streamux/streamux/internal/source/nats"
	"github.com/streamux/streamux/internal/sourcetest"
)

// server is a test's own connection to the JetStream server, for making streams and
// publishing into them.
type server struct {
	url, addr string
	nc        *natsgo.Conn
	js        natsjs.JetStream
	prefix    string // of the test's streams, deleted when it ends
}

// newServer connects to the server of sourcetest.RequireJetStream (skipping the test without
// one, failing it with CI=true).
func newServer(t testing.TB) *server {
	t.Helper()
	u := sourcetest.RequireJetStream(t)
	return connect(t, u)
}

// connect connects to the JetStream server at u; the streams the test makes there are deleted
// when it ends.
func connect(t testing.TB, u string) *server {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsgo.Connect(u, natsgo.Name("streamux-test"))
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	js, err := natsjs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{url: u, addr: pu.Host, nc: nc, js: js, prefix: sourcetest.StreamPrefix()}
	t.Cleanup(func() {
		sourcetest.DeleteStreams(u, s.prefix)
		nc.Close()
	})
	return s
}

// stream makes a stream of its own for the test, of the subjects under a unique prefix, which
// it returns with the stream's name.
func (s *server) stream(t testing.TB, storage natsjs.StorageType) (name, subjects string) {
	t.Helper()
	name = s.prefix + fmt.Sprint(time.Now().UnixNano())
	subjects = sourcetest.UniqueName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.js.CreateStream(ctx, natsjs.StreamConfig{Name: name, Subjects: []string{subjects + ".>"}, Storage: storage}); err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	return name, subjects
}

// publish sends msgs to prefix.KEY, each with its headers, one after the other, each once the
// stream has stored the one before (as a publisher that waits for each acknowledgement does,
// at a pace the source can follow on a loaded machine), and returns once the stream has stored
// them all.
func (s *server) publish(ctx context.Context, prefix string, msgs ...sourcetest.Msg) error {
	for _, m := range msgs {
		nm := natsgo.NewMsg(prefix + "." + m.Key)
		nm.Data = m.Body
		for k, v := range m.Headers {
			nm.Header.Set(k, v)
		}
		if _, err := s.js.PublishMsg(ctx, nm); err != nil {
			return err
		}
	}
	return nil
}

// fixture is the conformance suite's view of one stream of its own, read through a proxy
// that Kill cuts.
type fixture struct {
	*server
	stream, subjects string
	proxy            *sourcetest.Proxy
	cfg              jetstream.Config // without the URL
}

var _ sourcetest.Keyer = (*fixture)(nil)

// newFixture makes a fixture. Every fixture reads through a durable consumer and acknowledges
// after routing; a durable or at-least-once one names its consumer and gives it a short
// ack_wait, so that what a killed connection had taken comes again within the test's patience,
// and a max_ack_pending that bounds what it had in flight (Harness.InFlight).
func newFixture(t *testing.T, o sourcetest.Options) sourcetest.Fixture {
	s := newServer(t)
	name, subjects := s.stream(t, natsjs.MemoryStorage)
	f := &fixture{server: s, stream: name, subjects: subjects, proxy: sourcetest.NewProxy(t, s.addr)}
	f.cfg.Stream = name
	f.cfg.FilterSubject = subjects + ".>"
	if o.Durable || o.AtLeastOnce {
		f.cfg.Consumer, f.cfg.AckWait, f.cfg.MaxAckPending = "streamux-test", 5*time.Second, inFlight
	}
	return f
}

// inFlight is the max_ack_pending of a durable fixture's consumer: what the server lets a
// source have without acknowledging it.
const inFlight = 500

func (f *fixture) Source(t *testing.T) source.Source {
	c := f.cfg
	c.URL = "nats://" + f.proxy.Addr()
	src, err := jetstream.New(c)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return src
}

func (f *fixture) Publish(ctx context.Context, msgs ...sourcetest.Msg) error {
	return f.publish(ctx, f.subjects, msgs...)
}

// Kill cuts the source's connections at the proxy.
func (f *fixture) Kill(context.Context) error {
	f.proxy.Kill()
	return nil
}

// Depth is what the consumer has not delivered yet; 0 before it exists.
func (f *fixture) Depth(ctx context.Context) (int, error) {
	name := f.cfg.Consumer
	if name == "" {
		name = nats.DefaultConsumer(f.stream, f.cfg.FilterSubject)
	}
	c, err := f.js.Consumer(ctx, f.stream, name)
	if errors.Is(err, natsjs.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(info.NumPending), nil
}

// Key is the key the source gives a message published with key k: its whole subject.
func (f *fixture) Key(k string) string { return f.subjects + "." + k }

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness{New: newFixture, Headers: true, AtLeastOnce: true, Durable: true, InFlight: inFlight})
}

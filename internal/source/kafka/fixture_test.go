package kafka_test

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/kafka"
	"github.com/streamux/streamux/internal/sourcetest"
)

// The machine has no Kafka server: each test runs franz-go's kfake, a Kafka protocol server in
// process, with one broker and the topic "events" of one partition.
const topic = "events"

// cluster is a test's own Kafka and a producer to it.
type cluster struct {
	c        *kfake.Cluster
	producer *kgo.Client
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return &cluster{c: c, producer: p}
}

// produce sends msgs, in order, each with its key and headers, and returns once Kafka has them.
func (k *cluster) produce(ctx context.Context, msgs ...sourcetest.Msg) error {
	rs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		r := &kgo.Record{Key: []byte(m.Key), Value: m.Body}
		for name, v := range m.Headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: name, Value: []byte(v)})
		}
		rs[i] = r
	}
	return k.producer.ProduceSync(ctx, rs...).FirstErr()
}

func (k *cluster) source(t testing.TB, c kafka.Config) *kafka.Source {
	t.Helper()
	c.Brokers, c.Topics = k.c.ListenAddrs(), []string{topic}
	src, err := kafka.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

type fixture struct {
	*cluster
	cfg kafka.Config
}

// newFixture makes a fixture; a durable one's sources are members of one consumer group,
// which commits what each took, so the next resumes after it.
func newFixture(t *testing.T, o sourcetest.Options) sourcetest.Fixture {
	f := fixture{cluster: newCluster(t)}
	if o.Durable {
		f.cfg = kafka.Config{Group: sourcetest.UniqueName(t), Start: kafka.StartEarliest}
	}
	return f
}

func (f fixture) Source(t *testing.T) source.Source { return f.source(t, f.cfg) }

func (f fixture) Publish(ctx context.Context, msgs ...sourcetest.Msg) error {
	return f.produce(ctx, msgs...)
}

// Kill: franz-go reconnects to a broker by itself, without the source going reconnecting.
func (f fixture) Kill(context.Context) error { return errors.ErrUnsupported }

// Depth: without a group nothing is committed to measure a lag against.
func (f fixture) Depth(context.Context) (int, error) { return 0, errors.ErrUnsupported }

func TestConformance(t *testing.T) {
	// Durable: a group. Kill is not supported (franz-go reconnects by itself), so of the
	// durable cases only the clean stop runs; InFlight is what one fetch may hold.
	sourcetest.Run(t, sourcetest.Harness{New: newFixture, Headers: true, Durable: true, InFlight: 10000})
}

package kafka_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/source/kafka"
	"github.com/streamux/streamux/internal/sourcetest"
)

const wait = 30 * time.Second

// The record's key, value and headers, and where it came from.
func TestRecordToMessage(t *testing.T) {
	k := newCluster(t)
	c := sourcetest.NewCollector()
	r := sourcetest.Start(t, k.source(t, kafka.Config{Start: kafka.StartEarliest}), c.Emit)
	r.WaitState(t, 0, "up", wait)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := k.produce(ctx, sourcetest.Msg{Key: "order-7", Headers: map[string]string{"region": "eu"}, Body: []byte(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	c.WaitLen(t, 1, wait)
	m := c.Messages()[0]
	h := m.Headers
	if m.Key != "order-7" || string(m.Body) != `{"n":1}` || h["region"] != "eu" || h[kafka.TopicHeader] != topic ||
		h[kafka.PartitionHeader] != "0" || h[kafka.OffsetHeader] != "0" || !strings.HasSuffix(h[kafka.TimestampHeader], "Z") {
		t.Errorf("key %q, body %s, headers %v", m.Key, m.Body, h)
	}
}

// In a group, the source commits what its router took: a new source of the same group resumes
// after it, not at the end nor at the start.
func TestGroupResumes(t *testing.T) {
	k := newCluster(t)
	cfg := kafka.Config{Group: "streamux-test", Start: kafka.StartEarliest}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := k.produce(ctx, sourcetest.Numbered(0, 5, false)...); err != nil {
		t.Fatal(err)
	}
	first := sourcetest.NewCollector()
	r := sourcetest.Start(t, k.source(t, cfg), first.Emit)
	first.WaitLen(t, 5, wait)
	r.Stop() // leaves the group, committing what was taken

	// 5 to 9, then 10 as a sentinel: the topic has one partition, read in order, so whatever
	// the second member would get besides 5 to 9 comes before the sentinel.
	if err := k.produce(ctx, sourcetest.Numbered(5, 6, false)...); err != nil {
		t.Fatal(err)
	}
	second := sourcetest.NewCollector()
	sourcetest.Start(t, k.source(t, cfg), second.Emit)
	sourcetest.Eventually(t, wait, func() bool {
		msgs := second.Messages()
		return len(msgs) > 0 && sourcetest.Number(msgs[len(msgs)-1]) == 10
	}, "the sentinel (%d messages so far)", second.Len)
	var got []int
	for _, m := range second.Messages() {
		got = append(got, sourcetest.Number(m))
	}
	if !slices.Equal(got, []int{5, 6, 7, 8, 9, 10}) {
		t.Errorf("the second member got %v, want 5 to 9 and the sentinel 10", got)
	}
}

// No broker answers: the source says so and the runner retries.
func TestNoBroker(t *testing.T) {
	src, err := kafka.New(kafka.Config{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"x"}, ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := sourcetest.Start(t, src, sourcetest.NewCollector().Emit)
	i := r.WaitState(t, 0, "reconnecting", wait)
	if err := r.Changes()[i].Err; err == nil || !strings.Contains(err.Error(), "no broker answered") {
		t.Errorf("reconnecting because of %v", err)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, c := range []struct {
		cfg  kafka.Config
		want string
	}{
		{kafka.Config{Topics: []string{"a"}}, "brokers is required"},
		{kafka.Config{Brokers: []string{"h"}, Topics: []string{"a"}}, "want host:port"},
		{kafka.Config{Brokers: []string{"h:9092"}}, "topics is required"},
		{kafka.Config{Brokers: []string{"h:9092"}, Topics: []string{"a b"}}, "is not a topic name"},
		{kafka.Config{Brokers: []string{"h:9092"}, Topics: []string{"a"}, Start: "now"}, "start"},
		{kafka.Config{Brokers: []string{"h:9092"}, Topics: []string{"a"}, SASL: kafka.SASL{Mechanism: "GSSAPI"}}, "sasl.mechanism"},
		{kafka.Config{Brokers: []string{"h:9092"}, Topics: []string{"a"}, SASL: kafka.SASL{Mechanism: "PLAIN"}}, "sasl.username is required"},
		{kafka.Config{Brokers: []string{"h:9092"}, Topics: []string{"a"}, SASL: kafka.SASL{Username: "u"}}, "without a mechanism"},
	} {
		if all := sourcetest.Problems(c.cfg.Validate()); !strings.Contains(all, c.want) {
			t.Errorf("%+v: problems %q, want one saying %q", c.cfg, all, c.want)
		}
	}
	good := kafka.Config{Brokers: []string{"a:9092", "[::1]:9093"}, Topics: []string{"orders.eu", "logs_1-x"}, SASL: kafka.SASL{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}}
	if errs := good.Validate(); len(errs) != 0 {
		t.Errorf("a good config: %v", errs)
	}
}

// SASL: the right credentials read; with a wrong password the source never comes up. (kfake
// closes the connection where a real broker answers SASL_AUTHENTICATION_FAILED, which the source
// takes as permanent: here it can only be seen retrying.)
func TestSASLPlain(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic), kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic),
		kgo.SASL(plain.Auth{User: "admin", Pass: "s3cret"}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	newSource := func(pass string) *kafka.Source {
		src, err := kafka.New(kafka.Config{Brokers: c.ListenAddrs(), Topics: []string{topic}, Start: kafka.StartEarliest,
			SASL: kafka.SASL{Mechanism: kafka.SASLPlain, Username: "admin", Password: pass}})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := p.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	good := sourcetest.NewCollector()
	sourcetest.Start(t, newSource("s3cret"), good.Emit)
	good.WaitLen(t, 1, wait)

	r := sourcetest.Start(t, newSource("wrong"), sourcetest.NewCollector().Emit)
	r.WaitState(t, 0, "reconnecting", wait)
	for _, ch := range r.Changes() {
		if ch.State == "up" {
			t.Fatal("up with a wrong password")
		}
	}
}

// A stop while the broker has not answered returns at once.
func TestStopWhileConnecting(t *testing.T) {
	sourcetest.StopWhileConnecting(t, func(addr string) source.Source {
		src, err := kafka.New(kafka.Config{Brokers: []string{addr}, Topics: []string{"x"}, ConnectTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return src
	})
}

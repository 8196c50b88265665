// Package kafka is the sink of type kafka: each matching message produced to a Kafka topic
// made from it by a template (topic: "events-{source}"), with a record key made the same way
// (key: "{key}", the message's own, by default: records of one key go to one partition, in
// order), its body as the record's value and its headers as the record's headers.
//
// What acknowledges a batch: the produce acknowledgement of every record with acks=all (every
// in-sync replica wrote it), from an idempotent producer, which the brokers de-duplicate
// within a session when franz-go sends a batch again.
//
// One client, made with the sink, keeps its connections to the brokers across batches and
// makes them again when they are lost (franz-go). A broker that is away, or a batch not
// acknowledged within the timeout, is tried again; refused credentials or authorizations, a
// topic that does not exist (unless auto_create), a record over the broker's message.max.bytes
// (or franz-go's 1 MB batch bound), and a rendered topic that is not a topic name fail the
// sink.
//
// Concurrency: a Sink belongs to its sink's runner goroutine; Deliver is not called twice at
// once, and Close not during a Deliver.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sink/template"
	kafkasource "github.com/streamux/streamux/internal/source/kafka"
	"github.com/streamux/streamux/internal/stream"
)

// closeWait bounds how long a batch abandoned at its timeout waits for the closed client to
// fail its records.
const closeWait = 10 * time.Second

// Defaults.
const (
	DefaultKey     = "{key}"
	DefaultTimeout = 30 * time.Second
)

// Config is a kafka sink's own fields. Brokers and Topic are required.
type Config struct {
	// Brokers are the seed brokers, host:port, as for the kafka source.
	Brokers []string `yaml:"brokers"`
	// Topic is the template of each record's topic (package template): "orders",
	// "events-{source}".
	Topic string `yaml:"topic"`
	// Key is the template of each record's key. Defaults to "{key}"; a key that renders
	// empty is no key (the record goes to any partition).
	Key string `yaml:"key"`
	// AutoCreate lets the brokers create a topic that does not exist (if they allow it,
	// auto.create.topics.enable). Without it, a topic that does not exist fails the sink.
	AutoCreate bool `yaml:"auto_create"`
	// Timeout bounds waiting for a batch's acknowledgement, retries of franz-go's own
	// included; past it the client is made again and the batch tried again. Defaults to 30s.
	Timeout time.Duration `yaml:"timeout"`
	// ClientID names the client to the brokers. Defaults to "streamux".
	ClientID string `yaml:"client_id"`
	// ConnectTimeout bounds each dial. Defaults to 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// SASL authenticates to the brokers, as for the kafka source.
	SASL kafkasource.SASL `yaml:"sasl"`
	// TLSEnabled dials the brokers with TLS; setting any tls field implies it.
	TLSEnabled bool `yaml:"tls_enabled"`
	// TLS is the client side of TLS.
	TLS kafkasource.TLS `yaml:"tls"`
}

func (c Config) withDefaults() Config {
	if c.Key == "" {
		c.Key = DefaultKey
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ClientID == "" {
		c.ClientID = kafkasource.DefaultClientID
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = kafkasource.DefaultConnectTimeout
	}
	if !c.TLS.IsZero() {
		c.TLSEnabled = true
	}
	return c
}

// conn is the source's configuration of c's connection settings, whose checks the sink shares.
func (c Config) conn() kafkasource.Config {
	return kafkasource.Config{Brokers: c.Brokers, Topics: []string{"-"}, ClientID: c.ClientID, ConnectTimeout: c.ConnectTimeout,
		SASL: c.SASL, TLSEnabled: c.TLSEnabled, TLS: c.TLS}
}

// Validate returns every problem with c, each naming its field.
func (c *Config) Validate() []error {
	d := c.withDefaults()
	cc := d.conn()
	errs := cc.Validate()
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if d.Topic == "" {
		bad(`topic is required: a topic, or a template such as "events-{source}"`)
	} else if t, err := template.Parse(d.Topic); err != nil {
		bad("topic %q: %v", d.Topic, err)
	} else if err := checkTopic(t.Sample()); err != nil {
		bad("topic %q: %v", d.Topic, err)
	}
	if _, err := template.Parse(d.Key); err != nil {
		bad("key %q: %v", d.Key, err)
	}
	if d.Timeout < 0 {
		bad("timeout %v: must not be negative", d.Timeout)
	}
	return errs
}

// checkTopic returns why s is not a topic name, nil if it is one.
func checkTopic(s string) error {
	switch {
	case s == "":
		return errors.New("it is empty")
	case s == "." || s == "..":
		return fmt.Errorf("%q is not a topic name", s)
	case len(s) > 249:
		return fmt.Errorf("it is %d bytes long, over 249", len(s))
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}); i >= 0 {
		return fmt.Errorf("it has %q: a topic name is letters, digits, '.', '_' and '-'", s[i:i+1])
	}
	return nil
}

// Sink produces batches of events to Kafka. Create it with New.
type Sink struct {
	cfg   Config // with defaults
	topic *template.Template
	key   *template.Template
	opts  []kgo.Opt // of cl, to make it again
	cl    *kgo.Client
	recs  []*kgo.Record
}

func init() {
	sink.Register("kafka", func(c Config, _ sink.Env) (*Sink, error) { return New(c) })
}

// New returns a sink for c, which must be valid. Its client connects at the first delivery.
func New(c Config) (*Sink, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("kafka: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	opts, err := d.conn().ConnOpts(nil)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if d.AutoCreate {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return &Sink{cfg: d, topic: template.MustParse(d.Topic), key: template.MustParse(d.Key), opts: opts, cl: cl}, nil
}

// Deliver produces the messages of evs, in order, and returns once the brokers acknowledged
// them all. Gap events are not produced: the sink's gaps are counted and logged by streamux.
func (s *Sink) Deliver(ctx context.Context, evs []*stream.Event) error {
	s.recs = s.recs[:0]
	for _, ev := range evs {
		m := ev.Msg
		if m == nil {
			continue
		}
		topic := s.topic.Render(m)
		if err := checkTopic(topic); err != nil {
			return sink.Permanent(fmt.Errorf("kafka: message %s: topic %q (from %q): %w", m.ID(), topic, s.cfg.Topic, err))
		}
		r := &kgo.Record{Topic: topic, Value: m.Payload(), Timestamp: m.Time}
		if k := s.key.Render(m); k != "" {
			r.Key = []byte(k)
		}
		if len(m.Headers) > 0 {
			r.Headers = make([]kgo.RecordHeader, 0, len(m.Headers))
			for k, v := range m.Headers {
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
			}
		}
		s.recs = append(s.recs, r)
	}
	if len(s.recs) == 0 {
		return nil
	}
	err := s.produce(ctx)
	clear(s.recs)
	if err == nil {
		return nil
	}
	return classify(fmt.Errorf("kafka: %w", err))
}

// produce produces s.recs and waits for every acknowledgement, within the timeout. A request
// in flight to a broker that went silent is not ended by a context (franz-go waits for its
// answer), so past the timeout the client is closed, which fails what it holds, and made again.
func (s *Sink) produce(ctx context.Context) error {
	var (
		mu    sync.Mutex
		first error
		left  = len(s.recs)
		done  = make(chan struct{})
	)
	promise := func(_ *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil && first == nil {
			first = err
		}
		if left--; left == 0 {
			close(done)
		}
	}
	for _, r := range s.recs {
		s.cl.Produce(ctx, r, promise)
	}
	timer := time.NewTimer(s.cfg.Timeout)
	defer timer.Stop()
	var stopped error
	select {
	case <-done:
		return first
	case <-timer.C:
		stopped = fmt.Errorf("no acknowledgement within %v (timeout)", s.cfg.Timeout)
		// What the brokers answer now says more, such as refused credentials.
		pctx, cancel := context.WithTimeout(ctx, min(s.cfg.Timeout, 5*time.Second))
		if err := s.cl.Ping(pctx); err != nil {
			stopped = fmt.Errorf("%w; the brokers: %w", stopped, err)
		}
		cancel()
	case <-ctx.Done():
		stopped = ctx.Err()
	}
	s.cl.Close() // fails every record it holds, in flight or buffered
	// Their promises touch only this call's variables: a promise that came late would do
	// no harm, but the batch is not left to a client that is gone for longer than this.
	closed := time.NewTimer(closeWait)
	select {
	case <-done:
	case <-closed.C:
	}
	closed.Stop()
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		return errors.Join(stopped, err)
	}
	s.cl = cl
	return stopped
}

// classify marks the errors that trying again will not cure permanent: refused credentials or
// authorizations, a topic that does not exist, a record too large, a topic name Kafka refuses;
// every other error is tried again.
func classify(err error) error {
	for _, perm := range []error{
		kerr.SaslAuthenticationFailed, kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed,
		kerr.TransactionalIDAuthorizationFailed, kerr.UnknownTopicOrPartition, kerr.MessageTooLarge,
		kerr.RecordListTooLarge, kerr.InvalidTopicException, kerr.InvalidRecord,
	} {
		if errors.Is(err, perm) {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				err = fmt.Errorf("%w (the topic does not exist: create it, or set auto_create)", err)
			}
			return sink.Permanent(err)
		}
	}
	return sink.Retry(err, 0)
}

// Close closes the client: its connections, and records not acknowledged, which fail.
func (s *Sink) Close() error {
	s.cl.Close()
	return nil
}

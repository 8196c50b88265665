package kafka

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamux/streamux/internal/rawconn"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// The headers the source adds to a record's own.
const (
	TopicHeader     = "kafka_topic"
	PartitionHeader = "kafka_partition"
	OffsetHeader    = "kafka_offset"
	TimestampHeader = "kafka_timestamp"
)

// Source reads the topics of one Kafka cluster. It implements source.Source; Run is called by
// one source.Runner at a time, and Counters may be called from any goroutine.
type Source struct {
	cfg  Config // with defaults applied
	opts []kgo.Opt

	tally        source.Tally
	dataLoss     atomic.Uint64
	sessionsLost atomic.Uint64
}

// Counters are a Source's counters since New, read at one moment, as GET /v1/sources shows them
// under adapter.
type Counters struct {
	source.Counters
	// DataLoss counts the times Kafka no longer had the records at the offset to read (they
	// expired, or the topic was truncated) and reading went on from the earliest it had.
	DataLoss uint64 `json:"data_loss"`
	// SessionsLost counts the group sessions lost other than by a rebalance (the group's
	// coordinator unreachable, or an ACL); franz-go joins the group again.
	SessionsLost uint64 `json:"group_sessions_lost"`
}

// Counters returns the source's Counters now (source.Counted). It is safe to call from any
// goroutine.
func (s *Source) Counters() any {
	return Counters{Counters: s.tally.Counters(), DataLoss: s.dataLoss.Load(), SessionsLost: s.sessionsLost.Load()}
}

func init() { source.Register("kafka", New) }

var _ source.Counted = (*Source)(nil)

var _ source.Acknowledging = (*Source)(nil)

// AcknowledgesAfterEmit reports whether the source commits a record's offset only once its
// router (or, in a cluster, its log) took it: with a consumer group. source.Acknowledging.
func (s *Source) AcknowledgesAfterEmit() bool { return s.cfg.Group != "" }

// New returns a Source for c, or every problem of c (see Config.Validate) joined in one error.
// It does not connect: Run does.
func New(c Config) (*Source, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("kafka: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	start := kgo.NewOffset().AtEnd()
	if d.Start == StartEarliest {
		start = kgo.NewOffset().AtStart()
	}
	opts, err := d.ConnOpts(rawconn.Wrap)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.ConsumeTopics(d.Topics...), kgo.ConsumeResetOffset(start))
	if d.Group != "" {
		// Only what the router took is committed (marked), on the group's schedule and on close.
		opts = append(opts, kgo.ConsumerGroup(d.Group), kgo.AutoCommitMarks())
	}
	return &Source{cfg: d, opts: opts}, nil
}

// ConnOpts are franz-go's options for c's connection to the brokers: the seed brokers, the
// client id, the dial timeout, TLS or else a plain dialer whose connections go through wrap
// (if not nil), and SASL. c is taken with its defaults. The kafka sink connects with them too.
func (c Config) ConnOpts(wrap func(net.Conn) net.Conn) ([]kgo.Opt, error) {
	d := c.withDefaults()
	opts := []kgo.Opt{
		kgo.SeedBrokers(d.Brokers...),
		kgo.ClientID(d.ClientID),
		kgo.DialTimeout(d.ConnectTimeout),
	}
	if d.TLSEnabled {
		tlsc, err := d.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		if tlsc == nil {
			tlsc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		opts = append(opts, kgo.DialTLSConfig(tlsc))
	} else {
		opts = append(opts, kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			nd := net.Dialer{Timeout: d.ConnectTimeout}
			c, err := nd.DialContext(ctx, network, host)
			if err != nil || wrap == nil {
				return c, err
			}
			return wrap(c), nil
		}))
	}
	if m := mechanism(d.SASL); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func mechanism(c SASL) sasl.Mechanism {
	switch c.Mechanism {
	case SASLPlain:
		return plain.Auth{User: c.Username, Pass: c.Password}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha512Mechanism()
	}
	return nil
}

// Run makes a client, checks that a broker answers, and hands every record to emit until
// Kafka reports an error that franz-go does not retry (an error, so that the Runner starts
// again) or ctx is done (nil; a group member leaves its group, committing what it took).
// Refused credentials or authorizations are marked source.Permanent.
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	err = cl.Ping(pctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return classify(fmt.Errorf("kafka: no broker answered: %w", err))
	}
	s.tally.Connected()
	up()

	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			if err := s.emit(ctx, emit, r); err != nil {
				return nil // only a cancelled ctx or a stopped router gets here
			}
			if s.cfg.Group != "" {
				cl.MarkCommitRecords(r)
			}
		}
		var ferr error
		fs.EachError(func(topic string, partition int32, err error) {
			// Data loss and a lost group session are franz-go's to recover from: counted.
			switch {
			case errors.As(err, new(*kgo.ErrDataLoss)):
				s.dataLoss.Add(1)
			case errors.As(err, new(*kgo.ErrGroupSession)):
				s.sessionsLost.Add(1)
			case ferr == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
				ferr = fmt.Errorf("kafka: topic %s, partition %d: %w", topic, partition, err)
			}
		})
		if ferr != nil {
			return classify(ferr)
		}
	}
}

// emit turns r into a message and hands it to the router.
func (s *Source) emit(ctx context.Context, emit source.Emit, r *kgo.Record) error {
	h := make(map[string]string, len(r.Headers)+4)
	for _, rh := range r.Headers {
		if v, ok := h[rh.Key]; ok {
			h[rh.Key] = v + ", " + string(rh.Value)
		} else {
			h[rh.Key] = string(rh.Value)
		}
	}
	h[TopicHeader] = r.Topic
	h[PartitionHeader] = strconv.FormatInt(int64(r.Partition), 10)
	h[OffsetHeader] = strconv.FormatInt(r.Offset, 10)
	h[TimestampHeader] = r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	s.tally.Passed(len(r.Value))
	// The value is a slice of the fetch response, which franz-go reads into a buffer of its
	// own for each response (brokerCxn.readSizeAndBody), or of the batch it decompressed into
	// a new one (decompressor.Decompress: no kgo.WithPools here), and never reuses. The
	// copy is for memory: the slice would keep the whole response (up to 50 MiB,
	// FetchMaxBytes) alive for as long as the history or a client's queue holds the message,
	// and neither the history's limit (messages) nor a queue's (the bytes of the events'
	// encodings) would count it. Key and headers are copies already.
	// The record's place is its id upstream: in a cluster, a record read again (after a
	// commit that did not happen) is not appended to the log again.
	id := r.Topic + "/" + h[PartitionHeader] + "/" + h[OffsetHeader]
	return emit(ctx, &stream.Message{Key: string(r.Key), Headers: h, Body: bytes.Clone(r.Value), Time: time.Now(), UpstreamID: id})
}

// classify marks the errors that retrying soon will not cure: refused credentials or
// authorizations.
func classify(err error) error {
	for _, perm := range []error{kerr.SaslAuthenticationFailed, kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed} {
		if errors.Is(err, perm) {
			return source.Permanent(err)
		}
	}
	return err
}

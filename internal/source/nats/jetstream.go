package nats

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/source"
)

// The headers a message read from a stream carries besides its own NATS headers, which they
// replace where the publisher used the same names.
const (
	// StreamHeader is the stream's name.
	StreamHeader = "jetstream_stream"
	// SeqHeader is the message's stream sequence: its place in the stream, for start: seq:N.
	SeqHeader = "jetstream_seq"
	// DeliveredHeader is how many times the consumer has delivered the message, this time
	// included: more than 1 is a redelivery.
	DeliveredHeader = "jetstream_delivered"
)

// maxPull bounds the messages one pull request asks for: what the server sends ahead of the
// router, within the consumer's max_ack_pending. nats.go asks again once half have come.
const maxPull = 500

// giveBackWait bounds each wait of giving messages back at a stop.
const giveBackWait = 2 * time.Second

// StreamSource reads one JetStream stream through a durable pull consumer, acknowledging each
// message once its router took it: the jetstream type, and the nats type with a stream. It
// implements source.Source, source.Counted and source.Acknowledging; Run is called by one
// source.Runner at a time, and Counters may be called from any goroutine. While Run reads, the
// connection's subscription goroutine emits and acknowledges (see reading).
type StreamSource struct {
	cfg      StreamConfig // with defaults applied
	explicit JetStream    // as configured: what an existing consumer is changed to
	opts     []natsgo.Option
	name     string // the consumer's
	start    start

	tally       source.Tally
	received    atomic.Uint64
	redelivered atomic.Uint64
	acked       atomic.Uint64
	nacked      atomic.Uint64
}

// StreamCounters are a StreamSource's counters since it was made, read at one moment, as GET
// /v1/sources shows them under adapter.
type StreamCounters struct {
	// Counters are the messages passed on to the router (and their bytes) and the connections
	// that got as far as reading.
	source.Counters
	// Received counts the messages read from the consumer, Redelivered those of them that it
	// had delivered before (jetstream_delivered above 1: not acknowledged in time, given
	// back, or read by a streamux that stopped or died before acknowledging them).
	Received    uint64 `json:"received"`
	Redelivered uint64 `json:"redelivered"`
	// Acked counts the acknowledgements sent, one for each message the router took.
	Acked uint64 `json:"acked"`
	// Nacked counts the messages given back at a stop (negatively acknowledged: delivered
	// again at once): the one the router refused, and those read ahead of it.
	Nacked uint64 `json:"nacked"`
}

var (
	_ source.Counted       = (*StreamSource)(nil)
	_ source.Acknowledging = (*StreamSource)(nil)
)

// NewStream returns a StreamSource for c, or every problem of c (see StreamConfig.Validate)
// joined in one error. It does not connect: Run does.
func NewStream(c StreamConfig) (*StreamSource, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("jetstream: %w", errors.Join(errs...))
	}
	d := c
	d.Conn, d.JetStream = c.Conn.withDefaults(), c.JetStream.withDefaults()
	opts, err := d.Conn.options()
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	st, err := parseStart(d.Start)
	if err != nil {
		return nil, fmt.Errorf("jetstream: start: %w", err) // Validate has said so already
	}
	name := d.Consumer
	if name == "" {
		name = DefaultConsumer(d.Stream, d.FilterSubject)
	}
	return &StreamSource{cfg: d, explicit: c.JetStream, opts: opts, name: name, start: st}, nil
}

// ConsumerName is the name of the durable consumer the source reads through.
func (s *StreamSource) ConsumerName() string { return s.name }

// AcknowledgesAfterEmit is true: a message is acknowledged once Emit returned nil for it
// (source.Acknowledging).
func (s *StreamSource) AcknowledgesAfterEmit() bool { return true }

// Counters returns the source's StreamCounters now (source.Counted). It is safe to call from any
// goroutine.
func (s *StreamSource) Counters() any {
	return StreamCounters{
		Counters:    s.tally.Counters(),
		Received:    s.received.Load(),
		Redelivered: s.redelivered.Load(),
		Acked:       s.acked.Load(),
		Nacked:      s.nacked.Load(),
	}
}

// Run connects, finds or makes the consumer, and hands every message to emit, acknowledging
// each once emit returned nil, until the connection fails or the consumer goes (an error, so
// that the Runner reconnects and the consumer resumes after what was acknowledged) or ctx is
// done (nil, after giving back what the router did not take). Refused credentials, a missing
// stream and a consumer that cannot be used are marked source.Permanent.
func (s *StreamSource) Run(ctx context.Context, up func(), emit source.Emit) error {
	// rctx ends the reading: a stop, an asynchronous error of the connection (a pull request
	// the server's permissions refuse), the consumer's end, or a failed acknowledgement, each
	// with itself as the cause.
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// A stop closes the connection at once while connecting and finding the consumer, so that
	// it does not wait for a slow server; once reading, the connection outlives ctx long
	// enough to give back what the router did not take.
	cctx, closeConn := context.WithCancel(context.WithoutCancel(ctx))
	defer closeConn()
	unlink := context.AfterFunc(ctx, closeConn)
	defer unlink()
	c, err := dial(cctx, s.cfg.Conn, s.opts, func(err error) { cancel(err) })
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return classify(fmt.Errorf("jetstream: connect: %w", err))
	}
	defer c.close()
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	sctx, scancel := context.WithTimeout(rctx, s.cfg.ConnectTimeout)
	cons, err := s.consumer(sctx, js)
	scancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	r := &reading{src: s, emit: emit, ctx: rctx, fail: cancel, oldServer: serverLosesGiveBack(c.nc.ConnectedServerVersion())}
	opts := []jetstream.PullConsumeOpt{
		jetstream.PullMaxMessages(StreamPullSize(cons.CachedInfo().Config.MaxAckPending)),
		jetstream.ConsumeErrHandler(r.consumeError),
	}
	if r.oldServer {
		opts = append(opts, jetstream.PullHeartbeat(staleAfter))
	}
	cc, err := cons.Consume(r.handle, opts...)
	if err != nil {
		return fmt.Errorf("jetstream: read consumer %q: %w", s.name, err)
	}
	defer cc.Stop()
	if !unlink() {
		r.end(c, cc)
		return nil // ctx is done, and the connection closed
	}
	s.tally.Connected()
	up()

	select {
	case <-rctx.Done():
	case <-c.closed:
		cancel(c.lost())
	}
	r.end(c, cc)
	cause := context.Cause(rctx)
	switch {
	case ctx.Err() != nil || errors.Is(cause, errRefused):
		return nil
	case c.nc.IsClosed():
		return fmt.Errorf("jetstream: %w", c.lost())
	}
	return classify(fmt.Errorf("jetstream: %w", cause))
}

// StreamPullSize is how many messages a StreamSource's pull requests ask for, reading a
// consumer of maxAckPending (< 1: unlimited).
func StreamPullSize(maxAckPending int) int {
	if maxAckPending < 1 {
		return maxPull
	}
	return min(maxAckPending, maxPull)
}

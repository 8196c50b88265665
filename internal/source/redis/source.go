package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// PatternHeader is the header that carries the pattern a message matched, for messages
// received through a pattern subscription.
const PatternHeader = "redis_pattern"

// Source reads the channels of one Redis server. It implements source.Source; Run is called by
// one source.Runner at a time, and Counters may be called from any goroutine.
type Source struct {
	cfg Config // with defaults applied
	opt goredis.Options

	tally source.Tally
}

// Counters are a Source's counters since New, read at one moment, as GET /v1/sources shows them
// under adapter.
type Counters = source.Counters

// Counters returns the source's Counters now (source.Counted). It is safe to call from any
// goroutine.
func (s *Source) Counters() any { return s.tally.Counters() }

func init() { source.Register("redis", New) }

var _ source.Counted = (*Source)(nil)

// New returns a Source for c, or every problem of c (see Config.Validate) joined in one error.
// It does not connect: Run does.
func New(c Config) (*Source, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("redis: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	// Reads: the handshake's; the subscription's reads set their own.
	opt, err := d.conn().Options(d.ConnectTimeout)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return &Source{cfg: d, opt: *opt}, nil
}

// Run connects, subscribes to every channel and pattern, and hands every message to emit until
// the connection fails (an error, so that the Runner reconnects) or ctx is done (nil). Refused
// credentials are marked source.Permanent.
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	// One connection per Run (RunClient): go-redis holds its subscription's lock through a dial
	// and handshake that only deadlines end, and after a failed read would dial again by
	// itself, which the Runner does instead, with its backoff.
	client := RunClient(ctx, s.opt)
	defer client.Close()
	ps := client.Subscribe(ctx)
	defer ps.Close()

	if err := s.subscribe(ctx, ps, emit); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return Classify(err)
	}
	s.tally.Connected()
	up()

	pinged := false // a ping is waiting for its answer
	for {
		msg, err := ps.ReceiveTimeout(ctx, s.cfg.PingInterval)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return Classify(fmt.Errorf("redis: connection lost: %w", err))
			}
			if pinged {
				return fmt.Errorf("redis: no answer to a ping for %v", s.cfg.PingInterval)
			}
			if err := ps.Ping(ctx); err != nil {
				return fmt.Errorf("redis: ping: %w", err)
			}
			pinged = true
			continue
		}
		pinged = false
		if err := s.handle(ctx, emit, msg); err != nil {
			return nil // only a cancelled ctx or a stopped router gets here
		}
	}
}

// subscribe subscribes and waits for the server to confirm every channel and pattern; messages
// that arrive meanwhile are passed on.
func (s *Source) subscribe(ctx context.Context, ps *goredis.PubSub, emit source.Emit) error {
	if len(s.cfg.Channels) > 0 {
		if err := ps.Subscribe(ctx, s.cfg.Channels...); err != nil {
			return fmt.Errorf("redis: subscribe: %w", err)
		}
	}
	if len(s.cfg.Patterns) > 0 {
		if err := ps.PSubscribe(ctx, s.cfg.Patterns...); err != nil {
			return fmt.Errorf("redis: psubscribe: %w", err)
		}
	}
	deadline := time.Now().Add(s.cfg.ConnectTimeout)
	for want := len(s.cfg.Channels) + len(s.cfg.Patterns); want > 0; {
		left := time.Until(deadline)
		if left <= 0 { // a timeout of 0 would wait for ever
			return fmt.Errorf("redis: subscribe: no confirmation within %v", s.cfg.ConnectTimeout)
		}
		msg, err := ps.ReceiveTimeout(ctx, left)
		if err != nil {
			return fmt.Errorf("redis: subscribe: %w", err)
		}
		if sub, ok := msg.(*goredis.Subscription); ok {
			if sub.Kind == "subscribe" || sub.Kind == "psubscribe" {
				want--
			}
			continue
		}
		if err := s.handle(ctx, emit, msg); err != nil {
			return err
		}
	}
	return nil
}

// handle passes a received message on; confirmations and pongs need nothing.
func (s *Source) handle(ctx context.Context, emit source.Emit, msg any) error {
	m, ok := msg.(*goredis.Message)
	if !ok {
		return nil
	}
	var h map[string]string
	if m.Pattern != "" {
		h = map[string]string{PatternHeader: m.Pattern}
	}
	s.tally.Passed(len(m.Payload))
	// Channel, pattern and payload are strings over buffers of their own: go-redis reads each
	// bulk string into a new one (proto.Reader.readStringReply) and never reads into it again;
	// the conversion to []byte copies the payload anyway.
	return emit(ctx, &stream.Message{Key: m.Channel, Headers: h, Body: []byte(m.Payload), Time: time.Now()})
}

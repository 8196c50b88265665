package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// ReplyHeader is the header that carries a message's reply subject, when it has one.
const ReplyHeader = "nats_reply"

// Source reads the subjects of one NATS server, or, configured with a stream, that stream (see
// StreamSource, which it then is). It implements source.Source; Run is called by one
// source.Runner at a time, and Counters may be called from any goroutine.
type Source struct {
	cfg    Config // with defaults applied
	opts   []natsgo.Option
	stream *StreamSource // with a stream: what the source is

	tally source.Tally

	mu      sync.Mutex
	subs    []*natsgo.Subscription // the live connection's
	live    uint64                 // what they dropped, as last read
	dropped uint64                 // what the connections that ended dropped
}

// Counters are a Source's counters since New, read at one moment, as GET /v1/sources shows them
// under adapter.
type Counters struct {
	source.Counters
	// Dropped counts the messages NATS dropped because the source held pending of them
	// already, its router being that far behind. nats.go forgets a connection's count once it
	// has closed, so the drops of a connection's last second may be missing.
	Dropped uint64 `json:"dropped"`
}

// Counters returns the source's Counters now, or, with a stream, its StreamCounters
// (source.Counted). It is safe to call from any goroutine.
func (s *Source) Counters() any {
	if s.stream != nil {
		return s.stream.Counters()
	}
	s.mu.Lock()
	s.sampleLocked()
	dropped := s.dropped + s.live
	s.mu.Unlock()
	return Counters{Counters: s.tally.Counters(), Dropped: dropped}
}

func init() { source.Register("nats", New) }

var (
	_ source.Counted       = (*Source)(nil)
	_ source.Acknowledging = (*Source)(nil)
)

// AcknowledgesAfterEmit reports whether the source acknowledges a message once its router
// took it: with a stream (source.Acknowledging). Core NATS has no acknowledgements.
func (s *Source) AcknowledgesAfterEmit() bool { return s.stream != nil }

// New returns a Source for c, or every problem of c (see Config.Validate) joined in one error.
// It does not connect: Run does.
func New(c Config) (*Source, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("nats: %w", errors.Join(errs...))
	}
	if c.Stream != "" {
		st, err := NewStream(c.streamConfig())
		if err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		return &Source{stream: st}, nil
	}
	d := c.withDefaults()
	opts, err := d.Conn.options()
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	return &Source{cfg: d, opts: opts}, nil
}

// Run connects, subscribes to every subject, and hands every message to emit until the
// connection fails (an error, so that the Runner reconnects) or ctx is done (nil). Refused
// credentials or subscriptions are marked source.Permanent. With a stream, it is
// StreamSource.Run.
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	if s.stream != nil {
		return s.stream.Run(ctx, up, emit)
	}
	// The connection's callbacks tell this goroutine what the server refused.
	asyncErr := make(chan error, 1)
	c, err := dial(ctx, s.cfg.Conn, s.opts, func(err error) {
		select {
		case asyncErr <- err:
		default:
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return classify(fmt.Errorf("nats: connect: %w", err))
	}
	defer c.close() // the last callback has run when it returns
	nc, closed := c.nc, c.closed

	pending := make(chan *natsgo.Msg, s.cfg.Pending)
	subs := make([]*natsgo.Subscription, 0, len(s.cfg.Subjects))
	for _, subj := range s.cfg.Subjects {
		sub, err := nc.ChanQueueSubscribe(subj, s.cfg.QueueGroup, pending)
		if err != nil {
			return classify(fmt.Errorf("nats: subscribe to %q: %w", subj, err))
		}
		subs = append(subs, sub)
	}
	s.mu.Lock()
	s.subs = subs
	s.mu.Unlock()
	defer s.ended()
	// A subscription the server refuses is answered before the flush's pong.
	if err := nc.FlushTimeout(s.cfg.ConnectTimeout); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return classify(fmt.Errorf("nats: subscribe: %w", err))
	}
	// The server's -ERR is recorded before the flush's pong is; the error callback may come later.
	if err := nc.LastError(); err != nil && !errors.Is(err, natsgo.ErrSlowConsumer) {
		return classify(fmt.Errorf("nats: subscribe: %w", err))
	}
	s.tally.Connected()
	up()

	sample := time.NewTicker(time.Second)
	defer sample.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sample.C:
			s.mu.Lock()
			s.sampleLocked()
			s.mu.Unlock()
		case err := <-asyncErr:
			return classify(fmt.Errorf("nats: %w", err))
		case <-closed:
			// What arrived before the end is passed on; then the Runner reconnects.
			if err := s.drain(ctx, emit, pending); err != nil {
				return nil
			}
			return fmt.Errorf("nats: %w", c.lost())
		case m := <-pending:
			if err := s.emit(ctx, emit, m); err != nil {
				return nil // only a cancelled ctx or a stopped router gets here
			}
		}
	}
}

// drain passes on what pending holds, without waiting for more.
func (s *Source) drain(ctx context.Context, emit source.Emit, pending <-chan *natsgo.Msg) error {
	for {
		select {
		case m := <-pending:
			if err := s.emit(ctx, emit, m); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// emit turns m into a message and hands it to the router.
func (s *Source) emit(ctx context.Context, emit source.Emit, m *natsgo.Msg) error {
	var h map[string]string
	if len(m.Header) > 0 || m.Reply != "" {
		h = headerMap(m.Header, 1)
		delete(h, ReplyHeader) // the publisher's own would pass for the source's
		if m.Reply != "" {
			h[ReplyHeader] = m.Reply
		}
	}
	s.tally.Passed(len(m.Data))
	// m.Data is this message's own: nats.go's Conn.processMsg copies the payload out of its
	// read buffer into a new slice, or hands over the one it allocated for a payload split
	// across reads (msgCopied), which it then forgets; subject and headers are strings.
	return emit(ctx, &stream.Message{Key: m.Subject, Headers: h, Body: m.Data, Time: time.Now()})
}

// sampleLocked reads what the live subscriptions dropped. nats.go counts their drops but
// forgets them once the connection has closed, hence a reading every second and at every
// Counters; s.mu is held.
func (s *Source) sampleLocked() {
	var n uint64
	for _, sub := range s.subs {
		d, err := sub.Dropped()
		if err != nil {
			return // closed: keep the last reading
		}
		n += uint64(d)
	}
	s.live = n
}

// ended adds the drops of the connection that is ending to the total.
func (s *Source) ended() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sampleLocked()
	s.dropped += s.live
	s.live, s.subs = 0, nil
}

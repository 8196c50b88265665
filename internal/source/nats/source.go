package nats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/streamux/streamux/internal/rawconn"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// ReplyHeader is the header that carries a message's reply subject, when it has one.
const ReplyHeader = "nats_reply"

// Source reads the subjects of one NATS server. It implements source.Source; Run is called by
// one source.Runner at a time, and Counters may be called from any goroutine.
type Source struct {
	cfg  Config // with defaults applied
	opts []natsgo.Option

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

// Counters returns the source's Counters now (source.Counted). It is safe to call from any
// goroutine.
func (s *Source) Counters() any {
	s.mu.Lock()
	s.sampleLocked()
	dropped := s.dropped + s.live
	s.mu.Unlock()
	return Counters{Counters: s.tally.Counters(), Dropped: dropped}
}

func init() { source.Register("nats", New) }

var _ source.Counted = (*Source)(nil)

// New returns a Source for c, or every problem of c (see Config.Validate) joined in one error.
// It does not connect: Run does.
func New(c Config) (*Source, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("nats: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	opts := []natsgo.Option{
		natsgo.Name(d.ConnectionName),
		natsgo.Timeout(d.ConnectTimeout),
		// The source.Runner reconnects, with its backoff, and reports the states.
		natsgo.NoReconnect(),
		natsgo.PingInterval(d.PingInterval),
		natsgo.MaxPingsOutstanding(2),
	}
	tlsc, err := d.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	if tlsc != nil {
		opts = append(opts, natsgo.Secure(tlsc))
	}
	if d.Token != "" {
		opts = append(opts, natsgo.Token(d.Token))
	}
	if d.CredsFile != "" {
		opts = append(opts, natsgo.UserCredentials(d.CredsFile))
	}
	return &Source{cfg: d, opts: opts}, nil
}

// Run connects, subscribes to every subject, and hands every message to emit until the
// connection fails (an error, so that the Runner reconnects) or ctx is done (nil). Refused
// credentials or subscriptions are marked source.Permanent.
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	// The connection's callbacks tell this goroutine how it ended or what the server refused.
	closed := make(chan struct{})
	var closeOnce sync.Once
	asyncErr := make(chan error, 1)
	opts := append(s.opts[:len(s.opts):len(s.opts)],
		natsgo.SetCustomDialer(dialer{ctx: ctx, timeout: s.cfg.ConnectTimeout}),
		natsgo.ClosedHandler(func(*natsgo.Conn) { closeOnce.Do(func() { close(closed) }) }),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
			if errors.Is(err, natsgo.ErrSlowConsumer) {
				return // counted by the subscription, shown in Counters
			}
			select {
			case asyncErr <- err:
			default:
			}
		}),
	)
	nc, err := natsgo.Connect(s.cfg.URL, opts...)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return classify(fmt.Errorf("nats: connect: %w", err))
	}
	defer func() {
		nc.Close()
		<-closed // the last callback has run
	}()

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
			err := nc.LastError()
			if err == nil {
				err = errors.New("closed by the server")
			}
			return fmt.Errorf("nats: connection lost: %w", err)
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
		h = make(map[string]string, len(m.Header)+1)
		for k, vs := range m.Header {
			h[k] = strings.Join(vs, ", ")
		}
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

// classify marks the errors that retrying soon will not cure.
func classify(err error) error {
	for _, perm := range []error{natsgo.ErrAuthorization, natsgo.ErrAuthExpired, natsgo.ErrAuthRevoked, natsgo.ErrPermissionViolation} {
		if errors.Is(err, perm) || strings.Contains(strings.ToLower(err.Error()), strings.TrimPrefix(perm.Error(), "nats: ")) {
			return source.Permanent(err)
		}
	}
	return err
}

// dialer dials the server for nats.go through rawconn. The connection is closed when ctx is
// done, so that a stop during a slow handshake does not wait for its timeout.
type dialer struct {
	ctx     context.Context
	timeout time.Duration
}

func (d dialer) Dial(network, address string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	c, err := nd.DialContext(d.ctx, network, address)
	if err != nil {
		return nil, err
	}
	return source.CloseOnDone(d.ctx, rawconn.Wrap(c)), nil
}

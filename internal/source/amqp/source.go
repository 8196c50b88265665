package amqp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/rawconn"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

const (
	// dialTimeout bounds the TCP connect; handshakeTimeout the TLS and AMQP handshakes after it.
	dialTimeout      = 30 * time.Second
	handshakeTimeout = 30 * time.Second
	// closeTimeout bounds the goodbye (acknowledgements, rejects, connection.close) on the way out.
	closeTimeout = 5 * time.Second
	// reasonWait is how long to wait, once deliveries end, for the notification that says why.
	reasonWait  = 2 * time.Second
	reasonGrace = 100 * time.Millisecond
)

// Source reads one RabbitMQ queue. It implements source.Source; Run is called by one
// source.Runner at a time, and Counters may be called from any goroutine.
type Source struct {
	cfg        Config // with defaults applied
	tls        *tls.Config
	queueArgs  amqp091.Table
	bindArgs   amqp091.Table
	afterRoute bool
	batch      int // acknowledge at most this many messages with one frame

	received    atomic.Uint64
	redelivered atomic.Uint64
	connects    atomic.Uint64
}

// Counters are a Source's counters since New, read at one moment, as GET /v1/sources shows them
// under adapter.
type Counters struct {
	// Received counts the deliveries read from the broker.
	Received uint64 `json:"received"`
	// Redelivered counts those the broker flagged as delivered before (after a reconnect or a
	// requeue).
	Redelivered uint64 `json:"redelivered"`
	// Connects counts the connections that got as far as consuming.
	Connects uint64 `json:"connects"`
}

// Counters returns the source's Counters now (source.Counted). It is safe to call from any
// goroutine.
func (s *Source) Counters() any {
	return Counters{
		Received:    s.received.Load(),
		Redelivered: s.redelivered.Load(),
		Connects:    s.connects.Load(),
	}
}

func init() { source.Register("amqp", New) }

var _ source.Counted = (*Source)(nil)

// New returns a Source for c, or every problem of c (see Config.Validate) joined in one error.
// It does not connect: Run does.
func New(c Config) (*Source, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("amqp: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	s := &Source{cfg: d, afterRoute: d.Ack == AckAfterRoute, batch: max(1, d.Prefetch/4)}
	var err error
	if s.tls, err = d.TLS.Config(); err != nil {
		return nil, fmt.Errorf("amqp: %w", err)
	}
	if s.queueArgs, err = table(d.QueueArguments); err != nil {
		return nil, fmt.Errorf("amqp: queue_arguments: %w", err)
	}
	if s.bindArgs, err = table(d.BindingArguments); err != nil {
		return nil, fmt.Errorf("amqp: binding_arguments: %w", err)
	}
	return s, nil
}

// Run connects, declares the topology, consumes, and hands every delivery to emit until the
// connection, the channel or the consumer ends (an error, so that the Runner reconnects) or ctx
// is done (nil). Errors that reconnecting soon will not cure (credentials, a missing exchange
// with passive, a queue declared with other arguments, a certificate the broker does not
// accept) are marked source.Permanent.
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	conn, err := s.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return classify(fmt.Errorf("amqp: connect: %w", err))
	}
	// Until consuming starts, cancellation closes the connection, which ends any call in flight.
	stopClose := afterFunc(ctx, func() { _ = conn.CloseDeadline(time.Now().Add(closeTimeout)) })
	defer func() {
		stopClose()
		_ = conn.CloseDeadline(time.Now().Add(closeTimeout))
	}()
	connClosed := conn.NotifyClose(make(chan *amqp091.Error, 1))

	ch, queue, err := s.setup(conn)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return classify(err)
	}
	chClosed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	cancelled := ch.NotifyCancel(make(chan string, 1))
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return classify(fmt.Errorf("amqp: consume queue %q: %w", queue, err))
	}
	if !stopClose() {
		return nil // ctx ended meanwhile; the connection is closing
	}
	s.connects.Add(1)
	up()

	l := loop{Source: s, ch: ch, queue: queue}
	err = l.consume(ctx, deliveries, emit)
	if err == nil {
		return nil
	}
	return classify(l.reason(err, connClosed, chClosed, cancelled))
}

// dial opens the connection. The dialer watches ctx until the AMQP handshake is over, so that a
// stop during a slow handshake does not wait for its timeout.
func (s *Source) dial(ctx context.Context) (*amqp091.Connection, error) {
	var unwatch func() bool
	props := amqp091.NewConnectionProperties()
	props.SetClientConnectionName(s.cfg.ConnectionName)
	cfg := amqp091.Config{
		Heartbeat:       s.cfg.Heartbeat,
		TLSClientConfig: s.tls,
		Properties:      props,
		Locale:          "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// amqp091 clears the deadline once the handshake is over.
			if err := c.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
				_ = c.Close()
				return nil, err
			}
			unwatch = afterFunc(ctx, func() { _ = c.Close() })
			return rawconn.Wrap(c), nil
		},
	}
	if s.tls != nil && len(s.tls.Certificates) > 0 {
		if u, err := url.Parse(s.cfg.URL); err == nil && u.User == nil {
			cfg.SASL = []amqp091.Authentication{&amqp091.ExternalAuth{}}
		}
	}
	conn, err := amqp091.DialConfig(s.cfg.URL, cfg)
	if unwatch != nil {
		unwatch()
	}
	return conn, err
}

// setup opens the consuming channel and declares the topology, again on every connect, since a
// broker restart may have lost what was not durable and a server-named queue dies with its
// connection. It returns the channel and the queue's name.
func (s *Source) setup(conn *amqp091.Connection) (*amqp091.Channel, string, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, "", fmt.Errorf("amqp: open channel: %w", err)
	}
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return nil, "", fmt.Errorf("amqp: set prefetch %d: %w", s.cfg.Prefetch, err)
	}
	if s.cfg.Exchange != "" {
		if err := s.declareExchange(conn, ch); err != nil {
			return nil, "", err
		}
	}
	queue, err := s.declareQueue(conn, ch)
	if err != nil {
		return nil, "", err
	}
	for _, key := range s.cfg.Bindings {
		if err := ch.QueueBind(queue, key, s.cfg.Exchange, false, s.bindArgs); err != nil {
			return nil, "", fmt.Errorf("amqp: bind queue %q to exchange %q with %q: %w", queue, s.cfg.Exchange, key, err)
		}
	}
	return ch, queue, nil
}

// declareExchange makes sure the exchange exists: used as it is if it does (whatever its type
// and durability, so that an exchange made by others never fails the source), declared if not.
func (s *Source) declareExchange(conn *amqp091.Connection, ch *amqp091.Channel) error {
	name := s.cfg.Exchange
	ok, err := exists(conn, func(c *amqp091.Channel) error {
		return c.ExchangeDeclarePassive(name, s.cfg.ExchangeType, *s.cfg.Durable, false, false, false, nil)
	})
	switch {
	case err != nil:
		return fmt.Errorf("amqp: check exchange %q: %w", name, err)
	case ok:
		return nil
	case s.cfg.Passive:
		return source.Permanent(fmt.Errorf("amqp: exchange %q does not exist (passive: streamux only checks it)", name))
	}
	if err := ch.ExchangeDeclare(name, s.cfg.ExchangeType, *s.cfg.Durable, false, false, false, nil); err != nil {
		return fmt.Errorf("amqp: declare exchange %q: %w", name, err)
	}
	return nil
}

// declareQueue declares the server-named queue, or makes sure the named one exists (used as it
// is if it does, so that its arguments need not be repeated here).
func (s *Source) declareQueue(conn *amqp091.Connection, ch *amqp091.Channel) (string, error) {
	name := s.cfg.Queue
	if name == "" {
		q, err := ch.QueueDeclare("", false, true, true, false, s.queueArgs)
		if err != nil {
			return "", fmt.Errorf("amqp: declare server-named queue: %w", err)
		}
		return q.Name, nil
	}
	ok, err := exists(conn, func(c *amqp091.Channel) error {
		_, err := c.QueueDeclarePassive(name, *s.cfg.Durable, false, false, false, nil)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("amqp: check queue %q: %w", name, err)
	}
	if !ok {
		if _, err := ch.QueueDeclare(name, *s.cfg.Durable, false, false, false, s.queueArgs); err != nil {
			return "", fmt.Errorf("amqp: declare queue %q: %w", name, err)
		}
	}
	return name, nil
}

// exists runs a passive declaration on a channel of its own, since a failed one closes its
// channel, and tells whether the entity exists.
func exists(conn *amqp091.Connection, check func(*amqp091.Channel) error) (bool, error) {
	c, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	err = check(c)
	if err == nil {
		_ = c.Close()
		return true, nil
	}
	var aerr *amqp091.Error
	if errors.As(err, &aerr) && aerr.Code == amqp091.NotFound {
		return false, nil // the broker closed the channel
	}
	_ = c.Close()
	return false, err
}

// afterFunc is context.AfterFunc whose stop, if f has started, waits for f to finish, so that
// nothing of a Run outlives it. stop may be called more than once.
func afterFunc(ctx context.Context, f func()) (stop func() bool) {
	done := make(chan struct{})
	s := context.AfterFunc(ctx, func() {
		defer close(done)
		f()
	})
	var (
		once    sync.Once
		stopped bool
	)
	return func() bool {
		once.Do(func() {
			if stopped = s(); !stopped {
				<-done
			}
		})
		return stopped
	}
}

// loop is one connection's consuming loop.
type loop struct {
	*Source
	ch    *amqp091.Channel
	queue string

	pending int         // messages the next acknowledgement covers
	ackTag  uint64      // the highest delivery tag it covers
	ackDue  *time.Timer // fires ackDelay after the first of them
}

// consume hands deliveries to emit until they end (an error) or ctx does (nil, after the
// goodbye). Acknowledgements go in batches (multiple=true): once batch messages are pending, or
// ackDelay after the first of them. A quiet stream holds none back for long, and a busy one
// sends an acknowledgement per batch, not one per burst of deliveries: each is a write to the
// broker, which was a seventh of streamux's CPU when sent whenever the deliveries paused.
func (l *loop) consume(ctx context.Context, deliveries <-chan amqp091.Delivery, emit source.Emit) error {
	l.ackDue = time.NewTimer(ackDelay)
	l.ackDue.Stop()
	defer l.ackDue.Stop()
	for {
		var (
			d  amqp091.Delivery
			ok bool
		)
		select {
		case <-ctx.Done():
			return l.goodbye()
		case <-l.ackDue.C:
			if err := l.flush(); err != nil {
				return err
			}
			continue
		case d, ok = <-deliveries:
		}
		if !ok {
			return errors.New("amqp: deliveries ended")
		}
		l.received.Add(1)
		if d.Redelivered {
			l.redelivered.Add(1)
		}
		// d.Body is this delivery's own: amqp091 starts a new body for every basic.deliver
		// (Channel.recvMethod: make) and appends to it the body frames, each read into a
		// buffer of its own (readBytes); nothing is read into either again.
		m := &stream.Message{Key: d.RoutingKey, Headers: headers(&d), Body: d.Body, Time: time.Now()}
		if !l.afterRoute {
			if err := l.taken(d.DeliveryTag); err != nil {
				return err
			}
		}
		if err := emit(ctx, m); err != nil {
			// The router did not accept m (ctx is done, or the router stopped), and
			// everything accepted before will be routed. After routing, m and what
			// follows go back to the queue, and acknowledging in goodbye loses nothing;
			// on receipt (auto), m was counted as taken already and goodbye acknowledges
			// it: the stop loses it, as README says of that mode.
			return l.goodbye()
		}
		if l.afterRoute {
			if err := l.taken(d.DeliveryTag); err != nil {
				return err
			}
		}
	}
}

// ackDelay bounds how long a received message waits for its acknowledgement.
const ackDelay = 50 * time.Millisecond

// taken counts tag as one to acknowledge, and acknowledges if the batch is full.
func (l *loop) taken(tag uint64) error {
	l.pending++
	l.ackTag = tag
	if l.pending == 1 {
		l.ackDue.Reset(ackDelay)
	}
	if l.pending >= l.batch {
		return l.flush()
	}
	return nil
}

func (l *loop) flush() error {
	if l.pending == 0 {
		return nil
	}
	l.pending = 0
	l.ackDue.Stop()
	if err := l.ch.Ack(l.ackTag, true); err != nil {
		return fmt.Errorf("amqp: acknowledge: %w", err)
	}
	return nil
}

// goodbye ends consuming when ctx is done (or the router stopped): it acknowledges what is
// pending and, in after_route mode, rejects with requeue every other outstanding delivery
// (delivery tag 0 with multiple means all of them), so that the next consumer gets what the
// router did not accept. Closing the connection, which Run does next within closeTimeout, would
// requeue them as well; the explicit reject does not depend on how the connection ends.
func (l *loop) goodbye() error {
	_ = l.flush()
	if l.afterRoute {
		_ = l.ch.Nack(0, true, true)
	}
	return nil
}

// reason turns the end of the deliveries into the error that explains it: the connection
// closed, the channel closed, or the consumer cancelled by the broker (its queue deleted). A
// killed connection can bring several of these (its exclusive queue goes with it), so after the
// first one it waits reasonGrace for a better one.
func (l *loop) reason(err error, connClosed, chClosed <-chan *amqp091.Error, cancelled <-chan string) error {
	var (
		connErr, chErr *amqp091.Error
		wasCancelled   bool
		grace          <-chan time.Time
	)
	deadline := time.NewTimer(reasonWait)
	defer deadline.Stop()
	startGrace := func() {
		if grace == nil {
			grace = time.After(reasonGrace)
		}
	}
wait:
	for connErr == nil {
		select {
		case e, ok := <-connClosed:
			connErr, connClosed = e, nil
			if !ok || e == nil {
				break wait // closed cleanly: nothing better will come
			}
		case e := <-chClosed:
			chErr, chClosed = e, nil
			startGrace()
		case <-cancelled:
			wasCancelled, cancelled = true, nil
			startGrace()
		case <-grace:
			break wait
		case <-deadline.C:
			break wait
		}
	}
	switch {
	case connErr != nil:
		return fmt.Errorf("amqp: connection closed: %w", connErr)
	case chErr != nil:
		return fmt.Errorf("amqp: channel closed: %w", chErr)
	case wasCancelled:
		return fmt.Errorf("amqp: consumer of queue %q cancelled by the broker (queue deleted?)", l.queue)
	}
	return err
}

// classify marks err permanent when reconnecting soon will not cure it.
func classify(err error) error {
	var aerr *amqp091.Error
	if errors.As(err, &aerr) {
		switch aerr.Code {
		case amqp091.AccessRefused, amqp091.NotFound, amqp091.PreconditionFailed, amqp091.NotAllowed:
			return source.Permanent(err)
		}
	}
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &invalid) || errors.As(err, &hostname) {
		return source.Permanent(err)
	}
	return err
}

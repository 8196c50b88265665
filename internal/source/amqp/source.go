package amqp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
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

	// A stream's place. stream says the queue is one; start is Config.Offset; store, set by
	// UseStore, keeps last across runs of the process.
	stream bool
	start  offset
	store  source.Store
	// last is the offset of the last stream message the router took (streamOffsetUnset: none
	// yet); fromFirst says that, none taken yet, the stream is to be read from its first
	// message (it was made anew while the source had a place in it); loaded says the store
	// was read. They belong to the goroutine in Run, which one Runner calls at a time.
	last      int64
	fromFirst bool
	loaded    bool

	received    atomic.Uint64
	redelivered atomic.Uint64
	connects    atomic.Uint64
	offset      atomic.Int64 // last, for Counters
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
	// StreamOffset is, for a stream, the offset of the last message the router took; absent
	// before the first.
	StreamOffset *int64 `json:"stream_offset,omitempty"`
}

// Counters returns the source's Counters now (source.Counted). It is safe to call from any
// goroutine.
func (s *Source) Counters() any {
	c := Counters{
		Received:    s.received.Load(),
		Redelivered: s.redelivered.Load(),
		Connects:    s.connects.Load(),
	}
	if off := s.offset.Load(); off != streamOffsetUnset {
		c.StreamOffset = &off
	}
	return c
}

func init() { source.Register("amqp", New) }

var _ source.Counted = (*Source)(nil)

var _ source.Acknowledging = (*Source)(nil)

var _ source.Resuming = (*Source)(nil)

// UseStore makes a stream source keep its place in st (source.Resuming): the offset of the last
// message its router took, so that the next run of streamux goes on after it. Other queues keep
// their messages in the broker, and ignore st. Called before Run; called again (in a cluster,
// each time this node takes the source over), the place is read from st again at the next
// connection, whatever this source read before.
func (s *Source) UseStore(st source.Store) {
	if s.stream {
		s.store = st
		s.loaded, s.fromFirst = false, false
		s.setLast(streamOffsetUnset)
	}
}

// AcknowledgesAfterEmit reports whether the source acknowledges a message only once its router
// (or, in a cluster, its log) took it: ack: after_route. source.Acknowledging.
func (s *Source) AcknowledgesAfterEmit() bool { return s.afterRoute }

// New returns a Source for c, or every problem of c (see Config.Validate) joined in one error.
// It does not connect: Run does.
func New(c Config) (*Source, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("amqp: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	s := &Source{cfg: d, afterRoute: d.Ack == AckAfterRoute, batch: max(1, d.Prefetch/4), last: streamOffsetUnset}
	s.offset.Store(streamOffsetUnset)
	var err error
	if s.tls, err = d.TLS.Config(); err != nil {
		return nil, fmt.Errorf("amqp: %w", err)
	}
	if s.queueArgs, err = table(d.QueueArguments); err != nil {
		return nil, fmt.Errorf("amqp: queue_arguments: %w", err)
	}
	if d.QueueType != "" {
		if s.queueArgs == nil {
			s.queueArgs = amqp091.Table{}
		}
		s.queueArgs[argQueueType] = d.QueueType
	}
	if d.QueueType == QueueStream {
		s.stream = true
		if s.start, err = parseOffset(d.Offset); err != nil {
			return nil, fmt.Errorf("amqp: %w", err)
		}
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

	ch, queue, declared, err := s.setup(conn)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return classify(err)
	}
	var args amqp091.Table
	if s.stream {
		from, err := s.streamStart(queue, declared)
		if err != nil {
			return err
		}
		args = amqp091.Table{argStreamOffset: from}
	}
	chClosed := ch.NotifyClose(make(chan *amqp091.Error, 1))
	cancelled := ch.NotifyCancel(make(chan string, 1))
	deliveries, err := ch.Consume(queue, "", false, false, false, false, args)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		var aerr *amqp091.Error
		if s.stream && errors.As(err, &aerr) && aerr.Code == amqp091.PreconditionFailed && strings.Contains(aerr.Reason, argStreamOffset) {
			return classify(fmt.Errorf("amqp: consume queue %q: it is not a stream, as queue_type says (an existing queue is used as it is): %w", queue, err))
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
// connection. It returns the channel, the queue's name, and whether the queue was declared now
// (it did not exist).
func (s *Source) setup(conn *amqp091.Connection) (*amqp091.Channel, string, bool, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, "", false, fmt.Errorf("amqp: open channel: %w", err)
	}
	// Per consumer (global false), which a stream requires.
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return nil, "", false, fmt.Errorf("amqp: set prefetch %d: %w", s.cfg.Prefetch, err)
	}
	if s.cfg.Exchange != "" {
		if err := s.declareExchange(conn, ch); err != nil {
			return nil, "", false, err
		}
	}
	queue, declared, err := s.declareQueue(conn, ch)
	if err != nil {
		return nil, "", false, err
	}
	for _, key := range s.cfg.Bindings {
		if err := ch.QueueBind(queue, key, s.cfg.Exchange, false, s.bindArgs); err != nil {
			return nil, "", false, fmt.Errorf("amqp: bind queue %q to exchange %q with %q: %w", queue, s.cfg.Exchange, key, err)
		}
	}
	return ch, queue, declared, nil
}

// streamStart returns where to read the stream queue from, as the x-stream-offset argument of
// basic.consume: right after the last message the router took, known from this run or, for
// the first connection of a run, from the store; else Config.Offset. A stream that was just
// declared (it did not exist: deleted since, or never made) holds nothing that a recorded
// offset refers to, and is read from its first message if the source had a place, from
// Config.Offset if not; the store says so at once, in case the process ends before it took a
// message of the new stream.
func (s *Source) streamStart(queue string, declared bool) (any, error) {
	if !s.loaded && s.store != nil {
		b, err := s.store.Load()
		if err != nil {
			// Most likely a damaged record, which retrying soon will not cure; retried
			// at the longest backoff all the same.
			return nil, source.Permanent(fmt.Errorf("amqp: read the place in stream %q: %w", queue, err))
		}
		last, ok, err := decodePosition(b, queue)
		switch {
		case err != nil:
			return nil, source.Permanent(fmt.Errorf("amqp: the place in stream %q kept in the data directory: %w (remove the source's .state file there to read from offset %s)", queue, err, s.start))
		case ok && last == beforeFirst:
			s.fromFirst = true
		case ok:
			s.setLast(last)
		}
	}
	s.loaded = true
	if declared && (s.last != streamOffsetUnset || s.fromFirst) {
		s.setLast(streamOffsetUnset)
		s.fromFirst = true
		if s.store != nil {
			if err := s.store.Save(encodePosition(queue, beforeFirst)); err != nil {
				return nil, fmt.Errorf("amqp: record the place in stream %q: %w", queue, err)
			}
		}
	}
	switch {
	case s.last != streamOffsetUnset:
		return s.last + 1, nil
	case s.fromFirst:
		return OffsetFirst, nil
	}
	return s.start.arg(), nil
}

// setLast records off as the stream offset of the last message the router took.
func (s *Source) setLast(off int64) {
	s.last = off
	s.offset.Store(off)
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
// is if it does, so that its arguments need not be repeated here). It returns the queue's name
// and whether it declared it.
func (s *Source) declareQueue(conn *amqp091.Connection, ch *amqp091.Channel) (string, bool, error) {
	name := s.cfg.Queue
	if name == "" {
		q, err := ch.QueueDeclare("", false, true, true, false, s.queueArgs)
		if err != nil {
			return "", false, fmt.Errorf("amqp: declare server-named queue: %w", err)
		}
		return q.Name, true, nil
	}
	ok, err := exists(conn, func(c *amqp091.Channel) error {
		_, err := c.QueueDeclarePassive(name, *s.cfg.Durable, false, false, false, nil)
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("amqp: check queue %q: %w", name, err)
	}
	if ok {
		return name, false, nil
	}
	if _, err := ch.QueueDeclare(name, *s.cfg.Durable, false, false, false, s.queueArgs); err != nil {
		return "", false, fmt.Errorf("amqp: declare queue %q: %w", name, err)
	}
	return name, true, nil
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

	// For a stream with a store, the keeper records the place (keeper.go). No more than the
	// prefetch window of messages is passed on beyond the place on disk, which bounds what a
	// killed process reads again. (A stream's acknowledgements only give the broker credit:
	// they mark nothing.)
	keeper   *keeper
	saved    <-chan saveResult // the keeper's answers; nil without one
	recorded int64             // the offset on disk
	emitted  uint64            // the messages passed on in this connection
	covered  uint64            // how many of them the place on disk covers
}

// consume hands deliveries to emit until they end (an error) or ctx does (nil, after the
// goodbye). Acknowledgements go in batches (multiple=true): once batch messages are pending, or
// ackDelay after the first of them. A quiet stream holds none back for long, and a busy one
// sends an acknowledgement per batch, not one per burst of deliveries: each is a write to the
// broker, which was a seventh of streamux's CPU when sent whenever the deliveries paused.
func (l *loop) consume(ctx context.Context, deliveries <-chan amqp091.Delivery, emit source.Emit) (err error) {
	l.ackDue = time.NewTimer(ackDelay)
	l.ackDue.Stop()
	defer l.ackDue.Stop()
	if l.stream && l.store != nil {
		l.keeper = startKeeper(l.store, l.queue)
		l.saved, l.recorded = l.keeper.done, l.last
		defer func() {
			if serr := l.stopKeeper(); serr != nil && err == nil {
				err = serr
			}
		}()
	}
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
		case r := <-l.saved: // never ready without a keeper
			if err := l.onSaved(r); err != nil {
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
		m := &stream.Message{Key: d.RoutingKey, Headers: headers(&d), Body: d.Body, Time: time.Now(), UpstreamID: d.MessageId}
		off := int64(streamOffsetUnset)
		if l.stream {
			var ok bool
			if off, ok = fieldInt(d.Headers, argStreamOffset); !ok {
				return source.Permanent(fmt.Errorf("amqp: queue %q delivered a message without an x-stream-offset header: it is not a stream, as queue_type says (an existing queue is used as it is)", l.queue))
			}
			if off <= l.last {
				// Taken before: a broker that starts at the chunk holding the offset
				// asked for delivers the chunk's earlier messages too.
				if err := l.taken(d.DeliveryTag); err != nil {
					return err
				}
				continue
			}
			m.UpstreamID = l.queue + ":" + strconv.FormatInt(off, 10)
			if l.keeper != nil && l.emitted-l.covered >= uint64(l.cfg.Prefetch) {
				if stopped, err := l.waitRecorded(ctx); err != nil {
					return err
				} else if stopped {
					return l.goodbye()
				}
			}
		}
		if !l.afterRoute {
			if err := l.taken(d.DeliveryTag); err != nil {
				return err
			}
		}
		if err := emit(ctx, m); err != nil {
			// The router did not accept m (ctx is done, or the router stopped), and
			// everything accepted before will be routed. After routing, m and what
			// follows go back to the queue (or, for a stream, are read again from the
			// place recorded), and acknowledging in goodbye loses nothing; on receipt
			// (auto), m was counted as taken already and goodbye acknowledges it: the
			// stop loses it, as README says of that mode.
			return l.goodbye()
		}
		if l.stream {
			l.setLast(off)
			l.emitted++
			if l.keeper != nil {
				// Urgent once half the window is out: the keeper then has a save's
				// time to record it before the loop is held back.
				l.keeper.note(mark{offset: off, emitted: l.emitted}, l.emitted-l.covered >= uint64(l.cfg.Prefetch)/2)
			}
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

// flush acknowledges what is pending.
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

// stopKeeper stops the keeper, then records the last place the router took if it is not on
// disk yet, so that the next run goes on right after it.
func (l *loop) stopKeeper() error {
	if r, ok := l.keeper.stop(); ok && r.err == nil {
		l.recorded, l.covered = r.offset, r.emitted
	}
	if l.last == l.recorded || l.last == streamOffsetUnset {
		return nil
	}
	if err := l.store.Save(encodePosition(l.queue, l.last)); err != nil {
		return fmt.Errorf("amqp: record the place in stream %q: %w", l.queue, err)
	}
	l.recorded, l.covered = l.last, l.emitted
	return nil
}

// waitRecorded waits until the place on disk leaves fewer messages out than the prefetch
// window. It reports whether ctx ended first.
func (l *loop) waitRecorded(ctx context.Context) (bool, error) {
	for l.emitted-l.covered >= uint64(l.cfg.Prefetch) {
		select {
		case <-ctx.Done():
			return true, nil
		case r := <-l.saved:
			if err := l.onSaved(r); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

// onSaved takes the saver's answer: the place is on disk.
func (l *loop) onSaved(r saveResult) error {
	if r.err != nil {
		return fmt.Errorf("amqp: record the place in stream %q: %w", l.queue, r.err)
	}
	l.recorded, l.covered = r.offset, r.emitted
	return nil
}

// goodbye ends consuming when ctx is done (or the router stopped): it acknowledges what is
// pending and, in after_route mode, rejects with requeue every other outstanding delivery
// (delivery tag 0 with multiple means all of them), so that the next consumer gets what the
// router did not accept. Closing the connection, which Run does next within closeTimeout, would
// requeue them as well; the explicit reject does not depend on how the connection ends.
//
// Not so for a quorum queue, which puts rejected messages behind the others, and first
// delivers them again to this consumer if it can: there closing the connection gives them back
// in order, ahead of the rest. A stream refuses rejects (a connection error); what the router
// did not take is read again from the place recorded.
func (l *loop) goodbye() error {
	_ = l.flush()
	if l.afterRoute && l.cfg.QueueType != QueueQuorum && !l.stream {
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
	if Incurable(err) {
		return source.Permanent(err)
	}
	return err
}

// Incurable reports whether err is one that connecting again will not cure: credentials or
// permissions refused, a queue or exchange missing, a declaration that contradicts what the
// broker has, an authentication mechanism the broker does not offer, a certificate not
// trusted. The amqp sink classifies its errors by it too.
func Incurable(err error) bool {
	var aerr *amqp091.Error
	if errors.As(err, &aerr) {
		switch aerr.Code {
		case amqp091.AccessRefused, amqp091.NotFound, amqp091.PreconditionFailed, amqp091.NotAllowed:
			return true
		}
	}
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
	)
	return errors.Is(err, amqp091.ErrSASL) || errors.As(err, &unknownCA) || errors.As(err, &invalid) || errors.As(err, &hostname)
}

// CheckURL checks an AMQP URL as a url field of the configuration says it: it returns the
// URL's scheme, or an error that does not repeat the URL, which may hold a password. The amqp
// sink checks its url by it too.
func CheckURL(raw string) (scheme string, err error) {
	u, err := amqp091.ParseURI(raw)
	if err != nil {
		if uerr, ok := errors.AsType[*url.Error](err); ok {
			err = uerr.Err // url.Error repeats the URL, password included
		}
		return "", err
	}
	return u.Scheme, nil
}

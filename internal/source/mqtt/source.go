package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session/state"

	"github.com/streamux/streamux/internal/rawconn"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// The headers the source adds to a message's user properties.
const (
	ContentTypeHeader = "mqtt_content_type"
	RetainHeader      = "mqtt_retain"
)

// ReceiveMaximum is how many QoS 1 and 2 messages the source asks the broker to send at most
// ahead of their acknowledgements (MQTT 5's Receive Maximum). With a persistent session the
// source acknowledges each message as soon as the router took it, so what a source that is
// killed took without the broker knowing, and receives again, is far less.
const ReceiveMaximum = 256

// incomingSize is how many received messages wait for the router before paho's reader waits:
// the broker then holds the rest back.
const incomingSize = ReceiveMaximum

// Source reads the topics of one MQTT broker. It implements source.Source; Run is called by one
// source.Runner at a time, and Counters may be called from any goroutine.
type Source struct {
	cfg      Config // with defaults applied
	addr     string // host:port
	tls      *tls.Config
	username string
	password string
	// session is the persistent session's state on this side (clean_start: false), kept
	// across the source's connections; nil for clean sessions, whose state paho keeps with
	// each connection. Used by one Run at a time.
	session *laterAcks
	// hadSession is whether a connection of this source had its persistent session: a later
	// one that finds none on the broker has lost what the broker held for it.
	hadSession bool

	tally                              source.Tally
	redelivered, resumed, lostSessions atomic.Uint64
}

// Counters are a Source's counters since New, read at one moment, as GET /v1/sources shows them
// under adapter.
type Counters struct {
	// Messages, Bytes and Connects are every source's (source.Counters).
	source.Counters
	// Redelivered counts the messages passed on that the broker flagged as possibly sent
	// before (the DUP flag): sent again on a resumed session because their acknowledgement
	// had not reached it. Some of them the router took before; it bounds the duplicates.
	Redelivered uint64 `json:"redelivered"`
	// SessionsResumed counts the connections that found their persistent session on the
	// broker (clean_start: false).
	SessionsResumed uint64 `json:"sessions_resumed"`
	// SessionsLost counts the connections that found no session on the broker after an
	// earlier one of this source had: it expired, or the broker restarted without keeping it,
	// and with it what it held for streamux.
	SessionsLost uint64 `json:"sessions_lost"`
}

// Counters returns the source's Counters now (source.Counted). It is safe to call from any
// goroutine.
func (s *Source) Counters() any {
	return Counters{
		Counters:        s.tally.Counters(),
		Redelivered:     s.redelivered.Load(),
		SessionsResumed: s.resumed.Load(),
		SessionsLost:    s.lostSessions.Load(),
	}
}

func init() { source.Register("mqtt", New) }

var (
	_ source.Counted       = (*Source)(nil)
	_ source.Acknowledging = (*Source)(nil)
)

// AcknowledgesAfterEmit reports whether the source acknowledges a QoS 1 or 2 message only once
// its router (or, in a cluster, its log) took it: with clean_start false. source.Acknowledging.
func (s *Source) AcknowledgesAfterEmit() bool { return s.session != nil }

// laterAcks is paho's session state for a persistent session, with paho's own acknowledgement
// taken out: paho acknowledges a message when its callback returns, whatever the callback did,
// so also one that emit refused (a stop). The callback acknowledges with ack once emit returned
// nil, so that what the router did not take stays unacknowledged on the broker, which sends it
// again on the next connection to the session. (paho's EnableManualAcknowledgment would send
// the acknowledgements every 50 ms from a goroutine of its own, and a DISCONNECT can overtake
// the last of them: what the router took then comes again after a clean stop.) laterAcks also
// tells whether the connection is still there, which paho's client says only once its callbacks
// have returned.
type laterAcks struct {
	*state.State
	connected atomic.Bool
}

// ConAckReceived records that a connection is up, and lets the state resume on it.
func (l *laterAcks) ConAckReceived(w io.Writer, cp *packets.Connect, ca *packets.Connack) error {
	l.connected.Store(true)
	return l.State.ConAckReceived(w, cp, ca)
}

// ConnectionLost records that the connection is gone, as soon as paho's reader knows.
func (l *laterAcks) ConnectionLost(dp *packets.Disconnect) error {
	l.connected.Store(false)
	return l.State.ConnectionLost(dp)
}

// Ack is paho's call when its callbacks have returned: nothing.
func (*laterAcks) Ack(*packets.Publish) error { return nil }

// ack acknowledges p (PUBACK, or PUBREC for QoS 2) on the current connection, if there is one.
// The state records a QoS 2 message it acknowledged, so that the broker's resending it (with
// DUP, its PUBREC lost) is acknowledged again without being passed on twice.
func (l *laterAcks) ack(p *paho.Publish) error {
	return l.State.Ack(&packets.Publish{PacketID: p.PacketID, QoS: p.QoS})
}

// New returns a Source for c, or every problem of c (see Config.Validate) joined in one error.
// It does not connect: Run does.
func New(c Config) (*Source, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("mqtt: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	u, _ := url.Parse(d.URL) // validated
	s := &Source{cfg: d, addr: u.Host, username: d.Username, password: d.Password}
	if !*d.CleanStart {
		s.session = &laterAcks{State: state.NewInMemory()}
	}
	if u.User != nil {
		s.username = u.User.Username()
		s.password, _ = u.User.Password()
	}
	if u.Port() == "" {
		port := "1883"
		if u.Scheme == "mqtts" {
			port = "8883"
		}
		s.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if u.Scheme == "mqtts" {
		tlsc, err := d.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("mqtt: %w", err)
		}
		if tlsc == nil {
			tlsc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if tlsc.ServerName == "" {
			tlsc.ServerName = u.Hostname()
		}
		s.tls = tlsc
	}
	return s, nil
}

// Run connects, subscribes to every topic filter, and hands every message to emit until the
// connection fails (an error, so that the Runner reconnects) or ctx is done (nil, after a
// DISCONNECT). Refused credentials or subscriptions are marked source.Permanent.
//
// In a clean session paho's callback queues each message for Run's goroutine, which emits it;
// paho acknowledges it when the callback returns. With a persistent session the callback itself
// emits each message and acknowledges it (a QoS 1 or 2 one) once emit returned nil, one after
// the other, so that a stop leaves the rest unacknowledged in the broker's session; Run's
// goroutine waits, and on a stop sends DISCONNECT only once the callback has acknowledged what
// it passed on.
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	conn, err := s.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("mqtt: dial %s: %w", s.addr, err)
	}
	// paho's goroutines hand this one what they receive in a clean session, and how the
	// connection ended.
	incoming := make(chan *paho.Publish, incomingSize)
	quit := make(chan struct{})
	// Why the connection ended: the broker's DISCONNECT, which says most, or paho's error.
	serverGone, clientErr := make(chan error, 1), make(chan error, 1)
	report := func(ch chan error, err error) {
		select {
		case ch <- err:
		default:
		}
	}
	onPublish := func(pr paho.PublishReceived) (bool, error) {
		select {
		case incoming <- pr.Packet:
			return true, nil
		case <-quit:
			return false, nil
		}
	}
	// A persistent session's callback, below.
	var (
		passing sync.Mutex            // held by the callback while it passes a message on and acknowledges it
		ready   = make(chan struct{}) // closed once the source is up: the callback passes messages on
		refused = make(chan struct{}) // closed by the callback when emit failed: the router stopped
		refuse  sync.Once
	)
	if s.session != nil {
		onPublish = func(pr paho.PublishReceived) (bool, error) {
			select {
			case <-ready:
			case <-quit:
				return false, nil
			}
			passing.Lock()
			defer passing.Unlock()
			select {
			case <-quit:
				return false, nil
			default:
			}
			if !s.session.connected.Load() {
				return false, nil // could not be acknowledged: comes again
			}
			p := pr.Packet
			if err := s.emit(ctx, emit, p); err != nil {
				refuse.Do(func() { close(refused) })
				return false, nil
			}
			if p.QoS > 0 {
				// An error is a broken connection, which paho reports too; the broker
				// sends the message again to the session.
				_ = s.session.ack(p)
			}
			return true, nil
		}
	}
	pc := newPacketConn(conn)
	cc := paho.ClientConfig{
		ClientID:          s.cfg.ClientID,
		Conn:              pc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){onPublish},
		OnClientError:     func(err error) { report(clientErr, err) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			report(serverGone, classify(d.ReasonCode, fmt.Errorf("the broker disconnected: %s", reason(d.ReasonCode, d.Properties))))
		},
		PacketTimeout: s.cfg.ConnectTimeout,
	}
	if s.session != nil {
		cc.Session = s.session // kept across connections; paho does not close what it was given
	}
	c := paho.NewClient(cc)
	cp := &paho.Connect{
		ClientID:   s.cfg.ClientID,
		KeepAlive:  uint16(s.cfg.KeepAlive / time.Second),
		CleanStart: *s.cfg.CleanStart,
		// The broker is to send at most this many QoS 1 and 2 messages ahead of their
		// acks (Mosquitto 2.0 sends more once acks flow: paho's reader then waits).
		Properties:   &paho.ConnectProperties{ReceiveMaximum: ptr(uint16(ReceiveMaximum))},
		Username:     s.username,
		UsernameFlag: s.username != "",
		Password:     []byte(s.password),
		PasswordFlag: s.password != "",
	}
	if e := s.cfg.SessionExpiry; e != nil {
		cp.Properties.SessionExpiryInterval = ptr(e.seconds())
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() }) // a stop during the handshake
	ca, err := c.Connect(ctx, cp)
	stop()
	if err != nil {
		_ = conn.Close()
		if ctx.Err() != nil {
			return nil
		}
		if ca != nil && ca.ReasonCode >= 0x80 {
			return classify(ca.ReasonCode, fmt.Errorf("mqtt: connect refused: %s", reason(ca.ReasonCode, nil)))
		}
		return fmt.Errorf("mqtt: connect: %w", err)
	}
	defer func() {
		close(quit)
		if ctx.Err() != nil {
			s.disconnect(c, conn, pc, &passing)
		}
		_ = conn.Close()
		<-c.Done()
	}()
	if s.session != nil {
		switch {
		case ca.SessionPresent:
			s.resumed.Add(1)
		case s.hadSession:
			s.lostSessions.Add(1)
		}
		s.hadSession = true
	}

	// A resumed session has its subscriptions, and the broker sends its messages at once,
	// before the SUBACK: the source is up, and its callback passes them on, from now. The
	// SUBACK of the subscriptions made again (for topics added to the configuration since)
	// may wait behind them while the router is slow: its not coming within connect_timeout
	// is no error.
	resumed := s.session != nil && ca.SessionPresent
	isUp := func() {
		s.tally.Connected()
		up()
		close(ready)
	}
	if resumed {
		isUp()
	}
	subs := make([]paho.SubscribeOptions, len(s.cfg.Topics))
	for i, t := range s.cfg.Topics {
		subs[i] = paho.SubscribeOptions{Topic: t, QoS: byte(*s.cfg.QoS)}
		if s.session != nil {
			// A resumed session has the subscription already: its topic's retained message
			// came with it once, and is not sent again at every reconnect.
			subs[i].RetainHandling = 1
		}
	}
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil
	case resumed && errors.Is(err, context.DeadlineExceeded):
	default:
		if sa != nil {
			for i, code := range sa.Reasons {
				if code >= 0x80 && i < len(subs) {
					return classify(code, fmt.Errorf("mqtt: subscription to %q refused: %s", subs[i].Topic, reason(code, nil)))
				}
			}
		}
		return fmt.Errorf("mqtt: subscribe: %w", err)
	}
	if !resumed {
		isUp()
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refused:
			return nil // only a cancelled ctx or a stopped router gets here
		case p := <-incoming: // a clean session's
			if err := s.emit(ctx, emit, p); err != nil {
				return nil // only a cancelled ctx or a stopped router gets here
			}
		case err := <-serverGone:
			return s.lost(ctx, emit, c, incoming, serverGone, clientErr, err)
		case err := <-clientErr:
			return s.lost(ctx, emit, c, incoming, serverGone, clientErr, err)
		case <-c.Done():
			return s.lost(ctx, emit, c, incoming, serverGone, clientErr, nil)
		}
	}
}

// reasonGrace is how long a lost connection waits for paho to say why, which it does after
// its client has shut down.
const reasonGrace = 200 * time.Millisecond

// closeGrace is how long a stop waits for the broker to close the connection after the
// DISCONNECT.
const closeGrace = 2 * time.Second

// disconnect ends the connection of a stopped Run: once the callback has acknowledged the
// message it may be passing on (its emit returns at once, ctx being done; quit being closed, it
// takes no other), a DISCONNECT, then the end of what the source writes (TCP's FIN, TLS's
// close_notify), and it waits, at most closeGrace, for the broker to close the connection after
// reading everything: a connection closed at once while the broker still has data in flight
// is reset, and the broker may drop the acknowledgements before the DISCONNECT unread (the
// messages then come again, after a clean stop). paho's client ends when it reads the broker's
// end. A broker that reads nothing more holds a write back no longer than connect_timeout.
func (s *Source) disconnect(c *paho.Client, conn net.Conn, pc *packetConn, passing *sync.Mutex) {
	_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.ConnectTimeout))
	// Not held over the wait: paho's end waits for the callback.
	passing.Lock()
	passing.Unlock() //nolint:staticcheck // an empty critical section: a wait
	if _, err := (&paho.Disconnect{ReasonCode: 0}).Packet().WriteTo(pc); err != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
		return
	}
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-c.Done():
	case <-t.C:
	}
}

// lost ends a Run whose connection ended. In a clean session paho acknowledged what it received
// when it handed it over, so everything in incoming is passed on first (with a persistent
// session nothing comes through incoming: the callback passes on nothing more once the
// connection is gone, and the broker sends again what it had not had acknowledged). Then the
// error says why, the broker's DISCONNECT if it sent one, once paho has told.
func (s *Source) lost(ctx context.Context, emit source.Emit, c *paho.Client, incoming <-chan *paho.Publish, serverGone, clientErr <-chan error, why error) error {
	// paho's shutdown waits for its callback, which may wait for room in incoming.
	for done := false; !done; {
		select {
		case p := <-incoming:
			if err := s.emit(ctx, emit, p); err != nil {
				return nil
			}
		case <-c.Done():
			done = true
		}
	}
	for len(incoming) > 0 { // Run's goroutine is the only receiver
		if err := s.emit(ctx, emit, <-incoming); err != nil {
			return nil
		}
	}
	select {
	case err := <-serverGone:
		why = err
	case <-time.After(reasonGrace):
		if why == nil {
			select {
			case why = <-clientErr:
			default:
				return errors.New("mqtt: connection lost")
			}
		}
	}
	return fmt.Errorf("mqtt: connection lost: %w", why) // a permanent refusal stays one
}

func ptr[T any](v T) *T { return &v }

// emit turns p into a message and hands it to the router.
func (s *Source) emit(ctx context.Context, emit source.Emit, p *paho.Publish) error {
	var h map[string]string
	if p.Retain || (p.Properties != nil && (len(p.Properties.User) > 0 || p.Properties.ContentType != "")) {
		h = make(map[string]string)
		if p.Properties != nil {
			for _, up := range p.Properties.User {
				if up.Key == ContentTypeHeader || up.Key == RetainHeader {
					continue // the publisher's own would pass for the source's
				}
				if v, ok := h[up.Key]; ok {
					h[up.Key] = v + ", " + up.Value
				} else {
					h[up.Key] = up.Value
				}
			}
			if p.Properties.ContentType != "" {
				h[ContentTypeHeader] = p.Properties.ContentType
			}
		}
		if p.Retain {
			h[RetainHeader] = "true"
		}
	}
	s.tally.Passed(len(p.Payload))
	if p.Duplicate() {
		s.redelivered.Add(1)
	}
	// p.Payload is this packet's own: paho reads each packet into a bytes.Buffer of its own
	// (packets.ReadPacket), Publish.Unpack takes the payload out of it with io.ReadAll (a new
	// slice), and PublishFromPacketPublish hands that slice over; topic and properties are
	// strings.
	return emit(ctx, &stream.Message{Key: p.Topic, Headers: h, Body: p.Payload, Time: time.Now()})
}

// dial connects to the broker, with TLS for mqtts://, through rawconn.
func (s *Source) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: s.cfg.ConnectTimeout}
	c, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	c = rawconn.Wrap(c)
	if s.tls == nil {
		return c, nil
	}
	tc := tls.Client(c, s.tls)
	hctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return tc, nil
}

// reason describes an MQTT 5 reason code, with the broker's reason string if it sent one.
func reason(code byte, props *paho.DisconnectProperties) string {
	text := map[byte]string{
		0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
		0x83: "implementation specific error", 0x84: "unsupported protocol version",
		0x85: "client identifier not valid", 0x86: "bad user name or password",
		0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned",
		0x8B: "server shutting down", 0x8C: "bad authentication method", 0x8D: "keep alive timeout",
		0x8E: "session taken over", 0x8F: "topic filter invalid", 0x97: "quota exceeded",
		0x9C: "use another server", 0x9D: "server moved",
	}[code]
	if text == "" {
		text = "reason code"
	}
	out := fmt.Sprintf("%s (0x%02X)", text, code)
	if props != nil && props.ReasonString != "" {
		out += ": " + props.ReasonString
	}
	return out
}

// classify marks the refusals that retrying soon will not cure.
func classify(code byte, err error) error {
	switch code {
	case 0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C, 0x8F:
		return source.Permanent(err)
	}
	return err
}

package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/streamux/streamux/internal/rawconn"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// The headers the source adds to a message's user properties.
const (
	ContentTypeHeader = "mqtt_content_type"
	RetainHeader      = "mqtt_retain"
)

// incomingSize is how many received messages wait for the router before paho's reader waits:
// the broker then holds the rest back.
const incomingSize = 256

// Source reads the topics of one MQTT broker. It implements source.Source; Run is called by one
// source.Runner at a time, and Counters may be called from any goroutine.
type Source struct {
	cfg      Config // with defaults applied
	addr     string // host:port
	tls      *tls.Config
	username string
	password string

	tally source.Tally
}

// Counters are a Source's counters since New, read at one moment, as GET /v1/sources shows them
// under adapter.
type Counters = source.Counters

// Counters returns the source's Counters now (source.Counted). It is safe to call from any
// goroutine.
func (s *Source) Counters() any { return s.tally.Counters() }

func init() { source.Register("mqtt", New) }

var _ source.Counted = (*Source)(nil)

// New returns a Source for c, or every problem of c (see Config.Validate) joined in one error.
// It does not connect: Run does.
func New(c Config) (*Source, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("mqtt: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	u, _ := url.Parse(d.URL) // validated
	s := &Source{cfg: d, addr: u.Host, username: d.Username, password: d.Password}
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
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	conn, err := s.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("mqtt: dial %s: %w", s.addr, err)
	}
	// paho's goroutines hand this one what they receive, and how the connection ended.
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
	c := paho.NewClient(paho.ClientConfig{
		ClientID: s.cfg.ClientID,
		Conn:     packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case incoming <- pr.Packet:
				return true, nil
			case <-quit:
				return false, nil
			}
		}},
		OnClientError: func(err error) { report(clientErr, err) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			report(serverGone, classify(d.ReasonCode, fmt.Errorf("the broker disconnected: %s", reason(d.ReasonCode, d.Properties))))
		},
		PacketTimeout: s.cfg.ConnectTimeout,
	})
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() }) // a stop during the handshake
	ca, err := c.Connect(ctx, &paho.Connect{
		ClientID:   s.cfg.ClientID,
		KeepAlive:  uint16(s.cfg.KeepAlive / time.Second),
		CleanStart: true,
		// The broker sends at most this many QoS 1 and 2 messages ahead of their acks.
		Properties:   &paho.ConnectProperties{ReceiveMaximum: ptr(uint16(incomingSize))},
		Username:     s.username,
		UsernameFlag: s.username != "",
		Password:     []byte(s.password),
		PasswordFlag: s.password != "",
	})
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
			_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
		}
		_ = conn.Close()
		<-c.Done()
	}()

	subs := make([]paho.SubscribeOptions, len(s.cfg.Topics))
	for i, t := range s.cfg.Topics {
		subs[i] = paho.SubscribeOptions{Topic: t, QoS: byte(*s.cfg.QoS)}
	}
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if sa != nil {
			for i, code := range sa.Reasons {
				if code >= 0x80 && i < len(subs) {
					return classify(code, fmt.Errorf("mqtt: subscription to %q refused: %s", subs[i].Topic, reason(code, nil)))
				}
			}
		}
		return fmt.Errorf("mqtt: subscribe: %w", err)
	}
	s.tally.Connected()
	up()

	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-incoming:
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

// lost ends a Run whose connection ended: paho acknowledged what it received when it handed
// it over, so everything in incoming is passed on first; then the error says why, the
// broker's DISCONNECT if it sent one, once paho has told.
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

// Package amqp is the sink of type amqp: each matching message published again to a RabbitMQ
// exchange with a routing key made from it by a template (routing_key: "{header.region}.{key}"),
// its body as it came, persistent, and its headers as AMQP headers (strings).
//
// What acknowledges a batch: RabbitMQ's publisher confirm of every message (the channel is in
// confirm mode): the broker took it, onto disk for a persistent message in a durable queue. A
// message that no queue takes is dropped by RabbitMQ and confirmed all the same.
//
// The connection and its channel are made at the first delivery and kept across batches; once
// lost they are made again at the next. A broker that is away, a confirm that does not come in
// time and a nack are tried again; refused credentials or permissions, an exchange that does
// not exist, a message over the broker's max_message_size, and a routing key or header name
// longer than AMQP carries (255 bytes) fail the sink.
//
// Concurrency: a Sink belongs to its sink's runner goroutine; Deliver is not called twice at
// once, and Close not during a Deliver.
package amqp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sink/template"
	"github.com/streamux/streamux/internal/source"
	amqpsource "github.com/streamux/streamux/internal/source/amqp"
	"github.com/streamux/streamux/internal/stream"
)

// Defaults.
const (
	DefaultRoutingKey     = "{key}"
	DefaultHeartbeat      = 10 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultTimeout        = 10 * time.Second
	DefaultConnectionName = "streamux"
)

// Config is an amqp sink's own fields. URL is required.
type Config struct {
	// URL is the broker: amqp://user:password@host:port/vhost, or amqps://… for TLS, as for the
	// amqp source.
	URL string `yaml:"url"`
	// Exchange is the exchange to publish to; it must exist. Defaults to "", the default
	// exchange, which routes a message to the queue named by its routing key.
	Exchange string `yaml:"exchange"`
	// RoutingKey is the template of each message's routing key (package template). Defaults
	// to "{key}": the message's own key.
	RoutingKey string `yaml:"routing_key"`
	// Heartbeat is the AMQP heartbeat interval, which finds a dead broker or network within
	// three intervals. Defaults to 10s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// ConnectTimeout bounds connecting: TCP, TLS and the AMQP handshake. Defaults to 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Timeout bounds waiting for a batch's confirms. Defaults to 10s.
	Timeout time.Duration `yaml:"timeout"`
	// ConnectionName is the name RabbitMQ shows for the connection. Defaults to "streamux".
	ConnectionName string `yaml:"connection_name"`
	// TLS adds to what an amqps:// URL implies (the system's roots, the URL's host name).
	TLS source.TLS `yaml:"tls"`
}

func (c Config) withDefaults() Config {
	if c.RoutingKey == "" {
		c.RoutingKey = DefaultRoutingKey
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ConnectionName == "" {
		c.ConnectionName = DefaultConnectionName
	}
	return c
}

// maxShort is the longest an AMQP short string is: an exchange, a routing key, a header name.
const maxShort = 255

// Validate returns every problem with c, each naming its field.
func (c *Config) Validate() []error {
	d := c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	scheme := ""
	if d.URL == "" {
		bad("url is required (amqp://user:password@host:5672/vhost)")
	} else if s, err := amqpsource.CheckURL(d.URL); err != nil {
		bad("url: %v", err)
	} else {
		scheme = s
	}
	if len(d.Exchange) > maxShort {
		bad("exchange: %d bytes, over %d", len(d.Exchange), maxShort)
	}
	if t, err := template.Parse(d.RoutingKey); err != nil {
		bad("routing_key %q: %v", d.RoutingKey, err)
	} else if n := len(t.Sample()); n > maxShort {
		bad("routing_key %q: %d bytes, over %d", d.RoutingKey, n, maxShort)
	}
	if d.Heartbeat < 0 {
		bad("heartbeat %v: must not be negative", d.Heartbeat)
	}
	if d.ConnectTimeout < 0 {
		bad("connect_timeout %v: must not be negative", d.ConnectTimeout)
	}
	if d.Timeout < 0 {
		bad("timeout %v: must not be negative", d.Timeout)
	}
	if !d.TLS.IsZero() {
		if scheme == "amqp" {
			bad("tls is set but the url is amqp://: use amqps://")
		}
		for _, err := range d.TLS.Validate() {
			bad("%v", err)
		}
	}
	return errs
}

// Sink publishes batches of events to one exchange. Create it with New.
type Sink struct {
	cfg Config // with defaults
	key *template.Template
	tls *tls.Config

	conn *conn // nil until the first delivery, and after it was lost
	pubs []amqp091.Publishing
	keys []string
}

// conn is a connection and its channel in confirm mode, with their close notifications.
type conn struct {
	c          *amqp091.Connection
	ch         *amqp091.Channel
	connClosed chan *amqp091.Error
	chClosed   chan *amqp091.Error
}

func init() {
	sink.Register("amqp", func(c Config, _ sink.Env) (*Sink, error) { return New(c) })
}

// New returns a sink for c, which must be valid. It does not connect: the first delivery does.
func New(c Config) (*Sink, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("amqp: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	tlsc, err := d.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("amqp: %w", err)
	}
	return &Sink{cfg: d, key: template.MustParse(d.RoutingKey), tls: tlsc}, nil
}

// Deliver publishes the messages of evs, in order, and returns once the broker confirmed them
// all. Gap events are not published: the sink's gaps are counted and logged by streamux.
func (s *Sink) Deliver(ctx context.Context, evs []*stream.Event) error {
	s.pubs, s.keys = s.pubs[:0], s.keys[:0]
	for _, ev := range evs {
		m := ev.Msg
		if m == nil {
			continue
		}
		key := s.key.Render(m)
		if len(key) > maxShort {
			return sink.Permanent(fmt.Errorf("amqp: message %s: routing key %.40q… (from %q) is %d bytes, over %d", m.ID(), key, s.cfg.RoutingKey, len(key), maxShort))
		}
		p := amqp091.Publishing{Body: m.Payload(), DeliveryMode: amqp091.Persistent}
		if len(m.Headers) > 0 {
			p.Headers = make(amqp091.Table, len(m.Headers))
			for k, v := range m.Headers {
				if len(k) > maxShort {
					return sink.Permanent(fmt.Errorf("amqp: message %s: header name %.40q… is %d bytes, over %d", m.ID(), k, len(k), maxShort))
				}
				p.Headers[k] = v
			}
		}
		s.pubs, s.keys = append(s.pubs, p), append(s.keys, key)
	}
	if len(s.pubs) == 0 {
		return nil
	}
	if s.conn == nil {
		c, err := s.dial(ctx)
		if err != nil {
			return err
		}
		s.conn = c
	}
	err := s.publish(ctx)
	clear(s.pubs)
	if err != nil && (s.conn.c.IsClosed() || s.conn.ch.IsClosed()) {
		s.Close()
	}
	return err
}

// publish sends the batch and waits for its confirms.
func (s *Sink) publish(ctx context.Context) error {
	confirms := make([]*amqp091.DeferredConfirmation, 0, len(s.pubs))
	for i := range s.pubs {
		dc, err := s.conn.ch.PublishWithDeferredConfirmWithContext(ctx, s.cfg.Exchange, s.keys[i], false, false, s.pubs[i])
		if err != nil {
			return s.closed(err)
		}
		confirms = append(confirms, dc)
	}
	t := time.NewTimer(s.cfg.Timeout)
	defer t.Stop()
	for _, dc := range confirms {
		select {
		case <-dc.Done():
		case <-t.C:
			return sink.Retry(fmt.Errorf("amqp: exchange %q: no confirm within %v", s.cfg.Exchange, s.cfg.Timeout), 0)
		case <-ctx.Done():
			return ctx.Err()
		}
		if !dc.Acked() {
			return s.closed(errors.New("the broker did not take a message (nack)"))
		}
	}
	return nil
}

// closed is why a publish failed: the broker's reason for closing the channel or the
// connection when it closed them, else err.
func (s *Sink) closed(err error) error {
	select {
	case e := <-s.conn.chClosed:
		if e != nil {
			err = e
		}
	case e := <-s.conn.connClosed:
		if e != nil {
			err = e
		}
	default:
	}
	return classify(fmt.Errorf("amqp: exchange %q: %w", s.cfg.Exchange, err))
}

// dial connects and opens a channel in confirm mode.
func (s *Sink) dial(ctx context.Context) (*conn, error) {
	props := amqp091.NewConnectionProperties()
	props.SetClientConnectionName(s.cfg.ConnectionName)
	cfg := amqp091.Config{
		Heartbeat:       s.cfg.Heartbeat,
		TLSClientConfig: s.tls,
		Properties:      props,
		Locale:          "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: s.cfg.ConnectTimeout}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// amqp091 clears the deadline once the handshake is over.
			if err := c.SetDeadline(time.Now().Add(s.cfg.ConnectTimeout)); err != nil {
				_ = c.Close()
				return nil, err
			}
			return c, nil
		},
	}
	if s.tls != nil && len(s.tls.Certificates) > 0 {
		if u, err := url.Parse(s.cfg.URL); err == nil && u.User == nil {
			cfg.SASL = []amqp091.Authentication{&amqp091.ExternalAuth{}}
		}
	}
	c, err := amqp091.DialConfig(s.cfg.URL, cfg)
	if err != nil {
		return nil, classify(fmt.Errorf("amqp: connect: %w", err))
	}
	cn := &conn{c: c, connClosed: c.NotifyClose(make(chan *amqp091.Error, 1))}
	if cn.ch, err = c.Channel(); err == nil {
		cn.chClosed = cn.ch.NotifyClose(make(chan *amqp091.Error, 1))
		err = cn.ch.Confirm(false)
	}
	if err != nil {
		_ = c.Close()
		return nil, classify(fmt.Errorf("amqp: open a channel in confirm mode: %w", err))
	}
	return cn, nil
}

// classify marks the errors that trying again will not cure permanent: refused credentials or
// permissions, a missing exchange, a message too large, a certificate not trusted; every other
// error is tried again.
func classify(err error) error {
	if amqpsource.Incurable(err) {
		return sink.Permanent(err)
	}
	return sink.Retry(err, 0)
}

// Close closes the channel and the connection.
func (s *Sink) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.c.Close()
	s.conn = nil
	if errors.Is(err, amqp091.ErrClosed) {
		err = nil
	}
	return err
}

// Package nats is the sink of type nats: each matching message published again to a NATS
// subject made from it by a template (subject: "orders.{header.region}.{key}"), with its body
// as it came and its headers as NATS headers.
//
// What acknowledges a batch: for a subject that a JetStream stream binds, the stream's PubAck
// for every message (stored, replicated as the stream is); for any other subject, the server's
// answer to a PING sent after the batch, which says it received and processed every message
// before it (core NATS keeps nothing: a subject with no subscriber drops them). Whether a
// stream binds a subject is asked of JetStream (jetstream unset), or set: jetstream: true
// publishes every message to JetStream, and a subject no stream binds fails the sink;
// jetstream: false never waits for a PubAck.
//
// The connection is made at the first delivery and kept across batches; one that is lost is
// made again at the next. A server that is away, a PubAck that does not come in time or a
// stream that refuses for a passing reason (full, no leader) are tried again; refused
// credentials or permissions, a message over the server's max_payload or the stream's
// max_msg_size, a rendered subject that is not one (empty, an empty token, a wildcard,
// whitespace) and a header name that NATS cannot carry fail the sink.
//
// Concurrency: a Sink belongs to its sink's runner goroutine; Deliver is not called twice at
// once, and Close not during a Deliver.
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
	"github.com/nats-io/nats.go/jetstream"

	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sink/template"
	natssource "github.com/streamux/streamux/internal/source/nats"
	"github.com/streamux/streamux/internal/stream"
)

// Config is a nats sink's own fields.
type Config struct {
	// Conn is the server: url, token, creds_file, connect_timeout, ping_interval,
	// connection_name and tls, as for the nats source.
	natssource.Conn `yaml:",inline"`
	// Subject is the template of each message's subject (package template): "orders.{key}",
	// "events.{source}.{header.region}". Required.
	Subject string `yaml:"subject"`
	// JetStream says how a message is published. Unset: to JetStream, waiting for its
	// PubAck, when a stream binds its subject (asked of the server once a minute per subject),
	// else as core NATS. true: always to JetStream; a subject that no stream binds fails the
	// sink. false: always as core NATS.
	JetStream *bool `yaml:"jetstream"`
	// Timeout bounds waiting for a batch's acknowledgement (the PubAcks, or the PING's
	// answer). Defaults to 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultTimeout is Config.Timeout when none is given.
const DefaultTimeout = 10 * time.Second

// Validate returns every problem with c, each naming its field.
func (c *Config) Validate() []error {
	errs := c.Conn.Validate()
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Subject == "" {
		bad(`subject is required: a subject, or a template such as "orders.{key}"`)
	} else if t, err := template.Parse(c.Subject); err != nil {
		bad("subject %q: %v", c.Subject, err)
	} else if err := checkSubject(t.Sample()); err != nil {
		bad("subject %q: %v", c.Subject, err)
	}
	if c.Timeout < 0 {
		bad("timeout %v: must not be negative", c.Timeout)
	}
	return errs
}

// Sink publishes batches of events to NATS. Create it with New.
type Sink struct {
	cfg     Config // with defaults
	subject *template.Template
	opts    []natsgo.Option

	conn  *conn // nil until the first delivery, and after a connection is lost
	bound map[string]boundAt
	msgs  []*natsgo.Msg // the batch's messages, kept between batches to reuse
}

// boundAt is whether a stream binds a subject, as JetStream said at a time.
type boundAt struct {
	bound bool
	at    time.Time
}

// boundFor is how long JetStream's answer about a subject is kept.
const boundFor = time.Minute

// maxBound bounds how many subjects' answers are kept: past it they are all asked again.
const maxBound = 10000

func init() {
	sink.Register("nats", func(c Config, _ sink.Env) (*Sink, error) { return New(c) })
}

// New returns a sink for c, which must be valid. It does not connect: the first delivery does.
func New(c Config) (*Sink, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("nats: %w", errors.Join(errs...))
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	opts, err := c.Conn.Options()
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	return &Sink{cfg: c, subject: template.MustParse(c.Subject), opts: opts, bound: make(map[string]boundAt)}, nil
}

// Deliver publishes the messages of evs, in order, and returns once the server acknowledged
// them all. Gap events are not published: the sink's gaps are counted and logged by streamux.
func (s *Sink) Deliver(ctx context.Context, evs []*stream.Event) error {
	s.msgs = s.msgs[:0]
	for _, ev := range evs {
		if ev.Msg == nil {
			continue
		}
		m, err := s.message(ev.Msg)
		if err != nil {
			return sink.Permanent(fmt.Errorf("nats: message %s: %w", ev.Msg.ID(), err))
		}
		s.msgs = append(s.msgs, m)
	}
	if len(s.msgs) == 0 {
		return nil
	}
	if s.conn == nil {
		c, err := s.dial(ctx)
		if err != nil {
			return err
		}
		s.conn = c
	}
	err := s.publish(ctx, s.msgs)
	clear(s.msgs)
	if err != nil && !s.conn.nc.IsConnected() {
		s.conn.close()
		s.conn = nil
	}
	return err
}

// message is m as NATS publishes it, or why it cannot be.
func (s *Sink) message(m *stream.Message) (*natsgo.Msg, error) {
	subj := s.subject.Render(m)
	if err := checkSubject(subj); err != nil {
		return nil, fmt.Errorf("subject %q (from %q): %w", subj, s.cfg.Subject, err)
	}
	out := &natsgo.Msg{Subject: subj, Data: m.Payload()}
	if len(m.Headers) > 0 {
		out.Header = make(natsgo.Header, len(m.Headers))
		for k, v := range m.Headers {
			if !validHeaderName(k) {
				return nil, fmt.Errorf("header %q: a NATS header name is printable ASCII without spaces or any of \"(),/:;<=>?@[\\]{}", k)
			}
			out.Header[k] = []string{v}
		}
	}
	return out, nil
}

// publish sends msgs and waits for their acknowledgement.
func (s *Sink) publish(ctx context.Context, msgs []*natsgo.Msg) error {
	c := s.conn
	// A publish the server refuses (permissions) is an error it sends, which nats.go keeps as
	// its last before it reads the PING's answer.
	before := c.nc.LastError()
	deadline := time.Now().Add(s.cfg.Timeout)
	acks := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		js, err := s.toJetStream(ctx, m.Subject)
		if err != nil {
			return err
		}
		if !js {
			if err := c.nc.PublishMsg(m); err != nil {
				return s.publishError(m, err)
			}
			continue
		}
		// The async window is at most pubWindow: wait for the window's acks before going on.
		if len(acks) == pubWindow {
			if err := s.await(ctx, acks, deadline); err != nil {
				return err
			}
			acks = acks[:0]
		}
		f, err := c.js.PublishMsgAsync(m, jetstream.WithRetryAttempts(0))
		if err != nil {
			return s.publishError(m, err)
		}
		acks = append(acks, f)
	}
	// The PING's answer comes after the server processed everything before it; its errors
	// (a permission refused) come before the answer.
	fctx, cancel := context.WithDeadline(ctx, deadline)
	err := c.nc.FlushWithContext(fctx)
	cancel()
	if err != nil {
		return sink.Retry(fmt.Errorf("nats: %s: waiting for the server to acknowledge the batch: %w", s.cfg.URL, err), 0)
	}
	if err := c.nc.LastError(); err != nil && err != before && !strings.Contains(err.Error(), "$JS.API") {
		return classify(fmt.Errorf("nats: the server refused: %w", err))
	}
	if len(acks) > 0 {
		return s.await(ctx, acks, deadline)
	}
	return nil
}

// pubWindow is how many JetStream publishes may wait for their PubAck at once.
const pubWindow = 1024

// await waits for every PubAck of acks, until deadline.
func (s *Sink) await(ctx context.Context, acks []jetstream.PubAckFuture, deadline time.Time) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return s.ackError(ctx, f.Msg(), err)
		case <-t.C:
			return sink.Retry(fmt.Errorf("nats: subject %s: no PubAck from JetStream within %v", f.Msg().Subject, s.cfg.Timeout), 0)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ackError classifies a JetStream publish that was refused.
func (s *Sink) ackError(ctx context.Context, m *natsgo.Msg, err error) error {
	wrapped := fmt.Errorf("nats: subject %s: JetStream: %w", m.Subject, err)
	var api *jetstream.APIError
	switch {
	case errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return sink.Permanent(fmt.Errorf("%w (a message of %d bytes)", wrapped, len(m.Data)))
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		// The stream is gone, or away a moment (a leader election): ask again.
		delete(s.bound, m.Subject)
		if s.cfg.JetStream != nil && *s.cfg.JetStream {
			if _, err := s.conn.js.StreamNameBySubject(ctx, m.Subject); errors.Is(err, jetstream.ErrStreamNotFound) {
				return sink.Permanent(fmt.Errorf("nats: subject %s: no JetStream stream binds it (jetstream: true)", m.Subject))
			}
		}
	}
	return sink.Retry(wrapped, 0)
}

// publishError classifies a publish that nats.go refused.
func (s *Sink) publishError(m *natsgo.Msg, err error) error {
	switch {
	case errors.Is(err, natsgo.ErrMaxPayload):
		return sink.Permanent(fmt.Errorf("nats: subject %s: a message of %d bytes is over the server's max_payload (%d)", m.Subject, len(m.Data), s.conn.nc.MaxPayload()))
	case errors.Is(err, natsgo.ErrBadHeaderMsg), errors.Is(err, natsgo.ErrBadSubject):
		return sink.Permanent(fmt.Errorf("nats: subject %s: %w", m.Subject, err))
	}
	return sink.Retry(fmt.Errorf("nats: %s: %w", s.cfg.URL, err), 0)
}

// toJetStream reports whether the message to subj is published to JetStream.
func (s *Sink) toJetStream(ctx context.Context, subj string) (bool, error) {
	if s.cfg.JetStream != nil {
		return *s.cfg.JetStream, nil
	}
	if s.conn.noJetStream {
		return false, nil
	}
	if b, ok := s.bound[subj]; ok && time.Since(b.at) < boundFor {
		return b.bound, nil
	}
	// A user that may not use the JetStream API has its request refused, with no answer:
	// the refusal ends the wait.
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	denied := s.conn.jsDenied
	go func() { // ends when the lookup does (cancel, deferred)
		select {
		case <-denied:
			cancel(errJetStreamDenied)
		case <-lctx.Done():
		}
	}()
	_, err := s.conn.js.StreamNameBySubject(lctx, subj)
	bound := err == nil
	switch {
	case errors.Is(context.Cause(lctx), errJetStreamDenied):
		s.conn.noJetStream = true
		return false, nil
	case err == nil, errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount), errors.Is(err, natsgo.ErrNoResponders):
	default:
		return false, sink.Retry(fmt.Errorf("nats: asking JetStream whether a stream binds %s: %w", subj, err), 0)
	}
	if len(s.bound) >= maxBound {
		clear(s.bound)
	}
	s.bound[subj] = boundAt{bound: bound, at: time.Now()}
	return bound, nil
}

// errJetStreamDenied is the cause of a lookup that the server refused: the user may not use the
// JetStream API, and so publishes as core NATS.
var errJetStreamDenied = errors.New("the JetStream API is not permitted")

// Close closes the connection.
func (s *Sink) Close() error {
	if s.conn != nil {
		s.conn.close()
		s.conn = nil
	}
	return nil
}

// conn is one connection: nats.go's and its JetStream.
type conn struct {
	nc     *natsgo.Conn
	js     jetstream.JetStream
	closed chan struct{} // closed once nats.go has closed nc and run its last callback
	// jsDenied is closed when the server refused a request to the JetStream API; noJetStream
	// records it, for the runner's goroutine.
	jsDenied    chan struct{}
	denyOnce    sync.Once
	noJetStream bool
}

// close closes the connection and waits for nats.go's last callback.
func (c *conn) close() {
	c.nc.Close()
	<-c.closed
}

// dial connects; refused credentials are permanent, anything else is tried again.
func (s *Sink) dial(ctx context.Context) (*conn, error) {
	c := &conn{closed: make(chan struct{}), jsDenied: make(chan struct{})}
	var once sync.Once
	opts := append(s.opts[:len(s.opts):len(s.opts)],
		natsgo.SetCustomDialer(dialer{ctx: ctx, timeout: s.cfg.ConnectTimeout}),
		natsgo.ClosedHandler(func(*natsgo.Conn) { once.Do(func() { close(c.closed) }) }),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
			if errors.Is(err, natsgo.ErrPermissionViolation) && strings.Contains(err.Error(), "$JS.API") {
				c.denyOnce.Do(func() { close(c.jsDenied) })
			}
		}),
	)
	nc, err := natsgo.Connect(s.cfg.URL, opts...)
	if err != nil {
		return nil, classify(fmt.Errorf("nats: connect to %s: %w", redact(s.cfg.URL), err))
	}
	c.nc = nc
	c.js, err = jetstream.New(nc, jetstream.WithPublishAsyncTimeout(s.cfg.Timeout), jetstream.WithPublishAsyncMaxPending(pubWindow),
		jetstream.WithDefaultTimeout(s.cfg.Timeout))
	if err != nil {
		c.close()
		return nil, sink.Permanent(fmt.Errorf("nats: %w", err))
	}
	return c, nil
}

// classify marks the errors that trying again will not cure (credentials, permissions)
// permanent, and every other one to be tried again.
func classify(err error) error {
	for _, perm := range []error{natsgo.ErrAuthorization, natsgo.ErrAuthExpired, natsgo.ErrAuthRevoked, natsgo.ErrPermissionViolation} {
		if errors.Is(err, perm) || strings.Contains(strings.ToLower(err.Error()), strings.TrimPrefix(perm.Error(), "nats: ")) {
			return sink.Permanent(err)
		}
	}
	return sink.Retry(err, 0)
}

// redact is the server list without what a URL may hold of credentials.
func redact(urls string) string {
	var out []string
	for u := range strings.SplitSeq(urls, ",") {
		u = strings.TrimSpace(u)
		if scheme, rest, ok := strings.Cut(u, "://"); ok {
			if at := strings.LastIndexByte(rest, '@'); at >= 0 {
				u = scheme + "://…@" + rest[at+1:]
			}
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}

// dialer dials the server, watching ctx while it connects.
type dialer struct {
	ctx     context.Context
	timeout time.Duration
}

func (d dialer) Dial(network, address string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout, KeepAlive: 30 * time.Second}
	return nd.DialContext(d.ctx, network, address)
}

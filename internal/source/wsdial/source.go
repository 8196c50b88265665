package wsdial

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/valyala/fastjson"

	"github.com/streamux/streamux/internal/poison"
	"github.com/streamux/streamux/internal/rawconn"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/stream"
)

// writeTimeout bounds each write: an on_connect frame, a ping, the closing frame.
const writeTimeout = 5 * time.Second

// Source reads one upstream WebSocket. It implements source.Source; Run is called by one
// source.Runner at a time, and Counters may be called from any goroutine.
type Source struct {
	cfg    Config // with defaults applied
	dialer *websocket.Dialer
	header http.Header
	path   Path // nil: no key

	frames       atomic.Uint64
	bytes        atomic.Uint64
	oversize     atomic.Uint64
	decodeErrors atomic.Uint64
	connects     atomic.Uint64
}

// Counters are a Source's counters since New, read at one moment, as GET /v1/sources shows them
// under adapter.
type Counters struct {
	// Messages counts the messages passed on; Bytes their bodies' total size.
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// Oversize counts the messages discarded for being larger than read_limit.
	Oversize uint64 `json:"oversize"`
	// DecodeErrors counts the messages passed on with the key "" because, with key set, they
	// were not JSON.
	DecodeErrors uint64 `json:"decode_errors"`
	// Connects counts the connections that got as far as sending on_connect.
	Connects uint64 `json:"connects"`
}

// Counters returns the source's Counters now (source.Counted). It is safe to call from any
// goroutine.
func (s *Source) Counters() any {
	return Counters{
		Messages:     s.frames.Load(),
		Bytes:        s.bytes.Load(),
		Oversize:     s.oversize.Load(),
		DecodeErrors: s.decodeErrors.Load(),
		Connects:     s.connects.Load(),
	}
}

// The websocket type is this package: it dials an upstream WebSocket, and its name keeps it apart
// from transport/ws, which serves clients (inputs and outputs never share a name).
func init() { source.Register("websocket", New) }

var _ source.Counted = (*Source)(nil)

// New returns a Source for c, or every problem of c (see Config.Validate) joined in one error.
// It does not connect: Run does.
func New(c Config) (*Source, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("wsdial: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	tlsc, err := d.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("wsdial: %w", err)
	}
	s := &Source{
		cfg: d,
		dialer: &websocket.Dialer{
			Proxy:             http.ProxyFromEnvironment,
			HandshakeTimeout:  d.HandshakeTimeout,
			Subprotocols:      d.Subprotocols,
			EnableCompression: d.Compression,
			TLSClientConfig:   tlsc,
			NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return rawconn.Wrap(c), nil
			},
		},
		header: http.Header{},
	}
	for k, v := range d.Headers {
		s.header.Set(k, v)
	}
	// User information is Basic authentication: gorilla refuses a URL that carries it, with
	// "malformed ws or wss URL", which would be retried for ever (validated above).
	if u, err := url.Parse(d.URL); err == nil && u.User != nil {
		pw, _ := u.User.Password()
		s.header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)))
		u.User = nil
		s.cfg.URL = u.String()
	}
	if d.Key != "" {
		s.path, _ = ParsePath(d.Key) // validated
	}
	return s, nil
}

// Run dials the upstream, sends the on_connect frames, and hands every message to emit until
// the connection fails (an error, so that the Runner reconnects) or ctx is done (nil, after a
// closing handshake). A handshake refused with a 4xx status (but 408 and 429) and a certificate
// that does not verify are marked source.Permanent.
func (s *Source) Run(ctx context.Context, up func(), emit source.Emit) error {
	conn, resp, err := s.dialer.DialContext(ctx, s.cfg.URL, s.header)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return dialError(err, resp)
	}
	// On cancellation: the closing handshake, then close, which ends any read or write.
	stop := afterFunc(ctx, func() {
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = conn.Close()
	})
	quit, pinging := make(chan struct{}), make(chan struct{})
	defer func() {
		stop()
		close(quit)
		_ = conn.Close()
		<-pinging
	}()

	// Nothing (a message or a pong) for ping_interval + pong_timeout: the upstream is dead.
	silence := s.cfg.PingInterval + s.cfg.PongTimeout
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(silence)) })
	// Waited for by the deferred cleanup above, after quit is closed.
	go s.ping(conn, quit, pinging)

	for i, f := range s.cfg.OnConnect {
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := conn.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("wsdial: send on_connect frame %d: %w", i+1, err)
		}
	}
	s.connects.Add(1)
	up()

	r := reader{limit: s.cfg.ReadLimit}
	var parser fastjson.Parser
	for {
		_ = conn.SetReadDeadline(time.Now().Add(silence))
		_, msg, err := conn.NextReader()
		if err != nil {
			return s.readError(ctx, err, silence)
		}
		body, err := r.read(msg)
		if errors.Is(err, errTooLarge) {
			s.oversize.Add(1)
			// Subscribers are told with a gap, in its place among the messages.
			if err := emit(ctx, &stream.Message{Lost: 1}); err != nil {
				return nil // stopping: ctx ended, or the router stopped
			}
			continue
		}
		if err != nil {
			return s.readError(ctx, err, silence)
		}
		m := &stream.Message{Body: body, Time: time.Now()} // body is its own: reader.read
		if s.path != nil {
			key, ok := s.path.Key(&parser, body)
			if !ok {
				s.decodeErrors.Add(1)
			}
			m.Key = key
		}
		s.frames.Add(1)
		s.bytes.Add(uint64(len(body)))
		if err := emit(ctx, m); err != nil {
			return nil // ctx is done
		}
	}
}

// ping sends a ping every ping_interval until quit is closed or a write fails (the reader then
// fails too).
func (s *Source) ping(conn *websocket.Conn, quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				return
			}
		}
	}
}

func (s *Source) readError(ctx context.Context, err error, silence time.Duration) error {
	if ctx.Err() != nil {
		return nil
	}
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return fmt.Errorf("wsdial: the upstream closed the connection: %w", err)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("wsdial: nothing from the upstream for %v, not even a pong: %w", silence, err)
	}
	return fmt.Errorf("wsdial: read: %w", err)
}

// dialError describes a failed dial, with the status and the start of the body when the
// upstream refused the upgrade, and marks it permanent if retrying soon will not cure it.
func dialError(err error, resp *http.Response) error {
	if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		body = bytes.TrimSpace(body)
		err = fmt.Errorf("wsdial: handshake refused: HTTP %s", resp.Status)
		if len(body) > 0 {
			err = fmt.Errorf("%w: %q", err, body)
		}
		if c := resp.StatusCode; c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests {
			return source.Permanent(err)
		}
		return err
	}
	err = fmt.Errorf("wsdial: dial: %w", err)
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		verify    *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &invalid) || errors.As(err, &hostname) || errors.As(err, &verify) {
		return source.Permanent(err)
	}
	return err
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

var errTooLarge = errors.New("message larger than read_limit")

// reader reads whole messages into a scratch buffer that it reuses, and returns each as a copy
// of its exact size: the next message is read into the same scratch, and a body lives on in the
// history. A message over the limit is read to its end and dropped, so that the connection stays
// usable, and never buffered beyond limit+1 bytes. What gorilla/websocket's message reader
// hands over is the caller's: it copies from its own read buffer (or inflates) into room.
type reader struct {
	limit   int64
	scratch []byte
}

func (r *reader) read(msg io.Reader) ([]byte, error) {
	buf := r.scratch[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		room := buf[len(buf):cap(buf)]
		if over := int64(len(buf)) + int64(len(room)) - (r.limit + 1); over > 0 {
			room = room[:int64(len(room))-over]
		}
		n, err := msg.Read(room)
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > r.limit {
			r.scratch = buf[:0]
			if _, err := io.Copy(io.Discard, msg); err != nil {
				return nil, err
			}
			return nil, errTooLarge
		}
		if err == io.EOF {
			r.scratch = buf[:0]
			body := bytes.Clone(buf)
			poison.Bytes(r.scratch)
			return body, nil
		}
		if err != nil {
			r.scratch = buf[:0]
			return nil, err
		}
	}
}

package nats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/streamux/streamux/internal/rawconn"
	"github.com/streamux/streamux/internal/source"
)

// Conn is how a source reaches its NATS server: the settings the nats and jetstream types share,
// inline in each one's configuration. URL is required; every other field has a working default.
type Conn struct {
	// URL is the server: nats://host:4222, or tls://host:4222 for TLS; several, comma-separated,
	// are tried in turn. A user and password (nats://user:pass@host) or a token
	// (nats://token@host) may be in it.
	URL string `yaml:"url"`
	// Token authenticates with a token, instead of one in the URL.
	Token string `yaml:"token"`
	// CredsFile is a NATS credentials file (a user JWT and its NKey seed), for servers with
	// decentralised authentication.
	CredsFile string `yaml:"creds_file"`
	// ConnectTimeout bounds connecting: TCP, TLS and the NATS handshake; and, for a stream,
	// each JetStream request that sets up the consumer. Defaults to 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// PingInterval is how often the source pings the server; two pings unanswered and the
	// connection is given up as dead. Defaults to 20s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// ConnectionName names the connection on the server (nats-server's connz). Defaults to
	// "streamux".
	ConnectionName string `yaml:"connection_name"`
	// TLS adds to what a tls:// URL implies (the system's roots, the URL's host name); set,
	// it makes the connection TLS whatever the scheme.
	TLS TLS `yaml:"tls"`
}

// TLS is the client side of TLS, shared by every source that dials a server.
type TLS = source.TLS

func (c Conn) withDefaults() Conn {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.ConnectionName == "" {
		c.ConnectionName = DefaultConnectionName
	}
	return c
}

// Validate reports every problem of the connection's settings, each naming its field.
func (c *Conn) Validate() []error {
	d := c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	userInfo := false
	if d.URL == "" {
		bad("url is required (nats://host:4222)")
	}
	for raw := range strings.SplitSeq(d.URL, ",") {
		if d.URL == "" {
			break
		}
		u, err := url.Parse(strings.TrimSpace(raw))
		switch {
		case err != nil:
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // url.Error repeats the URL, which may hold a password
			}
			bad("url: %v", err)
		case u.Scheme != "nats" && u.Scheme != "tls":
			bad("url: the scheme must be nats or tls, not %q", u.Scheme)
		case u.Host == "":
			bad("url: no host")
		default:
			userInfo = userInfo || u.User != nil
		}
	}
	if d.Token != "" && (d.CredsFile != "" || userInfo) {
		bad("token: give one credential: a token, a creds_file or a user in the url")
	}
	if d.CredsFile != "" {
		if userInfo {
			bad("creds_file: give one credential: a creds_file or a user in the url")
		}
		if _, err := os.Stat(d.CredsFile); err != nil {
			bad("creds_file: %v", err)
		}
	}
	if d.ConnectTimeout < 0 {
		bad("connect_timeout %v: must not be negative", d.ConnectTimeout)
	}
	if d.PingInterval < 0 {
		bad("ping_interval %v: must not be negative", d.PingInterval)
	}
	for _, err := range d.TLS.Validate() {
		bad("%v", err)
	}
	return errs
}

// Options are nats.go's options for c, its defaults applied: its name, timeouts, pings,
// credentials and TLS, and no reconnecting by nats.go, since its user reconnects with its own
// backoff (the source.Runner; the nats sink, at its next delivery). c must be valid.
func (c Conn) Options() ([]natsgo.Option, error) { return c.withDefaults().options() }

// options are nats.go's options for c (defaults applied): the Runner reconnects, with its
// backoff, so nats.go does not.
func (c Conn) options() ([]natsgo.Option, error) {
	opts := []natsgo.Option{
		natsgo.Name(c.ConnectionName),
		natsgo.Timeout(c.ConnectTimeout),
		natsgo.NoReconnect(),
		natsgo.PingInterval(c.PingInterval),
		natsgo.MaxPingsOutstanding(2),
	}
	tlsc, err := c.TLS.Config()
	if err != nil {
		return nil, err
	}
	if tlsc != nil {
		opts = append(opts, natsgo.Secure(tlsc))
	}
	if c.Token != "" {
		opts = append(opts, natsgo.Token(c.Token))
	}
	if c.CredsFile != "" {
		opts = append(opts, natsgo.UserCredentials(c.CredsFile))
	}
	return opts, nil
}

// conn is one connection of a Run: nats.go's, and closed, closed once nats.go has closed it and
// run its last callback.
type conn struct {
	nc     *natsgo.Conn
	closed chan struct{}
}

// dial connects to c's server (defaults applied) with opts (c.options()). nats.go's
// asynchronous errors other than slow consumers, which the sources count, go to onErr, from
// nats.go's goroutine: onErr must not block. The connection is closed when ctx is done while
// connecting, so that a stop during a slow handshake does not wait for its timeout.
func dial(ctx context.Context, c Conn, opts []natsgo.Option, onErr func(error)) (*conn, error) {
	cn := &conn{closed: make(chan struct{})}
	var closeOnce sync.Once
	opts = append(opts[:len(opts):len(opts)],
		natsgo.SetCustomDialer(dialer{ctx: ctx, timeout: c.ConnectTimeout}),
		natsgo.ClosedHandler(func(*natsgo.Conn) { closeOnce.Do(func() { close(cn.closed) }) }),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
			if !errors.Is(err, natsgo.ErrSlowConsumer) {
				onErr(err)
			}
		}),
	)
	nc, err := natsgo.Connect(c.URL, opts...)
	if err != nil {
		return nil, err
	}
	cn.nc = nc
	return cn, nil
}

// close closes the connection and waits for its last callback.
func (c *conn) close() {
	c.nc.Close()
	<-c.closed
}

// lost is the error of a connection that nats.go closed: why, as far as it knows.
func (c *conn) lost() error {
	err := c.nc.LastError()
	if err == nil {
		err = errors.New("closed by the server")
	}
	return fmt.Errorf("connection lost: %w", err)
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

// headerMap turns NATS headers into a message's, several values of one name joined with ", ",
// with room for extra more; nil for none and no room wanted.
func headerMap(h natsgo.Header, extra int) map[string]string {
	if len(h) == 0 && extra == 0 {
		return nil
	}
	m := make(map[string]string, len(h)+extra)
	for k, vs := range h {
		m[k] = strings.Join(vs, ", ")
	}
	return m
}

package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/rawconn"
	"github.com/streamux/streamux/internal/source"
)

// Conn is how a source reaches one Redis server: the settings that the source types redis and
// redis-streams share. The redis-streams configuration inlines it (its keys url,
// connect_timeout and tls are the same as the redis type's); the redis type's Config carries
// the same fields and hands them over (Config.conn).
type Conn struct {
	// URL is the server: redis://[user:password@]host:6379[/db], or rediss://… for TLS.
	URL string `yaml:"url"`
	// ConnectTimeout bounds connecting: TCP, TLS and the handshake. Defaults to 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// TLS adds to what a rediss:// URL implies (the system's roots, the URL's host name).
	TLS TLS `yaml:"tls"`
}

func (c Conn) withDefaults() Conn {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	return c
}

// Validate reports every problem of c, each naming its field.
func (c Conn) Validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	scheme := ""
	if c.URL == "" {
		bad("url is required (redis://host:6379)")
	} else if _, err := goredis.ParseURL(c.URL); err != nil {
		bad("url: %v", redact(err, c.URL))
	} else {
		scheme, _, _ = strings.Cut(c.URL, "://")
	}
	if c.ConnectTimeout < 0 {
		bad("connect_timeout %v: must not be negative", c.ConnectTimeout)
	}
	if !c.TLS.IsZero() {
		if scheme == "redis" {
			bad("tls is set but the url is redis://: use rediss://")
		}
		for _, err := range c.TLS.Validate() {
			bad("%v", err)
		}
	}
	return errs
}

// Options returns go-redis's options for c, for RunClient: the URL's, with c's TLS, dials and
// writes bounded by the connect timeout, each read by readTimeout (the handshake's included),
// no retries of go-redis's own and one connection, pipelines included, since the source.Runner
// reconnects, with its backoff. c must be valid (Validate).
func (c Conn) Options(readTimeout time.Duration) (*goredis.Options, error) {
	d := c.withDefaults()
	opt, err := goredis.ParseURL(d.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", redact(err, d.URL))
	}
	tlsc, err := d.TLS.Config()
	if err != nil {
		return nil, err
	}
	if tlsc != nil {
		if opt.TLSConfig != nil && tlsc.ServerName == "" {
			tlsc.ServerName = opt.TLSConfig.ServerName
		}
		opt.TLSConfig = tlsc
	}
	opt.DialTimeout = d.ConnectTimeout
	opt.ReadTimeout = readTimeout
	opt.WriteTimeout = d.ConnectTimeout
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	opt.PoolSize = 1
	opt.PipelinePoolSize = -1 // pipelines on that connection too, not a pool of their own
	return opt, nil
}

// RunClient returns a client of opt (from Conn.Options) for one Run of a source. It dials one
// connection, closed when ctx is done, which ends a read or a handshake in progress (go-redis
// waits out only deadlines), and never another: once that connection fails, every command
// fails, and the source.Runner connects again instead, with its backoff.
func RunClient(ctx context.Context, opt goredis.Options) *goredis.Client {
	var dialed atomic.Bool
	opt.Dialer = func(_ context.Context, network, addr string) (net.Conn, error) {
		if dialed.Load() {
			return nil, errors.New("redis: connection lost")
		}
		c, err := dial(ctx, &opt, network, addr)
		dialed.Store(err == nil)
		return c, err
	}
	return goredis.NewClient(&opt)
}

// dial connects to the server, with TLS if opt has it, through rawconn; the connection is
// closed when ctx is done.
func dial(ctx context.Context, opt *goredis.Options, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: opt.DialTimeout}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c = source.CloseOnDone(ctx, rawconn.Wrap(c))
	if opt.TLSConfig == nil {
		return c, nil
	}
	tc := tls.Client(c, opt.TLSConfig)
	hctx, cancel := context.WithTimeout(ctx, opt.DialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return tc, nil
}

// Classify marks the errors that retrying soon will not cure, refused credentials (WRONGPASS,
// NOAUTH, NOPERM), as source.Permanent.
func Classify(err error) error {
	msg := err.Error()
	for _, code := range []string{"WRONGPASS", "NOAUTH", "NOPERM"} {
		if strings.Contains(msg, code) {
			return source.Permanent(err)
		}
	}
	return err
}

// redact removes the URL, which may hold a password, from go-redis's error about it.
func redact(err error, rawURL string) error {
	return errors.New(strings.ReplaceAll(err.Error(), rawURL, "(the url)"))
}

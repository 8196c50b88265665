package redis

import (
	"fmt"
	"time"

	"github.com/streamux/streamux/internal/source"
)

// Defaults.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultPingInterval   = 30 * time.Second
)

// Config configures one Redis source. Its YAML field names are part of the configuration
// contract; the config package decodes them strictly. URL and at least one channel or pattern
// are required; every other field has a working default.
type Config struct {
	// URL is the server: redis://[user:password@]host:6379[/db], or rediss://… for TLS.
	URL string `yaml:"url"`
	// Channels are subscribed to by name (SUBSCRIBE).
	Channels []string `yaml:"channels"`
	// Patterns are glob-style channel patterns (PSUBSCRIBE): "orders.*", "ticks.?.eu".
	Patterns []string `yaml:"patterns"`
	// ConnectTimeout bounds connecting and subscribing. Defaults to 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// PingInterval is how long the source waits for a message before it pings the server; a
	// ping unanswered for as long again and the connection is given up as dead. Defaults to 30s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// TLS adds to what a rediss:// URL implies (the system's roots, the URL's host name).
	TLS TLS `yaml:"tls"`
}

// TLS is the client side of TLS, shared by every source that dials a server.
type TLS = source.TLS

func (c Config) withDefaults() Config {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	return c
}

// conn is c's connection settings, as the redis-streams type shares them.
func (c Config) conn() Conn {
	return Conn{URL: c.URL, ConnectTimeout: c.ConnectTimeout, TLS: c.TLS}
}

// Validate reports every problem of c at once, each naming its field. Defaults are applied
// first, so a zero field is never a problem unless it is required.
func (c *Config) Validate() []error {
	d := c.withDefaults()
	errs := d.conn().Validate()
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(d.Channels) == 0 && len(d.Patterns) == 0 {
		bad(`channels or patterns is required: at least one channel ("orders") or pattern ("orders.*")`)
	}
	for _, ch := range d.Channels {
		if ch == "" {
			bad("channels: an empty channel name")
		}
	}
	for _, p := range d.Patterns {
		if p == "" {
			bad("patterns: an empty pattern")
		}
	}
	if d.PingInterval < 0 {
		bad("ping_interval %v: must not be negative", d.PingInterval)
	}
	return errs
}

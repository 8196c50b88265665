package wsdial

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/streamux/streamux/internal/source"
)

// Defaults.
const (
	DefaultPingInterval     = 30 * time.Second
	DefaultPongTimeout      = 10 * time.Second
	DefaultReadLimit        = 1 << 20 // 1 MiB
	DefaultHandshakeTimeout = 10 * time.Second
)

// Config configures one upstream WebSocket source. Its YAML field names are part of the
// configuration contract; the config package decodes them strictly. URL is required; every
// other field has a working default.
type Config struct {
	// URL is the upstream: ws://… or wss://… (TLS). An HTTP(S)_PROXY in the environment is used.
	// User information in it (wss://user:password@host/…) is sent as HTTP Basic
	// authentication (Authorization: Basic …) and left out of the URL dialled, as WebSocket
	// URLs may not carry it (RFC 6455).
	URL string `yaml:"url"`
	// Headers are sent with the opening handshake, for authentication (Authorization, a token,
	// Origin, Cookie…). The handshake's own headers (Upgrade, Connection, Sec-WebSocket-*) may
	// not be set here; use Subprotocols for Sec-WebSocket-Protocol.
	Headers map[string]string `yaml:"headers"`
	// Subprotocols are offered in Sec-WebSocket-Protocol, in order of preference.
	Subprotocols []string `yaml:"subprotocols"`
	// OnConnect are text frames sent, in order, after each connect and before the source is
	// up: a subscribe or login request, as upstream feeds need.
	OnConnect []string `yaml:"on_connect"`
	// Key is a dotted JSON path (see Path) in each message whose value becomes the message's
	// key: "channel", "data.symbol". Empty: the key is "". A message that is not JSON gets the
	// key "" and is counted in Counters.DecodeErrors; it is passed on all the same.
	Key string `yaml:"key"`
	// PingInterval is how often the source pings the upstream. Defaults to 30s.
	PingInterval time.Duration `yaml:"ping_interval"`
	// PongTimeout is how long past a ping a silent upstream is given (no pong, no message)
	// before the connection is given up as dead. Defaults to 10s.
	PongTimeout time.Duration `yaml:"pong_timeout"`
	// ReadLimit is the largest message accepted, in bytes (after decompression). A larger one
	// is discarded and counted in Counters.Oversize, and the connection kept. Defaults to 1 MiB.
	ReadLimit int64 `yaml:"read_limit"`
	// HandshakeTimeout bounds connecting: TCP, TLS and the HTTP upgrade. Defaults to 10s.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// Compression offers permessage-deflate (RFC 7692); it is used if the upstream accepts.
	Compression bool `yaml:"compression"`
	// TLS adds to what a wss:// URL implies (the system's roots, the URL's host name).
	TLS TLS `yaml:"tls"`
}

// TLS is the client side of TLS, shared by every source that dials a server.
type TLS = source.TLS

// reserved are the handshake headers gorilla/websocket sets itself.
var reserved = map[string]bool{
	"Upgrade": true, "Connection": true, "Sec-Websocket-Key": true, "Sec-Websocket-Version": true,
	"Sec-Websocket-Extensions": true, "Sec-Websocket-Protocol": true,
}

func (c Config) withDefaults() Config {
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = DefaultPongTimeout
	}
	if c.ReadLimit == 0 {
		c.ReadLimit = DefaultReadLimit
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	return c
}

// Validate reports every problem of c at once, each naming its field. Defaults are applied
// first, so a zero field is never a problem unless it is required.
func (c *Config) Validate() []error {
	d := c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	scheme := ""
	if d.URL == "" {
		bad("url is required (ws://host/path or wss://host/path)")
	} else if u, err := url.Parse(d.URL); err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL, which may hold a token
		}
		bad("url: %v", err)
	} else if u.Scheme != "ws" && u.Scheme != "wss" {
		bad("url: the scheme must be ws or wss, not %q", u.Scheme)
	} else if u.Host == "" {
		bad("url: no host")
	} else {
		scheme = u.Scheme
		if u.User != nil {
			for name := range d.Headers {
				if http.CanonicalHeaderKey(name) == "Authorization" {
					bad("url: user information in the url is sent as Authorization: Basic, and headers sets Authorization too: keep one")
				}
			}
		}
	}
	for name, v := range d.Headers {
		canon := http.CanonicalHeaderKey(name)
		switch {
		case !validHeaderName(name):
			bad("headers: %q is not a valid header name", name)
		case reserved[canon]:
			bad("headers: %s is set by the WebSocket handshake itself", canon)
		case strings.ContainsAny(v, "\r\n\x00"):
			bad("headers: the value of %s contains a line break", canon)
		}
	}
	for _, p := range d.Subprotocols {
		if p == "" || !validHeaderName(p) {
			bad("subprotocols: %q is not a valid subprotocol token", p)
		}
	}
	if d.Key != "" {
		if _, err := ParsePath(d.Key); err != nil {
			bad("key: %v", err)
		}
	}
	if d.PingInterval < 0 {
		bad("ping_interval %v: must not be negative", d.PingInterval)
	}
	if d.PongTimeout < 0 {
		bad("pong_timeout %v: must not be negative", d.PongTimeout)
	}
	if d.ReadLimit < 0 {
		bad("read_limit %d: must not be negative", d.ReadLimit)
	}
	if d.HandshakeTimeout < 0 {
		bad("handshake_timeout %v: must not be negative", d.HandshakeTimeout)
	}
	if !d.TLS.IsZero() {
		if scheme == "ws" {
			bad("tls is set but the url is ws://: use wss://")
		}
		for _, err := range d.TLS.Validate() {
			bad("%v", err)
		}
	}
	return errs
}

// validHeaderName reports whether s is an HTTP token (RFC 9110).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

package nats

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/streamux/streamux/internal/source"
)

// Defaults.
const (
	DefaultPending        = 65536
	DefaultConnectTimeout = 10 * time.Second
	DefaultPingInterval   = 20 * time.Second
	DefaultConnectionName = "streamux"
)

// Config configures one NATS source. Its YAML field names are part of the configuration
// contract; the config package decodes them strictly. URL and Subjects are required; every
// other field has a working default.
type Config struct {
	// URL is the server: nats://host:4222, or tls://host:4222 for TLS; several, comma-separated,
	// are tried in turn. A user and password (nats://user:pass@host) or a token
	// (nats://token@host) may be in it.
	URL string `yaml:"url"`
	// Subjects are the subjects to subscribe to, with NATS wildcards: "orders.>", "ticks.*.eu".
	Subjects []string `yaml:"subjects"`
	// QueueGroup, if set, subscribes as a member of this queue group: the streamux instances of
	// one group share the messages, each receiving some, instead of each receiving them all.
	QueueGroup string `yaml:"queue_group"`
	// Token authenticates with a token, instead of one in the URL.
	Token string `yaml:"token"`
	// CredsFile is a NATS credentials file (a user JWT and its NKey seed), for servers with
	// decentralised authentication.
	CredsFile string `yaml:"creds_file"`
	// Pending is how many received messages the source holds while its router is busy. Past
	// it, NATS (which delivers at most once) drops messages, counted in the source's
	// adapter.dropped. Defaults to 65,536.
	Pending int `yaml:"pending"`
	// ConnectTimeout bounds connecting: TCP, TLS and the NATS handshake. Defaults to 10s.
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

func (c Config) withDefaults() Config {
	if c.Pending == 0 {
		c.Pending = DefaultPending
	}
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

// Validate reports every problem of c at once, each naming its field. Defaults are applied
// first, so a zero field is never a problem unless it is required.
func (c *Config) Validate() []error {
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
	if len(d.Subjects) == 0 {
		bad(`subjects is required: at least one subject, such as "orders.>"`)
	}
	for _, s := range d.Subjects {
		if err := checkSubject(s); err != nil {
			bad("subjects: %q: %v", s, err)
		}
	}
	if strings.ContainsAny(d.QueueGroup, " \t\r\n") {
		bad("queue_group %q: must not contain spaces", d.QueueGroup)
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
	if d.Pending < 0 {
		bad("pending %d: must be positive", d.Pending)
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

// checkSubject checks a subscription subject: dot-separated tokens, none empty, no spaces, "*"
// a whole token, ">" a whole token and the last one.
func checkSubject(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return errors.New("must not contain spaces")
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return errors.New("an empty token (two dots, or a dot at an end)")
		case t == ">" && i != len(tokens)-1:
			return errors.New(`">" must be the last token`)
		case len(t) > 1 && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("wildcards are whole tokens: %q", t)
		}
	}
	return nil
}

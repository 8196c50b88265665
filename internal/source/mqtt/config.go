package mqtt

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/source"
)

// Defaults.
const (
	DefaultQoS            = 1
	DefaultKeepAlive      = 30 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	// DefaultSessionExpiry is how long the broker keeps a persistent session (clean_start:
	// false) after its connection ended, unless session_expiry says otherwise.
	DefaultSessionExpiry = Expiry(24 * time.Hour)
)

// Config configures one MQTT source. Its YAML field names are part of the configuration
// contract; the config package decodes them strictly. URL and Topics are required; every other
// field has a working default.
type Config struct {
	// URL is the broker: mqtt://host:1883, or mqtts://host:8883 for TLS. A user and password
	// may be in it (mqtt://user:pass@host:1883).
	URL string `yaml:"url"`
	// Topics are the topic filters to subscribe to, with MQTT wildcards: "sensors/+/temp",
	// "orders/#".
	Topics []string `yaml:"topics"`
	// QoS is the subscriptions' maximum quality of service: 0, 1 or 2. Defaults to 1.
	QoS *int `yaml:"qos"`
	// ClientID identifies the connection to the broker, and the session it resumes. Defaults
	// to "streamux-" and random hex digits, different for each source and each start of
	// streamux; required with CleanStart false, where the broker finds the session by it.
	ClientID string `yaml:"client_id"`
	// CleanStart false resumes the session the broker keeps for ClientID (its subscriptions
	// and the QoS 1 and 2 messages that came while streamux was not connected), and asks it to
	// keep the session SessionExpiry after each connection ends; the source then acknowledges
	// a message only once the router took it. Defaults to true: each connection starts a
	// session of its own that ends with it.
	CleanStart *bool `yaml:"clean_start"`
	// SessionExpiry is how long the broker keeps the session after a connection ended, with
	// CleanStart false: seconds (3600), a duration ("1h") or "never". Defaults to
	// DefaultSessionExpiry.
	SessionExpiry *Expiry `yaml:"session_expiry"`
	// Username and Password authenticate, instead of a user in the URL.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// KeepAlive is the MQTT keep-alive: the source pings a quiet broker this often and gives
	// the connection up when a ping goes unanswered. Defaults to 30s.
	KeepAlive time.Duration `yaml:"keep_alive"`
	// ConnectTimeout bounds connecting: TCP, TLS and the MQTT handshake. Defaults to 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// TLS adds to what an mqtts:// URL implies (the system's roots, the URL's host name).
	TLS TLS `yaml:"tls"`
}

// TLS is the client side of TLS, shared by every source that dials a server.
type TLS = source.TLS

// Expiry is an MQTT session expiry interval: whole seconds, at most 4,294,967,294 (about 136
// years), or ExpiryNever. In YAML it is a number of seconds (3600), a duration ("1h") or never.
type Expiry time.Duration

// ExpiryNever is a session that does not expire: MQTT's 4,294,967,295 seconds.
const ExpiryNever = Expiry(math.MaxUint32 * time.Second)

// UnmarshalYAML reads seconds, a duration or never. A problem is a *yaml.TypeError naming the
// line, as yaml's own are, so that the configuration reports it with the others.
func (e *Expiry) UnmarshalYAML(n *yaml.Node) error {
	bad := func(format string, args ...any) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: session_expiry ", n.Line) + fmt.Sprintf(format, args...)}}
	}
	if n.Kind != yaml.ScalarNode {
		return bad(`is seconds (3600), a duration ("1h") or never`)
	}
	v := strings.TrimSpace(n.Value)
	if v == "never" {
		*e = ExpiryNever
		return nil
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 || secs > math.MaxUint32 {
			return bad("%s: seconds between 1 and 4294967294, or never", v)
		}
		*e = Expiry(time.Duration(secs) * time.Second)
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return bad(`%q is not seconds (3600), a duration ("1h") or never`, v)
	}
	*e = Expiry(d)
	return nil
}

// String writes e as a duration, or never.
func (e Expiry) String() string {
	if e == ExpiryNever {
		return "never"
	}
	return time.Duration(e).String()
}

// seconds is e as the CONNECT packet's Session Expiry Interval.
func (e Expiry) seconds() uint32 { return uint32(time.Duration(e) / time.Second) }

func (c Config) withDefaults() Config {
	if c.QoS == nil {
		q := DefaultQoS
		c.QoS = &q
	}
	if c.CleanStart == nil {
		clean := true
		c.CleanStart = &clean
	}
	if c.SessionExpiry == nil && !*c.CleanStart {
		e := DefaultSessionExpiry
		c.SessionExpiry = &e
	}
	if c.ClientID == "" && *c.CleanStart {
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.ClientID = "streamux-" + hex.EncodeToString(b[:])
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	return c
}

// Validate reports every problem of c at once, each naming its field. Defaults are applied
// first, so a zero field is never a problem unless it is required.
func (c *Config) Validate() []error {
	d := c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	scheme, userInfo := "", false
	if d.URL == "" {
		bad("url is required (mqtt://host:1883)")
	} else if u, err := url.Parse(d.URL); err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL, which may hold a password
		}
		bad("url: %v", err)
	} else if u.Scheme != "mqtt" && u.Scheme != "mqtts" {
		bad("url: the scheme must be mqtt or mqtts, not %q", u.Scheme)
	} else if u.Host == "" {
		bad("url: no host")
	} else {
		scheme, userInfo = u.Scheme, u.User != nil
	}
	if len(d.Topics) == 0 {
		bad(`topics is required: at least one topic filter, such as "sensors/#"`)
	}
	for _, t := range d.Topics {
		if err := checkFilter(t); err != nil {
			bad("topics: %q: %v", t, err)
		}
	}
	if q := *d.QoS; q < 0 || q > 2 {
		bad("qos %d: must be 0, 1 or 2", q)
	}
	if len(d.ClientID) > 65535 {
		bad("client_id is longer than 65,535 bytes")
	}
	if !*d.CleanStart && d.ClientID == "" {
		bad("client_id is required with clean_start: false: the broker finds the session by it, and a random one would change at every start")
	}
	if e := d.SessionExpiry; e != nil {
		switch {
		case *d.CleanStart:
			bad("session_expiry %v is set but clean_start is true: every connection starts a new session; set clean_start: false to keep one", *e)
		case *e == ExpiryNever:
		case *e < Expiry(time.Second) || *e >= ExpiryNever:
			bad("session_expiry %v: must be between 1s and 4294967294s (about 136 years), or never", *e)
		case time.Duration(*e)%time.Second != 0:
			bad("session_expiry %v: must be whole seconds", *e)
		}
	}
	if userInfo && (d.Username != "" || d.Password != "") {
		bad("username: give the user once: in the url or in username and password")
	}
	if d.Password != "" && d.Username == "" {
		bad("password without username")
	}
	if d.KeepAlive < time.Second || d.KeepAlive > 65535*time.Second {
		bad("keep_alive %v: must be between 1s and 18h12m15s", d.KeepAlive)
	}
	if d.ConnectTimeout < 0 {
		bad("connect_timeout %v: must not be negative", d.ConnectTimeout)
	}
	if !d.TLS.IsZero() {
		if scheme == "mqtt" {
			bad("tls is set but the url is mqtt://: use mqtts://")
		}
		for _, err := range d.TLS.Validate() {
			bad("%v", err)
		}
	}
	return errs
}

// checkFilter checks a topic filter: not empty, no NUL, "#" alone as the last level, "+"
// alone in its level.
func checkFilter(f string) error {
	if f == "" {
		return errors.New("empty")
	}
	if strings.ContainsRune(f, 0) {
		return errors.New("contains a NUL character")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return errors.New(`"#" must be the last level`)
		case len(l) > 1 && strings.ContainsAny(l, "#+"):
			return fmt.Errorf("wildcards are whole levels: %q", l)
		}
	}
	return nil
}

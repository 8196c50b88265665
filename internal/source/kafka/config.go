package kafka

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/streamux/streamux/internal/source"
)

// Defaults.
const (
	DefaultClientID       = "streamux"
	DefaultConnectTimeout = 10 * time.Second
	StartLatest           = "latest"
	StartEarliest         = "earliest"
)

// The SASL mechanisms the source speaks.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Config configures one Kafka source. Its YAML field names are part of the configuration
// contract; the config package decodes them strictly. Brokers and Topics are required; every
// other field has a working default.
type Config struct {
	// Brokers are the seed brokers, host:port; the others are found from them.
	Brokers []string `yaml:"brokers"`
	// Topics are the topics to read.
	Topics []string `yaml:"topics"`
	// Group, if set, reads as a member of this consumer group: the partitions are shared with
	// the group's other members, and the offsets of the records taken are committed, so that a
	// restart resumes after them.
	Group string `yaml:"group"`
	// Start is where reading begins when there is no committed offset (always, without a
	// group): "latest" (the default: only what comes next) or "earliest".
	Start string `yaml:"start"`
	// ClientID names the client to the brokers. Defaults to "streamux".
	ClientID string `yaml:"client_id"`
	// ConnectTimeout bounds each dial and the first contact with a broker. Defaults to 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// SASL authenticates to the brokers.
	SASL SASL `yaml:"sasl"`
	// TLSEnabled dials the brokers with TLS; setting any tls field implies it.
	TLSEnabled bool `yaml:"tls_enabled"`
	// TLS is the client side of TLS.
	TLS TLS `yaml:"tls"`
}

// SASL is SASL authentication: a mechanism and its credentials.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// TLS is the client side of TLS, shared by every source that dials a server.
type TLS = source.TLS

func (c Config) withDefaults() Config {
	if c.Start == "" {
		c.Start = StartLatest
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if !c.TLS.IsZero() {
		c.TLSEnabled = true
	}
	return c
}

// Validate reports every problem of c at once, each naming its field. Defaults are applied
// first, so a zero field is never a problem unless it is required.
func (c *Config) Validate() []error {
	d := c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(d.Brokers) == 0 {
		bad(`brokers is required: at least one, such as "127.0.0.1:9092"`)
	}
	for _, b := range d.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad("brokers: %q: want host:port", b)
		}
	}
	if len(d.Topics) == 0 {
		bad("topics is required: at least one topic")
	}
	for _, t := range d.Topics {
		if t == "" || len(t) > 249 || strings.Trim(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			bad("topics: %q is not a topic name (letters, digits, '.', '_' and '-', at most 249)", t)
		}
	}
	if d.Start != StartLatest && d.Start != StartEarliest {
		bad(`start %q: want "latest" or "earliest"`, d.Start)
	}
	if d.ConnectTimeout < 0 {
		bad("connect_timeout %v: must not be negative", d.ConnectTimeout)
	}
	switch d.SASL.Mechanism {
	case "":
		if d.SASL.Username != "" || d.SASL.Password != "" {
			bad("sasl: a username or password without a mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if d.SASL.Username == "" {
			bad("sasl.username is required with sasl.mechanism %s", d.SASL.Mechanism)
		}
	default:
		bad("sasl.mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", d.SASL.Mechanism)
	}
	for _, err := range d.TLS.Validate() {
		bad("%v", err)
	}
	return errs
}

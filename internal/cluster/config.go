package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/yamlstrict"
)

// Defaults of Config.
const (
	DefaultStreamPrefix    = "STREAMUX_"
	DefaultReplicas        = 1
	DefaultStorage         = StorageFile
	DefaultMaxAge          = 24 * time.Hour
	DefaultLeaseTTL        = 5 * time.Second
	DefaultLeasePoll       = 250 * time.Millisecond
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultConnectTimeout  = 10 * time.Second
	DefaultConnectionName  = "streamux-cluster"
)

// Storage kinds of a source's log.
const (
	StorageFile   = "file"
	StorageMemory = "memory"
)

// maxPrefix keeps every stream name within JetStream's 255 bytes: a source name of 64 bytes
// escapes to at most 192 (see StreamName).
const maxPrefix = 255 - 3*64

// Config is the cluster: block of the configuration. Without it streamux runs alone; with it,
// every source's messages go through a replicated log in NATS JetStream (see the package
// doc). Its YAML field names are part of the configuration contract (API.md, "Several
// nodes"); Decode reads it strictly. Only NATS.URL is required: every other field has a
// working default, and Validate applies the defaults before it checks.
type Config struct {
	// NATS is how to reach the JetStream servers.
	NATS NATS `yaml:"nats"`
	// StreamPrefix begins the name of every source's stream, <prefix><SOURCE NAME> (see
	// StreamName), and of the lease bucket, <prefix>LEASES. Letters, digits, '-' and '_'.
	// Defaults to "STREAMUX_".
	StreamPrefix string `yaml:"stream_prefix"`
	// Replicas is how many servers keep each log: 1, or 3 to survive the loss of one server.
	// Defaults to 1.
	Replicas int `yaml:"replicas"`
	// Storage is where the servers keep the logs: "file" (survives a server's restart) or
	// "memory". Defaults to "file".
	Storage string `yaml:"storage"`
	// MaxAge is how long a source's log keeps a message. Defaults to 24h.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes bounds each source's log in bytes, forgetting the oldest messages beyond it.
	// Defaults to 0: no bound but max_age (and the server's own limits).
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxMsgs bounds each source's log in messages, forgetting the oldest beyond it.
	// Defaults to 0: no bound but max_age.
	MaxMsgs int64 `yaml:"max_msgs"`
	// DuplicateWindow is how long the log remembers a message's id (an ingest
	// Idempotency-Key, an envelope's "id", or the id streamux gives every message so that it
	// can resend one safely), so that a message sent twice within it is stored once. The
	// servers keep each id for that long: about 100 bytes a message, so 2m at 10,000 msg/s
	// holds some 120 MB on each replica. At most max_age. Defaults to 2m.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// LeaseTTL is how long a node holds a source that it reads upstream (RabbitMQ, Kafka, …)
	// without renewing: it renews every third of it, and if it stops (killed, paused,
	// partitioned), another node takes over within LeaseTTL and a LeasePoll. Every node must
	// use the same. Defaults to 5s.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// LeasePoll is how often a node that does not hold a source's lease looks whether it is
	// free (nats-server 2.9 tells no watcher when a lease expires). Defaults to 250ms, or
	// lease_ttl/4 if that is less.
	LeasePoll time.Duration `yaml:"lease_poll"`
	// Node is this node's name, shown as the holder of the sources it reads upstream. It
	// must differ between nodes. Defaults to the host name and the port streamux listens on
	// (see WithDefaults).
	Node string `yaml:"node"`
}

// NATS is how the cluster reaches its JetStream servers: the credentials and TLS of the nats
// source, under the names API.md gives them.
type NATS struct {
	// URL is one server or several, comma-separated, tried in turn: nats://host:4222, or
	// tls://host:4222 for TLS. A user and password (nats://user:pass@host) or a token
	// (nats://token@host) may be in it. Required.
	URL string `yaml:"url"`
	// Creds is a NATS credentials file (a user JWT and its NKey seed), for servers with
	// decentralised authentication.
	Creds string `yaml:"creds"`
	// Token authenticates with a token.
	Token string `yaml:"token"`
	// User and Password authenticate with a user name and password. Both or neither.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// TLS adds to what a tls:// URL implies (the system's roots, the URL's host name); set,
	// it makes the connection TLS whatever the scheme.
	TLS source.TLS `yaml:"tls"`
	// ConnectTimeout bounds connecting to one server: TCP, TLS and the NATS handshake.
	// Defaults to 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ConnectionName names the connection on the servers. Defaults to "streamux-cluster".
	ConnectionName string `yaml:"connection_name"`
}

// Decode reads a cluster: block strictly: a key that Config has no field for is a problem
// naming its line, as the config package reports a source's. A type error (a word where a
// duration belongs) is one too; the rest is decoded all the same, so that Validate can add
// its own problems.
func Decode(n *yaml.Node) (Config, []string) {
	var c Config
	problems := yamlstrict.UnknownFields(n, reflect.TypeFor[Config](), nil)
	if err := n.Decode(&c); err != nil {
		if te, ok := errors.AsType[*yaml.TypeError](err); ok {
			problems = append(problems, te.Errors...)
		} else {
			problems = append(problems, fmt.Sprintf("line %d: %s", n.Line, strings.TrimPrefix(err.Error(), "yaml: ")))
		}
	}
	return c, problems
}

// WithDefaults returns c with every default applied. listen is the address streamux serves
// on, whose port names the node when Node is empty: "<host name>:<port>".
func (c Config) WithDefaults(listen string) Config {
	if c.StreamPrefix == "" {
		c.StreamPrefix = DefaultStreamPrefix
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Storage == "" {
		c.Storage = DefaultStorage
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = min(DefaultDuplicateWindow, c.MaxAge)
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.LeasePoll == 0 {
		c.LeasePoll = min(DefaultLeasePoll, c.LeaseTTL/4)
	}
	if c.NATS.ConnectTimeout == 0 {
		c.NATS.ConnectTimeout = DefaultConnectTimeout
	}
	if c.NATS.ConnectionName == "" {
		c.NATS.ConnectionName = DefaultConnectionName
	}
	if c.Node == "" {
		c.Node = DefaultNode(listen)
	}
	return c
}

// DefaultNode is a node's name when none is configured: the host name and the port of
// listen ("web-1:8080"), or the host name alone when listen has no port.
func DefaultNode(listen string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "streamux"
	}
	if _, port, err := net.SplitHostPort(listen); err == nil && port != "" {
		return host + ":" + port
	}
	return host
}

// Validate reports every problem of c at once, each naming its field. Defaults are applied
// first, so a zero field is a problem only when it is required.
func (c *Config) Validate() []error {
	d := c.WithDefaults("")
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	userInfo := false
	if strings.TrimSpace(d.NATS.URL) == "" {
		bad("nats.url is required (nats://host:4222)")
	} else {
		for raw := range strings.SplitSeq(d.NATS.URL, ",") {
			u, err := url.Parse(strings.TrimSpace(raw))
			switch {
			case err != nil:
				if uerr, ok := errors.AsType[*url.Error](err); ok {
					err = uerr.Err // url.Error repeats the URL, which may hold a password
				}
				bad("nats.url: %v", err)
			case u.Scheme != "nats" && u.Scheme != "tls":
				bad("nats.url: the scheme must be nats or tls, not %q", u.Scheme)
			case u.Host == "":
				bad("nats.url: no host")
			default:
				userInfo = userInfo || u.User != nil
			}
		}
	}
	creds := 0
	for _, set := range []bool{d.NATS.Creds != "", d.NATS.Token != "", d.NATS.User != "" || d.NATS.Password != "", userInfo} {
		if set {
			creds++
		}
	}
	if creds > 1 {
		bad("nats: give one credential: creds, token, user and password, or a user in the url")
	}
	if (d.NATS.User == "") != (d.NATS.Password == "") {
		bad("nats: user and password go together")
	}
	if d.NATS.Creds != "" {
		if _, err := os.Stat(d.NATS.Creds); err != nil {
			bad("nats.creds: %v", err)
		}
	}
	for _, err := range d.NATS.TLS.Validate() {
		bad("nats.%v", err)
	}
	if d.NATS.ConnectTimeout < 0 {
		bad("nats.connect_timeout %v: must not be negative", d.NATS.ConnectTimeout)
	}
	if len(d.StreamPrefix) > maxPrefix {
		bad("stream_prefix: at most %d bytes, so that every stream name fits JetStream's 255", maxPrefix)
	}
	for _, r := range d.StreamPrefix {
		if !nameByte(r) {
			bad("stream_prefix %q: only letters, digits, '-' and '_'", d.StreamPrefix)
			break
		}
	}
	if d.Replicas != 1 && d.Replicas != 3 {
		bad("replicas %d: 1 or 3", d.Replicas)
	}
	if d.Storage != StorageFile && d.Storage != StorageMemory {
		bad("storage %q: file or memory", d.Storage)
	}
	if d.MaxAge < 0 {
		bad("max_age %v: must be positive", d.MaxAge)
	}
	if d.MaxBytes < 0 {
		bad("max_bytes %d: must not be negative", d.MaxBytes)
	}
	if d.MaxMsgs < 0 {
		bad("max_msgs %d: must not be negative", d.MaxMsgs)
	}
	if d.DuplicateWindow < 0 {
		bad("duplicate_window %v: must be positive", d.DuplicateWindow)
	} else if d.MaxAge > 0 && d.DuplicateWindow > d.MaxAge {
		bad("duplicate_window %v: at most max_age (%v)", d.DuplicateWindow, d.MaxAge)
	}
	if d.LeaseTTL < 0 {
		bad("lease_ttl %v: must be positive", d.LeaseTTL)
	} else if d.LeaseTTL > 0 && d.LeaseTTL < 300*time.Millisecond {
		bad("lease_ttl %v: at least 300ms, so that a renewal every third of it has time to reach the servers", d.LeaseTTL)
	}
	if d.LeasePoll < 0 {
		bad("lease_poll %v: must be positive", d.LeasePoll)
	}
	if strings.ContainsFunc(d.Node, func(r rune) bool { return r < 0x20 || r == 0x7f }) || len(d.Node) > 256 {
		bad("node %q: at most 256 bytes, no control characters", d.Node)
	}
	return errs
}

// nameByte reports whether r may be in a stream name as it is: letters, digits, '-', '_'.
func nameByte(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// String shows c as the log shows it, without secrets.
func (c Config) String() string {
	return "cluster{nats=" + redactURLs(c.NATS.URL) + " prefix=" + c.StreamPrefix + " replicas=" +
		strconv.Itoa(c.Replicas) + " storage=" + c.Storage + " node=" + c.Node + "}"
}

// redactURLs replaces the user information of each URL with "***".
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, raw := range parts {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			parts[i] = "?"
			continue
		}
		if u.User != nil {
			u.User = url.User("***")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

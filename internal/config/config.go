// Package config reads streamux's YAML configuration: strictly (an unknown field is an error that
// names it), with ${ENV} expansion, defaults for everything left out, and every problem reported
// at once.
package config

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/streamux/streamux/internal/auth"
	"github.com/streamux/streamux/internal/cluster"
	"github.com/streamux/streamux/internal/httpapi"
	"github.com/streamux/streamux/internal/predicate"
	"github.com/streamux/streamux/internal/router"
	"github.com/streamux/streamux/internal/source"
	"github.com/streamux/streamux/internal/yamlstrict"
)

// Config is the whole configuration. Its zero value, after Defaults, is the embedded default:
// one demo source served on 127.0.0.1:8080.
type Config struct {
	// Listen is the address to serve on. Defaults to 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// Sources are the streams to read. Defaults to one demo source named "demo".
	Sources []Source `yaml:"sources"`
	Limits  Limits   `yaml:"limits"`
	History History  `yaml:"history"`
	Stream  Stream   `yaml:"stream"`
	// Auth is who may read, write and administer; absent means no authentication, which
	// streamux allows only on a loopback listener unless auth: none is written.
	Auth auth.Config `yaml:"auth"`
	// AllowedOrigins are the web origins ("https://app.example") whose pages may open
	// WebSocket streams and read SSE, NDJSON and /v1/check across origins (CORS). "*" allows
	// any. Defaults to none: only pages served by streamux itself (same host).
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AllowedHosts are the names by which clients reach streamux (the Host header), besides
	// loopback names (localhost, *.localhost) and IP addresses, which are always answered: a
	// name ("streamux.example"), a name with a leading dot for it and every name under it
	// (".example.com"), or "*" for any. Without auth only these are answered, so that a web
	// page cannot read the API through DNS rebinding; with auth, any Host is answered unless
	// this is set. Defaults to none (and, without auth, the name in listen, if it is one).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// TLS serves HTTPS and WSS when both files are given.
	TLS TLS `yaml:"tls"`
	// ShutdownGrace bounds the shutdown, from SIGTERM to exit: streams that have not closed
	// shortly before it ends are cut. Defaults to 10s.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// DataDir is where streamux keeps what must outlive a run: each source's sequence
	// numbers, so that an event id never names two messages. A relative path is relative to
	// the configuration file's directory. Defaults, for a configuration file, to
	// "streamux-data" beside it; DataDirMemory (and the embedded default) keeps nothing, and
	// every run numbers its messages from 1 again.
	DataDir string `yaml:"data_dir"`
	// Sinks are outputs that live on the server (API.md, "Sinks"): each delivers the messages
	// its predicate matches to a webhook, another broker or the console.
	Sinks []Sink `yaml:"sinks"`
	// Cluster, when set, makes this streamux one node of several that share one replicated
	// log per source in NATS JetStream (docs/cluster.md): the log's sequence is every event's
	// seq, on every node and across restarts. Absent, streamux runs alone and needs no NATS.
	Cluster *cluster.Config `yaml:"cluster"`
}

// DataDirMemory as data_dir keeps the sequence numbers in memory only.
const DataDirMemory = "memory"

// Limits bound what one client may cost.
type Limits struct {
	// PredicateMaxBytes is the longest predicate accepted. Defaults to 4096.
	PredicateMaxBytes int `yaml:"predicate_max_bytes"`
	// PredicateMaxCost is the highest CEL cost accepted, estimated at compile time and
	// enforced at run time. Defaults to the predicate package's default.
	PredicateMaxCost uint64 `yaml:"predicate_max_cost"`
	// QueueEvents is the most events queued for one subscription. Defaults to 1024.
	QueueEvents int `yaml:"queue_events"`
	// QueueBytes is the most encoded bytes queued for one subscription. Defaults to 1 MiB.
	QueueBytes int64 `yaml:"queue_bytes"`
	// ClientFrameBytes is the largest frame a WebSocket client may send (close 1009 above).
	// Defaults to 64 KiB.
	ClientFrameBytes int64 `yaml:"client_frame_bytes"`
	// Connections is the most client streams at once (429 above). Defaults to 10000.
	Connections int `yaml:"connections"`
	// ConnectionsPerAddress is the most client streams from one IP address (429 above).
	// Defaults to 100.
	ConnectionsPerAddress int `yaml:"connections_per_address"`
	// SubscriptionsPerCredential is the most streams one API key or token subject may hold
	// (429 above). Defaults to 100; it does not apply without authentication.
	SubscriptionsPerCredential int `yaml:"subscriptions_per_credential"`
	// SubscribeRate is how many streams per second one IP address may open, with
	// SubscribeBurst at once (429 with Retry-After above). Defaults to 10 and 20.
	SubscribeRate  float64 `yaml:"subscribe_rate"`
	SubscribeBurst int     `yaml:"subscribe_burst"`
	// ApplyToLoopback applies connections_per_address and subscribe_rate to loopback clients
	// too; by default a local process is exempt. Set it behind a reverse proxy on the host.
	ApplyToLoopback bool `yaml:"apply_to_loopback"`
	// WebhookAllowPrivate lets webhook sinks reach loopback, private and link-local addresses,
	// which they may not by default (a sink's URL must not reach into the server's network).
	// The configuration's only: no API request can set it.
	WebhookAllowPrivate bool `yaml:"webhook_allow_private"`
	// HeaderTimeout bounds reading a request's headers (slowloris). Defaults to 10s.
	HeaderTimeout time.Duration `yaml:"header_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long. Defaults to 2m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// IngestRequests is the most ingest requests in progress at once, all clients together
	// (429 above); a streaming one holds its place while it lasts. Defaults to 256.
	IngestRequests int `yaml:"ingest_requests"`
	// IngestRequestsPerClient is the most ingest requests in progress at once of one API key
	// or token subject, or without auth of one IP address (loopback exempt unless
	// apply_to_loopback) (429 above). Defaults to 16.
	IngestRequestsPerClient int `yaml:"ingest_requests_per_client"`
	// BodyBufferBytes bounds the bytes of request bodies held while they arrive, all requests
	// together (429 above): a body parsed whole holds what has arrived, a streaming ingest
	// request its longest line. At least the largest max_body_bytes of the http sources.
	// Defaults to 64 MiB, or twice the largest max_body_bytes if that is more.
	BodyBufferBytes int64 `yaml:"body_buffer_bytes"`
	// BodyReadTimeout cuts a request body (408) that sends nothing for this long, or whose
	// average rate falls under body_min_rate once this long has passed. Defaults to 30s.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
	// BodyMinRate is the slowest average rate of a request body, in bytes per second, after
	// its first body_read_timeout (408 under it). Defaults to 1024.
	BodyMinRate int64 `yaml:"body_min_rate"`
	// IngestIdleTimeout is how long a streaming ingest request (?stream=true) may send no
	// line (408 after); an empty line counts, as a keep-alive. Within a line, body_read_timeout
	// and body_min_rate apply. Defaults to 10m.
	IngestIdleTimeout time.Duration `yaml:"ingest_idle_timeout"`

	// CheckMaxCost bounds the work of one POST /v1/check, in CEL cost units: one per message,
	// one per byte of body decoded, and what each evaluation costs. The answer then counts what
	// was looked at and says where it stopped. Defaults to 10,000,000 (0.05 to 0.5 s of a core).
	CheckMaxCost uint64 `yaml:"check_max_cost"`
	// CheckRate is how many /v1/check calls per second one API key or token subject may make,
	// or without auth one IP address (loopback exempt unless apply_to_loopback), with
	// CheckBurst at once (429 with Retry-After above). Defaults to 5 and 20: the web page
	// checks as its user types, up to four times a second.
	CheckRate  float64 `yaml:"check_rate"`
	CheckBurst int     `yaml:"check_burst"`
}

// TLS names the certificate and key to serve with.
type TLS struct {
	// Cert is a PEM certificate chain file.
	Cert string `yaml:"cert"`
	// Key is the PEM private key file.
	Key string `yaml:"key"`
}

// History configures the per-source history that resume and /v1/check read.
type History struct {
	// Size is the number of messages kept per source. Defaults to 10000.
	Size int `yaml:"size"`
	// MaxAge, if set, also forgets messages older than this.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes bounds the memory each source's history holds (encoded events, and bodies
	// that the events do not hold as they are), forgetting the oldest messages beyond it.
	// Defaults to 64 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
}

// MaxHistorySize is the most messages history.size may ask for: the history's slots are
// allocated at start.
const MaxHistorySize = 10_000_000

// Stream tunes the client streams.
type Stream struct {
	// Heartbeat is the interval of SSE comments and WebSocket pings. Defaults to 15s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// WriteTimeout cuts a client that does not take a write within it. Defaults to 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxBatch is the most events joined into one write. Defaults to 256.
	MaxBatch int `yaml:"max_batch"`
	// WriteDelay makes WebSocket connections written at most once per delay, so that what is
	// queued meanwhile joins one write: less CPU per event for up to this much more latency.
	// Defaults to 0 (write at once).
	WriteDelay time.Duration `yaml:"write_delay"`
}

// DefaultListen is where streamux serves when nothing is configured.
const DefaultListen = "127.0.0.1:8080"

// Default returns the embedded default configuration.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

// Load reads, expands, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	switch {
	case c.DataDir == "":
		c.DataDir = filepath.Join(filepath.Dir(path), "streamux-data")
	case c.DataDir != DataDirMemory && !filepath.IsAbs(c.DataDir):
		c.DataDir = filepath.Join(filepath.Dir(path), c.DataDir)
	}
	return c, nil
}

// Parse is Load for bytes already read. ${NAME} references are expanded in the values the YAML
// holds, after it is parsed: never in comments or keys, and a value taken from the environment
// is that value exactly, whatever YAML would make of its characters. Its error is Problems:
// every problem of the file, each at its line and field.
func Parse(raw []byte) (*Config, error) {
	hidden, refs := hideRefs(raw)
	var doc yaml.Node
	if err := yaml.Unmarshal(hidden, &doc); err != nil {
		return nil, syntaxProblem(err)
	}
	if err := refs.expandValues(&doc, os.LookupEnv); err != nil {
		return nil, problems(nil, splitErr(err))
	}
	var c Config
	var msgs []string
	var root *yaml.Node
	if len(doc.Content) > 0 {
		// A node's Decode is not strict: unknown fields are looked for first.
		root = doc.Content[0]
		msgs = yamlstrict.UnknownFields(root, reflect.TypeFor[Config](), nil)
		if err := root.Decode(&c); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return nil, problems(root, []string{fmt.Sprintf("line %d: %s", root.Line, strings.TrimPrefix(err.Error(), "yaml: "))})
			}
			// A type error (a wrong kind of value) leaves the rest decoded, so report it
			// together with whatever Validate finds.
			msgs = append(msgs, te.Errors...)
		}
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		msgs = append(msgs, splitErr(err)...)
	}
	if len(msgs) > 0 {
		return nil, problems(root, msgs)
	}
	return &c, nil
}

// refs stands in for a file's ${NAME} references while YAML parses it: each becomes a token that
// YAML reads as plain text anywhere, a flow collection ([${A}]) included, and the references are
// put back, expanded in values, once the file is parsed.
type refs struct {
	token *regexp.Regexp // a token: the file's own prefix, then the reference's number
	texts []string       // the references as written, by number
}

// hideRefs replaces every reference in raw (and every "$${" escape) by a token. The tokens start
// with a random prefix, so that no text of the file can be taken for one.
func hideRefs(raw []byte) ([]byte, *refs) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand)
	prefix := fmt.Sprintf("streamuxref%x", nonce)
	r := &refs{token: regexp.MustCompile(prefix + `n(\d+)z`)}
	numbers := map[string]int{} // the same reference, the same token: &${A} still names *${A}
	out := envRef.ReplaceAllFunc(raw, func(ref []byte) []byte {
		n, ok := numbers[string(ref)]
		if !ok {
			n = len(r.texts)
			numbers[string(ref)] = n
			r.texts = append(r.texts, string(ref))
		}
		return fmt.Appendf(nil, "%sn%dz", prefix, n)
	})
	return out, r
}

// restore puts the references back into s as they were written.
func (r *refs) restore(s string) string {
	return r.token.ReplaceAllStringFunc(s, func(tok string) string {
		n, _ := strconv.Atoi(r.token.FindStringSubmatch(tok)[1])
		return r.texts[n]
	})
}

// expandValues puts the references back under n: expanded in every scalar value, as written in
// mapping keys. It reports every variable missing at once. A plain (unquoted, untagged) scalar
// that held a reference has its type inferred from its new text, as if it had been written so:
// rate: ${RATE} is a number when RATE is one.
func (r *refs) expandValues(n *yaml.Node, lookup func(string) (string, bool)) error {
	var missing, nested []string
	var walk func(n *yaml.Node, key bool)
	walk = func(n *yaml.Node, key bool) {
		switch n.Kind {
		case yaml.ScalarNode:
			if len(r.texts) == 0 || !r.token.MatchString(n.Value) {
				return
			}
			if key {
				n.Value = r.restore(n.Value)
				return
			}
			out, m, ns := expand([]byte(r.restore(n.Value)), lookup)
			for _, name := range m {
				if !slices.Contains(missing, name) {
					missing = append(missing, name)
				}
			}
			nested = append(nested, ns...)
			if n.Style&(yaml.TaggedStyle|yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
				n.Tag = "" // the tag was the token's
			}
			n.Value = string(out)
		case yaml.MappingNode:
			for i, e := range n.Content {
				walk(e, i%2 == 0)
			}
		default:
			for _, e := range n.Content {
				walk(e, false)
			}
		}
	}
	walk(n, false)
	return expandErr(missing, nested)
}

// envRef matches "$${" (the escape) first, so that the "${" inside it is not taken for a reference.
var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expand replaces ${NAME} with the variable's value and ${NAME:-default} with the value or the
// default. It returns the variables that are not set and have no default, and those whose
// default holds a "${", which it leaves as they are. A literal "${" is written "$${"; any other
// "$$" stays as is.
func expand(raw []byte, lookup func(string) (string, bool)) (out []byte, missing, nested []string) {
	out = envRef.ReplaceAllFunc(raw, func(ref []byte) []byte {
		m := envRef.FindSubmatch(ref)
		if m[1] == nil {
			return []byte("${")
		}
		if bytes.Contains(m[3], []byte("${")) {
			nested = append(nested, string(m[1]))
			return ref
		}
		if v, ok := lookup(string(m[1])); ok {
			return []byte(v)
		}
		if m[2] != nil {
			return m[3]
		}
		if !slices.Contains(missing, string(m[1])) {
			missing = append(missing, string(m[1]))
		}
		return ref
	})
	return out, missing, nested
}

// expandErr says what expand found wrong, or nil.
func expandErr(missing, nested []string) error {
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("environment variables not set: %s", strings.Join(missing, ", ")))
	}
	for _, n := range nested {
		errs = append(errs, fmt.Errorf("${%s:-...}: a default cannot contain \"${\"", n))
	}
	return errors.Join(errs...)
}

// The defaults that are the configuration's own; the others are the constants of the packages
// that apply them, referenced below.
const (
	// DefaultHistoryBytes is history.max_bytes when none is given.
	DefaultHistoryBytes = 64 << 20
	// DefaultHeaderTimeout and DefaultIdleTimeout are limits.header_timeout and
	// limits.idle_timeout when none is given.
	DefaultHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout   = 2 * time.Minute
	// DefaultShutdownGrace is shutdown_grace when none is given.
	DefaultShutdownGrace = 10 * time.Second
)

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if len(c.Sources) == 0 {
		c.Sources = []Source{{Name: "demo", Type: "demo"}}
		if t, ok := source.Lookup("demo"); ok {
			c.Sources[0].Spec = t.NewConfig()
		}
	}
	l := &c.Limits
	if l.PredicateMaxBytes == 0 {
		l.PredicateMaxBytes = predicate.DefaultMaxBytes
	}
	if l.Connections == 0 {
		l.Connections = httpapi.DefaultConnections
	}
	if l.ConnectionsPerAddress == 0 {
		l.ConnectionsPerAddress = httpapi.DefaultConnectionsPerAddress
	}
	if l.SubscriptionsPerCredential == 0 {
		l.SubscriptionsPerCredential = httpapi.DefaultSubscriptionsPerCredential
	}
	if l.SubscribeRate == 0 {
		l.SubscribeRate = httpapi.DefaultSubscribeRate
	}
	if l.SubscribeBurst == 0 {
		l.SubscribeBurst = httpapi.DefaultSubscribeBurst
	}
	if l.HeaderTimeout == 0 {
		l.HeaderTimeout = DefaultHeaderTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultIdleTimeout
	}
	if l.IngestRequests == 0 {
		l.IngestRequests = httpapi.DefaultIngestRequests
	}
	if l.IngestRequestsPerClient == 0 {
		l.IngestRequestsPerClient = httpapi.DefaultIngestRequestsPerClient
	}
	if l.BodyBufferBytes == 0 {
		l.BodyBufferBytes = max(httpapi.DefaultBodyBytes, 2*c.maxBodyBytes())
	}
	if l.BodyReadTimeout == 0 {
		l.BodyReadTimeout = httpapi.DefaultBodyReadTimeout
	}
	if l.BodyMinRate == 0 {
		l.BodyMinRate = httpapi.DefaultBodyMinRate
	}
	if l.IngestIdleTimeout == 0 {
		l.IngestIdleTimeout = httpapi.DefaultIngestIdleTimeout
	}
	if l.CheckMaxCost == 0 {
		l.CheckMaxCost = httpapi.DefaultCheckMaxCost
	}
	if l.CheckRate == 0 {
		l.CheckRate = httpapi.DefaultCheckRate
	}
	if l.CheckBurst == 0 {
		l.CheckBurst = httpapi.DefaultCheckBurst
	}
	if c.History.Size == 0 {
		c.History.Size = router.DefaultHistory
	}
	if c.History.MaxBytes == 0 {
		c.History.MaxBytes = DefaultHistoryBytes
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Cluster != nil {
		d := c.Cluster.WithDefaults(c.Listen)
		c.Cluster = &d
	}
}

// Validate reports every problem at once, joined.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen: %v", err)
	}
	seen := map[string]bool{}
	for i, s := range c.Sources {
		where := fmt.Sprintf("sources[%d]", i)
		if s.Name != "" {
			where += " (" + s.Name + ")"
		}
		switch {
		case s.Name == "":
			add("%s: name is required", where)
		case !validName.MatchString(s.Name):
			add("%s: name must be 1-64 letters, digits, '.', '_' or '-'", where)
		case seen[s.Name]:
			add("%s: name %q is used twice", where, s.Name)
		}
		seen[s.Name] = true
		for _, p := range s.problems {
			add("%s: %s", where, p)
		}
		if s.Backoff.Initial < 0 {
			add("%s.backoff.initial: must be positive, not %v", where, s.Backoff.Initial)
		}
		if s.Backoff.Max < 0 {
			add("%s.backoff.max: must be positive, not %v", where, s.Backoff.Max)
		}
		if s.Backoff.Max > 0 && s.Backoff.Max < s.Backoff.Initial {
			add("%s.backoff.max: %v is less than backoff.initial %v", where, s.Backoff.Max, s.Backoff.Initial)
		}
		if v, ok := s.Spec.(interface{ Validate() []error }); ok {
			for _, err := range v.Validate() {
				add("%s: %v", where, err)
			}
		}
	}
	l := c.Limits
	for _, f := range negativeFields(&c.Limits) {
		add("limits.%s", f)
	}
	if m := c.maxBodyBytes(); l.BodyBufferBytes > 0 && l.BodyBufferBytes < m {
		add("limits.body_buffer_bytes: %d is less than the max_body_bytes %d of an http source: no such body could be received", l.BodyBufferBytes, m)
	}
	for _, err := range c.Auth.Validate() {
		add("auth: %v", err)
	}
	for _, err := range c.Auth.CheckSources(func(n string) bool { return seen[n] }) {
		add("auth: %v", err)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		add("tls: give both cert and key")
	}
	for _, o := range c.AllowedOrigins {
		if o != "*" && (!strings.Contains(o, "://") || strings.HasSuffix(o, "/")) {
			add("allowed_origins: %q is not an origin such as https://app.example", o)
		}
	}
	for _, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ []") {
			add("allowed_hosts: %q is not a host name such as streamux.example or .example.com (no scheme, port or path)", h)
		}
	}
	for _, f := range negativeFields(&c.History) {
		add("history.%s", f)
	}
	if c.History.Size > MaxHistorySize {
		add("history.size: %d is over the maximum of %d (history.max_bytes bounds the memory it holds)", c.History.Size, MaxHistorySize)
	}
	for _, f := range negativeFields(&c.Stream) {
		add("stream.%s", f)
	}
	if c.Stream.WriteDelay > time.Second {
		add("stream.write_delay: %v is over 1s: every WebSocket event would wait that long", c.Stream.WriteDelay)
	}
	if c.ShutdownGrace < 0 {
		add("shutdown_grace: must be positive, not %v", c.ShutdownGrace)
	}
	if c.Cluster != nil {
		for _, err := range c.Cluster.Validate() {
			add("cluster: %v", err)
		}
	}
	c.validateSinks(add, seen)
	return errors.Join(errs...)
}

// negativeFields names each field of the struct *v that holds a negative number, with what is
// wrong: "queue_events: must be positive, not -1". Zero is never wrong: it is the default.
func negativeFields(v any) []string {
	rv := reflect.ValueOf(v).Elem()
	var out []string
	for i := range rv.NumField() {
		name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("yaml"), ",")
		f := rv.Field(i)
		switch {
		case f.CanInt() && f.Int() < 0:
		case f.CanFloat() && f.Float() < 0:
		default:
			continue
		}
		out = append(out, fmt.Sprintf("%s: must be positive, not %v", name, f.Interface()))
	}
	return out
}

// maxBodyBytes is the largest request body that a source takes (the http type's max_body_bytes),
// 0 without one.
func (c *Config) maxBodyBytes() int64 {
	var m int64
	for _, s := range c.Sources {
		if spec, ok := s.Spec.(interface{ BodyBytes() int64 }); ok {
			m = max(m, spec.BodyBytes())
		}
	}
	return m
}

var validName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// validSinkName is a sink's name: it names a file in the data directory and a path segment.
var validSinkName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

package amqp

import (
	"fmt"
	"math"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/streamux/streamux/internal/source"
)

// The acknowledgement modes of Config.Ack.
const (
	// AckAuto acknowledges each message as it is received, before routing (in batches, so the
	// broker is not sent one frame per message). A stop or crash may lose what was received and
	// not yet routed; a dropped connection may bring the last unacknowledged batch again.
	AckAuto = "auto"
	// AckAfterRoute acknowledges a message once the router has accepted it (Emit returned nil:
	// it is queued in the router's bounded input, and the router routes every message it
	// accepted before it stops); on shutdown, what the router did not accept is rejected with
	// requeue. Nothing is lost on a shutdown, a dropped connection may bring some messages twice
	// (amqp_redelivered is "true" then). A crash of the process loses what was accepted and not
	// yet routed (at most router.InputSize messages), as it loses the events queued for clients.
	// It needs a named queue: a server-named queue dies with its connection.
	AckAfterRoute = "after_route"
)

// The queue types of Config.QueueType.
const (
	// QueueClassic is RabbitMQ's classic queue.
	QueueClassic = "classic"
	// QueueQuorum is a replicated quorum queue (Raft): named and durable, it counts each
	// message's deliveries (the x-delivery-count header, amqp_delivery_count here).
	QueueQuorum = "quorum"
	// QueueStream is an append-only stream (RabbitMQ 3.9 and later): consuming does not
	// remove messages, every consumer chooses where it starts (Config.Offset), and the source
	// keeps its place itself, in the data directory, since the broker keeps none over AMQP
	// 0-9-1. It needs a named durable queue, ack after_route and a prefetch.
	QueueStream = "stream"
)

// Defaults.
const (
	DefaultExchangeType   = "topic"
	DefaultPrefetch       = 256
	DefaultHeartbeat      = 10 * time.Second
	DefaultConnectionName = "streamux"
)

// DefaultStreamPrefetch is a stream's default prefetch: the source passes on at most this many
// messages beyond the place it recorded on disk, and a disk that takes a while to sync would
// hold back a smaller window (see Config.Prefetch).
const DefaultStreamPrefetch = 1024

// Config configures one RabbitMQ source. Its YAML field names are part of the configuration
// contract; the config package decodes them strictly. URL, and Exchange or Queue, are required;
// every other field has a working default.
type Config struct {
	// URL is the broker: amqp://user:password@host:port/vhost, or amqps://… for TLS.
	URL string `yaml:"url"`
	// Exchange is the exchange to bind the queue to. It is declared if absent (unless Passive),
	// and used as it is if it exists. Empty: consume Queue as it is, with no binding.
	Exchange string `yaml:"exchange"`
	// ExchangeType is the type of the exchange when streamux declares it: topic, direct, fanout,
	// headers, or a plugin's x-… type. Defaults to topic.
	ExchangeType string `yaml:"exchange_type"`
	// Passive only checks that the exchange exists and never declares it. A missing exchange
	// puts the source in state failed, retried at the longest backoff.
	Passive bool `yaml:"passive"`
	// Bindings are the routing-key patterns the queue is bound with, one binding each.
	// Defaults to ["#"] (everything) for a topic exchange and [""] for fanout and headers
	// exchanges; required for direct and x-… exchanges.
	Bindings []string `yaml:"bindings"`
	// BindingArguments go with every binding; for a headers exchange, x-match and the headers
	// to match.
	BindingArguments map[string]any `yaml:"binding_arguments"`
	// Queue is the queue to consume. Defaults to "": a server-named, exclusive, auto-delete
	// queue that lives as long as the connection, so nothing piles up while streamux is not
	// running. A name means a named queue: declared (durable unless Durable is false) if absent,
	// used as it is if it exists, and keeping messages while streamux is away.
	Queue string `yaml:"queue"`
	// QueueArguments are the x-arguments of a queue streamux declares: x-queue-type,
	// x-max-length, x-message-ttl, …
	QueueArguments map[string]any `yaml:"queue_arguments"`
	// QueueType is the type of a named queue that streamux declares, sent as its x-queue-type
	// argument: classic, quorum or stream. Empty: the x-queue-type of QueueArguments if set,
	// else none (the virtual host's default type, classic unless configured otherwise). An
	// existing queue is used as it is; a stream is checked to be one when it delivers.
	QueueType string `yaml:"queue_type"`
	// Offset is where a stream is read from when the source has no place of its own yet:
	// first (the oldest message the stream keeps), last (the last chunk written), next (only
	// what is published from now on), an offset (0 or more), or an RFC 3339 time (from the
	// first chunk written at or after it; to the second). Once the source has taken a message
	// it goes on after the last one taken instead: across reconnects, and, with a data
	// directory, across restarts of streamux. Defaults to next; stream queues only.
	Offset string `yaml:"offset"`
	// Durable makes what streamux declares (the exchange, a named queue) survive a broker
	// restart. Defaults to true. A server-named queue is never durable.
	Durable *bool `yaml:"durable"`
	// Prefetch is how many unacknowledged messages the broker may have in flight to the source
	// (basic.qos), 1 to 65535. It bounds the client's buffer. Defaults to 256. For a stream it
	// is also how many messages the source may pass on beyond the place it recorded on disk,
	// and so what a killed streamux reads again at most; defaults to 1024 there. (A stream
	// delivers whole chunks: the broker may send a chunk beyond the window.)
	Prefetch int `yaml:"prefetch"`
	// Ack is when messages are acknowledged: auto (on receipt) or after_route (once the router
	// accepted them, to be routed). Defaults to auto, and to after_route, the only mode it
	// allows, for a stream.
	Ack string `yaml:"ack"`
	// Heartbeat is the AMQP heartbeat interval, which detects a dead broker or network within
	// three intervals. Defaults to 10s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// ConnectionName is the name RabbitMQ shows for the connection (management UI,
	// rabbitmqctl list_connections). Defaults to "streamux".
	ConnectionName string `yaml:"connection_name"`
	// TLS adds to what an amqps:// URL implies (the system's roots, the URL's host name).
	TLS TLS `yaml:"tls"`
}

// TLS is the client side of TLS, shared by every source that dials a server.
type TLS = source.TLS

// withDefaults returns c with every default filled in.
func (c Config) withDefaults() Config {
	if c.ExchangeType == "" {
		c.ExchangeType = DefaultExchangeType
	}
	if len(c.Bindings) == 0 && c.Exchange != "" {
		switch c.ExchangeType {
		case "topic":
			c.Bindings = []string{"#"}
		case "fanout", "headers":
			c.Bindings = []string{""}
		}
	}
	if c.Durable == nil {
		t := true
		c.Durable = &t
	}
	if c.QueueType == "" {
		// x-queue-type as an argument means the same, as it did before queue_type.
		if t, ok := c.QueueArguments[argQueueType].(string); ok {
			c.QueueType = t
		}
	}
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch
		if c.QueueType == QueueStream {
			c.Prefetch = DefaultStreamPrefetch
		}
	}
	if c.Ack == "" {
		c.Ack = AckAuto
		if c.QueueType == QueueStream {
			c.Ack = AckAfterRoute
		}
	}
	if c.Offset == "" && c.QueueType == QueueStream {
		c.Offset = OffsetNext
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ConnectionName == "" {
		c.ConnectionName = DefaultConnectionName
	}
	return c
}

// argQueueType is the queue argument that sets a queue's type.
const argQueueType = "x-queue-type"

// Validate reports every problem of c at once, each naming its field. Defaults are applied
// first, so a zero field is never a problem unless it is required.
func (c *Config) Validate() []error {
	d := c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	scheme := ""
	if d.URL == "" {
		bad("url is required (amqp://user:password@host:5672/vhost)")
	} else if s, err := CheckURL(d.URL); err != nil {
		bad("url: %v", err)
	} else {
		scheme = s
	}

	if d.Exchange == "" && d.Queue == "" {
		bad("exchange is required (or queue, to consume an existing queue without binding)")
	}
	if d.Exchange == "" && len(d.Bindings) > 0 {
		bad("bindings need an exchange")
	}
	switch t := d.ExchangeType; {
	case t == "topic", t == "direct", t == "fanout", t == "headers":
	case strings.HasPrefix(t, "x-"):
		if d.Exchange != "" && len(d.Bindings) == 0 {
			bad("bindings are required for an exchange of type %q", t)
		}
	default:
		bad("exchange_type %q: want topic, direct, fanout, headers or a plugin's x-… type", t)
	}
	if d.ExchangeType == "direct" && d.Exchange != "" && len(d.Bindings) == 0 {
		bad("bindings are required for a direct exchange (the routing keys to receive)")
	}
	if d.Passive && d.Exchange == "" {
		bad("passive needs an exchange to check")
	}
	if strings.HasPrefix(d.Queue, "amq.") {
		bad("queue %q: names starting with amq. are reserved by the broker", d.Queue)
	}
	if _, err := table(d.QueueArguments); err != nil {
		bad("queue_arguments: %v", err)
	}
	if _, err := table(d.BindingArguments); err != nil {
		bad("binding_arguments: %v", err)
	}
	if d.Prefetch < 0 || d.Prefetch > 65535 {
		bad("prefetch %d: want 1 to 65535", d.Prefetch)
	}
	switch d.Ack {
	case AckAuto:
	case AckAfterRoute:
		if d.Queue == "" {
			bad("ack after_route needs a named queue: a server-named queue is deleted with its connection, and what it held with it")
		}
	default:
		bad("ack %q: want auto or after_route", d.Ack)
	}
	typeField := "queue_type"
	if c.QueueType == "" {
		typeField = "queue_arguments' x-queue-type"
	}
	errs = append(errs, d.validateQueueType(typeField)...)
	if d.Heartbeat < 0 {
		bad("heartbeat %v: must not be negative", d.Heartbeat)
	}
	if !d.TLS.IsZero() {
		if scheme == "amqp" {
			bad("tls is set but the url is amqp://: use amqps://")
		}
		for _, err := range d.TLS.Validate() {
			bad("%v", err)
		}
	}
	return errs
}

// table converts a YAML-decoded map into an amqp091.Table (nested maps become Tables too) and
// checks that every value has an AMQP type.
func table(m map[string]any) (amqp091.Table, error) {
	if len(m) == 0 {
		return nil, nil
	}
	t := convert(m).(amqp091.Table)
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

func convert(v any) any {
	switch v := v.(type) {
	case map[string]any:
		t := make(amqp091.Table, len(v))
		for k, e := range v {
			t[k] = convert(e)
		}
		return t
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = convert(e)
		}
		return out
	case uint:
		if v <= math.MaxInt64 {
			return int64(v)
		}
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
	}
	return v
}

// validateQueueType reports the problems of the queue type, set by the field named typeField,
// and of what goes with it (d has its defaults).
func (d *Config) validateQueueType(typeField string) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if a, ok := d.QueueArguments[argQueueType]; ok && d.QueueType != "" {
		if t, _ := a.(string); t != d.QueueType {
			bad("queue_type %q and queue_arguments' x-queue-type %v disagree: set one", d.QueueType, a)
		}
	}
	switch t := d.QueueType; t {
	case "", QueueClassic:
	case QueueQuorum, QueueStream:
		if d.Queue == "" {
			bad("%s %s needs a named queue (queue): a server-named queue is exclusive, which a %s queue cannot be", typeField, t, t)
		}
		if !*d.Durable {
			bad("%s %s needs a durable queue: remove durable: false", typeField, t)
		}
	default:
		bad("%s %q: want classic, quorum or stream", typeField, t)
	}
	if d.QueueType != QueueStream {
		if d.Offset != "" {
			bad("offset %q is for a stream: set queue_type: stream", d.Offset)
		}
		return errs
	}
	if d.Ack != AckAfterRoute {
		bad("ack %q: a stream is read with ack after_route (the default), as its place is recorded only once the router took a message", d.Ack)
	}
	if d.Prefetch < 1 {
		bad("prefetch %d: a stream needs a prefetch (RabbitMQ refuses a stream consumer without basic.qos)", d.Prefetch)
	}
	if _, err := parseOffset(d.Offset); err != nil {
		bad("%v", err)
	}
	return errs
}

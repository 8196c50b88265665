// Package redis is the sink of type redis: each matching message added to a Redis stream
// (XADD; stream: a template) or published to a channel (PUBLISH; channel: a template).
//
// An entry of a stream holds the body under body_field ("body"), the key under key_field
// ("key") and each header as a field of its own, as the redis-streams source reads them back
// (fields: headers). A channel carries one payload per message and nothing beside it: the
// event's JSON, as a stream sends it (payload: event, the default), with the id, key and
// headers in it; or the body alone (payload: body), without them.
//
// What acknowledges a batch: for a stream, the XADD reply of every entry (the entry's id:
// Redis holds it, and keeps it as durably as its persistence is set up to); for a channel,
// the PUBLISH reply, which only says how many subscribers were sent the message then: Redis
// keeps nothing, and a message no one was subscribed to is gone.
//
// One connection, made at the first delivery, carries every batch (pipelined: one round trip
// a batch); one that fails is dropped and made again at the next delivery. A server that is
// away, loading, read-only (a failover) or out of memory is tried again; refused credentials
// or permissions, a key that holds something other than a stream, a rendered stream or
// channel name that is empty and a header that has the name of body_field or key_field fail
// the sink.
//
// Concurrency: a Sink belongs to its sink's runner goroutine; Deliver is not called twice at
// once, and Close not during a Deliver.
package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/sink"
	"github.com/streamux/streamux/internal/sink/template"
	redissource "github.com/streamux/streamux/internal/source/redis"
	"github.com/streamux/streamux/internal/stream"
)

// The payloads of a channel (Config.Payload).
const (
	// PayloadEvent is the event's JSON: id, source, key, headers, body, time.
	PayloadEvent = "event"
	// PayloadBody is the message's body as it came.
	PayloadBody = "body"
)

// Defaults.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultBodyField = "body"
	DefaultKeyField  = "key"
)

// Config is a redis sink's own fields. Stream or Channel is required, not both.
type Config struct {
	// Conn is the server: url, connect_timeout and tls, as for the redis sources.
	redissource.Conn `yaml:",inline"`
	// Stream is the template of the stream each message is added to (package template):
	// "orders", "events.{source}".
	Stream string `yaml:"stream"`
	// Channel is the template of the channel each message is published to.
	Channel string `yaml:"channel"`
	// Payload is what a channel carries: "event" (the default) or "body".
	Payload string `yaml:"payload"`
	// BodyField is the field of a stream's entry that holds the body. Defaults to "body".
	BodyField string `yaml:"body_field"`
	// KeyField is the field of a stream's entry that holds the key. Defaults to "key".
	KeyField string `yaml:"key_field"`
	// MaxLen trims a stream to about this many entries as entries are added (XADD MAXLEN ~).
	// 0, the default: not trimmed.
	MaxLen int64 `yaml:"max_len"`
	// Timeout bounds waiting for a batch's replies. Defaults to 10s.
	Timeout time.Duration `yaml:"timeout"`
}

func (c Config) withDefaults() Config {
	if c.Payload == "" {
		c.Payload = PayloadEvent
	}
	if c.BodyField == "" {
		c.BodyField = DefaultBodyField
	}
	if c.KeyField == "" {
		c.KeyField = DefaultKeyField
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate returns every problem with c, each naming its field.
func (c *Config) Validate() []error {
	d := c.withDefaults()
	errs := d.Conn.Validate()
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case d.Stream == "" && d.Channel == "":
		bad(`stream or channel is required: a name, or a template such as "orders.{key}"`)
	case d.Stream != "" && d.Channel != "":
		bad("stream and channel: give one")
	}
	for field, src := range map[string]string{"stream": d.Stream, "channel": d.Channel} {
		if _, err := template.Parse(src); err != nil {
			bad("%s %q: %v", field, src, err)
		}
	}
	if d.Payload != PayloadEvent && d.Payload != PayloadBody {
		bad(`payload %q: want "event" or "body"`, d.Payload)
	} else if c.Payload != "" && d.Channel == "" {
		bad("payload is a channel's: a stream's entry has the body, key and headers as fields")
	}
	if d.Channel != "" && (c.BodyField != "" || c.KeyField != "" || c.MaxLen != 0) {
		bad("body_field, key_field and max_len are a stream's")
	}
	if d.BodyField == d.KeyField {
		bad("body_field and key_field are both %q", d.BodyField)
	}
	if d.MaxLen < 0 {
		bad("max_len %d: must not be negative", d.MaxLen)
	}
	if d.Timeout < 0 {
		bad("timeout %v: must not be negative", d.Timeout)
	}
	return errs
}

// Sink adds batches of events to a Redis stream, or publishes them to a channel. Create it with
// New.
type Sink struct {
	cfg  Config // with defaults
	name *template.Template
	opt  goredis.Options

	client *goredis.Client    // nil until the first delivery, and after its connection failed
	stop   context.CancelFunc // closes the client's connection
}

func init() {
	sink.Register("redis", func(c Config, _ sink.Env) (*Sink, error) { return New(c) })
}

// New returns a sink for c, which must be valid. It does not connect: the first delivery does.
func New(c Config) (*Sink, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("redis: %w", errors.Join(errs...))
	}
	d := c.withDefaults()
	opt, err := d.Conn.Options(d.Timeout)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	name := d.Stream
	if name == "" {
		name = d.Channel
	}
	return &Sink{cfg: d, name: template.MustParse(name), opt: *opt}, nil
}

// Deliver adds or publishes the messages of evs, in order, in one pipeline, and returns once
// Redis replied to every command. Gap events are not sent: the sink's gaps are counted and
// logged by streamux.
func (s *Sink) Deliver(ctx context.Context, evs []*stream.Event) error {
	if s.client == nil {
		cctx, stop := context.WithCancel(context.Background())
		s.client, s.stop = redissource.RunClient(cctx, s.opt), stop
	}
	pipe := s.client.Pipeline()
	n := 0
	for _, ev := range evs {
		m := ev.Msg
		if m == nil {
			continue
		}
		name := s.name.Render(m)
		if name == "" {
			return sink.Permanent(fmt.Errorf("redis: message %s: %s (from %q) is empty", m.ID(), s.kind(), s.name))
		}
		if s.cfg.Channel != "" {
			payload := ev.JSON()
			if s.cfg.Payload == PayloadBody {
				payload = m.Payload()
			}
			pipe.Publish(ctx, name, payload)
		} else {
			values, err := s.fields(m)
			if err != nil {
				return sink.Permanent(fmt.Errorf("redis: message %s: %w", m.ID(), err))
			}
			a := &goredis.XAddArgs{Stream: name, Values: values}
			if s.cfg.MaxLen > 0 {
				a.MaxLen, a.Approx = s.cfg.MaxLen, true
			}
			pipe.XAdd(ctx, a)
		}
		n++
	}
	if n == 0 {
		return nil
	}
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if c.Err() != nil {
			err = c.Err()
			break
		}
	}
	return s.failed(err)
}

// kind is what the sink's name names.
func (s *Sink) kind() string {
	if s.cfg.Channel != "" {
		return "the channel"
	}
	return "the stream"
}

// fields are the fields of m's entry: the body, the key, then the headers by name.
func (s *Sink) fields(m *stream.Message) ([]any, error) {
	values := make([]any, 0, 4+2*len(m.Headers))
	values = append(values, s.cfg.BodyField, m.Payload(), s.cfg.KeyField, m.Key)
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		if k == s.cfg.BodyField || k == s.cfg.KeyField {
			return nil, fmt.Errorf("header %q has the name of the entry's body_field or key_field: set another", k)
		}
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		values = append(values, k, m.Headers[k])
	}
	return values, nil
}

// failed classifies a batch Redis did not take. A reply of Redis's leaves the connection as it
// was; any other error drops it, to be made again at the next delivery.
func (s *Sink) failed(err error) error {
	wrapped := fmt.Errorf("redis: %s: %w", s.kind(), err)
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		s.Close()
		return sink.Retry(wrapped, 0)
	}
	msg := rerr.Error()
	for _, code := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "WRONGTYPE"} {
		if strings.HasPrefix(msg, code) {
			return sink.Permanent(wrapped)
		}
	}
	return sink.Retry(wrapped, 0)
}

// Close closes the connection.
func (s *Sink) Close() error {
	if s.client == nil {
		return nil
	}
	err := s.client.Close()
	s.stop()
	s.client, s.stop = nil, nil
	return err
}

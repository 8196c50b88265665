package nats

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults.
const (
	DefaultPending        = 65536
	DefaultConnectTimeout = 10 * time.Second
	DefaultPingInterval   = 20 * time.Second
	DefaultConnectionName = "streamux"
)

// Config configures one NATS source. Its YAML field names are part of the configuration
// contract; the config package decodes them strictly. URL is required, and Subjects unless
// Stream is set; every other field has a working default.
type Config struct {
	// Conn is the server and how to reach it: url, token, creds_file, connect_timeout,
	// ping_interval, connection_name, tls.
	Conn `yaml:",inline"`
	// Subjects are the subjects to subscribe to, with NATS wildcards: "orders.>", "ticks.*.eu".
	// With Stream, at most one, the consumer's filter subject (none: the whole stream).
	Subjects []string `yaml:"subjects"`
	// QueueGroup, if set, subscribes as a member of this queue group: the streamux instances of
	// one group share the messages, each receiving some, instead of each receiving them all.
	// Not with Stream, where the consumer is what readers share.
	QueueGroup string `yaml:"queue_group"`
	// Pending is how many received messages the source holds while its router is busy. Past
	// it, NATS (which delivers at most once) drops messages, counted in the source's
	// adapter.dropped. Defaults to 65,536. Not with Stream, where the consumer's
	// max_ack_pending bounds what the server sends ahead.
	Pending int `yaml:"pending"`
	// JetStream, with its Stream set, reads that JetStream stream through a durable consumer
	// instead of subscribing to core NATS subjects: exactly as the jetstream type does (see
	// StreamSource), with Subjects as its filter subject.
	JetStream `yaml:",inline"`
}

func (c Config) withDefaults() Config {
	c.Conn = c.Conn.withDefaults()
	if c.Pending == 0 && c.Stream == "" {
		c.Pending = DefaultPending
	}
	return c
}

// Validate reports every problem of c at once, each naming its field. Defaults are applied
// first, so a zero field is never a problem unless it is required.
func (c *Config) Validate() []error {
	d := c.withDefaults()
	errs := d.Conn.Validate()
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if d.Stream != "" {
		errs = append(errs, d.JetStream.Validate()...)
		if len(d.Subjects) > 1 {
			bad("subjects: with stream, at most one subject, the consumer's filter (use a wildcard, such as \"orders.>\")")
		}
		if d.QueueGroup != "" {
			bad("queue_group: not with stream; readers of one stream share its consumer instead")
		}
		if d.Pending != 0 {
			bad("pending: not with stream; the consumer's max_ack_pending bounds what is held")
		}
	} else {
		if len(d.Subjects) == 0 {
			bad(`subjects is required: at least one subject, such as "orders.>" (or a stream to read)`)
		}
		for _, f := range d.JetStream.set() {
			bad("%s: only with stream", f)
		}
	}
	for _, s := range d.Subjects {
		if err := checkSubject(s); err != nil {
			bad("subjects: %q: %v", s, err)
		}
	}
	if strings.ContainsAny(d.QueueGroup, " \t\r\n") {
		bad("queue_group %q: must not contain spaces", d.QueueGroup)
	}
	if d.Pending < 0 {
		bad("pending %d: must be positive", d.Pending)
	}
	return errs
}

// streamConfig is c's stream reading, as the jetstream type configures it.
func (c Config) streamConfig() StreamConfig {
	sc := StreamConfig{Conn: c.Conn, JetStream: c.JetStream}
	if len(c.Subjects) > 0 {
		sc.FilterSubject = c.Subjects[0]
	}
	return sc
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

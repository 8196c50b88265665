package nats

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The defaults of reading a stream.
const (
	DefaultStart         = StartNew
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 1000
)

// The forms of JetStream.Start.
const (
	StartNew = "new" // what the stream stores after the consumer is made
	StartAll = "all" // everything the stream holds
	// StartSeqPrefix begins "seq:N": from stream sequence N on.
	StartSeqPrefix = "seq:"
	// StartTimePrefix begins "time:T": from what the stream stored at RFC 3339 time T on.
	StartTimePrefix = "time:"
)

// JetStream is the reading of one JetStream stream through a durable pull consumer: the settings
// that the jetstream type and the nats type with a stream share, inline in each one's
// configuration. Stream is required; every other field has a working default.
type JetStream struct {
	// Stream is the stream to read; it must exist (streamux makes consumers, not streams).
	Stream string `yaml:"stream"`
	// Consumer is the durable consumer's name: one that exists is read as it is (its
	// ack_wait, max_ack_pending, filter and inactive_threshold changed to those set here, if
	// set), one that does not is made with these settings. Defaults to DefaultConsumer of the
	// stream and the filter subject, so that the same configuration finds its consumer again.
	Consumer string `yaml:"consumer"`
	// Start is where a consumer that streamux makes begins: "new" (what is stored from then
	// on; the default), "all", "seq:N" (stream sequence N) or "time:T" (an RFC 3339 time). A
	// consumer that exists resumes where its acknowledgements left off, whatever Start says.
	Start string `yaml:"start"`
	// AckWait is how long the server waits for a message's acknowledgement before it delivers
	// the message again. Defaults to 30s.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxAckPending bounds the messages delivered and not yet acknowledged: what the server
	// sends ahead of the router, and what a killed streamux receives again. Defaults to 1,000.
	MaxAckPending int `yaml:"max_ack_pending"`
	// InactiveThreshold, if set, has the server delete the consumer once no one has read it
	// for that long; what it had not delivered is then no longer kept for streamux. Defaults
	// to never.
	InactiveThreshold time.Duration `yaml:"inactive_threshold"`
}

func (j JetStream) withDefaults() JetStream {
	if j.Start == "" {
		j.Start = DefaultStart
	}
	if j.AckWait == 0 {
		j.AckWait = DefaultAckWait
	}
	if j.MaxAckPending == 0 {
		j.MaxAckPending = DefaultMaxAckPending
	}
	return j
}

// set names the fields of j that are not zero, for a nats source without a stream, where they
// do not apply.
func (j JetStream) set() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"consumer", j.Consumer != ""},
		{"start", j.Start != ""},
		{"ack_wait", j.AckWait != 0},
		{"max_ack_pending", j.MaxAckPending != 0},
		{"inactive_threshold", j.InactiveThreshold != 0},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// Validate reports every problem of j, each naming its field.
func (j *JetStream) Validate() []error {
	d := j.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if d.Stream == "" {
		bad("stream is required: the name of an existing JetStream stream")
	} else if err := checkName(d.Stream); err != nil {
		bad("stream %q: %v", d.Stream, err)
	}
	if d.Consumer != "" {
		if err := checkName(d.Consumer); err != nil {
			bad("consumer %q: %v", d.Consumer, err)
		}
	}
	if _, err := parseStart(d.Start); err != nil {
		bad("start %q: %v", d.Start, err)
	}
	if d.AckWait < 0 {
		bad("ack_wait %v: must be positive", d.AckWait)
	}
	if d.MaxAckPending < 0 {
		bad("max_ack_pending %d: must be positive", d.MaxAckPending)
	}
	if d.InactiveThreshold < 0 {
		bad("inactive_threshold %v: must not be negative", d.InactiveThreshold)
	}
	return errs
}

// StreamConfig configures the reading of one JetStream stream: the jetstream type's
// configuration, and what a nats source with a stream reads. Its YAML field names are part of
// the configuration contract; the config package decodes them strictly.
type StreamConfig struct {
	// Conn is the server and how to reach it: url, token, creds_file, connect_timeout,
	// ping_interval, connection_name, tls.
	Conn `yaml:",inline"`
	// JetStream is the stream and its consumer: stream, consumer, start, ack_wait,
	// max_ack_pending, inactive_threshold.
	JetStream `yaml:",inline"`
	// FilterSubject, if set, is the consumer's filter: it reads only the stream's messages on
	// subjects that match it (NATS wildcards allowed). Defaults to the whole stream.
	FilterSubject string `yaml:"filter_subject"`
}

// Validate reports every problem of c at once, each naming its field. Defaults are applied
// first, so a zero field is never a problem unless it is required.
func (c *StreamConfig) Validate() []error {
	errs := c.Conn.Validate()
	errs = append(errs, c.JetStream.Validate()...)
	if c.FilterSubject != "" {
		if err := checkSubject(c.FilterSubject); err != nil {
			errs = append(errs, fmt.Errorf("filter_subject %q: %v", c.FilterSubject, err))
		}
	}
	return errs
}

// DefaultConsumer is the name of the consumer that streamux reads stream through, filtered by
// filter ("" for none), when none is configured: "streamux_" and 16 hex digits of a hash of
// both. The same configuration finds the same consumer again after a restart; sources that read
// the same stream with the same filter, and no consumer named, share it (and its messages).
func DefaultConsumer(stream, filter string) string {
	sum := sha256.Sum256([]byte(stream + "\x00" + filter))
	return "streamux_" + hex.EncodeToString(sum[:8])
}

// start is a parsed JetStream.Start: where a new consumer begins.
type start struct {
	policy jetstream.DeliverPolicy
	seq    uint64
	time   time.Time
}

// parseStart parses a Start: new, all, seq:N (N ≥ 1) or time:T (RFC 3339).
func parseStart(s string) (start, error) {
	const forms = `new, all, seq:N (a stream sequence, from 1) or time:T (an RFC 3339 time, such as time:2026-01-02T15:04:05Z)`
	switch {
	case s == StartNew:
		return start{policy: jetstream.DeliverNewPolicy}, nil
	case s == StartAll:
		return start{policy: jetstream.DeliverAllPolicy}, nil
	case strings.HasPrefix(s, StartSeqPrefix):
		n, err := strconv.ParseUint(strings.TrimPrefix(s, StartSeqPrefix), 10, 64)
		if err != nil || n == 0 {
			return start{}, errors.New("seq:N takes a stream sequence from 1, such as seq:1000")
		}
		return start{policy: jetstream.DeliverByStartSequencePolicy, seq: n}, nil
	case strings.HasPrefix(s, StartTimePrefix):
		t, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(s, StartTimePrefix))
		if err != nil {
			return start{}, fmt.Errorf("time:T takes an RFC 3339 time, such as time:2026-01-02T15:04:05Z: %v", err)
		}
		return start{policy: jetstream.DeliverByStartTimePolicy, time: t}, nil
	}
	return start{}, errors.New("must be " + forms)
}

// checkName checks a stream or consumer name as JetStream has them: not empty, and none of
// whitespace, control characters, ".", "*", ">", "/" or "\" (they become subject tokens and
// file names on the server).
func checkName(s string) error {
	for _, r := range s {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(".*>/\\", r) {
			return fmt.Errorf(`must not contain %q: no spaces, control characters, ".", "*", ">", "/" or "\"`, r)
		}
	}
	if len(s) > 255 {
		return errors.New("longer than 255 bytes")
	}
	return nil
}

package redisstreams

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/streamux/streamux/internal/source/redis"
)

// Defaults.
const (
	DefaultStart     = StartNew
	DefaultCount     = 256
	DefaultBlock     = 2 * time.Second
	DefaultClaimIdle = time.Minute
	DefaultBodyField = "body"
	// MaxCount bounds count: the entries one read may return, which the source holds at once.
	MaxCount = 10000
)

// The values of start with a name; any other is an entry id.
const (
	// StartNew creates the group at the end of the stream: only entries added from then on.
	StartNew = "$"
	// StartAll creates the group at the beginning: every entry the stream holds.
	StartAll = "0"
)

// The values of fields: how an entry's fields become the message.
const (
	// FieldsHeaders makes body_field's value the body and every other field a header.
	FieldsHeaders = "headers"
	// FieldsJSON makes the body a JSON object of all the fields; no field is a header.
	FieldsJSON = "json"
)

// Config configures one redis-streams source. Its YAML field names are part of the
// configuration contract; the config package decodes them strictly. URL, Stream and Group are
// required; every other field has a working default.
type Config struct {
	// Conn is the server: url, connect_timeout and tls, as for the redis type.
	redis.Conn `yaml:",inline"`
	// Stream is the key of the stream to read.
	Stream string `yaml:"stream"`
	// Group is the consumer group, created (with the stream, MKSTREAM) if absent.
	Group string `yaml:"group"`
	// Consumer is this reader's name in the group: its pending entries are its own. Defaults
	// to "streamux-" and the host name.
	Consumer string `yaml:"consumer"`
	// Start is where a group that streamux creates begins: "$" (StartNew, the default), "0"
	// (StartAll) or an entry id ("1700000000000-0"; entries after it). An existing group keeps
	// its place.
	Start string `yaml:"start"`
	// Count is how many entries one read asks for (XREADGROUP COUNT, XAUTOCLAIM COUNT), and so
	// how many are acknowledged at once. Defaults to 256; at most MaxCount.
	Count int `yaml:"count"`
	// Block is how long one read waits for new entries (XREADGROUP BLOCK); a read returns as
	// soon as there is one. Defaults to 2s; at least 1ms.
	Block time.Duration `yaml:"block"`
	// ClaimIdle is how long another consumer's pending entry must have been idle before this
	// one claims it (XAUTOCLAIM), on every (re)connect and every ClaimIdle after. Defaults to
	// 1m; at least 1ms.
	ClaimIdle time.Duration `yaml:"claim_idle"`
	// Fields is how the fields become the message: "headers" (FieldsHeaders, the default) or
	// "json" (FieldsJSON).
	Fields string `yaml:"fields"`
	// BodyField is the field whose value is the body, with fields: headers. Defaults to
	// "body"; an entry without it has an empty body.
	BodyField string `yaml:"body_field"`
	// KeyField is the field whose value is the key. Unset, the key is the stream's name; set,
	// an entry without it has the key "".
	KeyField string `yaml:"key_field"`
}

func (c Config) withDefaults() Config {
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer()
	}
	if c.Start == "" {
		c.Start = DefaultStart
	}
	if c.Count == 0 {
		c.Count = DefaultCount
	}
	if c.Block == 0 {
		c.Block = DefaultBlock
	}
	if c.ClaimIdle == 0 {
		c.ClaimIdle = DefaultClaimIdle
	}
	if c.Fields == "" {
		c.Fields = FieldsHeaders
	}
	if c.BodyField == "" && c.Fields == FieldsHeaders {
		c.BodyField = DefaultBodyField
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = redis.DefaultConnectTimeout
	}
	return c
}

// DefaultConsumer is the consumer name used when none is configured: "streamux-" and the host
// name, so that a streamux restarted on the same host finds its own pending entries; "streamux"
// if the host name cannot be read.
func DefaultConsumer() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "streamux"
	}
	return "streamux-" + h
}

// Validate reports every problem of c at once, each naming its field. Defaults are applied
// first, so a zero field is never a problem unless it is required.
func (c *Config) Validate() []error {
	d := c.withDefaults()
	errs := d.Conn.Validate()
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if d.Stream == "" {
		bad("stream is required: the key of the stream to read")
	}
	if d.Group == "" {
		bad("group is required: the consumer group to read with (created if absent)")
	}
	if err := checkStart(d.Start); err != nil {
		bad("%v", err)
	}
	if d.Count < 1 || d.Count > MaxCount {
		bad("count %d: must be between 1 and %d", d.Count, MaxCount)
	}
	if d.Block < time.Millisecond {
		bad("block %v: must be at least 1ms (Redis counts milliseconds, and 0 would wait for ever)", d.Block)
	}
	if d.ClaimIdle < time.Millisecond {
		bad("claim_idle %v: must be at least 1ms", d.ClaimIdle)
	}
	switch d.Fields {
	case FieldsHeaders:
	case FieldsJSON:
		if c.BodyField != "" {
			bad("body_field %q: only with fields: headers (fields: json makes the body of every field)", c.BodyField)
		}
	default:
		bad("fields %q: must be headers (a body_field as the body, the other fields as headers) or json (a JSON object of every field as the body)", d.Fields)
	}
	return errs
}

// checkStart reports whether s is a start: "$", or an entry id "<ms>" or "<ms>-<seq>" of
// decimal 64-bit numbers ("0" among them).
func checkStart(s string) error {
	ms, seq, hasSeq := strings.Cut(s, "-")
	if s == StartNew || (isUint64(ms) && (!hasSeq || isUint64(seq))) {
		return nil
	}
	return fmt.Errorf("start %q: must be $ (entries added from now on), 0 (the whole stream) or an entry id such as 1700000000000-0 (the entries after it)", s)
}

// isUint64 reports whether s is a decimal number that fits 64 bits, digits only.
func isUint64(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64) // no sign, no underscores in base 10
	return err == nil
}

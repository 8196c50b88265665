package redisstreams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unsafe"

	goredis "github.com/redis/go-redis/v9"

	"github.com/streamux/streamux/internal/stream"
)

// The headers the source adds to messages. A field of one of their names is dropped.
const (
	// StreamHeader is the stream's name.
	StreamHeader = "redis_stream"
	// IDHeader is the entry's id, "<milliseconds>-<sequence>".
	IDHeader = "redis_stream_id"
	// RedeliveredHeader is "true" on an entry read from the group's pending entries (this
	// consumer's own, after a restart, or claimed from another), which may have been passed on
	// before; a new entry does not have it (one header less for every message to carry).
	RedeliveredHeader = "redis_stream_redelivered"
)

// shape is how one source turns entries into messages (Config's stream, fields, body_field
// and key_field).
type shape struct {
	stream, fields, bodyField, keyField string
}

// message returns the message of entry e, received at now. e.Values must not be nil (a deleted
// entry has no message).
func (sh shape) message(e goredis.XMessage, redelivered bool, now time.Time) *stream.Message {
	m := &stream.Message{Key: sh.stream, Time: now, UpstreamID: sh.stream + ":" + e.ID}
	if sh.keyField != "" {
		m.Key = ""
		if v, ok := e.Values[sh.keyField]; ok {
			m.Key = text(v)
		}
	}
	if sh.fields == FieldsJSON {
		m.Headers = make(map[string]string, 3)
		m.Body = jsonObject(e.Values)
	} else {
		m.Headers = make(map[string]string, len(e.Values)+3)
		for k, v := range e.Values {
			switch k {
			case sh.bodyField:
				m.Body = bytesOf(text(v))
			case RedeliveredHeader: // the source's, even where it sets none
			default:
				m.Headers[k] = text(v)
			}
		}
		if m.Body == nil {
			m.Body = []byte{} // no body field: an empty body, not none
		}
	}
	m.Headers[StreamHeader] = sh.stream
	m.Headers[IDHeader] = e.ID
	if redelivered {
		m.Headers[RedeliveredHeader] = "true"
	}
	return m
}

// jsonObject returns the fields as a JSON object of strings, its names sorted (Redis keeps an
// entry's fields in order, but go-redis hands them over in a map). Invalid UTF-8 becomes U+FFFD,
// as in every JSON encoding of text; "<", ">" and "&" are kept as they are.
func jsonObject(values map[string]any) []byte {
	fields := make(map[string]string, len(values))
	for k, v := range values {
		fields[k] = text(v)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(fields) // a map of strings always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// bytesOf returns the bytes of s without copying them. They are the message's own: go-redis reads
// each value into a buffer of its own (proto.Reader.readStringReply makes one per value) that
// nothing else holds, a string's bytes are never written again, and nor are a message's
// (stream.Message.Body). The capacity ends with the string. The conformance suite checks every
// body byte for byte.
func bytesOf(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// text is a field's value as go-redis read it: a string (a bulk string, in RESP2 and RESP3
// alike), or anything else printed.
func text(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

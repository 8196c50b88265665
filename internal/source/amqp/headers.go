package amqp

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// The header names under which message properties appear. Application headers keep their own
// names; properties carry the "amqp_" prefix so that they never collide with them, and stay
// reachable in CEL as headers.amqp_message_id. A property appears only when it is set (not empty,
// not zero); amqp_redelivered is always present.
const (
	HeaderContentType     = "amqp_content_type"
	HeaderContentEncoding = "amqp_content_encoding"
	HeaderMessageID       = "amqp_message_id"
	HeaderCorrelationID   = "amqp_correlation_id"
	HeaderReplyTo         = "amqp_reply_to"
	HeaderAppID           = "amqp_app_id"
	HeaderUserID          = "amqp_user_id"
	HeaderType            = "amqp_type"
	HeaderTimestamp       = "amqp_timestamp" // RFC 3339, UTC, seconds
	HeaderExpiration      = "amqp_expiration"
	HeaderPriority        = "amqp_priority"
	HeaderDeliveryMode    = "amqp_delivery_mode" // "1" transient, "2" persistent
	HeaderExchange        = "amqp_exchange"      // "" (absent) for the default exchange
	HeaderRedelivered     = "amqp_redelivered"   // "true" or "false", always present
	// HeaderStreamOffset is a stream message's offset, in decimal (from the broker's
	// x-stream-offset header, which does not appear under its own name).
	HeaderStreamOffset = "amqp_stream_offset"
	// HeaderDeliveryCount is how many times a quorum queue delivered the message before, in
	// decimal, present once it was delivered again (from the broker's x-delivery-count
	// header, which does not appear under its own name).
	HeaderDeliveryCount = "amqp_delivery_count"
)

// maxDepth bounds the nesting of tables and arrays rendered as JSON; deeper values become null.
const maxDepth = 32

// headers returns the message headers of d: its application headers, stringified, then its
// properties, which win over an application header of the same name. The broker's
// x-stream-offset and x-delivery-count headers are renamed as properties.
func headers(d *amqp091.Delivery) map[string]string {
	h := make(map[string]string, len(d.Headers)+4)
	for k, v := range d.Headers {
		if k != argStreamOffset && k != argDeliveryCount {
			h[k] = Stringify(v)
		}
	}
	if v, ok := d.Headers[argStreamOffset]; ok {
		h[HeaderStreamOffset] = Stringify(v)
	}
	if v, ok := d.Headers[argDeliveryCount]; ok {
		h[HeaderDeliveryCount] = Stringify(v)
	}
	set := func(k, v string) {
		if v != "" {
			h[k] = v
		}
	}
	set(HeaderContentType, d.ContentType)
	set(HeaderContentEncoding, d.ContentEncoding)
	set(HeaderMessageID, d.MessageId)
	set(HeaderCorrelationID, d.CorrelationId)
	set(HeaderReplyTo, d.ReplyTo)
	set(HeaderAppID, d.AppId)
	set(HeaderUserID, d.UserId)
	set(HeaderType, d.Type)
	if !d.Timestamp.IsZero() {
		h[HeaderTimestamp] = d.Timestamp.UTC().Format(time.RFC3339)
	}
	set(HeaderExpiration, d.Expiration)
	if d.Priority != 0 {
		h[HeaderPriority] = strconv.Itoa(int(d.Priority))
	}
	if d.DeliveryMode != 0 {
		h[HeaderDeliveryMode] = strconv.Itoa(int(d.DeliveryMode))
	}
	set(HeaderExchange, d.Exchange)
	h[HeaderRedelivered] = strconv.FormatBool(d.Redelivered)
	return h
}

// Stringify renders one AMQP field value as a header string:
//
//   - strings as they are; byte arrays as they are when valid UTF-8, else base64 (standard);
//   - booleans as true/false, integers in decimal, floats in the shortest form that reads back
//     the same (NaN, +Inf, -Inf as such), decimals exactly (scale 2, value 12345 → 123.45);
//   - timestamps in RFC 3339, UTC;
//   - void as "";
//   - tables as a JSON object with sorted keys and arrays as a JSON array, nested values mapped
//     the same way to JSON (numbers as numbers, timestamps and byte arrays as strings, NaN and
//     infinities as strings), nesting deeper than 32 levels as null.
func Stringify(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		if utf8.Valid(v) {
			return string(v)
		}
		return base64.StdEncoding.EncodeToString(v)
	case bool:
		return strconv.FormatBool(v)
	case int8:
		return strconv.FormatInt(int64(v), 10)
	case int16:
		return strconv.FormatInt(int64(v), 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case uint8:
		return strconv.FormatUint(uint64(v), 10)
	case uint16:
		return strconv.FormatUint(uint64(v), 10)
	case uint32:
		return strconv.FormatUint(uint64(v), 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case float32:
		return formatFloat(float64(v), 32)
	case float64:
		return formatFloat(v, 64)
	case amqp091.Decimal:
		return string(appendDecimal(nil, v))
	case time.Time:
		return v.UTC().Format(time.RFC3339)
	case amqp091.Table, []any:
		return string(appendJSON(nil, v, 0))
	}
	return fmt.Sprint(v)
}

func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// appendDecimal appends d.Value·10^-d.Scale in plain decimal notation.
func appendDecimal(b []byte, d amqp091.Decimal) []byte {
	v := int64(d.Value)
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	digits := strconv.FormatInt(v, 10)
	scale := int(d.Scale)
	if scale == 0 {
		return append(b, digits...)
	}
	if len(digits) <= scale {
		b = append(b, '0', '.')
		for range scale - len(digits) {
			b = append(b, '0')
		}
		return append(b, digits...)
	}
	b = append(b, digits[:len(digits)-scale]...)
	b = append(b, '.')
	return append(b, digits[len(digits)-scale:]...)
}

// appendJSON appends v as a JSON value; see Stringify.
func appendJSON(b []byte, v any, depth int) []byte {
	if depth > maxDepth {
		return append(b, "null"...)
	}
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, v)
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64:
		return append(b, Stringify(v)...)
	case float32, float64:
		s := Stringify(v)
		if s == "NaN" || s == "+Inf" || s == "-Inf" {
			return appendJSONString(b, s)
		}
		return append(b, s...)
	case amqp091.Decimal:
		return appendDecimal(b, v)
	case amqp091.Table:
		b = append(b, '{')
		for i, k := range slices.Sorted(maps.Keys(v)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSON(b, v[k], depth+1)
		}
		return append(b, '}')
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e, depth+1)
		}
		return append(b, ']')
	}
	// Strings, byte arrays, timestamps and anything unforeseen: as a JSON string.
	return appendJSONString(b, Stringify(v))
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals; invalid UTF-8 becomes U+FFFD
	return append(b, q...)
}

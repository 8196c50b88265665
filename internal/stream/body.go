package stream

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fastjson"
)

// BodyEncoding tells how a payload appears in an event's "body".
type BodyEncoding uint8

// The body encodings.
const (
	BodyJSON   BodyEncoding = iota // the JSON value itself
	BodyText                       // a JSON string of the UTF-8 text
	BodyBase64                     // a JSON string of the base64 bytes, with "body_encoding":"base64"
)

// ClassifyBody tells how body is carried: JSON when it is one valid JSON value in valid UTF-8
// (JSON is UTF-8, and a WebSocket text frame must be), text when it is other valid UTF-8, base64
// otherwise. An empty body is text.
func ClassifyBody(body []byte) BodyEncoding {
	if mayBeJSON(body) && (compactJSON(body) || utf8.Valid(body) && json.Valid(body)) {
		return BodyJSON
	}
	if utf8.Valid(body) {
		return BodyText
	}
	return BodyBase64
}

// ValidJSON reports whether b is one valid JSON value, exactly as encoding/json's Valid does,
// by the quick test when b is compact UTF-8 (the usual case) and by Valid otherwise.
func ValidJSON(b []byte) bool {
	return compactJSON(b) || json.Valid(b)
}

// appendBody appends body as an event's "body" carries it, and says how.
func appendBody(b, body []byte) ([]byte, BodyEncoding) {
	if mayBeJSON(body) {
		if compactJSON(body) {
			return append(b, body...), BodyJSON // most JSON payloads: one quick pass, no copy
		}
		if utf8.Valid(body) {
			// Compact checks the JSON as it removes the spaces, and the newlines that would
			// break an NDJSON line; what it wrote of a body that is not JSON is cut off.
			buf := bytes.NewBuffer(b)
			if err := json.Compact(buf, body); err == nil {
				return buf.Bytes(), BodyJSON
			}
			b = buf.Bytes()[:len(b)]
		}
	}
	if utf8.Valid(body) {
		// appendString keeps nothing of the string: it can be body's own bytes, not a copy.
		return appendString(b, unsafe.String(unsafe.SliceData(body), len(body))), BodyText
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, body)
	return append(b, `","body_encoding":"base64"`...), BodyBase64
}

// mayBeJSON reports whether body starts as a JSON value can. encoding/json's Valid and Compact,
// and fastjson's validator, allocate their error for a body that is not JSON; most text fails
// this test first and never gets there.
func mayBeJSON(body []byte) bool {
	for i, c := range body {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[', '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return true
		case 't', 'f', 'n': // only the words true, false and null: not "the", "for", "no"
			rest := body[i:]
			return bytes.HasPrefix(rest, []byte("true")) || bytes.HasPrefix(rest, []byte("false")) || bytes.HasPrefix(rest, []byte("null"))
		}
		return false
	}
	return false
}

// compactJSON reports whether body is one valid JSON value in valid UTF-8 with no space outside
// its strings, which an event carries as it is. It is a quick test, several times faster than
// encoding/json's, that may say no to such a body (it then takes the long way), never yes to
// another. Its own pass finds spaces outside strings, control characters inside them (which
// fastjson's validator lets through after an escape) and nesting deeper than fastjson.MaxDepth
// (the validator recurses without a bound).
func compactJSON(body []byte) bool {
	in, esc, depth := false, false, 0
	for _, c := range body {
		switch {
		case in:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				in = false
			case c < 0x20:
				return false
			}
		case c == '"':
			in = true
		case c == '[' || c == '{':
			if depth++; depth > fastjson.MaxDepth {
				return false
			}
		case c == ']' || c == '}':
			depth--
		case c <= ' ':
			return false
		}
	}
	return utf8.Valid(body) && fastjson.ValidateBytes(body) == nil
}

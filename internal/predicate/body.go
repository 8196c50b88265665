package predicate

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/valyala/fastjson"

	"github.com/streamux/streamux/internal/stream"
)

// tooDeep says why a JSON body nested deeper than the parser goes cannot be read.
var tooDeep = fmt.Sprintf("body: JSON nested deeper than %d levels", fastjson.MaxDepth)

// errTooDeep is tooDeep as a CEL value: reading such a body is an evaluation error.
var errTooDeep = types.NewErr("%s", tooDeep)

// classify decides, once per message, how the body appears in its event (as the event's
// encoding found it: stream.Message.BodyEncoding), and parses it when it is JSON.
func (b *body) classify() bodyKind {
	if b.kind != bodyUnknown {
		return b.kind
	}
	enc := b.msg.BodyEncoding()
	b.raw = b.msg.Payload()
	switch enc {
	case stream.BodyJSON:
		// Valid JSON that fastjson does not parse is nested deeper than it goes.
		if root, err := b.parser.ParseBytes(b.raw); err == nil {
			b.kind, b.root = bodyJSON, root
		} else {
			b.kind = bodyTooDeep
		}
	case stream.BodyText:
		b.kind = bodyText
	default:
		b.kind = bodyBase64
		b.b64 = base64.StdEncoding.AppendEncode(b.b64[:0], b.raw)
	}
	return b.kind
}

// cel returns the whole body as a CEL value: the one conversion that a predicate left to cel-go
// pays for, once per message.
func (b *body) cel() ref.Val {
	switch b.classify() {
	case bodyJSON:
		var scratch [64]byte
		return b.jsonToCEL(b.root, scratch[:0])
	case bodyText:
		return types.String(b.raw)
	case bodyBase64:
		return types.String(b.b64)
	default:
		return errTooDeep
	}
}

func (b *body) jsonToCEL(v *fastjson.Value, scratch []byte) ref.Val {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[ref.Val]ref.Val, o.Len())
		// Visit goes in document order, so a repeated name keeps its last value, as JSON.parse
		// and encoding/json do.
		o.Visit(func(k []byte, v *fastjson.Value) {
			m[types.String(k)] = b.jsonToCEL(v, scratch)
		})
		return types.NewRefValMap(types.DefaultTypeAdapter, m)
	case fastjson.TypeArray:
		a, _ := v.Array()
		l := make([]ref.Val, len(a))
		for i, e := range a {
			l[i] = b.jsonToCEL(e, scratch)
		}
		return types.NewRefValList(types.DefaultTypeAdapter, l)
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return types.String(s)
	case fastjson.TypeNumber:
		if i, ok := numberInt(v, scratch); ok {
			return types.Int(i)
		}
		return types.Double(numberFloat(v, scratch))
	case fastjson.TypeTrue:
		return types.True
	case fastjson.TypeFalse:
		return types.False
	}
	return types.NullValue
}

// numberText is the literal text of a JSON number, appended to scratch.
func numberText(v *fastjson.Value, scratch []byte) []byte {
	return v.MarshalTo(scratch[:0])
}

// numberInt returns a JSON number as an int when it is an integer literal (no fraction, no
// exponent) that fits in int64.
func numberInt(v *fastjson.Value, scratch []byte) (int64, bool) {
	return parseInt(numberText(v, scratch))
}

// numberFloat returns a JSON number as a double. Out of range, it is ±Inf.
func numberFloat(v *fastjson.Value, scratch []byte) float64 {
	// The text is a valid JSON number, so the only error is ErrRange, with ±Inf or 0 as CEL
	// would have them.
	f, _ := strconv.ParseFloat(string(numberText(v, scratch)), 64)
	return f
}

// parseInt parses a validated JSON number as an int64, failing for a fraction, an exponent or
// an integer that does not fit.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (math.MaxUint64-9)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true // -(1<<63) wraps to itself, which is right
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

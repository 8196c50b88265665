package predicate

import (
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	"github.com/valyala/fastjson"

	"github.com/streamux/streamux/internal/poison"
	"github.com/streamux/streamux/internal/stream"
)

// Input is the per-message view that predicates read. It decodes the body lazily and at most
// once per message, and only as far as predicates need it: a predicate that reads only source,
// key, headers, seq or time never touches the body.
//
// One Input is owned by one goroutine: a router keeps one and Resets it for each message, then
// matches every candidate predicate against it. The zero value is ready for Reset.
type Input struct {
	msg *stream.Message

	// have says which of the CEL values below are computed for msg.
	have    uint8
	source  ref.Val
	key     ref.Val
	headers ref.Val
	seq     ref.Val
	time    ref.Val
	celBody ref.Val

	body  body
	paths pathCache // the values of body paths that the fast evaluator read

	// budget is what the evaluation under way has spent beyond CEL's own cost tracking; cost is
	// what the last Match of a measured predicate cost.
	budget budget
	cost   uint64
}

const (
	haveSource uint8 = 1 << iota
	haveKey
	haveHeaders
	haveSeq
	haveTime
	haveCELBody
)

// Reset makes the Input show m, forgetting everything decoded from the previous message. m must
// stay unchanged while the Input shows it.
func (in *Input) Reset(m *stream.Message) {
	in.msg = m
	in.have = 0
	in.source, in.key, in.headers, in.seq, in.time, in.celBody = nil, nil, nil, nil, nil, nil
	in.body.reset(m)
	in.paths.reset()
}

// Cost is what the last Match of a Measured predicate cost, in CEL cost units: what CEL's
// run-time tracking counted, which is over the predicate's limit when Match failed with
// ErrTooCostly. A Match of any other predicate leaves it as it was (their estimate bounds them:
// Predicate.Cost).
func (in *Input) Cost() uint64 { return in.cost }

// Decoded reports how many bytes of body the Input has parsed for the current message: the
// body's length once a predicate or an index has read it, 0 before.
func (in *Input) Decoded() int {
	if in.body.kind == bodyUnknown {
		return 0
	}
	return len(in.body.raw)
}

// activation is the Input as CEL's interpreter sees it: variables are converted to CEL values on
// first use and kept for the rest of the message, so that many predicates share the work.
type activation Input

var _ interpreter.Activation = (*activation)(nil)

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	in := (*Input)(a)
	m := in.msg
	switch name {
	case varSource:
		if in.have&haveSource == 0 {
			in.source, in.have = types.String(m.Source), in.have|haveSource
		}
		return in.source, true
	case varKey:
		if in.have&haveKey == 0 {
			in.key, in.have = types.String(m.Key), in.have|haveKey
		}
		return in.key, true
	case varHeaders:
		if in.have&haveHeaders == 0 {
			in.headers, in.have = types.NewStringStringMap(types.DefaultTypeAdapter, m.Headers), in.have|haveHeaders
		}
		return in.headers, true
	case varBody:
		if in.have&haveCELBody == 0 {
			in.celBody, in.have = in.body.cel(), in.have|haveCELBody
		}
		return in.celBody, true
	case varSeq:
		if in.have&haveSeq == 0 {
			in.seq, in.have = types.Int(int64(m.Seq)), in.have|haveSeq
		}
		return in.seq, true
	case varTime:
		if in.have&haveTime == 0 {
			in.time, in.have = types.Timestamp{Time: m.Time}, in.have|haveTime
		}
		return in.time, true
	case inputName:
		return in, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// bodyKind is how a body appears in its event, and so to predicates.
type bodyKind uint8

const (
	bodyUnknown bodyKind = iota // not classified yet
	bodyJSON                    // root holds the parsed value
	bodyText                    // the body is a string of the raw bytes
	bodyBase64                  // the body is a string of the base64 of the bytes
	bodyTooDeep                 // valid JSON, but nested deeper than fastjson parses
)

// body is a message body, decoded on first use.
type body struct {
	msg  *stream.Message
	raw  []byte // msg.Payload(), once classified
	kind bodyKind
	root *fastjson.Value // for bodyJSON; valid until the next reset
	b64  []byte          // for bodyBase64: the encoding, reused across messages
	num  [64]byte        // room for a number's text while it is parsed

	parser fastjson.Parser // reused, so that parsing allocates nothing once warm
}

// keepBytes is the largest body whose parsing memory an Input keeps for the next message; after
// a larger one it starts afresh, so that one huge message does not pin its size for good.
const keepBytes = 256 << 10

// reset forgets the previous message: what was decoded of it (the parser's values, the base64,
// and the strings and Keys that view them) is valid only until here. None of it outlives the
// message: CEL conversions copy (types.String), the index only looks Keys up, and pathCache
// entries of an earlier generation are never read. In a poison build the previous message's
// decoding is overwritten here, so that anything still viewing it reads garbage. The body
// itself is the message's own (stream.Message.Body) and the parser never writes it: fastjson
// parses a copy. It is read on first use (classify), through the message's Payload: reading it
// may encode the message's event, which a message that no predicate reads the body of is spared.
func (b *body) reset(m *stream.Message) {
	if b.kind == bodyJSON || b.kind == bodyTooDeep {
		poison.Parser(&b.parser, b.raw) // the previous message's, which b.parser parsed last
	}
	poison.Bytes(b.b64)
	poison.Bytes(b.num[:])
	if b.kind != bodyUnknown && len(b.raw) > keepBytes {
		b.parser = fastjson.Parser{}
		b.b64 = nil
	}
	b.msg, b.raw = m, nil
	b.kind = bodyUnknown
	b.root = nil
}

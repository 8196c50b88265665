package predicate

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/valyala/fastjson"
)

// This file is the fast evaluator's view of values: what a body path, a variable or a constant
// evaluates to, without allocating. Its equality and ordering mirror cel-go's (common/types),
// and FuzzDifferential holds them to it.

// kind is the type of a val.
type kind uint8

const (
	kNull kind = iota
	kBool
	kInt
	kUint
	kDouble
	kString
	kTime
	kList    // j is a JSON array
	kMap     // j is a JSON object
	kHeaders // h is the message's headers
)

// val is a value during fast evaluation. A string may view the Input's parser buffer or the
// message: it is valid only until the Input is Reset, and never outlives an evaluation.
type val struct {
	k kind
	b bool
	i int64
	u uint64
	f float64
	s string
	t time.Time
	j *fastjson.Value
	h map[string]string
}

// Evaluation errors. They are made once, so that a failing evaluation allocates nothing either.
var (
	errNoOverload  = errors.New("no such overload")
	errNotBool     = errors.New("a field used as a condition is not a bool in this message")
	errListField   = errors.New("unsupported index type 'string' in list")
	errUnhashable  = errors.New("in: a list or map is never in a list of constants")
	errTooDeepFast = errors.New(tooDeep)
)

// bodyVal is the body's root as a val, decoding it on first use.
func (in *Input) bodyVal() (val, error) {
	b := &in.body
	switch b.classify() {
	case bodyJSON:
		return b.fromJSON(b.root), nil
	case bodyText:
		return val{k: kString, s: viewString(b.raw)}, nil
	case bodyBase64:
		return val{k: kString, s: viewString(b.b64)}, nil
	}
	return val{}, errTooDeepFast
}

// fromJSON views a parsed JSON value. JSON numbers are ints when they are integer literals that
// fit, doubles otherwise, as in the CEL conversion.
func (b *body) fromJSON(v *fastjson.Value) val {
	switch v.Type() {
	case fastjson.TypeObject:
		return val{k: kMap, j: v}
	case fastjson.TypeArray:
		return val{k: kList, j: v}
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return val{k: kString, s: viewString(s)}
	case fastjson.TypeNumber:
		text := v.MarshalTo(b.num[:0])
		if i, ok := parseInt(text); ok {
			return val{k: kInt, i: i}
		}
		f, _ := strconv.ParseFloat(viewString(text), 64)
		return val{k: kDouble, f: f}
	case fastjson.TypeTrue:
		return val{k: kBool, b: true}
	case fastjson.TypeFalse:
		return val{k: kBool}
	}
	return val{k: kNull}
}

// viewString is b as a string without a copy. b must not change while the string is in use:
// both the message body and the parser's buffer stay put until the Input is Reset.
func viewString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// field returns v.name; present says whether it exists, for has(). Like cel-go: a missing key
// is an error, except for a presence test; a name on a list is always an error; and on a
// scalar it is an error, except for a presence test, which is false.
func (b *body) field(v val, name string, presence bool, missing error) (out val, present bool, err error) {
	switch v.k {
	case kMap:
		o, _ := v.j.Object()
		var found *fastjson.Value
		// A repeated name keeps its last value, as in the CEL conversion.
		o.Visit(func(k []byte, e *fastjson.Value) {
			if string(k) == name {
				found = e
			}
		})
		if found == nil {
			break
		}
		if presence {
			return val{}, true, nil
		}
		return b.fromJSON(found), true, nil
	case kHeaders:
		s, ok := v.h[name]
		if !ok {
			break
		}
		return val{k: kString, s: s}, true, nil
	case kList:
		return val{}, false, errListField
	}
	if presence {
		return val{}, false, nil
	}
	return val{}, false, missing
}

// index returns v[i] for an int constant i.
func (b *body) index(v val, i int64, missing error) (val, error) {
	if v.k == kList {
		a, _ := v.j.Array()
		if i >= 0 && i < int64(len(a)) {
			return b.fromJSON(a[i]), nil
		}
	}
	// JSON objects have only string keys, and scalars have none.
	return val{}, missing
}

func isNumber(k kind) bool { return k == kInt || k == kUint || k == kDouble }

// equal is CEL's heterogeneous equality (types.Equal) for the values the fast evaluator sees;
// at least one side is never a list or map, so no deep comparison is needed.
func equal(a, b val) bool {
	if a.k == kNull || b.k == kNull {
		return a.k == b.k
	}
	if isNumber(a.k) && isNumber(b.k) {
		c, ok := compareNumbers(a, b)
		return ok && c == 0
	}
	if a.k != b.k {
		return false
	}
	switch a.k {
	case kBool:
		return a.b == b.b
	case kString:
		return a.s == b.s
	case kTime:
		return a.t.Equal(b.t)
	}
	return false
}

// compare is CEL's ordering (with cross-type numeric comparisons): numbers with numbers,
// strings, bools and timestamps with their own kind; anything else has no overload.
func compare(a, b val) (int, error) {
	if isNumber(a.k) && isNumber(b.k) {
		c, ok := compareNumbers(a, b)
		if !ok {
			return 0, errNoOverload // NaN, which JSON cannot express
		}
		return c, nil
	}
	if a.k != b.k {
		return 0, errNoOverload
	}
	switch a.k {
	case kString:
		return strings.Compare(a.s, b.s), nil
	case kBool:
		switch {
		case a.b == b.b:
			return 0, nil
		case !a.b:
			return -1, nil
		}
		return 1, nil
	case kTime:
		switch {
		case a.t.Before(b.t):
			return -1, nil
		case a.t.After(b.t):
			return 1, nil
		}
		return 0, nil
	}
	return 0, errNoOverload
}

// compareNumbers mirrors common/types/compare.go, including its conversions of large integers
// to double. ok is false when a double is NaN.
func compareNumbers(a, b val) (c int, ok bool) {
	if (a.k == kDouble && math.IsNaN(a.f)) || (b.k == kDouble && math.IsNaN(b.f)) {
		return 0, false
	}
	switch a.k {
	case kInt:
		switch b.k {
		case kInt:
			return cmp3(a.i < b.i, a.i > b.i), true
		case kUint:
			return compareIntUint(a.i, b.u), true
		default:
			return -compareDoubleInt(b.f, a.i), true
		}
	case kUint:
		switch b.k {
		case kInt:
			return -compareIntUint(b.i, a.u), true
		case kUint:
			return cmp3(a.u < b.u, a.u > b.u), true
		default:
			return -compareDoubleUint(b.f, a.u), true
		}
	default:
		switch b.k {
		case kInt:
			return compareDoubleInt(a.f, b.i), true
		case kUint:
			return compareDoubleUint(a.f, b.u), true
		default:
			return cmp3(a.f < b.f, a.f > b.f), true
		}
	}
}

func cmp3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}

func compareDoubleInt(d float64, i int64) int {
	if d < math.MinInt64 {
		return -1
	}
	if d > math.MaxInt64 {
		return 1
	}
	return cmp3(d < float64(i), d > float64(i))
}

func compareDoubleUint(d float64, u uint64) int {
	if d < 0 {
		return -1
	}
	if d > math.MaxUint64 {
		return 1
	}
	return cmp3(d < float64(u), d > float64(u))
}

func compareIntUint(i int64, u uint64) int {
	if i < 0 || u > math.MaxInt64 {
		return -1
	}
	return cmp3(i < int64(u), i > int64(u))
}

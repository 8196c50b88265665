package predicate

import (
	"errors"
	"math"
	"strconv"
	"strings"

	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// The fast evaluator: the common subset of predicates compiled from the checked CEL tree into Go
// closures that allocate nothing per evaluation and read body paths straight from the parsed
// JSON. The subset is
//
//	a && b, a || b, !a, true, false
//	x == y, x != y, x < y, x <= y, x > y, x >= y
//	x in [constants], "name" in headers
//	x.startsWith(y), x.endsWith(y), x.contains(y)
//	has(x.name), and a path that is a bool (body.active)
//
// where x and y are source, key, seq, time, headers.name, body and paths below it (.name,
// ["name"], [0]), literals (string, int, uint, double, bool, null) and timestamp("...");
// == and != with a body path on both sides are left to cel-go (they may compare lists).
// Anything else is evaluated by cel-go. The two agree, errors included (FuzzDifferential).

// boolFn evaluates a bool expression: a value, or an error.
type boolFn func(in *Input) (bool, error)

// valFn evaluates an operand.
type valFn func(in *Input) (val, error)

// operand is a compiled operand.
type operand struct {
	get      valFn
	bodyPath bool // it reads the body: it may be a list or a map
	constant *val // set for a literal
}

// compileFast returns the predicate as a closure, or nil when it is outside the subset.
func compileFast(a *celast.AST) boolFn {
	f, ok := fastBool(a.Expr())
	if !ok {
		return nil
	}
	return f
}

func fastBool(e celast.Expr) (boolFn, bool) {
	switch e.Kind() {
	case celast.LiteralKind:
		b, ok := e.AsLiteral().(types.Bool)
		if !ok {
			return nil, false
		}
		return func(*Input) (bool, error) { return bool(b), nil }, true
	case celast.SelectKind:
		if e.AsSelect().IsTestOnly() {
			return fastHas(e)
		}
		return fastBoolValue(e)
	case celast.IdentKind:
		return fastBoolValue(e)
	case celast.CallKind:
	default:
		return nil, false
	}
	call := e.AsCall()
	args := call.Args()
	switch fn := call.FunctionName(); fn {
	case operators.LogicalAnd, operators.LogicalOr:
		l, ok1 := fastBool(args[0])
		r, ok2 := fastBool(args[1])
		if !ok1 || !ok2 {
			return nil, false
		}
		if fn == operators.LogicalAnd {
			return and(l, r), true
		}
		return or(l, r), true
	case operators.LogicalNot:
		x, ok := fastBool(args[0])
		if !ok {
			return nil, false
		}
		return func(in *Input) (bool, error) {
			v, err := x(in)
			return !v && err == nil, err
		}, true
	case operators.Equals, operators.NotEquals:
		return fastEquals(args[0], args[1], fn == operators.NotEquals)
	case operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
		return fastCompare(fn, args[0], args[1])
	case operators.In:
		return fastIn(args[0], args[1])
	case operators.Index:
		return fastBoolValue(e)
	case "startsWith", "endsWith", "contains":
		if !call.IsMemberFunction() || len(args) != 1 {
			return nil, false
		}
		return fastString(fn, call.Target(), args[0])
	}
	return nil, false
}

// and is CEL's commutative &&: false if either side is false, else an error if either side
// failed, else true.
func and(l, r boolFn) boolFn {
	return func(in *Input) (bool, error) {
		a, errA := l(in)
		if errA == nil && !a {
			return false, nil
		}
		b, errB := r(in)
		if errB == nil && !b {
			return false, nil
		}
		if errA != nil {
			return false, errA
		}
		return errB == nil, errB
	}
}

// or is CEL's commutative ||: true if either side is true, else an error if either side
// failed, else false.
func or(l, r boolFn) boolFn {
	return func(in *Input) (bool, error) {
		a, errA := l(in)
		if errA == nil && a {
			return true, nil
		}
		b, errB := r(in)
		if errB == nil && b {
			return true, nil
		}
		if errA != nil {
			return false, errA
		}
		return false, errB
	}
}

// fastBoolValue is a path whose value must be a bool (body.active).
func fastBoolValue(e celast.Expr) (boolFn, bool) {
	x, ok := fastOperand(e)
	if !ok || x.constant != nil {
		return nil, false
	}
	get := x.get
	return func(in *Input) (bool, error) {
		v, err := get(in)
		if err != nil {
			return false, err
		}
		if v.k != kBool {
			return false, errNotBool
		}
		return v.b, nil
	}, true
}

func fastEquals(le, re celast.Expr, negate bool) (boolFn, bool) {
	l, ok1 := fastOperand(le)
	r, ok2 := fastOperand(re)
	if !ok1 || !ok2 || l.bodyPath && r.bodyPath {
		return nil, false
	}
	// A constant on one side is the common case: compare against it directly.
	if r.constant != nil || l.constant != nil {
		get, c := l.get, r.constant
		if c == nil {
			get, c = r.get, l.constant
		}
		k := *c
		return func(in *Input) (bool, error) {
			v, err := get(in)
			if err != nil {
				return false, err
			}
			return equal(v, k) != negate, nil
		}, true
	}
	lg, rg := l.get, r.get
	return func(in *Input) (bool, error) {
		a, err := lg(in)
		if err != nil {
			return false, err
		}
		b, err := rg(in)
		if err != nil {
			return false, err
		}
		return equal(a, b) != negate, nil
	}, true
}

func fastCompare(fn string, le, re celast.Expr) (boolFn, bool) {
	l, ok1 := fastOperand(le)
	r, ok2 := fastOperand(re)
	if !ok1 || !ok2 {
		return nil, false
	}
	var test func(c int) bool
	switch fn {
	case operators.Less:
		test = func(c int) bool { return c < 0 }
	case operators.LessEquals:
		test = func(c int) bool { return c <= 0 }
	case operators.Greater:
		test = func(c int) bool { return c > 0 }
	default:
		test = func(c int) bool { return c >= 0 }
	}
	lg, rg := l.get, r.get
	return func(in *Input) (bool, error) {
		a, err := lg(in)
		if err != nil {
			return false, err
		}
		b, err := rg(in)
		if err != nil {
			return false, err
		}
		c, err := compare(a, b)
		if err != nil {
			return false, err
		}
		return test(c), nil
	}, true
}

func fastString(fn string, te, ae celast.Expr) (boolFn, bool) {
	t, ok1 := fastOperand(te)
	a, ok2 := fastOperand(ae)
	if !ok1 || !ok2 {
		return nil, false
	}
	var test func(s, sub string) bool
	switch fn {
	case "startsWith":
		test = strings.HasPrefix
	case "endsWith":
		test = strings.HasSuffix
	default:
		test = strings.Contains
	}
	tg, ag := t.get, a.get
	return func(in *Input) (bool, error) {
		s, err := tg(in)
		if err != nil {
			return false, err
		}
		sub, err := ag(in)
		if err != nil {
			return false, err
		}
		if s.k != kString || sub.k != kString {
			return false, errNoOverload
		}
		return test(s.s, sub.s), nil
	}, true
}

// setKey is a constant in an `in` list, as cel-go's set membership hashes it.
type setKey struct {
	k kind
	n uint64 // an int's or uint's bits, a double's bits (0 for -0), a bool as 0 or 1
	s string
}

func keyOf(v val) (setKey, bool) {
	switch v.k {
	case kString:
		return setKey{k: kString, s: v.s}, true
	case kInt:
		return setKey{k: kInt, n: uint64(v.i)}, true
	case kUint:
		return setKey{k: kUint, n: v.u}, true
	case kDouble:
		if v.f == 0 {
			return setKey{k: kDouble}, true
		}
		return setKey{k: kDouble, n: math.Float64bits(v.f)}, true
	case kBool:
		if v.b {
			return setKey{k: kBool, n: 1}, true
		}
		return setKey{k: kBool}, true
	}
	return setKey{}, false
}

// fastIn is `x in [constants]` and `"name" in headers`.
func fastIn(xe, le celast.Expr) (boolFn, bool) {
	if le.Kind() == celast.IdentKind && le.AsIdent() == varHeaders {
		if xe.Kind() != celast.LiteralKind {
			return nil, false
		}
		name, ok := xe.AsLiteral().(types.String)
		if !ok {
			return nil, false
		}
		return func(in *Input) (bool, error) {
			_, ok := in.msg.Headers[string(name)]
			return ok, nil
		}, true
	}
	x, ok := fastOperand(xe)
	if !ok || le.Kind() != celast.ListKind {
		return nil, false
	}
	elems := le.AsList().Elements()
	if len(elems) == 0 {
		// cel-go folds this to false, whatever x is.
		return func(*Input) (bool, error) { return false, nil }, true
	}
	set, ok := constantSet(elems)
	if !ok {
		return nil, false
	}
	get := x.get
	return func(in *Input) (bool, error) {
		v, err := get(in)
		if err != nil {
			return false, err
		}
		// A list, a map, null or a timestamp is in no list of primitive constants.
		k, ok := keyOf(v)
		if !ok {
			return false, nil
		}
		_, found := set[k]
		return found, nil
	}, true
}

// constantSet builds the set cel-go's set membership optimisation builds for a list of
// primitive literals, numbers under each of their lossless conversions.
func constantSet(elems []celast.Expr) (map[setKey]struct{}, bool) {
	set := make(map[setKey]struct{}, len(elems))
	add := func(v ref.Val) {
		if k, ok := keyOf(refToVal(v)); ok {
			set[k] = struct{}{}
		}
	}
	for _, e := range elems {
		if e.Kind() != celast.LiteralKind {
			return nil, false
		}
		elem := e.AsLiteral()
		switch ev := elem.(type) {
		case types.String, types.Bool:
			add(ev)
		case types.Double:
			add(ev)
			if iv := ev.ConvertToType(types.IntType); !types.IsError(iv) && iv.Equal(ev) == types.True {
				add(iv)
			}
			if uv := ev.ConvertToType(types.UintType); !types.IsError(uv) && uv.Equal(ev) == types.True {
				add(uv)
			}
		case types.Int:
			add(ev)
			if dv := ev.ConvertToType(types.DoubleType); !types.IsError(dv) {
				add(dv)
			}
			if uv := ev.ConvertToType(types.UintType); !types.IsError(uv) {
				add(uv)
			}
		case types.Uint:
			add(ev)
			if dv := ev.ConvertToType(types.DoubleType); !types.IsError(dv) {
				add(dv)
			}
			if iv := ev.ConvertToType(types.IntType); !types.IsError(iv) {
				add(iv)
			}
		default:
			// null, bytes: cel-go does not use a set; neither do we.
			return nil, false
		}
	}
	return set, true
}

// refToVal converts a scalar CEL constant.
func refToVal(v ref.Val) val {
	switch c := v.(type) {
	case types.String:
		return val{k: kString, s: string(c)}
	case types.Int:
		return val{k: kInt, i: int64(c)}
	case types.Uint:
		return val{k: kUint, u: uint64(c)}
	case types.Double:
		return val{k: kDouble, f: float64(c)}
	case types.Bool:
		return val{k: kBool, b: bool(c)}
	case types.Timestamp:
		return val{k: kTime, t: c.Time}
	}
	return val{k: kNull}
}

// fastHas is has(x.name).
func fastHas(e celast.Expr) (boolFn, bool) {
	sel := e.AsSelect()
	root, segs, ok := fastPath(sel.Operand())
	if !ok {
		return nil, false
	}
	get, name := pathOperand(root, segs).get, sel.FieldName()
	return func(in *Input) (bool, error) {
		v, err := get(in)
		if err != nil {
			return false, err
		}
		_, present, err := in.body.field(v, name, true, nil)
		return present && err == nil, err
	}, true
}

// fastOperand compiles a literal, a variable or a path.
func fastOperand(e celast.Expr) (operand, bool) {
	switch e.Kind() {
	case celast.LiteralKind:
		switch e.AsLiteral().(type) {
		case types.String, types.Int, types.Uint, types.Double, types.Bool, types.Null:
		default:
			return operand{}, false
		}
		return constOperand(refToVal(e.AsLiteral())), true
	case celast.CallKind:
		call := e.AsCall()
		if call.FunctionName() == "timestamp" && !call.IsMemberFunction() && len(call.Args()) == 1 &&
			call.Args()[0].Kind() == celast.LiteralKind {
			s, ok := call.Args()[0].AsLiteral().(types.String)
			if !ok {
				return operand{}, false
			}
			// Exactly what timestamp(string) does at run time.
			t, ok := s.ConvertToType(types.TimestampType).(types.Timestamp)
			if !ok {
				return operand{}, false
			}
			return constOperand(val{k: kTime, t: t.Time}), true
		}
	}
	root, segs, ok := fastPath(e)
	if !ok || root == varHeaders && len(segs) == 0 {
		// The headers as a whole compare as a map, which is cel-go's business.
		return operand{}, false
	}
	return pathOperand(root, segs), true
}

func constOperand(v val) operand {
	return operand{get: func(*Input) (val, error) { return v, nil }, constant: &v}
}

// segment is one step of a path: .name, ["name"] or [i].
type segment struct {
	name    string
	index   int64
	isIndex bool
	missing error // the error when it is not there
}

// fastPath takes a variable or a chain of selections and constant indexes apart.
func fastPath(e celast.Expr) (root string, segs []segment, ok bool) {
	switch e.Kind() {
	case celast.IdentKind:
		switch name := e.AsIdent(); name {
		case varSource, varKey, varHeaders, varBody, varSeq, varTime:
			return name, nil, true
		}
		return "", nil, false
	case celast.SelectKind:
		sel := e.AsSelect()
		if sel.IsTestOnly() {
			return "", nil, false
		}
		root, segs, ok = fastPath(sel.Operand())
		if !ok {
			return "", nil, false
		}
		return root, append(segs, segment{name: sel.FieldName(), missing: missingKey(sel.FieldName())}), true
	case celast.CallKind:
		call := e.AsCall()
		if call.FunctionName() != operators.Index || len(call.Args()) != 2 || call.Args()[1].Kind() != celast.LiteralKind {
			return "", nil, false
		}
		root, segs, ok = fastPath(call.Args()[0])
		if !ok {
			return "", nil, false
		}
		switch i := call.Args()[1].AsLiteral().(type) {
		case types.String:
			return root, append(segs, segment{name: string(i), missing: missingKey(string(i))}), true
		case types.Int:
			return root, append(segs, segment{index: int64(i), isIndex: true, missing: missingIndex(int64(i))}), true
		}
	}
	return "", nil, false
}

func missingKey(name string) error { return errors.New("no such key: " + name) }

func missingIndex(i int64) error {
	return errors.New("index out of range: " + strconv.FormatInt(i, 10))
}

// pathOperand reads a variable and walks the path below it.
func pathOperand(root string, segs []segment) operand {
	var start valFn
	switch root {
	case varSource:
		start = func(in *Input) (val, error) { return val{k: kString, s: in.msg.Source}, nil }
	case varKey:
		start = func(in *Input) (val, error) { return val{k: kString, s: in.msg.Key}, nil }
	case varSeq:
		start = func(in *Input) (val, error) { return val{k: kInt, i: int64(in.msg.Seq)}, nil }
	case varTime:
		start = func(in *Input) (val, error) { return val{k: kTime, t: in.msg.Time}, nil }
	case varHeaders:
		start = func(in *Input) (val, error) { return val{k: kHeaders, h: in.msg.Headers}, nil }
	default:
		start = (*Input).bodyVal
	}
	op := operand{get: start, bodyPath: root == varBody}
	if len(segs) == 0 {
		return op
	}
	walk := func(in *Input) (val, error) {
		v, err := start(in)
		if err != nil {
			return val{}, err
		}
		for i := range segs {
			s := &segs[i]
			if s.isIndex {
				v, err = in.body.index(v, s.index, s.missing)
			} else {
				v, _, err = in.body.field(v, s.name, false, s.missing)
			}
			if err != nil {
				return val{}, err
			}
		}
		return v, nil
	}
	op.get = walk
	if id := internPath(root, segs); id >= 0 {
		// Many predicates read the same body paths: the first to read one on a message keeps
		// its value for the others.
		op.get = func(in *Input) (val, error) {
			if c := in.paths.get(id); c != nil {
				return c.v, c.err
			}
			v, err := walk(in)
			in.paths.put(id, v, err)
			return v, err
		}
	}
	return op
}

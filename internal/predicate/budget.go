package predicate

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/decls"
	"github.com/google/cel-go/common/functions"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
)

// ErrTooCostly is the error, under Match's, of an evaluation that went over its cost limit: the
// limit that CEL's run-time cost tracking enforces, the iterations of comprehensions
// (maxIterations), or a call that would cost more than the whole limit on its own and so is not
// made. A subscription whose predicate does this is cut; it would cost as much on the next such
// message.
var ErrTooCostly = errors.New("predicate too costly")

// budget is what one evaluation has spent of what cel-go does not count itself: the iterations
// of its comprehensions, and whether a call was refused for its cost. Match resets it; the
// decorated ranges and calls of the program reach it through the activation (inputName).
type budget struct {
	iterations int
	exceeded   error // why the evaluation went over, or nil
}

// over records that the evaluation went over the limit, and why, and returns the error.
func (b *budget) over(limit uint64, format string, args ...any) error {
	if b.exceeded == nil {
		b.exceeded = fmt.Errorf("%w: %s, over the cost limit of %d", ErrTooCostly, fmt.Sprintf(format, args...), limit)
	}
	return b.exceeded
}

// budgetOf is the budget of the evaluation that frame belongs to.
func budgetOf(frame *interpreter.ExecutionFrame) *budget {
	if x, ok := frame.ResolveName(inputName); ok {
		return &x.(*Input).budget
	}
	return &budget{} // evaluated without an Input: nothing to report to, the limits still hold
}

// The functions whose calls are checked before they run: their time or memory grows with their
// input faster than CEL's run-time tracking, which charges a call once it has returned, can
// stop. matches is linear in its input but with the regular expression's program size as the
// factor; replace, split and join build results that can be far larger than their input (an 8
// MiB body split on "" is 8 million strings; replace("", s) inserts s between every two
// characters).
const (
	fnMatches = "matches"
	fnReplace = "replace"
	fnSplit   = "split"
	fnJoin    = "join"
)

// boundedMatches is what a checked matches call calls itself (Function): not "matches", so that
// cel-go's regex optimization, which runs after this package's decorators and replaces every
// call to a function named matches with a constant pattern by one of its own, leaves it alone.
const boundedMatches = "matches (bounded)"

// overloadsOf gives the overload ids of the checked functions, by name and number of arguments
// (the target counts), for calls whose overload the checker left to run time.
var overloadsOf = map[string]map[int]string{
	fnMatches: {2: "matches_string"},
	fnReplace: {3: "string_replace_string_string", 4: "string_replace_string_string_int"},
	fnSplit:   {2: "string_split_string", 3: "string_split_string_int"},
	fnJoin:    {1: "list_join", 2: "list_join_string"},
}

// functionOf maps each checked overload id to its function.
var functionOf = map[string]string{
	"matches": fnMatches, "matches_string": fnMatches,
	"string_replace_string_string": fnReplace, "string_replace_string_string_int": fnReplace,
	"string_split_string": fnSplit, "string_split_string_int": fnSplit,
	"list_join": fnJoin, "list_join_string": fnJoin,
}

// bindings are cel-go's own implementations of replace, split and join, by overload id, with
// their run-time type guards, so that a checked call computes exactly what the call would have.
var bindings = sync.OnceValue(func() map[string]*functions.Overload {
	env, err := celEnv()
	if err != nil {
		panic(fmt.Sprintf("predicate: CEL environment: %v", err))
	}
	out := map[string]*functions.Overload{}
	for _, name := range []string{fnReplace, fnSplit, fnJoin} {
		f := env.Functions()[name]
		obs, err := f.Bindings()
		if err != nil {
			panic(fmt.Sprintf("predicate: CEL function %s: %v", name, err))
		}
		for _, o := range obs {
			out[o.Operator] = o
		}
	}
	return out
})

// boundCalls replaces the program's calls to matches, replace, split and join by calls that
// work out what they will cost from their actual arguments and are not made when that is over
// limit: the evaluation then fails with ErrTooCostly, whatever absorbs the error. Constant
// patterns of matches are compiled here, once, and their sizes kept in sizes for the cost
// tracker (matchesTracker).
func boundCalls(limit uint64, sizes map[string]uint64) cel.ProgramOption {
	return cel.CustomDecoratorV2(func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
		call, ok := i.(interpreter.InterpretableCall)
		if !ok {
			return i, nil
		}
		fn, overload := functionOf[call.OverloadID()], call.OverloadID()
		if fn == "" && call.OverloadID() == "" {
			fn = call.Function()
			overload = overloadsOf[fn][len(call.Args())]
		}
		if fn == "" || overload == "" {
			return i, nil
		}
		c := &boundedCall{id: call.ID(), function: call.Function(), overload: overload, fn: fn, args: call.Args(), limit: limit}
		switch fn {
		case fnMatches:
			c.function = boundedMatches
			if k, ok := call.Args()[1].(interpreter.InterpretableConst); ok {
				if pattern, ok := k.Value().(types.String); ok {
					re, err := regexp.Compile(string(pattern))
					if err != nil {
						return nil, err
					}
					n, err := regexInsts(string(pattern))
					if err != nil {
						return nil, err
					}
					c.re = &compiledRegex{re: re, insts: n}
					sizes[string(pattern)] = n
				}
			}
		default:
			c.impl = bindings()[overload]
			if c.impl == nil {
				return i, nil
			}
		}
		return c, nil
	})
}

// matchesTracker charges matches to CEL's run-time cost tracking as regexCost counts it.
func matchesTracker(sizes map[string]uint64) cel.ProgramOption {
	track := func(args []ref.Val, _ ref.Val) *uint64 {
		if len(args) != 2 {
			return nil
		}
		s, ok1 := args[0].(types.String)
		p, ok2 := args[1].(types.String)
		if !ok1 || !ok2 {
			return nil
		}
		n, ok := sizes[string(p)]
		if !ok {
			var err error
			if n, err = regexInsts(string(p)); err != nil {
				return nil
			}
		}
		cost := regexCost(n, string(s))
		return &cost
	}
	return cel.CostTrackerOptions(
		interpreter.OverloadCostTracker("matches", track),
		interpreter.OverloadCostTracker("matches_string", track),
	)
}

// boundedCall is a call to one of the checked functions. It implements
// interpreter.InterpretableCall, so that CEL's cost tracking charges it as it charges the call it
// replaces (by overload id).
type boundedCall struct {
	id       int64
	function string
	overload string
	fn       string // fnMatches, …
	args     []interpreter.InterpretableV2
	limit    uint64
	re       *compiledRegex      // matches with a constant pattern
	impl     *functions.Overload // replace, split, join
}

var _ interpreter.InterpretableCall = (*boundedCall)(nil)

func (c *boundedCall) ID() int64                             { return c.id }
func (c *boundedCall) Function() string                      { return c.function }
func (c *boundedCall) OverloadID() string                    { return c.overload }
func (c *boundedCall) Args() []interpreter.InterpretableV2   { return c.args }
func (c *boundedCall) Eval(a interpreter.Activation) ref.Val { return c.Exec(interpreter.AsFrame(a)) }

// Exec evaluates the arguments, as a strict call does (the first error or unknown among them is
// the result), then checks the cost and makes the call.
func (c *boundedCall) Exec(frame *interpreter.ExecutionFrame) ref.Val {
	var buf [4]ref.Val
	vals := buf[:0]
	for _, a := range c.args {
		vals = append(vals, a.Exec(frame))
	}
	for _, v := range vals {
		if types.IsUnknownOrError(v) {
			return v
		}
	}
	if c.fn == fnMatches {
		return c.matches(frame, vals)
	}
	if cost, ok := resultCost(c.fn, vals); ok && cost > c.limit {
		return types.WrapErr(budgetOf(frame).over(c.limit, "%s would build a result of cost %d", c.fn, cost))
	}
	o := c.impl
	switch {
	case len(vals) == 1 && o.Unary != nil:
		return o.Unary(vals[0])
	case len(vals) == 2 && o.Binary != nil:
		return o.Binary(vals[0], vals[1])
	case o.Function != nil:
		return o.Function(vals...)
	}
	return decls.MaybeNoSuchOverload(c.fn, vals...)
}

func (c *boundedCall) matches(frame *interpreter.ExecutionFrame, vals []ref.Val) ref.Val {
	s, ok1 := vals[0].(types.String)
	p, ok2 := vals[1].(types.String)
	if !ok1 || !ok2 {
		return decls.MaybeNoSuchOverload(fnMatches, vals...)
	}
	var (
		ok  bool
		err error
	)
	if c.re != nil {
		if cost := regexCost(c.re.insts, string(s)); cost > c.limit {
			err = budgetOf(frame).over(c.limit, "matches on %d bytes with a regular expression of %d instructions costs %d", len(s), c.re.insts, cost)
		} else {
			ok = c.re.re.MatchString(string(s))
		}
	} else {
		ok, err = c.matchDynamic(frame, string(s), string(p))
	}
	if err != nil {
		return types.WrapErr(err)
	}
	return types.Bool(ok)
}

// matchDynamic runs a matches call whose pattern comes from the message: its size is known only
// now, so it is checked before the pattern is compiled.
func (c *boundedCall) matchDynamic(frame *interpreter.ExecutionFrame, s, pattern string) (bool, error) {
	if uint64(len(pattern)) > min(c.limit, maxRegexInsts) {
		return false, budgetOf(frame).over(c.limit, "matches with a regular expression of %d bytes", len(pattern))
	}
	n, err := regexInsts(pattern)
	if err != nil {
		return false, fmt.Errorf("matches: %w", err)
	}
	if cost := regexCost(n, s); n > maxRegexInsts || cost > c.limit {
		return false, budgetOf(frame).over(c.limit, "matches on %d bytes with a regular expression of %d instructions costs %d", len(s), n, cost)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return false, fmt.Errorf("matches: %w", err)
	}
	return re.MatchString(s), nil
}

// resultCost is, for replace, split and join, the size of the result they would build (bytes
// of a string, elements of a list, plus a tenth of the bytes a split reads): what CEL charges
// for it once it is built, worked out without building it. ok is false when the arguments are
// not what the function takes; the call then fails as it would have.
func resultCost(fn string, vals []ref.Val) (cost uint64, ok bool) {
	str := func(i int) (string, bool) {
		if i >= len(vals) {
			return "", false
		}
		s, ok := vals[i].(types.String)
		return string(s), ok
	}
	limitN := func(count uint64, i int) uint64 { // the optional count argument, n < 0: all
		if i < len(vals) {
			if n, ok := vals[i].(types.Int); ok && n >= 0 {
				return min(count, uint64(n))
			}
		}
		return count
	}
	switch fn {
	case fnReplace:
		s, ok1 := str(0)
		old, ok2 := str(1)
		repl, ok3 := str(2)
		if !ok1 || !ok2 || !ok3 {
			return 0, false
		}
		var count uint64
		if old == "" {
			count = uint64(utf8.RuneCountInString(s)) + 1
		} else {
			count = uint64(strings.Count(s, old))
		}
		count = limitN(count, 3)
		size := uint64(len(s))
		if len(repl) > len(old) {
			size = satAdd(size, satMul(count, uint64(len(repl)-len(old))))
		}
		return size, true
	case fnSplit:
		s, ok1 := str(0)
		sep, ok2 := str(1)
		if !ok1 || !ok2 {
			return 0, false
		}
		var parts uint64
		if sep == "" {
			parts = uint64(utf8.RuneCountInString(s))
		} else {
			parts = uint64(strings.Count(s, sep)) + 1
		}
		return satAdd(limitN(parts, 2), uint64(len(s))/10), true
	case fnJoin:
		l, ok := vals[0].(traits.Lister)
		if !ok {
			return 0, false
		}
		sep := ""
		if len(vals) > 1 {
			if sep, ok = str(1); !ok {
				return 0, false
			}
		}
		n, ok := l.Size().(types.Int)
		if !ok {
			return 0, false
		}
		var size uint64
		for i := types.Int(0); i < n; i++ {
			s, ok := l.Get(i).(types.String)
			if !ok {
				return 0, false
			}
			size = satAdd(size, uint64(len(s)))
		}
		if n > 1 {
			size = satAdd(size, satMul(uint64(n-1), uint64(len(sep))))
		}
		return size, true
	}
	return 0, false
}

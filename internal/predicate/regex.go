package predicate

import (
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"

	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
)

// What a regular expression costs. RE2 (Go's regexp) matches in time linear in the input, but
// the factor is the size of the compiled program: in the worst case every instruction is live
// at every character. So `matches` costs one unit per instruction per byte of its input (plus
// one), not what CEL charges (a fixed guess of one instruction per four characters of the
// pattern), which let `(.*.*.*.*.*.*.*.*){1000}x` (18,003 instructions, 27 characters) pass as
// cheap and then take seconds on a 10 KB body. Measured here, the worst case is 20-30 ns per
// instruction and byte, about what a unit of CEL's own costs in a comprehension.

// maxRegexInsts is the largest regular expression program accepted, whatever the cost limit:
// compiling one takes memory and time in proportion (a program this size is about 4 MB, and a
// few tens of milliseconds to compile), at every subscription that sends it.
const maxRegexInsts = 100_000

// regexInsts returns the number of instructions that Go's regexp compiles pattern to (a close
// upper bound, counted on the parsed expression without compiling it, so that a pattern too
// large to accept costs nothing to refuse), or the parse error.
func regexInsts(pattern string) (uint64, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return 0, err
	}
	// The program starts with a fail instruction and ends with a match.
	return satAdd(insts(re), 2), nil
}

// insts counts the instructions of re as regexp compiles it, after Simplify has expanded its
// counted repetitions. It saturates rather than overflow.
func insts(re *syntax.Regexp) uint64 {
	switch re.Op {
	case syntax.OpLiteral:
		return max(uint64(len(re.Rune)), 1) // one per rune; an empty literal is a no-op
	case syntax.OpCapture:
		return satAdd(insts(re.Sub[0]), 2)
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		return satAdd(insts(re.Sub[0]), 1)
	case syntax.OpRepeat:
		sub := insts(re.Sub[0])
		lo, hi := uint64(re.Min), re.Max
		switch {
		case hi == -1 && lo == 0: // x{0,}: x*
			return satAdd(sub, 1)
		case hi == -1: // x{n,}: n-1 copies of x, then x+
			return satAdd(satMul(lo, sub), 1)
		case hi == 0: // x{0}: empty
			return 1
		}
		// x{n,m}: n copies of x, then m-n nested (x)?
		return satAdd(satMul(lo, sub), satMul(uint64(hi)-lo, satAdd(sub, 1)))
	case syntax.OpConcat, syntax.OpAlternate:
		var n uint64
		for _, s := range re.Sub {
			n = satAdd(n, insts(s))
		}
		if len(re.Sub) == 0 {
			return 1
		}
		if re.Op == syntax.OpAlternate {
			n = satAdd(n, uint64(len(re.Sub)-1)) // a split instruction between each two
		}
		return n
	}
	// A character class, any character, an empty-width assertion, an empty match, no match:
	// one instruction each.
	return 1
}

func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func satMul(a, b uint64) uint64 {
	if b != 0 && a > math.MaxUint64/b {
		return math.MaxUint64
	}
	return a * b
}

// regexCost is what matching a regular expression of the given size against input costs.
func regexCost(insts uint64, input string) uint64 {
	return satMul(insts, uint64(len(input))+1)
}

// checkRegexLiterals refuses, before anything compiles them, the regular expression literals of
// matches whose programs are over what one evaluation may cost, or over maxRegexInsts: such a
// pattern costs more than the limit on the empty string already. Patterns that do not parse are
// left to CEL's own validation, which says where and why.
func checkRegexLiterals(parsed *celast.AST, lim Limits) *Error {
	var found *Error
	info := parsed.SourceInfo()
	celast.PreOrderVisit(parsed.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if found != nil || e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		if call.FunctionName() != overloads.Matches {
			return
		}
		args := call.Args()
		i := 1 // matches(string, pattern)
		if call.IsMemberFunction() {
			i = 0 // string.matches(pattern)
		}
		if len(args) <= i || args[i].Kind() != celast.LiteralKind {
			return
		}
		pattern, ok := args[i].AsLiteral().(types.String)
		if !ok {
			return
		}
		n, err := regexInsts(string(pattern))
		if err != nil {
			return
		}
		limit := min(lim.MaxCost, maxRegexInsts)
		if n <= limit {
			return
		}
		pos := -1
		if r, ok := info.GetOffsetRange(args[i].ID()); ok {
			pos = int(r.Start)
		}
		found = &Error{
			Code: CodeTooCostly,
			Message: fmt.Sprintf("predicate is too costly: its regular expression compiles to about %d instructions, over the limit of %d "+
				"(matching costs one unit per instruction and character of the input)", n, limit),
			Position: pos,
		}
	}))
	return found
}

// compiledRegex is a constant pattern of a matches call, compiled once per predicate.
type compiledRegex struct {
	re    *regexp.Regexp
	insts uint64
}

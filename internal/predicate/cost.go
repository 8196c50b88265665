package predicate

import (
	"math"

	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
)

// Size hints for the static cost estimate: the sizes (characters of a string, elements of a list,
// entries of a map) of a large but ordinary message. They are not limits: a bigger message is
// still matched, and a predicate with comprehensions is then held to Limits.MaxCost at run time.
const (
	hintSource      = 256  // a source name
	hintKey         = 1024 // a routing key, subject, topic or Kafka key
	hintHeaders     = 64   // headers on one message
	hintHeaderValue = 1024 // one header name or value
	hintBody        = 512  // any string, list or map in the body, and a text body
)

// sizeEstimator gives CEL's cost estimator the size hints, times scale (0 counts as 1), and the
// cost of matches as regexCost counts it; other function costs are CEL's own. Compile estimates
// twice, with scale 1 and 2: a predicate whose estimate does not move costs no more on a larger
// message, and the rest are measured as they run (Predicate.Measured).
type sizeEstimator struct{ scale uint64 }

func (e sizeEstimator) hint(n uint64) uint64 { return n * max(e.scale, 1) }

// EstimateSize implements checker.CostEstimator.
func (e sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	path := n.Path()
	if len(path) == 0 {
		switch {
		case n.Type() != nil && (n.Type().Kind() == types.TypeKind || n.Type().Kind() == types.NullTypeKind):
			// type(x) and null have one size; CEL leaves them unknown, which would make
			// type(body.n) == int look unaffordable.
			return &checker.SizeEstimate{Min: 1, Max: 1}
		case n.Expr().Kind() == ast.CallKind:
			// A result CEL cannot size (string(x), format): as large as a body value. Functions
			// that build large strings (replace, join) size their results themselves.
			return &checker.SizeEstimate{Min: 0, Max: e.hint(hintBody)}
		}
		return nil
	}
	var max uint64
	switch path[0] {
	case varSource:
		max = hintSource
	case varKey:
		max = hintKey
	case varHeaders:
		max = hintHeaders
		if len(path) > 1 {
			max = hintHeaderValue
		}
	case varBody:
		max = hintBody
	default:
		return nil
	}
	return &checker.SizeEstimate{Min: 0, Max: e.hint(max)}
}

// EstimateCallCost implements checker.CostEstimator: matches costs the size of the regular
// expression's program (for a pattern that is not a literal, its length) times the input's length
// plus one, as regexCost charges it at run time.
func (e sizeEstimator) EstimateCallCost(function, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	var str, pattern checker.AstNode
	switch {
	case overloadID == overloads.MatchesString && target != nil && len(args) == 1:
		str, pattern = *target, args[0]
	case overloadID == overloads.Matches && target == nil && len(args) == 2:
		str, pattern = args[0], args[1]
	default:
		return nil
	}
	insts := e.sizeOf(pattern)
	if pattern.Expr().Kind() == ast.LiteralKind {
		if lit, ok := pattern.Expr().AsLiteral().(types.String); ok {
			n, err := regexInsts(string(lit))
			if err != nil {
				return nil
			}
			insts = checker.SizeEstimate{Min: n, Max: n}
		}
	}
	in := e.sizeOf(str)
	return &checker.CallEstimate{CostEstimate: checker.CostEstimate{
		Min: satMul(insts.Min, satAdd(in.Min, 1)),
		Max: satMul(insts.Max, satAdd(in.Max, 1)),
	}}
}

// sizeOf is a node's size as CEL computed it, else as the hints make it, else unknown.
func (e sizeEstimator) sizeOf(n checker.AstNode) checker.SizeEstimate {
	if s := n.ComputedSize(); s != nil {
		return *s
	}
	if s := e.EstimateSize(n); s != nil {
		return *s
	}
	return checker.SizeEstimate{Min: 0, Max: math.MaxUint64}
}

package predicate

import (
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/ast"
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

// sizeEstimator gives CEL's cost estimator the size hints; function costs are CEL's own.
type sizeEstimator struct{}

// EstimateSize implements checker.CostEstimator.
func (sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
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
			return &checker.SizeEstimate{Min: 0, Max: hintBody}
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
	return &checker.SizeEstimate{Min: 0, Max: max}
}

// EstimateCallCost implements checker.CostEstimator.
func (sizeEstimator) EstimateCallCost(function, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	return nil
}

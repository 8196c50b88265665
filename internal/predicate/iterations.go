package predicate

import (
	"fmt"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
)

// maxIterations bounds the iterations of comprehensions in one evaluation. cel-go's run-time cost tracking, which comprehensions need, takes time quadratic
// in the iterations, so Limits.MaxCost alone would let a body with a long list stall a router
// for seconds before the limit trips.
const maxIterations = 1024

// errIterations is the evaluation error when a predicate goes over maxIterations.
var errIterations = fmt.Errorf("%w: over %d iterations of comprehensions", ErrTooCostly, maxIterations)

// countedList and countedMap are the ranges of comprehensions (exists, all, map, filter, …):
// their iterations count against maxIterations.
type countedList struct {
	traits.Lister
	b *budget
}

// Iterator implements traits.Iterable.
func (l countedList) Iterator() traits.Iterator {
	return &countedIterator{Iterator: l.Lister.Iterator(), b: l.b}
}

type countedMap struct {
	traits.Mapper
	b *budget
}

// Iterator implements traits.Iterable.
func (m countedMap) Iterator() traits.Iterator {
	return &countedIterator{Iterator: m.Mapper.Iterator(), b: m.b}
}

type countedIterator struct {
	traits.Iterator
	b *budget
}

// HasNext implements traits.Iterator: false once the evaluation has used up its iterations.
func (it *countedIterator) HasNext() ref.Val {
	more := it.Iterator.HasNext()
	if more == types.True && it.b.iterations >= maxIterations {
		if it.b.exceeded == nil {
			it.b.exceeded = errIterations
		}
		return types.False
	}
	return more
}

// Next implements traits.Iterator.
func (it *countedIterator) Next() ref.Val {
	it.b.iterations++
	return it.Iterator.Next()
}

// inputName resolves, in the activation, to the Input itself: a name no CEL source can write.
const inputName = "@streamux.input"

// countRanges makes every comprehension in e count its iterations.
func countRanges(e celast.Expr) cel.ProgramOption {
	ranges := map[int64]bool{}
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.ComprehensionKind {
			ranges[e.AsComprehension().IterRange().ID()] = true
		}
	}))
	return cel.CustomDecoratorV2(func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
		if ranges[i.ID()] {
			return countedRange{i}, nil
		}
		return i, nil
	})
}

// countedRange is a comprehension's range, made to count.
type countedRange struct {
	interpreter.InterpretableV2
}

// Exec implements interpreter.InterpretableV2.
func (r countedRange) Exec(f *interpreter.ExecutionFrame) ref.Val {
	v := r.InterpretableV2.Exec(f)
	x, ok := f.ResolveName(inputName)
	if !ok {
		return v
	}
	b := &x.(*Input).budget
	switch c := v.(type) {
	case traits.Lister:
		return countedList{c, b}
	case traits.Mapper:
		return countedMap{c, b}
	}
	return v
}

// Eval implements interpreter.Interpretable.
func (r countedRange) Eval(a interpreter.Activation) ref.Val {
	return r.Exec(interpreter.AsFrame(a))
}

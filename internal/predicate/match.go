package predicate

import (
	"errors"
	"fmt"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"
)

// Match reports whether the message that in shows satisfies the predicate. A failure at run time
// (a missing field, a wrong type) is not a match: Match returns false and the error, which the
// caller counts. An evaluation that went over the cost limit fails with an error that wraps
// ErrTooCostly, whatever the rest of the expression made of it: the caller cuts the
// subscription, which would cost as much again on the next such message.
func (p *Predicate) Match(in *Input) (bool, error) {
	if p.all {
		return true, nil
	}
	if in == nil || in.msg == nil {
		return false, errNoMessage
	}
	if p.fast != nil {
		ok, err := p.fast(in)
		return ok && err == nil, err
	}
	in.budget = budget{}
	out, det, err := p.prg.Eval((*activation)(in))
	if in.budget.exceeded != nil {
		in.cost = p.maxCost + 1
		return false, in.budget.exceeded
	}
	if err != nil {
		var cancelled interpreter.EvalCancelledError
		if errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded {
			in.cost = p.maxCost + 1
			return false, fmt.Errorf("%w: one evaluation went over the cost limit of %d", ErrTooCostly, p.maxCost)
		}
		return false, err
	}
	if p.measured && det != nil {
		if c := det.ActualCost(); c != nil {
			in.cost = *c
		}
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("predicate: result is %s, not bool", out.Type().TypeName())
	}
	return bool(b), nil
}

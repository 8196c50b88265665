package predicate

import (
	"fmt"

	"github.com/google/cel-go/common/types"
)

// Match reports whether the message that in shows satisfies the predicate. A failure at run time
// (a missing field, a wrong type, the cost limit) is not a match: Match returns false and the
// error, which the caller counts.
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
	in.body.iterations, in.body.overBudget = 0, false
	out, _, err := p.prg.Eval((*activation)(in))
	if in.body.overBudget {
		return false, errIterations
	}
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("predicate: result is %s, not bool", out.Type().TypeName())
	}
	return bool(b), nil
}

package predicate

import (
	"fmt"
	"strconv"
	"strings"

	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
)

// Comparison is an equality test of a body field with a constant (body.n == "5", body.n != 5,
// body.n in ["a", "b"]). The body is dynamic, so the type checker cannot see that the field
// holds a number where the constant is a string; CEL's == between the two is then simply false,
// and != true, for every message, which reads as a predicate that matches nothing rather than a
// mistake. Mismatch tells it from a message, so that a check of the recent history can warn.
type Comparison struct {
	// Text is the comparison in CEL source, the field first (body.n == "5").
	Text string
	// Position is the 0-based character offset where it starts in the predicate.
	Position int
	// Field is the field's path as CEL source (body.n).
	Field string
	// constants are the kinds of the constants compared with: kString, kInt (any number) or kBool.
	constants []kind
	// literals are the constants as written, for the suggestion.
	literals []string
	get      valFn
}

// Comparisons returns the predicate's equality tests of a body field with constants, in the
// order they appear.
func (p *Predicate) Comparisons() []Comparison { return p.comparisons }

// Mismatch reports whether the message that in shows holds the comparison's field with a kind
// that no constant of the comparison has (a number compared with strings, a string with
// numbers, a list with a string…), and names that kind. A missing field, or null, is no mismatch:
// it says nothing of what the field holds when it is there.
func (c *Comparison) Mismatch(in *Input) (holds string, mismatch bool) {
	if in == nil || in.msg == nil {
		return "", false
	}
	v, err := c.get(in)
	if err != nil || v.k == kNull {
		return "", false
	}
	k := v.k
	if isNumber(k) {
		k = kInt
	}
	for _, want := range c.constants {
		if k == want {
			return "", false
		}
	}
	return kindName(k), true
}

// Warning is the sentence a check shows for a comparison that mismatched in n of of messages,
// the field holding holds in the first of them.
func (c *Comparison) Warning(holds string, n, of int) string {
	msg := fmt.Sprintf("%s is a %s in %d of the %d messages checked, but it is compared with %s: in CEL a %s never equals a %s, so this comparison is always false (!= always true)",
		c.Field, holds, n, of, strings.Join(c.literals, ", "), holds, kindName(c.constants[0]))
	if fix := c.suggestion(holds); fix != "" {
		msg += "; did you mean " + fix + "?"
	}
	return msg
}

// suggestion rewrites the constants in the kind the field holds, when they all convert: "5"
// becomes 5 for a number, 5 becomes "5" for a string.
func (c *Comparison) suggestion(holds string) string {
	out := make([]string, len(c.literals))
	for i, lit := range c.literals {
		switch holds {
		case "number":
			s, err := strconv.Unquote(lit)
			if err != nil {
				return ""
			}
			if _, err := strconv.ParseFloat(s, 64); err != nil {
				return ""
			}
			out[i] = s
		case "string":
			if c.constants[0] == kString {
				return ""
			}
			out[i] = strconv.Quote(strings.TrimSuffix(lit, "u"))
		default:
			return ""
		}
	}
	if len(out) == 1 {
		return c.Field + " == " + out[0]
	}
	return c.Field + " in [" + strings.Join(out, ", ") + "]"
}

func kindName(k kind) string {
	switch k {
	case kString:
		return "string"
	case kInt, kUint, kDouble:
		return "number"
	case kBool:
		return "bool"
	case kList:
		return "list"
	case kMap:
		return "map"
	}
	return "value"
}

// findComparisons collects the equality tests of a body path with constants of one kind.
func findComparisons(a *celast.AST) []Comparison {
	var out []Comparison
	info := a.SourceInfo()
	celast.PreOrderVisit(a.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		args := call.Args()
		if len(args) != 2 {
			return
		}
		var field celast.Expr
		var consts []celast.Expr
		switch call.FunctionName() {
		case operators.Equals, operators.NotEquals:
			field, consts = args[0], args[1:]
			if args[0].Kind() == celast.LiteralKind {
				field, consts = args[1], args[:1]
			}
		case operators.In:
			if args[1].Kind() != celast.ListKind {
				return
			}
			field, consts = args[0], args[1].AsList().Elements()
		default:
			return
		}
		root, segs, ok := fastPath(field)
		if !ok || root != varBody || len(consts) == 0 {
			return
		}
		c := Comparison{get: pathOperand(root, segs).get}
		for _, ce := range consts {
			if ce.Kind() != celast.LiteralKind {
				return
			}
			v := refToVal(ce.AsLiteral())
			k := v.k
			switch {
			case isNumber(k):
				k = kInt
			case k != kString && k != kBool:
				return
			}
			if len(c.constants) > 0 && c.constants[0] != k {
				return // constants of several kinds: a field of any of them is expected
			}
			c.constants = append(c.constants, k)
			c.literals = append(c.literals, literal(ce.AsLiteral().Value()))
		}
		c.Field = pathText(root, segs)
		switch call.FunctionName() {
		case operators.Equals:
			c.Text = c.Field + " == " + c.literals[0]
		case operators.NotEquals:
			c.Text = c.Field + " != " + c.literals[0]
		default:
			c.Text = c.Field + " in [" + strings.Join(c.literals, ", ") + "]"
		}
		c.Position = startOf(info, e)
		out = append(out, c)
	}))
	return out
}

// startOf is the first character of e and its operands in the source, or 0.
func startOf(info *celast.SourceInfo, e celast.Expr) int {
	start := -1
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(x celast.Expr) {
		if r, ok := info.GetOffsetRange(x.ID()); ok && (start < 0 || int(r.Start) < start) {
			start = int(r.Start)
		}
	}))
	return max(start, 0)
}

// pathText is a path as CEL source: body.customer["first name"].tags[0].
func pathText(root string, segs []segment) string {
	var b strings.Builder
	b.WriteString(root)
	for _, s := range segs {
		if s.isIndex {
			b.WriteString("[" + strconv.FormatInt(s.index, 10) + "]")
		} else {
			writePath(&b, []string{s.name})
		}
	}
	return b.String()
}
